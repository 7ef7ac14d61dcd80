"""Typed, file-backed run configs.

A run config is YAML validated by the backend's pydantic model (a subclass of
:class:`BaseRunConfig`). Any field can be overridden from the command line with
``--set section.field=value`` (the value is parsed as YAML), so every CLI flag maps to a
config field and the resolved config written to the run directory is the whole truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    train: Path | None = Field(None, description="JSONL of labeled training records")
    validation: Path | None = Field(None, description="JSONL used to score every checkpoint and pick the best")
    test: Path | None = Field(None, description="JSONL scored once with the best checkpoint")
    eval_sets: dict[str, Path] = Field(default_factory=dict,
                                       description="extra named JSONL sets scored with the best checkpoint")
    skip_invalid: bool = Field(False, description="drop invalid records (reported) instead of refusing the file")
    max_train_records: int | None = Field(None, description="use only the first N training records")
    max_eval_records: int | None = Field(None, description="score only the first N validation records per checkpoint")


class TrackingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mlflow: bool = Field(False, description="log params, per-checkpoint metrics and artifacts to MLflow")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI (default: ./mlruns)")
    experiment: str = "finextract"


class BaseRunConfig(BaseModel):
    """Fields every backend shares. Backends subclass and add ``model`` / ``train`` sections."""

    model_config = ConfigDict(extra="forbid")
    backend: str
    task: str = Field("merchant", description="built-in task name or path to a task YAML")
    output_dir: Path = Field(Path("runs/run"), description="run directory to create (or resume)")
    seed: int = 0
    data: DataConfig = Field(default_factory=DataConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    def load_task(self):
        from finextract.tasks import load_task

        return load_task(self.task)


class ConfigError(ValueError):
    pass


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (value parsed as YAML) to a nested dict, in place."""
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.field=value")
        dotted, raw = item.split("=", 1)
        node = data
        parts = dotted.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None
    return data


def read_config_dict(path: str | Path | None, overrides: list[str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if path is not None:
        from finextract.tasks import read_yaml_file  # size and alias limits (a YAML bomb fails fast)

        path = Path(path)
        try:
            loaded = read_yaml_file(path)
        except ValueError as exc:
            raise ConfigError(f"cannot read config: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a config must be a YAML mapping")
        data = loaded or {}
    return apply_overrides(data, overrides)


def load_run_config(path: str | Path | None, overrides: list[str] | None = None) -> BaseRunConfig:
    """Read YAML + overrides and validate with the backend's config class."""
    from finextract.backends import get_backend, known_backends

    data = read_config_dict(path, overrides)
    name = data.get("backend")
    where = str(path) if path else "config"
    if name not in known_backends():
        raise ConfigError(f"{where}: 'backend' must be one of {known_backends()}, got {name!r}")
    try:
        return get_backend(name).config_cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{where}: invalid config:\n{exc}") from exc
