"""CLI command modules; each defines ``register(app)`` (see finextract.cli)."""
