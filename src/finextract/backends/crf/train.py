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
from typing import Any

import pycrfsuite

from finextract.backends.crf.config import CrfRunConfig
from finextract.backends.crf.extractor import MODEL_FILE, CrfExtractor, load
from finextract.backends.crf.tokens import sentence_features, tokenize
from finextract.rundir import RunDir, mark_checkpoint_complete
from finextract.training import finish_run, load_split, score_checkpoint

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


def train(cfg: CrfRunConfig) -> dict[str, Any]:
    """Train, checkpoint every ``train.checkpoint_every`` iterations, score each, finish the run."""
    from finextract.backends.crf.tagging import bio_tags
    from finextract.tracking import start_tracking

    task = cfg.load_task()
    if cfg.data.train is None:
        raise ValueError("crf: data.train is required (a labeled JSONL file)")
    run = RunDir(cfg.output_dir).create(cfg)
    train_recs = load_split(cfg.data.train, task, cfg.data.skip_invalid, cfg.data.max_train_records)
    val_recs = load_split(cfg.data.validation, task, cfg.data.skip_invalid, cfg.data.max_eval_records)
    if not train_recs:
        raise ValueError(f"{cfg.data.train}: no training records")
    t0 = time.perf_counter()
    xseqs, yseqs = [], []
    for r in train_recs:
        toks = tokenize(r.text)
        if toks:
            xseqs.append(sentence_features(r.text, toks, cfg.model.window))
            yseqs.append(bio_tags(r.text, toks, r.values, task))
    tracker = start_tracking(cfg, run.root)
    tracker.log_params(cfg.model_dump(mode="json"))
    done = {step for step, _ in run.checkpoints()}
    steps = list(range(cfg.train.checkpoint_every, cfg.train.max_iterations + 1, cfg.train.checkpoint_every))
    if not steps or steps[-1] != cfg.train.max_iterations:
        steps.append(cfg.train.max_iterations)
    logged = max((r.get("step", 0) for r in run.train_log()), default=0)
    scored = {m["step"] for m in run.metrics()}
    prev = 0
    for step in steps:
        path = run.checkpoint_path(step)
        if step not in done:
            log.info("crf: training checkpoint step-%d (%d sequences)", step, len(xseqs))
            path.mkdir(parents=True, exist_ok=True)
            trainer = _trainer(cfg, xseqs, yseqs, step)
            trainer.train(str(path / MODEL_FILE))
            iters = trainer.logparser.iterations
            for it in iters:
                if it["num"] > max(prev, logged):
                    run.log_train({"step": it["num"], "loss": it["loss"], "active_features": it.get("active_features")})
            (path / "meta.json").write_text(json.dumps({"iterations": len(iters)}), encoding="utf-8")
            mark_checkpoint_complete(path)
            logged = max(logged, max((it["num"] for it in iters), default=0))
        n_iter = json.loads((path / "meta.json").read_text(encoding="utf-8"))["iterations"]
        if val_recs and step not in scored:
            ex = CrfExtractor(task, path / MODEL_FILE, cfg.model.window, cfg.model.single_value)
            score_checkpoint(run, ex, val_recs, step, extra={"iterations": n_iter}, tracker=tracker)
        prev = step
        if n_iter < step:  # L-BFGS converged: later checkpoints would be this same model
            log.info("crf: converged after %d iterations", n_iter)
            break
    if not val_recs:  # nothing to pick by: the newest checkpoint is the model (value unknown)
        last_step, last_path = run.checkpoints()[-1]
        run.set_best(last_path.name, last_step, None)  # type: ignore[arg-type]
    summary = {"train_records": len(train_recs), "train_seconds": round(time.perf_counter() - t0, 3)}
    out = finish_run(run, lambda: load(str(run.root), "best"), cfg, summary)
    tracker.log_artifacts(run.root)
    tracker.end()
    return out
