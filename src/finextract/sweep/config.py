"""Sweep YAML: candidates (a base run config + grid axes), throughput settings, report tiers.

::

    name: smoke
    output_dir: runs/sweep-smoke
    set: ["task=merchant", "data.train=tests/data/merchant_sample.jsonl"]   # every run
    throughput: {texts: 64, batch_size: 16, latency_samples: 20, threads: 1}
    candidates:
      - name: crf
        base: configs/crf-smoke.yaml            # a run config file, or an inline mapping
        grid: {model.c1: [0.01, 0.1]}           # axes: dotted field -> values
      - name: qwen
        base: {backend: causal_lm, model: {name_or_path: Qwen/Qwen3-0.6B}}
        set: ["train.max_steps=200"]
        grid:
          model.name_or_path: [Qwen/Qwen3-0.6B, Qwen/Qwen3-1.7B]
          prompt.style: [json-only, two-step, minimal]
          prompt.enable_thinking: [false, true]
          lora.rank: [8, 32]
    models:                                      # optional: folders built before any run
      tiny-llama: {fn: "finextract.testing.tiny:build_tiny_causal_lm", args: {arch: llama}}
    # ... and a candidate uses it as  model.name_or_path: "{models.tiny-llama}"
    report:
      tiers: [{name: balanced, objective: throughput, max_f1_drop: 0.02}]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from finextract.config import ConfigError
from finextract.report.config import ReportConfig, load_report_config  # noqa: F401  (moved to report/)


def _as_overrides(value: Any) -> list[str]:
    """``set`` may be a list of ``a.b=v`` strings or a mapping ``{a.b: v}``."""
    import json

    if value is None:
        return []
    if isinstance(value, dict):
        return [f"{k}={json.dumps(v)}" for k, v in value.items()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ValueError("'set' must be a list of 'section.field=value' strings or a mapping")


class Candidate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$", description="prefix of this candidate's run names")
    base: Path | dict[str, Any] = Field(description="run config YAML path or inline mapping (must set backend)")
    set: list[str] = Field(default_factory=list, description="fixed overrides for every run of this candidate")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="axes: dotted config field -> values")

    @field_validator("set", mode="before")
    @classmethod
    def _set(cls, v: Any) -> list[str]:
        return _as_overrides(v)

    @field_validator("grid")
    @classmethod
    def _grid(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for axis, values in v.items():
            if not values:
                raise ValueError(f"grid axis {axis!r} has no values")
        return v


class ModelBuild(BaseModel):
    """A model folder the sweep builds before training (tiny test models, sliced encoders).

    ``fn`` is ``package.module:function``, called as ``fn(DIR, **args)``; the folder is
    ``OUTPUT_DIR/_models/NAME`` and any config string ``{models.NAME}`` is replaced by it.
    """

    model_config = ConfigDict(extra="forbid")
    fn: str = Field(pattern=r"^[\w.]+:\w+$")
    args: dict[str, Any] = Field(default_factory=dict)


class ThroughputConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: int = Field(256, ge=1, description="validation texts timed per run (cycled if fewer exist)")
    batch_size: int = Field(32, ge=1, description="batch size of the batched throughput pass")
    latency_samples: int = Field(50, ge=1, description="single-text calls timed for p50/p90")
    repeats: int = Field(3, ge=1)
    threads: int | None = Field(1, ge=1, description="CPU threads for timing (OMP/torch); null = library default")
    texts_file: Path | None = Field(None, description="time on these texts instead of the validation set")


class SweepConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "sweep"
    output_dir: Path = Path("runs/sweep")
    set: list[str] = Field(default_factory=list, description="overrides applied to every run (before candidate ones)")
    models: dict[str, ModelBuild] = Field(default_factory=dict, description="model folders to build first")
    candidates: list[Candidate] = Field(min_length=1)
    throughput: ThroughputConfig = Field(default_factory=ThroughputConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    run_timeout_s: float | None = Field(None, gt=0, description="kill a run's training after this many seconds")

    @field_validator("set", mode="before")
    @classmethod
    def _set(cls, v: Any) -> list[str]:
        return _as_overrides(v)


def load_sweep_config(path: str | Path, overrides: list[str] | None = None) -> SweepConfig:
    """Read and validate a sweep YAML (``--set`` overrides apply to the sweep file itself)."""
    from finextract.config import read_config_dict

    path = Path(path)
    data = read_config_dict(path, overrides)
    try:
        return SweepConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid sweep config:\n{exc}") from exc
