"""The run lifecycle every trainer shares, and the pieces it is made of.

A backend supplies only its optimisation step and its model I/O; everything around them is
:class:`RunLifecycle`, one implementation for every backend::

    with RunLifecycle(cfg, on_step=on_step) as life:          # lock the run directory
        if life.finished is not None:                         # DONE: nothing to train
            return life.finished
        resumed = life.start(load_resume)                     # config check, newest good checkpoint, rewind
        ...                                                   # backend: build model/optimizer, restore state
        life.rescore(step, make_extractor)                    # a kill between save and score
        bar = life.progress(total, step)                      # rich bar on a TTY, log lines otherwise
        while step < total:
            ...one optimisation step...
            life.log_train(step, loss=..., lr=...)            # train_log.jsonl (+ tracker)
            if life.is_checkpoint_step(step, total):
                life.save_checkpoint(step, write_model, {"state.pt": {...}})   # safe state + manifest + COMPLETE
                life.score(step, make_extractor)              # metrics.jsonl, best.json
            life.after_step(step)                             # the test hook (same name in every backend)
        return life.finish(load_best, summary)                # test/eval sets, curve, DONE

Why these rules: resume state is written as tensors and plain data only and read back with
``torch.load(weights_only=True)``, so a run directory someone else made can never run code;
every checkpoint gets a ``MANIFEST.json`` of checksums before its ``COMPLETE`` marker, so a
truncated or altered file is caught on load and resume falls back to the previous good
checkpoint; the run directory is locked (:class:`finextract.locking.RunLock`), so two
``train`` processes never interleave their logs or delete each other's checkpoints.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from finextract.errors import ConfigError, RunDirError
from finextract.extractor import Extractor
from finextract.locking import RunLock
from finextract.records import Record, read_records, write_predictions
from finextract.rundir import RunDir, mark_checkpoint_complete, verify_checkpoint
from finextract.scoring import ScoreReport, score
from finextract.tasks import Task

log = logging.getLogger("finextract")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:
        pass
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        pass


def rng_state() -> dict[str, Any]:
    """Every RNG a training loop draws from, so a resumed run continues the same random stream.

    Returned as tensors and plain values only (no numpy arrays, no tuples of objects), so it
    saves with :func:`save_state` and loads with ``torch.load(weights_only=True)``.
    """
    import numpy as np
    import torch

    version, mt, gauss = random.getstate()
    key, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": {"version": int(version), "state": torch.tensor(list(mt), dtype=torch.int64), "gauss": gauss},
        "numpy": {"key": str(key), "state": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA state only where a GPU is present)."""
    import numpy as np
    import torch

    py, npy = state["python"], state["numpy"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    np.random.set_state((npy["key"], npy["state"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------ state files (data, never code)
def save_state(obj: Any, path: Path) -> None:
    """Write resume state (tensors, dicts, lists, numbers, strings) with ``torch.save``.

    Only what ``torch.load(weights_only=True)`` accepts back may go in; :func:`load_state`
    refuses anything else, so this is checked at save time too (cheaply, by type).
    """
    import torch

    _check_plain(obj, str(path))
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def _check_plain(obj: Any, where: str) -> None:
    import torch

    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_plain(k, where)
            _check_plain(v, where)
        return
    if isinstance(obj, (list, tuple)):
        for v in obj:
            _check_plain(v, where)
        return
    raise TypeError(f"{where}: resume state may hold only tensors and plain data, not {type(obj).__name__}")


def load_state(path: Path, map_location: Any = "cpu") -> Any:
    """Read a state file with ``torch.load(weights_only=True)``: tensors and plain data, never code.

    Anything else (a pickle of arbitrary objects, a truncated or foreign file) is refused with
    one :class:`RunDirError` naming the file; nothing in it is executed.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"{path}: missing resume state file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError,
            ImportError, IndexError, KeyError, OSError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise RunDirError(f"{path}: refused to load: not a finextract state file of tensors and plain data "
                          f"(loaded with weights_only=True; {first})") from None


class NoResumeState(RunDirError):
    """A complete checkpoint without resume state (pruned): skipped by resume, never moved aside."""


# ------------------------------------------------------------------ resume compatibility
_ALWAYS_RESUMABLE = ("output_dir", "tracking", "data.test", "data.eval_sets", "train.progress")


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "eval_sets":
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_resume_compatible(run: RunDir, cfg: Any, resumable: Iterable[str] = ()) -> None:
    """Refuse to resume a run with a different model/data/training recipe (it would mix two runs).

    ``resumable`` lists dotted fields (or sections) that may change: where results go, not
    what is trained. The stored config is re-read through the config class first, so a run
    written with deprecated field names compares equal to the same config under the new names.
    """
    if not run.config_path.exists() or not run.checkpoints():
        return
    stored = run.read_config()
    try:
        stored = type(cfg).model_validate(stored).model_dump(mode="json")
    except Exception:  # an unreadable old config differs by definition; compare raw
        pass
    old, new = _flat(stored), _flat(cfg.model_dump(mode="json"))
    allowed = set(_ALWAYS_RESUMABLE) | set(resumable)
    diff = sorted(k for k in set(old) | set(new)
                  if old.get(k) != new.get(k) and not any(k == p or k.startswith(p + ".") for p in allowed))
    if diff:
        detail = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:6])
        raise ConfigError(f"{run.root}: has checkpoints from a different config ({detail}); "
                          "use a new output_dir or delete the old run to start over")


# ------------------------------------------------------------------ progress
class TrainProgress:
    """A rich progress bar on a terminal; otherwise a plain log line every ~5% of the run.

    Without a TTY (CI, nohup, a sweep's log file) a bar draws nothing useful, but a long run
    must still show that it is alive and how fast it goes.
    """

    def __init__(self, total: int, done: int, desc: str, enabled: bool = True, tty: bool | None = None):
        self.total, self.done, self.desc = total, done, desc
        self.enabled = enabled
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.every = max(1, math.ceil(total / 20))
        self._t0, self._start = time.perf_counter(), done
        self._bar: Any = None
        self._postfix = ""
        if enabled and self.tty and done < total:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[info]}"), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(desc, total=total, completed=done, info="")

    def update(self, step: int, **info: float) -> None:
        self.done = step
        if info:
            self._postfix = " ".join(f"{k} {v:.4g}" for k, v in info.items())
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=step, info=self._postfix)
        elif step % self.every == 0 or step == self.total:
            elapsed = time.perf_counter() - self._t0
            rate = (step - self._start) / elapsed if elapsed > 0 else 0.0
            eta = f", ~{(self.total - step) / rate:.0f} s left" if rate > 0 and step < self.total else ""
            log.info("%s: step %d/%d (%.0f%%)%s, %.2f steps/s%s", self.desc, step, self.total,
                     100 * step / max(self.total, 1), f", {self._postfix}" if self._postfix else "", rate, eta)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


# ------------------------------------------------------------------ the lifecycle
T = TypeVar("T")


class RunLifecycle:
    """Start-or-resume, checkpoint, score, progress and finish a run; see the module docstring.

    ``resumable`` names config fields the backend lets change on resume (beyond where results
    go). ``on_step(step)`` is the test hook every backend calls after each step (tests raise
    from it to simulate a kill). ``is_main`` is False on non-zero ranks of a distributed run:
    they neither lock nor write.
    """

    def __init__(self, cfg: Any, *, resumable: Iterable[str] = (), on_step: Callable[[int], None] | None = None,
                 is_main: bool = True, track: bool = True):
        self.cfg = cfg
        self.run = RunDir(cfg.output_dir)
        self.resumable = tuple(resumable)
        self.on_step = on_step
        self.is_main = is_main
        self.track = track
        self.tracker: Any = None
        self.step = 0
        self.val_records: list[Record] = []
        self._lock = RunLock(self.run.root) if is_main else None
        self._bar: TrainProgress | None = None

    # ---- context: the lock is held from before the DONE check until the run returns
    def __enter__(self) -> "RunLifecycle":
        if self._lock is not None:
            self._lock.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.close()
        if exc_type is not None and self.tracker is not None:
            self.tracker.end("KILLED")
        if self._lock is not None:
            self._lock.release()

    @property
    def finished(self) -> dict[str, Any] | None:
        """The summary of a run that already has DONE (training it again is a no-op)."""
        if not self.run.done_path.exists():
            return None
        log.info("%s is already finished (DONE); use a new output_dir to train again", self.run.root)
        try:
            return json.loads(self.run.done_path.read_text(encoding="utf-8") or "{}")
        except ValueError as exc:
            raise RunDirError(f"{self.run.done_path}: not valid JSON ({exc})") from None

    # ---- start or resume
    def start(self, load_resume: Callable[[Path], T] | None = None) -> tuple[int, T | None]:
        """Check the config against the stored run, write config/versions, pick the resume point.

        ``load_resume(path)`` reads a checkpoint's model and state (the backend's I/O). The
        newest complete checkpoint whose files match its manifest and whose state loads is
        used; a damaged one is moved to ``checkpoints/.damaged/`` with a warning and the one
        before it is tried. Logged rows after the resume point are dropped (also when there
        is no checkpoint yet: a run that failed before its first checkpoint starts clean).
        Returns ``(step, loaded)``; ``(0, None)`` for a fresh start.
        """
        run = self.run
        check_resume_compatible(run, self.cfg, self.resumable)
        if self.is_main:
            run.create(self.cfg)
        step, loaded = 0, None
        if load_resume is not None:
            for cp_step, path in reversed(run.checkpoints()):
                try:
                    verify_checkpoint(path)
                    loaded = load_resume(path)
                except NoResumeState as exc:
                    log.info("%s", exc)
                    continue
                except RunDirError as exc:
                    log.warning("cannot resume from %s: %s; trying the previous checkpoint", path.name, exc)
                    if self.is_main:
                        self._set_aside(path)
                    continue
                step = cp_step
                log.info("resuming from %s", path)
                break
        if self.is_main:
            run.rewind(step)
            if self.track:
                from finextract.tracking import start_tracking

                self.tracker = start_tracking(self.cfg, run.root)
                self.tracker.log_params(self.cfg.model_dump(mode="json"))
        self.step = step
        return step, loaded

    def _set_aside(self, path: Path) -> None:
        aside = self.run.checkpoints_dir / ".damaged" / f"{path.name}-{int(time.time())}"
        aside.parent.mkdir(parents=True, exist_ok=True)
        path.replace(aside)
        log.warning("moved damaged checkpoint %s to %s", path.name, aside)

    # ---- the loop's pieces
    def progress(self, total: int, done: int, enabled: bool = True) -> TrainProgress:
        self._bar = TrainProgress(total, done, f"train {self.run.root.name}",
                                  enabled=enabled and self.is_main)
        return self._bar

    def is_checkpoint_step(self, step: int, total: int, every: int | None = None) -> bool:
        every = every or self.cfg.train.checkpoint_every
        return step % every == 0 or step == total

    def log_train(self, step: int, **row: Any) -> None:
        if not self.is_main:
            return
        self.run.log_train({"step": step, **row})
        if self.tracker is not None and "loss" in row:
            self.tracker.log_metrics({"train_loss": row["loss"], **({"lr": row["lr"]} if "lr" in row else {})},
                                     step=step)

    def save_checkpoint(self, step: int, write_model: Callable[[Path], None],
                        state_files: dict[str, Any] | None = None) -> Path:
        """``write_model(path)`` writes the backend's files; state goes through :func:`save_state`.

        A folder left half-written by a kill is replaced; the manifest and then ``COMPLETE``
        are written last.
        """
        path = self.run.checkpoint_path(step)
        if not self.is_main:
            return path
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        write_model(path)
        for name, obj in (state_files or {}).items():
            save_state(obj, path / name)
        mark_checkpoint_complete(path)
        return path

    def score(self, step: int, make_extractor: Callable[[], Extractor], epoch: float | None = None,
              extra: dict[str, Any] | None = None) -> ScoreReport | None:
        """Score checkpoint ``step`` on the validation records; without any, it becomes the best."""
        if not self.is_main:
            return None
        if self.val_records:
            return score_checkpoint(self.run, make_extractor(), self.val_records, step, epoch=epoch, extra=extra,
                                    tracker=self.tracker)
        self.run.set_best(f"step-{step}", step, None)  # type: ignore[arg-type]  # nothing to select on
        return None

    def rescore(self, step: int, make_extractor: Callable[[], Extractor], epoch: float | None = None) -> None:
        """Score the resume checkpoint if the kill came between saving and scoring it."""
        if self.is_main and step and self.val_records and not any(m["step"] == step for m in self.run.metrics()):
            self.score(step, make_extractor, epoch=epoch)

    def after_step(self, step: int) -> None:
        self.step = step
        if self.on_step is not None:
            self.on_step(step)

    def finish(self, load_best: Callable[[], Extractor], summary: dict[str, Any] | None = None) -> dict[str, Any]:
        if self._bar is not None:
            self._bar.close()
        if not self.is_main:
            return dict(summary or {})
        out = finish_run(self.run, load_best, self.cfg, summary)
        if self.tracker is not None:
            self.tracker.log_artifacts(self.run.root)
            self.tracker.end()
            self.tracker = None
        return out


def load_split(path: Path | None, task: Task, skip_invalid: bool, limit: int | None = None) -> list[Record]:
    if path is None:
        return []
    records = read_records(path, task, skip_invalid=skip_invalid)
    return records[:limit] if limit else records


def score_checkpoint(
    run: RunDir,
    extractor: Extractor,
    records: Sequence[Record],
    step: int,
    epoch: float | None = None,
    extra: dict[str, Any] | None = None,
    tracker: Any = None,
) -> ScoreReport:
    """Score one checkpoint on the validation records, log it, and update ``best.json``.

    Ties keep the earlier checkpoint (fewer steps, less overfit).
    """
    name = f"step-{step}"
    report, _ = extractor.evaluate(list(records))
    row = {"step": step, "epoch": epoch, "checkpoint": name, "val": report.to_dict(), **(extra or {})}
    run.log_metrics(row)
    best = run.best()
    if best is None or report.micro.f1 > best["value"]:
        run.set_best(name, step, report.micro.f1)
    if tracker is not None:
        tracker.log_metrics({"val_micro_f1": report.micro.f1, "val_invalid_rate": report.invalid_rate,
                             **{f"val_f1_{k}": c.f1 for k, c in report.per_key.items()}}, step=step)
    log.info("step %s: validation micro-F1 %.4f (invalid %.2f%%)", step, report.micro.f1, 100 * report.invalid_rate)
    return report


def score_and_save(
    run: RunDir, extractor: Extractor, records: Sequence[Record], name: str
) -> ScoreReport:
    """Predict ``records`` with ``extractor``; write predictions/NAME.jsonl and NAME.score.json."""
    texts = [r.text for r in records]
    preds = extractor.predict(texts)
    report = score([r.values for r in records], preds, extractor.task, texts=texts, collect_errors=True)
    run.predictions_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(run.predictions_dir / f"{name}.jsonl", texts, preds, extractor.task)
    (run.predictions_dir / f"{name}.score.json").write_text(
        json.dumps(report.to_dict(with_errors=True), indent=2, ensure_ascii=False), encoding="utf-8")
    return report


def finish_run(
    run: RunDir,
    load_best: Callable[[], Extractor],
    config: Any,
    summary: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score the best checkpoint on test and extra eval sets, draw the curve, write DONE."""
    task = config.load_task()
    out: dict[str, Any] = {"best": run.best(), **(summary or {})}
    sets: dict[str, Path] = {}
    if config.data.test:
        sets["test"] = config.data.test
    sets.update(config.data.eval_sets)
    if sets:
        extractor = load_best()
        for name, path in sets.items():
            if not Path(path).exists():
                log.warning("eval set %s: %s not found, skipped", name, path)
                continue
            records = read_records(path, task, skip_invalid=config.data.skip_invalid)
            report = score_and_save(run, extractor, records, name)
            out[name] = {"micro_f1": report.micro.f1, "macro_f1": report.macro_f1,
                         "invalid_rate": report.invalid_rate, "n": report.n_records}
    try:
        plot_curve(run)
    except Exception as exc:  # a plot must never lose a finished run
        log.warning("could not draw training curve: %s", exc)
    run.mark_done(out)
    return out


def plot_curve(run: RunDir, path: Path | None = None) -> Path | None:
    """Loss per logged step and validation micro-F1 per checkpoint, on two axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = run.train_log()
    metrics = run.metrics()
    if not train and not metrics:
        return None
    fig, ax1 = plt.subplots(figsize=(7, 4))
    if train:
        pts = [(r["step"], r["loss"]) for r in train if "loss" in r]
        if pts:
            ax1.plot(*zip(*pts), color="tab:blue", alpha=0.7, label="train loss")
    ax1.set_xlabel("step")
    ax1.set_ylabel("train loss", color="tab:blue")
    if metrics:
        ax2 = ax1.twinx()
        pts = [(m["step"], m["val"]["micro"]["f1"]) for m in metrics]
        ax2.plot(*zip(*pts), "o-", color="tab:red", label="validation micro-F1")
        ax2.set_ylabel("validation micro-F1", color="tab:red")
        ax2.set_ylim(0, 1.02)
        best = run.best()
        if best:
            ax2.axvline(best["step"], color="gray", ls="--", lw=1)
    ax1.set_title(run.root.name)
    fig.tight_layout()
    path = path or run.root / "curve.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
