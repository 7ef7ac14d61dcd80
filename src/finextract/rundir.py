"""One run-directory layout for every backend.

::

    RUN_DIR/
      config.yaml          resolved config (every default filled in)
      versions.json        python, platform and library versions
      checkpoints/step-N/  one folder per checkpoint (backend-specific contents)
      metrics.jsonl        one line per scored checkpoint: {"step", "epoch", "val": ScoreReport.to_dict(), ...}
      best.json            {"checkpoint": "step-N", "step": N, "metric": "micro_f1", "value": ...}
      train_log.jsonl      loss / lr per logging step
      predictions/         NAME.jsonl prediction files, NAME.score.json next to them
      curve.png            training curve (loss, validation F1 per checkpoint)
      DONE                 written last, when training finished
"""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


def library_versions() -> dict[str, str]:
    """Versions of the libraries that decide a run's numbers."""
    from importlib import metadata

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in ("finextract", "torch", "transformers", "peft", "accelerate", "tokenizers",
                 "python-crfsuite", "onnxruntime", "numpy", "pydantic"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


@dataclass
class RunDir:
    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)

    # paths
    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def best_path(self) -> Path:
        return self.root / "best.json"

    @property
    def train_log_path(self) -> Path:
        return self.root / "train_log.jsonl"

    @property
    def predictions_dir(self) -> Path:
        return self.root / "predictions"

    @property
    def done_path(self) -> Path:
        return self.root / "DONE"

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints_dir / f"step-{step}"

    # writing
    def create(self, config: Any) -> "RunDir":
        """Create the folder and write the resolved config and library versions."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.checkpoints_dir.mkdir(exist_ok=True)
        data = config.model_dump(mode="json") if hasattr(config, "model_dump") else dict(config)
        self.config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        (self.root / "versions.json").write_text(json.dumps(library_versions(), indent=2), encoding="utf-8")
        return self

    def append_jsonl(self, path: Path, row: dict[str, Any]) -> None:
        row = {"time": time.time(), **row}
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()

    def log_metrics(self, row: dict[str, Any]) -> None:
        self.append_jsonl(self.metrics_path, row)

    def log_train(self, row: dict[str, Any]) -> None:
        self.append_jsonl(self.train_log_path, row)

    def set_best(self, checkpoint: str, step: int, value: float, metric: str = "micro_f1") -> None:
        tmp = self.best_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"checkpoint": checkpoint, "step": step, "metric": metric, "value": value},
                                  indent=2), encoding="utf-8")
        tmp.replace(self.best_path)

    def rewind(self, step: int) -> None:
        """Forget logged work after ``step`` (the checkpoint a resumed run restarts from).

        Train-log and metrics rows past ``step`` are dropped, since the resumed run writes them
        again, and ``best.json`` is rebuilt from the metrics that remain (ties keep the earlier step,
        as in :func:`finextract.training.score_checkpoint`).
        """
        for path in (self.train_log_path, self.metrics_path):
            if path.exists():
                lines = [line for line in path.read_text(encoding="utf-8").splitlines()
                         if line.strip() and json.loads(line).get("step", 0) <= step]
                path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        self.best_path.unlink(missing_ok=True)
        best: dict[str, Any] | None = None
        for row in self.metrics():
            f1 = row["val"]["micro"]["f1"]
            if best is None or f1 > best["value"]:
                best = {"checkpoint": row["checkpoint"], "step": row["step"], "value": f1}
        if best is not None:
            self.set_best(best["checkpoint"], best["step"], best["value"])

    def mark_done(self, summary: dict[str, Any] | None = None) -> None:
        self.done_path.write_text(json.dumps(summary or {}, indent=2), encoding="utf-8")

    # reading
    def read_config(self) -> dict[str, Any]:
        if not self.config_path.exists():
            raise FileNotFoundError(f"{self.root}: not a finextract run directory (no config.yaml)")
        return yaml.safe_load(self.config_path.read_text(encoding="utf-8"))

    def metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def train_log(self) -> list[dict[str, Any]]:
        if not self.train_log_path.exists():
            return []
        return [json.loads(line) for line in self.train_log_path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def best(self) -> dict[str, Any] | None:
        return json.loads(self.best_path.read_text(encoding="utf-8")) if self.best_path.exists() else None

    def checkpoints(self) -> list[tuple[int, Path]]:
        """Complete checkpoints, sorted by step (a folder without its COMPLETE marker is ignored)."""
        if not self.checkpoints_dir.exists():
            return []
        out = []
        for p in self.checkpoints_dir.glob("step-*"):
            if (p / "COMPLETE").exists():
                try:
                    out.append((int(p.name.split("-", 1)[1]), p))
                except ValueError:
                    continue
        return sorted(out)

    def resolve_checkpoint(self, checkpoint: str | None = None) -> Path:
        """``None``/"best" -> the best checkpoint; "last" -> the newest; "step-N" or a path as given."""
        if checkpoint in (None, "best"):
            best = self.best()
            if best:
                return self.checkpoints_dir / best["checkpoint"]
            checkpoint = "last"
        if checkpoint == "last":
            cps = self.checkpoints()
            if not cps:
                raise FileNotFoundError(f"{self.root}: no complete checkpoint yet")
            return cps[-1][1]
        path = Path(checkpoint)
        return path if path.is_absolute() or path.exists() else self.checkpoints_dir / checkpoint

    @property
    def backend(self) -> str:
        return self.read_config()["backend"]

    def load_extractor(self, checkpoint: str | None = None, **kwargs: Any):
        from finextract.registry import get_backend

        return get_backend(self.backend).load(str(self.root), checkpoint, **kwargs)


def mark_checkpoint_complete(path: Path) -> None:
    """Written last when saving a checkpoint, so a kill mid-save never leaves a 'valid' half checkpoint."""
    (Path(path) / "COMPLETE").write_text("ok", encoding="utf-8")
