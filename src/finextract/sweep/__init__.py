"""Sweeps: a grid of run configs trained, timed and tabulated (see docs/sweeps.md)."""

from finextract.sweep.config import SweepConfig, load_sweep_config
from finextract.sweep.grid import RunSpec, expand

__all__ = ["SweepConfig", "load_sweep_config", "RunSpec", "expand", "run_sweep"]


def run_sweep(*args, **kwargs):
    from finextract.sweep.runner import run_sweep as _run

    return _run(*args, **kwargs)
