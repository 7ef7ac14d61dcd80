"""Typed, file-backed run configs.

A run config is YAML validated by the backend's pydantic model (a subclass of
:class:`BaseRunConfig`). Any field can be overridden from the command line with
``--set section.field=value`` (the value is parsed as YAML), so every CLI flag maps to a
config field and the resolved config written to the run directory is the whole truth.

Fields that mean the same thing in every backend have one name, defined here:
``train.checkpoint_every`` (save and score), ``train.log_every``, ``train.batch_size``,
``train.progress`` and a ``lora`` section (``rank``, ``alpha``, ``dropout``,
``target_modules``). Older per-backend names (``train.eval_every``, ``train.save_steps``,
``train.logging_steps``, ``train.per_device_batch``, ``model.lora_rank``, ...) are still read:
:meth:`BaseRunConfig._rename_deprecated` rewrites them and logs a deprecation warning
naming the new field, for config files and ``--set`` overrides alike.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from finextract.errors import ConfigError

log = logging.getLogger("finextract")


class TrainBase(BaseModel):
    """Training fields every backend has (a backend's train section subclasses this)."""

    model_config = ConfigDict(extra="forbid")
    checkpoint_every: int = Field(200, ge=1, description="save and score a checkpoint every N steps (and at the end)")
    progress: bool = Field(True, description="show progress: a bar on a terminal, a log line every ~5% otherwise")


class StepTrainBase(TrainBase):
    """Shared fields of backends trained by gradient steps over mini-batches."""

    batch_size: int = Field(16, ge=1, description="training records per step (per device)")
    log_every: int = Field(10, ge=1, description="write loss / lr to train_log.jsonl every N steps")


class LoraBase(BaseModel):
    """The shared LoRA section (peft): same names for every backend, defaults per backend."""

    model_config = ConfigDict(extra="forbid")
    rank: int = Field(8, ge=1)
    alpha: float = Field(16, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | str = Field(default_factory=list, description="module names to adapt, or 'all-linear'")


def _pop_path(data: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        if not isinstance(node, dict) or not isinstance(node.get(part), dict):
            return False, None
        node = node[part]
    if not isinstance(node, dict) or parts[-1] not in node:
        return False, None
    return True, node.pop(parts[-1])


def _has_path(data: dict[str, Any], dotted: str) -> bool:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


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

    # old dotted name -> new dotted name (each backend lists its own)
    DEPRECATED_NAMES: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _rename_deprecated(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not cls.DEPRECATED_NAMES:
            return data
        data = _deep_copy(data)
        for old, new in cls.DEPRECATED_NAMES.items():
            found, value = _pop_path(data, old)
            if not found:
                continue
            if _has_path(data, new):
                raise ConfigError(f"config: both {old} (deprecated) and {new} are set; keep only {new}")
            _set_path(data, new, value)
            message = f"config field {old} is deprecated; use {new} (read as {new} this time)"
            log.warning(message)
            warnings.warn(message, FutureWarning, stacklevel=2)
        return data

    def load_task(self):
        from finextract.tasks import load_task

        return load_task(self.task)




def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def _renames_for(data: dict[str, Any]) -> dict[str, str]:
    """The deprecated-name map of the backend ``data`` names (empty if it names none we know)."""
    from finextract.registry import UnknownBackendError, get_backend

    name = data.get("backend")
    if not isinstance(name, str):
        return {}
    try:
        cls = get_backend(name).config_cls
    except UnknownBackendError:
        return {}
    return dict(getattr(cls, "DEPRECATED_NAMES", {}) or {})


def _current_name(data: dict[str, Any], dotted: str) -> str:
    """An override's field under its current name; the old spelling of that field is dropped from ``data``.

    So ``--set train.eval_every=5`` on a config with ``train.checkpoint_every: 100`` (or the
    reverse) means "checkpoint every 5", as it did before the rename, instead of setting both.
    """
    renames = _renames_for(data)
    if not renames:
        return dotted
    new = renames.get(dotted, dotted)
    if new != dotted:
        message = f"override {dotted} is deprecated; use {new} (read as {new} this time)"
        log.warning(message)
        warnings.warn(message, FutureWarning, stacklevel=3)
    for old, target in renames.items():
        if target == new:
            _pop_path(data, old)
    return new


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (value parsed as YAML) to a nested dict, in place.

    A deprecated field name is rewritten to its current one (see :func:`_current_name`).
    """
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.field=value")
        dotted, raw = item.split("=", 1)
        dotted = _current_name(data, dotted.strip())
        node = data
        parts = dotted.split(".")
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
    from finextract.registry import get_backend, known_backends

    data = read_config_dict(path, overrides)
    name = data.get("backend")
    where = str(path) if path else "config"
    if name not in known_backends():
        raise ConfigError(f"{where}: 'backend' must be one of {known_backends()}, got {name!r}")
    try:
        return get_backend(name).config_cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{where}: invalid config:\n{exc}") from exc
