"""Experiment tracking. MLflow when enabled in the config, otherwise nothing.

Trainers call ``tracker = start_tracking(config, run)`` and then ``log_metrics`` /
``log_artifacts`` / ``end``; with tracking off these are no-ops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class NullTracker:
    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...
    def log_artifacts(self, path: str | Path) -> None: ...
    def end(self, status: str = "FINISHED") -> None: ...


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


class MlflowTracker(NullTracker):
    def __init__(self, config: Any, run_dir: Path):
        import mlflow

        self.mlflow = mlflow
        uri = config.tracking.tracking_uri or (Path.cwd() / "mlruns").as_uri()
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(config.tracking.experiment)
        self.run = mlflow.start_run(run_name=Path(run_dir).name)
        self.log_params(_flatten(config.model_dump(mode="json")))

    def log_params(self, params: dict[str, Any]) -> None:
        self.mlflow.log_params({k: str(v)[:500] for k, v in params.items()})

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.mlflow.log_metrics({k.replace("@", "_"): float(v) for k, v in metrics.items()}, step=step)

    def log_artifacts(self, path: str | Path) -> None:
        self.mlflow.log_artifacts(str(path))

    def end(self, status: str = "FINISHED") -> None:
        self.mlflow.end_run(status=status)


def start_tracking(config: Any, run_dir: Path) -> NullTracker:
    if getattr(getattr(config, "tracking", None), "mlflow", False):
        return MlflowTracker(config, run_dir)
    return NullTracker()
