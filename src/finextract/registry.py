"""Backend registry: each backend is a subpackage that registers a :class:`Backend` on import.

A backend provides its config class, a ``train(config) -> dict`` function (the run summary
that is also written to ``RUN_DIR/DONE``), a ``load(source, checkpoint) -> Extractor``
function and, optionally, ``commands(app)`` adding its own CLI commands. Backend packages
are imported lazily so that ``finextract score`` never pays for importing torch.

This is a leaf module (it imports nothing from finextract at import time), so the shared
layer (``config``, ``rundir``, ``extractor``) can look backends up without importing the
``finextract.backends`` package that itself depends on the shared layer.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

class UnknownBackendError(ValueError):
    """No backend of that name (a ``ValueError`` so config validation reports it as a field error)."""


_MODULES = {
    "encoder": "finextract.backends.encoder",
    "causal_lm": "finextract.backends.causal_lm",
    "crf": "finextract.backends.crf",
    "endpoint": "finextract.backends.endpoint",
}
_REGISTRY: dict[str, "Backend"] = {}


@dataclass
class Backend:
    name: str
    config_cls: type | None
    train: Callable[[Any], Any] | None
    load: Callable[..., Any]
    description: str = ""
    commands: Callable[[Any], None] | None = None  # register(app: typer.Typer): backend-only CLI commands
    # tiny_config(workdir) -> config fields for a seconds-long run of two checkpointed steps on a
    # tiny random model built under workdir: what the backend contract test trains
    tiny_config: Callable[[Any], dict[str, Any]] | None = None


def register_backend(backend: Backend) -> Backend:
    _REGISTRY[backend.name] = backend
    return backend


def known_backends() -> list[str]:
    return sorted(set(_MODULES) | set(_REGISTRY))


def get_backend(name: str) -> Backend:
    if name not in _REGISTRY and name in _MODULES:
        try:
            importlib.import_module(_MODULES[name])
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("finextract"):
                raise UnknownBackendError(f"backend {name!r} is not available in this build") from exc
            raise
    if name not in _REGISTRY:
        raise UnknownBackendError(f"unknown backend {name!r}; known: {known_backends()}")
    return _REGISTRY[name]
