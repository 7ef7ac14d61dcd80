"""One run-directory layout for every backend.

::

    RUN_DIR/
      config.yaml          resolved config (every default filled in)
      versions.json        python, platform and library versions
      .lock                held by the process training this run (finextract.locking.RunLock)
      checkpoints/step-N/  one folder per checkpoint (backend-specific contents), plus
        MANIFEST.json      every file of the checkpoint with its size and sha256, written before
        COMPLETE           the marker written last; a folder without it is ignored
      metrics.jsonl        one line per scored checkpoint: {"step", "epoch", "val": ScoreReport.to_dict(), ...}
      best.json            {"checkpoint": "step-N", "step": N, "metric": "micro_f1", "value": ...}
      train_log.jsonl      loss / lr per logging step
      predictions/         NAME.jsonl prediction files, NAME.score.json next to them
      curve.png            training curve (loss, validation F1 per checkpoint)
      DONE                 written last, when training finished
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from finextract.hashing import file_sha256
from finextract.errors import RunDirError, RunDirNotFound

log = logging.getLogger("finextract")
MANIFEST_FILE = "MANIFEST.json"
COMPLETE_FILE = "COMPLETE"
_CHECKPOINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


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
        text = yaml.safe_dump(data, sort_keys=False)
        _write_atomic(self.config_path, text)
        # the config's checksum, so a truncated or altered config.yaml (which may still parse) is caught
        versions = {**library_versions(), "config_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
        _write_atomic(self.versions_path, json.dumps(versions, indent=2))
        return self

    @property
    def versions_path(self) -> Path:
        return self.root / "versions.json"

    def _check_config_checksum(self, raw: bytes) -> None:
        """Compare config.yaml with the checksum ``create`` recorded (runs made before it was recorded pass)."""
        try:
            expected = json.loads(self.versions_path.read_text(encoding="utf-8")).get("config_sha256")
        except (OSError, UnicodeDecodeError, ValueError, AttributeError):
            return  # versions.json is informational; runcheck reports it if damaged
        if isinstance(expected, str) and hashlib.sha256(raw).hexdigest() != expected:
            raise RunDirError(f"{self.config_path}: does not match the checksum recorded in versions.json when the "
                              "run was written (the file is truncated, damaged or was edited)")

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
                         if line.strip() and _step_of(line, path) <= step]
                tmp = path.with_name(path.name + ".tmp")
                tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
                tmp.replace(path)
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
            raise RunDirNotFound(f"{self.root}: not a finextract run directory (no config.yaml)")
        raw = self.config_path.read_bytes()
        self._check_config_checksum(raw)
        try:
            data = yaml.safe_load(raw.decode("utf-8"))
        except (UnicodeDecodeError, yaml.YAMLError) as exc:
            raise RunDirError(f"{self.config_path}: not a readable YAML config ({exc})") from None
        if not isinstance(data, dict):
            raise RunDirError(f"{self.config_path}: a run config must be a YAML mapping")
        return data

    def metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def train_log(self) -> list[dict[str, Any]]:
        if not self.train_log_path.exists():
            return []
        return [json.loads(line) for line in self.train_log_path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def best(self) -> dict[str, Any] | None:
        """``best.json``, checked: a mapping naming a checkpoint folder inside ``checkpoints/``."""
        if not self.best_path.exists():
            return None
        try:
            best = json.loads(self.best_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise RunDirError(f"{self.best_path}: not valid JSON ({exc}); delete it or retrain") from None
        name = best.get("checkpoint") if isinstance(best, dict) else None
        if not isinstance(name, str) or not _CHECKPOINT_NAME.match(name) or name in (".", ".."):
            raise RunDirError(f"{self.best_path}: 'checkpoint' must name a folder inside {self.checkpoints_dir} "
                              f"(like \"step-200\"), got {name!r}")
        return best

    def checkpoints(self) -> list[tuple[int, Path]]:
        """Complete checkpoints, sorted by step (a folder without its COMPLETE marker is ignored)."""
        if not self.checkpoints_dir.exists():
            return []
        out = []
        for p in self.checkpoints_dir.glob("step-*"):
            if (p / COMPLETE_FILE).exists():
                try:
                    out.append((int(p.name.split("-", 1)[1]), p))
                except ValueError:
                    continue
        return sorted(out)

    def resolve_checkpoint(self, checkpoint: str | None = None, verify: bool = True) -> Path:
        """``None``/"best" -> the best checkpoint; "last" -> the newest; "step-N" or a path as given.

        With ``verify`` (the default) the checkpoint's files are checked against its
        ``MANIFEST.json`` (see :func:`verify_checkpoint`).
        """
        if checkpoint in (None, "best"):
            best = self.best()
            if best:
                path = self.checkpoints_dir / best["checkpoint"]
                if not path.is_dir():
                    raise RunDirError(f"{self.best_path}: names {best['checkpoint']!r}, which is not in "
                                      f"{self.checkpoints_dir}")
                return verify_checkpoint(path) if verify else path
            checkpoint = "last"
        if checkpoint == "last":
            cps = self.checkpoints()
            if not cps:
                raise RunDirNotFound(f"{self.root}: no complete checkpoint yet")
            return verify_checkpoint(cps[-1][1]) if verify else cps[-1][1]
        path = Path(checkpoint)
        path = path if path.is_absolute() or path.exists() else self.checkpoints_dir / checkpoint
        return verify_checkpoint(path) if verify and path.is_dir() else path

    @property
    def backend(self) -> str:
        name = self.read_config().get("backend")
        if not isinstance(name, str):
            raise RunDirError(f"{self.config_path}: no 'backend' field")
        return name

    def load_extractor(self, checkpoint: str | None = None, **kwargs: Any):
        from finextract.registry import get_backend

        return get_backend(self.backend).load(str(self.root), checkpoint, **kwargs)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _step_of(line: str, path: Path) -> float:
    """The step of a logged row; a line cut short by a kill counts as after every step (dropped)."""
    try:
        return json.loads(line).get("step", 0)
    except ValueError:
        log.warning("%s: dropping a truncated line left by an interrupted run", path)
        return float("inf")


def write_manifest(path: Path) -> Path:
    """``MANIFEST.json``: every file under the checkpoint folder with its size and sha256."""
    path = Path(path)
    files = {}
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        if rel in (MANIFEST_FILE, COMPLETE_FILE):
            continue
        files[rel] = {"bytes": f.stat().st_size, "sha256": file_sha256(f)}
    out = path / MANIFEST_FILE
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"files": files}, indent=1), encoding="utf-8")
    tmp.replace(out)
    return out


def verify_checkpoint(path: Path) -> Path:
    """Check a checkpoint folder against its manifest; raise :class:`RunDirError` naming the bad file.

    A checkpoint written before manifests existed is accepted with a warning (it cannot be
    checked). Files added after the manifest (an ONNX export, say) are not checked.
    """
    path = Path(path)
    manifest = path / MANIFEST_FILE
    if not manifest.exists():
        if (path / COMPLETE_FILE).exists():
            log.warning("%s: no %s (written by an older finextract); its files cannot be checked", path, MANIFEST_FILE)
        return path
    try:
        files = json.loads(manifest.read_text(encoding="utf-8"))["files"]
        entries = [(str(rel), int(meta["bytes"]), str(meta["sha256"])) for rel, meta in files.items()]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RunDirError(f"{manifest}: unreadable checkpoint manifest ({exc!r})") from None
    for rel, size, sha in entries:
        f = path / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise RunDirError(f"{manifest}: lists {rel!r}, which is outside the checkpoint")
        if not f.is_file():
            raise RunDirError(f"{f}: missing from checkpoint {path.name} (listed in {MANIFEST_FILE}); "
                              "the run directory is incomplete")
        if f.stat().st_size != size or file_sha256(f) != sha:
            raise RunDirError(f"{f}: checksum mismatch against {MANIFEST_FILE} (the file is damaged or was "
                              "changed after training)")
    return path


def drop_checkpoint_file(path: Path, name: str) -> None:
    """Delete one file of a complete checkpoint (e.g. resume state when pruning) and update its manifest."""
    path = Path(path)
    (path / name).unlink(missing_ok=True)
    if (path / MANIFEST_FILE).exists():
        write_manifest(path)


def mark_checkpoint_complete(path: Path) -> None:
    """Written last when saving a checkpoint, so a kill mid-save never leaves a 'valid' half checkpoint.

    The manifest is written (and every file fsynced) first, so COMPLETE vouches for files
    whose checksums are recorded.
    """
    path = Path(path)
    for f in path.rglob("*"):
        if f.is_file():
            _fsync(f)
    write_manifest(path)
    _fsync(path / MANIFEST_FILE)
    (path / COMPLETE_FILE).write_text("ok", encoding="utf-8")


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
