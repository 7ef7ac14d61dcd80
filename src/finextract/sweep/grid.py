"""Expand a sweep's candidates into concrete runs: name, backend, resolved config dict.

Run names are derived from the grid values only, so the same sweep file always gives
the same run directories; that is what makes a sweep resumable.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finextract.config import ConfigError, apply_overrides, read_config_dict
from finextract.sweep.config import Candidate, SweepConfig


@dataclass
class RunSpec:
    name: str
    backend: str
    config: dict[str, Any]
    axes: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)


def _slug(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    s = str(value)
    if "/" in s:  # a model path or hub id: its last part names it
        s = s.rstrip("/").rsplit("/", 1)[-1]
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", s).strip("-")
    return s[:40] or "x"


def _base_dict(cand: Candidate, sweep_dir: Path | None) -> dict[str, Any]:
    if isinstance(cand.base, dict):
        return copy.deepcopy(cand.base)
    path = Path(cand.base)
    if not path.exists() and sweep_dir is not None and (sweep_dir / path).exists():
        path = sweep_dir / path
    return read_config_dict(path)


def model_dir(sweep: SweepConfig, name: str) -> Path:
    return Path(sweep.output_dir) / "_models" / name


def _substitute(node: Any, sweep: SweepConfig) -> Any:
    """Replace ``{models.NAME}`` in every string of a config dict by the built folder."""
    if isinstance(node, dict):
        return {k: _substitute(v, sweep) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, sweep) for v in node]
    if isinstance(node, str) and "{models." in node:
        for name in sweep.models:
            node = node.replace("{models." + name + "}", str(model_dir(sweep, name)))
        if "{models." in node:
            raise ConfigError(f"{node!r}: unknown model placeholder; defined in 'models': {sorted(sweep.models)}")
    return node


def build_models(sweep: SweepConfig) -> None:
    """Build every ``models`` entry whose folder is not complete yet (resumable like runs)."""
    import importlib

    for name, spec in sweep.models.items():
        path = model_dir(sweep, name)
        if (path / ".built").exists():
            continue
        mod, fn = spec.fn.split(":")
        try:
            builder = getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"models.{name}: cannot import {spec.fn}: {exc}") from exc
        path.mkdir(parents=True, exist_ok=True)
        builder(path, **spec.args)
        (path / ".built").write_text("ok", encoding="utf-8")


def expand(sweep: SweepConfig, sweep_dir: Path | None = None) -> list[RunSpec]:
    """All runs of the sweep, in file order; each config validated by its backend."""
    from finextract.registry import get_backend

    specs: list[RunSpec] = []
    seen: set[str] = set()
    for cand in sweep.candidates:
        base = _base_dict(cand, sweep_dir)
        axes = list(cand.grid)
        for values in itertools.product(*(cand.grid[a] for a in axes)):
            combo = dict(zip(axes, values))
            name = cand.name + "".join(f"__{a.rsplit('.', 1)[-1]}-{_slug(v)}" for a, v in combo.items())
            if name in seen:
                i = 2
                while f"{name}-{i}" in seen:
                    i += 1
                name = f"{name}-{i}"
            seen.add(name)
            overrides = [*sweep.set, *cand.set, *(f"{a}={json.dumps(v)}" for a, v in combo.items()),
                         f"output_dir={json.dumps(str(sweep.output_dir / name))}"]
            data = _substitute(apply_overrides(copy.deepcopy(base), overrides), sweep)
            backend = data.get("backend")
            try:
                cls = get_backend(str(backend)).config_cls
                cfg = cls.model_validate(data)
            except Exception as exc:
                raise ConfigError(f"sweep candidate {cand.name!r}, run {name}: invalid config: {exc}") from exc
            specs.append(RunSpec(name, str(backend), cfg.model_dump(mode="json"), combo, overrides))
    return specs
