"""Backends: one subpackage per way of turning text into task-shaped JSON.

Every backend has the same layout::

    backends/NAME/__init__.py    registers a finextract.registry.Backend (cheap: no torch import)
    backends/NAME/config.py      its run config (a finextract.config.RunConfig subclass)
    backends/NAME/train.py       train(config) -> summary dict, on finextract.training's lifecycle
    backends/NAME/extractor.py   its Extractor and load(run_dir, checkpoint) -> Extractor
    backends/NAME/commands.py    (optional) CLI commands only this backend has

The registry itself lives in :mod:`finextract.registry` (a leaf module); the names below are
re-exported for code that imported them from here.
"""

from finextract.registry import Backend, UnknownBackendError, get_backend, known_backends, register_backend

__all__ = ["Backend", "UnknownBackendError", "get_backend", "known_backends", "register_backend"]
