"""Backend registry: each backend is a subpackage that registers a :class:`Backend` on import.

A backend provides its config class, a ``train(config) -> RunDir`` function and a
``load(source, checkpoint) -> Extractor`` function. Modules are imported lazily so that
``finextract score`` never pays for importing torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
                raise ValueError(f"backend {name!r} is not available in this build") from exc
            raise
    if name not in _REGISTRY:
        raise ValueError(f"unknown backend {name!r}; known: {known_backends()}")
    return _REGISTRY[name]
