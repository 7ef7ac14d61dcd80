"""Experiment tracking. MLflow when enabled in the config, otherwise nothing.

Trainers call ``tracker = start_tracking(config, run_dir)`` and then ``log_params`` /
``log_metrics`` (``training.score_checkpoint`` does this per checkpoint) /
``log_artifacts(run_dir)`` / ``end``; with tracking off these are no-ops, so trainers never
branch on it. The tracking URI is ``tracking.tracking_uri`` (``--set
tracking.tracking_uri=sqlite:///mlflow.db``, a server URL, ...) or a local ``./mlruns``
file store. A tracking failure is logged and never loses a training run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("finextract.tracking")

# run-directory entries that are not sent as artifacts: checkpoints can be hundreds of MB
# each, so only the best one is logged (under best_checkpoint/).
_SKIP = {"checkpoints", "mlflow_model", "validations"}


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
        self.run_dir = Path(run_dir)
        self._logged: dict[str, str] = {}
        uri = config.tracking.tracking_uri or (Path.cwd() / "mlruns").as_uri()
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(config.tracking.experiment)
        if mlflow.active_run() is not None:  # a previous run in this process was not ended
            mlflow.end_run()
        self.run = mlflow.start_run(run_name=self.run_dir.name)
        self.run_id = self.run.info.run_id
        mlflow.set_tags({"finextract.run_dir": str(self.run_dir.resolve()),
                         "finextract.backend": str(getattr(config, "backend", "")),
                         "finextract.task": str(getattr(config, "task", ""))})
        self.log_params(config.model_dump(mode="json"))
        log.info("MLflow tracking: %s run %s", uri, self.run_id)

    def log_params(self, params: dict[str, Any]) -> None:
        """Flattened (``train.learning_rate``); a param already logged with the same value is skipped
        (MLflow refuses to change a logged param, and trainers may log the config twice)."""
        flat = {k: str(v)[:500] for k, v in _flatten(params).items()}
        new = {k: v for k, v in flat.items() if self._logged.get(k) != v}
        changed = {k for k in new if k in self._logged}
        if changed:
            log.warning("MLflow params cannot change within a run; not re-logging %s", sorted(changed))
            new = {k: v for k, v in new.items() if k not in changed}
        if new:
            self.mlflow.log_params(new, run_id=self.run_id)
            self._logged.update(new)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        clean = {k.replace("@", "_"): float(v) for k, v in metrics.items() if v is not None}
        self.mlflow.log_metrics(clean, step=step, run_id=self.run_id)

    def log_artifacts(self, path: str | Path) -> None:
        """A run directory: its small files plus the best checkpoint; any other path: as is."""
        path = Path(path)
        if not (path / "config.yaml").exists():
            self.mlflow.log_artifacts(str(path), run_id=self.run_id)
            return
        for entry in sorted(path.iterdir()):
            if entry.name in _SKIP:
                continue
            if entry.is_dir():
                self.mlflow.log_artifacts(str(entry), artifact_path=entry.name, run_id=self.run_id)
            else:
                self.mlflow.log_artifact(str(entry), run_id=self.run_id)
        from finextract.rundir import RunDir

        best = RunDir(path).best()
        if best and (path / "checkpoints" / best["checkpoint"]).is_dir():
            self.mlflow.log_artifacts(str(path / "checkpoints" / best["checkpoint"]),
                                      artifact_path=f"best_checkpoint/{best['checkpoint']}", run_id=self.run_id)

    def end(self, status: str = "FINISHED") -> None:
        active = self.mlflow.active_run()
        if active is not None and active.info.run_id == self.run_id:
            self.mlflow.end_run(status=status)
        else:
            self.mlflow.MlflowClient().set_terminated(self.run_id, status=status)


class _SafeTracker(NullTracker):
    """Wraps a tracker so a tracking outage (server down, disk full) warns instead of killing training."""

    def __init__(self, inner: NullTracker) -> None:
        self.inner = inner
        self._warned = False

    def _call(self, name: str, *args: Any, **kwargs: Any) -> None:
        try:
            getattr(self.inner, name)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - tracking is best effort by design
            if not self._warned:
                log.warning("MLflow %s failed (%s); training continues, later tracking errors are silent",
                            name, exc)
                self._warned = True

    def log_params(self, params: dict[str, Any]) -> None:
        self._call("log_params", params)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._call("log_metrics", metrics, step=step)

    def log_artifacts(self, path: str | Path) -> None:
        self._call("log_artifacts", path)

    def end(self, status: str = "FINISHED") -> None:
        self._call("end", status)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def start_tracking(config: Any, run_dir: Path) -> NullTracker:
    """MlflowTracker when ``tracking.mlflow`` is true (a bad URI fails here, loudly), else NullTracker."""
    if getattr(getattr(config, "tracking", None), "mlflow", False):
        return _SafeTracker(MlflowTracker(config, run_dir))
    return NullTracker()
