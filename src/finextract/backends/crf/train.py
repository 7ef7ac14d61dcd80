"""Training for the CRF baseline.

crfsuite's L-BFGS cannot save intermediate states, but it is deterministic: a run capped at
N iterations is exactly the first N iterations of a longer run. So checkpoint ``step-N`` is
a model trained with ``max_iterations=N``; resuming skips every complete checkpoint, and
the result equals an uninterrupted run. Training stops early when L-BFGS converges before
the next checkpoint (a later checkpoint would be the same model).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pycrfsuite

from finextract.backends.crf.config import CrfRunConfig
from finextract.backends.crf.extractor import MODEL_FILE, CrfExtractor, load
from finextract.backends.crf.tokens import sentence_features, tokenize
from finextract.errors import ConfigError
from finextract.training import RunLifecycle, load_split

log = logging.getLogger("finextract")


def _trainer(cfg: CrfRunConfig, xseqs: list, yseqs: list, iterations: int) -> pycrfsuite.Trainer:
    trainer = pycrfsuite.Trainer(verbose=False)
    for x, y in zip(xseqs, yseqs):
        trainer.append(x, y)
    trainer.set_params({
        "c1": cfg.model.c1,
        "c2": cfg.model.c2,
        "max_iterations": iterations,
        "feature.possible_transitions": cfg.model.all_possible_transitions,
        "feature.minfreq": cfg.model.feature_minfreq,
    })
    return trainer


def train(cfg: CrfRunConfig, on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train, checkpoint every ``train.checkpoint_every`` iterations, score each, finish the run.

    ``on_step(step)`` (the test hook every backend has) is called after each checkpoint.
    """
    with RunLifecycle(cfg, on_step=on_step) as life:
        if life.finished is not None:
            return life.finished
        return _train(cfg, life)


def _train(cfg: CrfRunConfig, life: RunLifecycle) -> dict[str, Any]:
    from finextract.backends.crf.tagging import bio_tags

    task = cfg.load_task()
    if cfg.data.train is None:
        raise ConfigError("crf: data.train is required (a labeled JSONL file)")
    # nothing to restore: checkpoint step-N is a model trained for N iterations from scratch
    life.start(lambda path: path)
    run = life.run
    train_recs = load_split(cfg.data.train, task, cfg.data.skip_invalid, cfg.data.max_train_records)
    val_recs = load_split(cfg.data.validation, task, cfg.data.skip_invalid, cfg.data.max_eval_records)
    life.val_records = val_recs
    if not train_recs:
        raise ConfigError(f"{cfg.data.train}: no training records")
    t0 = time.perf_counter()
    xseqs, yseqs = [], []
    for r in train_recs:
        toks = tokenize(r.text)
        if toks:
            xseqs.append(sentence_features(r.text, toks, cfg.model.window))
            yseqs.append(bio_tags(r.text, toks, r.values, task))
    done = {step for step, _ in run.checkpoints()}
    every = cfg.train.checkpoint_every
    steps = list(range(every, cfg.train.max_iterations + 1, every))
    if not steps or steps[-1] != cfg.train.max_iterations:
        steps.append(cfg.train.max_iterations)
    logged = max((r.get("step", 0) for r in run.train_log()), default=0)
    scored = {m["step"] for m in run.metrics()}
    bar = life.progress(cfg.train.max_iterations, max(done, default=0), enabled=cfg.train.progress)
    prev = 0
    for step in steps:
        path = run.checkpoint_path(step)
        if step not in done:
            log.info("crf: training checkpoint step-%d (%d sequences)", step, len(xseqs))

            def write_model(path, step=step):
                nonlocal logged
                trainer = _trainer(cfg, xseqs, yseqs, step)
                trainer.train(str(path / MODEL_FILE))
                iters = trainer.logparser.iterations
                for it in iters:
                    if it["num"] > max(prev, logged):
                        life.log_train(it["num"], loss=it["loss"], active_features=it.get("active_features"))
                (path / "meta.json").write_text(json.dumps({"iterations": len(iters)}), encoding="utf-8")
                logged = max(logged, max((it["num"] for it in iters), default=0))

            life.save_checkpoint(step, write_model)
        n_iter = json.loads((path / "meta.json").read_text(encoding="utf-8"))["iterations"]
        if step not in scored:
            life.score(step, lambda: CrfExtractor(task, path / MODEL_FILE, cfg.model.window, cfg.model.single_value),
                       extra={"iterations": n_iter})
        prev = step
        bar.update(step)
        life.after_step(step)
        if n_iter < step:  # L-BFGS converged: later checkpoints would be this same model
            log.info("crf: converged after %d iterations", n_iter)
            break
    summary = {"train_records": len(train_recs), "train_seconds": round(time.perf_counter() - t0, 3)}
    return life.finish(lambda: load(str(run.root), "best"), summary)
