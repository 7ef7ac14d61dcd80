"""HTTP serving of a trained run: FastAPI app, micro-batching, Prometheus metrics.

``create_app(ServeConfig(run_dir=...))`` builds the app; ``finextract serve`` runs it with
uvicorn; :class:`~finextract.serve.server.BackgroundServer` runs it in a thread (tests,
benchmarks).
"""

from finextract.serve.config import ServeConfig

__all__ = ["ServeConfig", "create_app"]


def create_app(*args, **kwargs):
    """Lazy import so ``import finextract.serve`` stays cheap."""
    from finextract.serve.app import create_app as _create

    return _create(*args, **kwargs)
