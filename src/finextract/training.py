"""Pieces every trainer shares: score a checkpoint, keep the best, finish a run.

Backends own their optimisation loops; what happens around a checkpoint is the same for
all of them, so it lives here (one place to get "every checkpoint scored" right).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from finextract.extractor import Extractor
from finextract.records import Record, read_records, write_predictions
from finextract.rundir import RunDir
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
    """Every RNG a training loop draws from, so a resumed run continues the same random stream."""
    import numpy as np
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA state only where a GPU is present)."""
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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
