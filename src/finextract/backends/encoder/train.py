"""Fine-tune the encoder tagger, checkpoint every N steps, and resume after a kill.

Why resume is exact: the data order of epoch ``e`` comes from its own generator seeded
with ``(seed, e)``, and each checkpoint stores the weights, optimizer, scheduler and every
RNG state taken *before* the checkpoint is scored. A resumed run therefore replays the
same batches with the same dropout masks as an uninterrupted one and ends bit-identical
(on the same device and thread count).
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import numpy as np

from finextract.backends.encoder.config import EncoderRunConfig
from finextract.backends.encoder.model import (EncoderExtractor, build_model, count_parameters,
                                               load_model_from_checkpoint, load_tokenizer, make_tagger,
                                               decode_options, save_model, torch_forward)
from finextract.backends.encoder.averaging import STATE_KEY as EMA_KEY
from finextract.backends.encoder.averaging import WeightEMA
from finextract.backends.encoder.batching import bucket_by_length, freeze_lower_layers, freeze_word_embeddings
from finextract.backends.encoder.distill import (check_compatible, distill_loss, ffn_importance, keep_layers,
                                                 prune_ffn, teacher_checkpoint)
from finextract.backends.encoder.features import pad_value, token_features
from finextract.backends.encoder.tagging import IGNORE, align_labels, label_names
from finextract.errors import ConfigError, RunDirError
from finextract.records import Record
from finextract.rundir import RunDir, drop_checkpoint_file
from finextract.tasks import Task
from finextract.training import NoResumeState, RunLifecycle
from finextract.training import check_resume_compatible as _check_resume_compatible
from finextract.training import load_split, load_state, rng_state, seed_everything, set_rng_state

log = logging.getLogger("finextract")

# Fields that may change between a run and its resumption (where results go, not what is trained).
_RESUMABLE_CHANGES = {"train.eval_batch_size", "train.num_threads"}
STATE_FILE = "state.pt"  # optimizer, scheduler, RNG, step, running loss: tensors and plain data only
FFN_PROBE_RECORDS = 512  # training records whose FFN activations rank the neurons for model.ffn_size


class _Interrupt(Exception):
    """Raised by the ``stop_after_step`` test hook to simulate a kill mid-run."""


def encode_records(records: list[Record], tokenizer: Any, task: Task, max_length: int,
                   with_case: bool = False, with_lex: bool = False, with_layout: bool = False,
                   ) -> tuple[list[dict[str, list[int]]], dict[str, int]]:
    """Tokenise records and align their gold values to BIO labels."""
    feats, placed, missed = [], 0, 0
    texts = [r.text for r in records]
    for start in range(0, len(texts), 512):
        enc = tokenizer(texts[start:start + 512], truncation=True, max_length=max_length,
                        return_offsets_mapping=True)
        for j, rec in enumerate(records[start:start + 512]):
            al = align_labels(rec.text, enc["offset_mapping"][j], rec.values, task, rec.meta.get("spans"))
            placed += al.placed
            missed += al.missed
            feat = {k: enc[k][j] for k in enc if k != "offset_mapping"}
            feat["labels"] = al.labels
            feat.update(token_features(rec.text, enc["offset_mapping"][j], with_case, with_lex, with_layout))
            feats.append(feat)
    return feats, {"values_placed": placed, "values_missed": missed}


def collate(feats: list[dict[str, list[int]]], pad_id: int):
    import torch

    width = max(len(f["input_ids"]) for f in feats)
    out: dict[str, Any] = {}
    for key in feats[0]:
        pad = IGNORE if key == "labels" else (pad_id if key == "input_ids" else pad_value(key))
        out[key] = torch.tensor([f[key] + [pad] * (width - len(f[key])) for f in feats], dtype=torch.long)
    return out


def check_resume_compatible(run: RunDir, cfg: EncoderRunConfig) -> None:
    """Refuse to resume a run with a different model/data/training recipe (see :mod:`finextract.training`)."""
    _check_resume_compatible(run, cfg, _RESUMABLE_CHANGES)


def _prune(run: RunDir, keep_last: int) -> None:
    """Keep the best checkpoint and the newest ``keep_last``; the best loses its resume state."""
    cps = run.checkpoints()
    best = (run.best() or {}).get("checkpoint")
    recent = {p.name for _, p in cps[-keep_last:]}
    for _, path in cps:
        if path.name in recent:
            continue
        if path.name == best:
            drop_checkpoint_file(path, STATE_FILE)
            continue
        shutil.rmtree(path, ignore_errors=True)


def load_teacher(cfg: EncoderRunConfig, task: Task, device: str) -> tuple[Any, Any]:
    """``(teacher, fresh student)`` for ``train.distill_from``: the teacher frozen in eval mode on
    ``device``; the student a copy of it (loaded once) cut to ``model.num_layers`` layers."""
    import copy

    ckpt, tcfg = teacher_checkpoint(cfg.train.distill_from)
    check_compatible(cfg, tcfg)
    teacher, _ = load_model_from_checkpoint(ckpt, tcfg, task)
    student = copy.deepcopy(teacher)
    if cfg.model.num_layers:
        keep_layers(student.model, cfg.model.num_layers)
    teacher.to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher, student


def _device(cfg: EncoderRunConfig) -> str:
    import torch

    if cfg.train.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.train.device


def train(cfg: EncoderRunConfig, on_step: Callable[[int], None] | None = None,
          stop_after_step: int | None = None) -> dict[str, Any]:
    """Train (or resume) the run in ``cfg.output_dir``; returns the run summary.

    ``on_step(step)`` is the test hook every backend has (called after each optimizer step);
    ``stop_after_step=N`` is shorthand for a hook that raises after step N, as a kill would.
    """
    if stop_after_step is not None:
        on_step = _stop_after(stop_after_step, on_step)
    with RunLifecycle(cfg, resumable=_RESUMABLE_CHANGES, on_step=on_step) as life:
        if life.finished is not None:
            return life.finished
        return _train(cfg, life)


def _stop_after(limit: int, then: Callable[[int], None] | None) -> Callable[[int], None]:
    def hook(step: int) -> None:
        if then is not None:
            then(step)
        if step >= limit:
            raise _Interrupt(f"stopped after step {step}")
    return hook


def _train(cfg: EncoderRunConfig, life: RunLifecycle) -> dict[str, Any]:
    import torch
    from transformers import get_linear_schedule_with_warmup

    if cfg.data.train is None:
        raise ConfigError("data.train: the encoder needs a training JSONL (set data.train=PATH)")
    task = cfg.load_task()
    tc = cfg.train
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)
    device = _device(cfg)

    train_recs = load_split(cfg.data.train, task, cfg.data.skip_invalid, cfg.data.max_train_records)
    val_recs = load_split(cfg.data.validation, task, cfg.data.skip_invalid, cfg.data.max_eval_records)
    if not train_recs:
        raise ConfigError(f"data.train: {cfg.data.train} has no usable records")

    def load_resume(path):  # the encoder's model I/O for resuming
        if not (path / STATE_FILE).exists():
            raise NoResumeState(f"{path}: checkpoint has no resume state ({STATE_FILE}); skipped for resuming")
        state = load_state(path / STATE_FILE)
        model, _ = load_model_from_checkpoint(path, cfg, task, trainable=True)
        return model, state

    seed_everything(cfg.seed)
    step, resumed = life.start(load_resume)
    if resumed is None and life.run.checkpoints():
        raise RunDirError(f"{life.run.root}: newest checkpoint has no resume state; use a new output_dir")
    run = life.run
    life.val_records = val_recs
    tokenizer = load_tokenizer(cfg.model.name_or_path)
    if cfg.model.pointer_head and task.multi_valued:
        raise ConfigError("model.pointer_head: pointer heads are for single-valued tasks (this task is multi-valued)")
    feats, align_stats = encode_records(train_recs, tokenizer, task, cfg.model.max_length, cfg.model.case_features,
                                        cfg.model.lexical_features, cfg.model.layout_features)
    if align_stats["values_missed"]:
        log.warning("%d of %d gold values could not be tagged (not found in the text, cut by max_length=%d, "
                    "or overlapping another value)", align_stats["values_missed"],
                    align_stats["values_missed"] + align_stats["values_placed"], cfg.model.max_length)

    n = len(feats)
    lengths = [len(f["input_ids"]) for f in feats]
    spe = math.ceil(n / tc.batch_size)
    total = tc.max_steps or max(1, math.ceil(tc.epochs * spe))

    state: dict[str, Any] | None = None
    teacher, fresh_student = load_teacher(cfg, task, device) if tc.distill_from else (None, None)
    if resumed is not None:
        model, state = resumed
    elif fresh_student is not None:
        model = fresh_student
    else:
        model = make_tagger(build_model(cfg, task), cfg.model.case_features, cfg.model.lexical_features,
                            len(task.key_names) if cfg.model.pointer_head else 0, cfg.model.layout_features)
    freeze_lower_layers(model, tc.freeze_layers)
    if tc.freeze_embeddings:
        freeze_word_embeddings(model)
    model.to(device)
    if cfg.model.ffn_size and resumed is None:  # a resumed run's checkpoint is already narrow
        probe = [{k: v.to(device) for k, v in collate([feats[i] for i in range(b, min(b + tc.batch_size, n))],
                                                      tokenizer.pad_token_id or 0).items()}
                 for b in range(0, min(n, FFN_PROBE_RECORDS), tc.batch_size)]
        prune_ffn(model, cfg.model.ffn_size, ffn_importance(model, probe))
        log.info("model.ffn_size: kept %d feed-forward neurons per layer (importance on %d records)",
                 cfg.model.ffn_size, min(n, FFN_PROBE_RECORDS))
    ema = WeightEMA(model, tc.ema_decay) if tc.ema_decay else None
    if ema is not None and state is not None:  # the checkpoint's model files hold the average
        ema.resume(state[EMA_KEY])

    def averaged() -> Any:  # checkpoints save and score the averaged weights (train.ema_decay)
        return ema.swapped() if ema is not None else nullcontext()

    def is_new(name: str) -> bool:  # freshly initialised parts: tagging/pointer heads, extra embeddings
        return "classifier" in name or name.startswith(("case.", "lex.", "pointer.", "layout."))

    head = [p for n_, p in model.named_parameters() if p.requires_grad and is_new(n_)]
    body = [(n_, p) for n_, p in model.named_parameters() if p.requires_grad and not is_new(n_)]
    no_decay = ("bias", "LayerNorm", "layer_norm", "norm.weight")
    groups = [
        {"params": [p for n_, p in body if not any(k in n_ for k in no_decay)], "weight_decay": tc.weight_decay},
        {"params": [p for n_, p in body if any(k in n_ for k in no_decay)], "weight_decay": 0.0},
        {"params": head, "weight_decay": tc.weight_decay, "lr": tc.head_learning_rate or tc.learning_rate},
    ]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=tc.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(tc.warmup_ratio * total), total)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])

    n_labels = len(label_names(task))
    n_params = count_parameters(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    def extractor() -> EncoderExtractor:
        return EncoderExtractor(torch_forward(model, device), tokenizer, task, cfg.model.max_length, tc.eval_batch_size,
                                case_features=model.case is not None, lexical_features=model.lex is not None,
                                layout_features=model.layout is not None,
                                decode_options=decode_options(cfg))

    def evaluate(at: int) -> None:
        model.eval()
        life.score(at, extractor, epoch=at / spe)
        model.train()

    def checkpoint(at: int) -> None:
        resume = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                  "rng": rng_state(), "step": at, "running_loss": list(running)}
        if ema is not None:
            resume[EMA_KEY] = ema.state_dict()
        with averaged():
            life.save_checkpoint(at, lambda path: save_model(model, tokenizer, path, task, cfg.lora.enabled),
                                 {STATE_FILE: resume})
            evaluate(at)
        _prune(run, tc.keep_last)

    running: list[float] = list(state.get("running_loss", [])) if state else []  # losses since the last log row
    model.eval()
    with averaged():
        life.rescore(step, extractor, epoch=step / spe)  # killed between saving and scoring that checkpoint

    def autocast() -> Any:  # model.precision: bf16 compute, fp32 weights and optimizer state
        return torch.autocast(device_type="cuda" if str(device).startswith("cuda") else "cpu", dtype=torch.bfloat16,
                              enabled=cfg.model.precision == "bf16")

    model.train()
    started = time.time()
    bar = life.progress(total, step, enabled=tc.progress)
    while step < total:
        epoch, pos = divmod(step, spe)
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        perm = torch.randperm(n, generator=gen).tolist()
        if tc.length_buckets:
            perm = bucket_by_length(perm, lengths, tc.batch_size, seed=cfg.seed * 100_003 + epoch)
        for b in range(pos, spe):
            batch = collate([feats[i] for i in perm[b * tc.batch_size:(b + 1) * tc.batch_size]],
                            tokenizer.pad_token_id or 0)
            batch = {k: v.to(device) for k, v in batch.items()}
            with autocast():
                out = model(**batch)
                loss = out.loss
                if teacher is not None:
                    with torch.no_grad():
                        soft = teacher(**{k: v for k, v in batch.items() if k != "labels"}).logits
                    loss = (1 - tc.distill_weight) * loss + tc.distill_weight * distill_loss(
                        out.logits, soft, batch["labels"], n_labels, tc.distill_temperature)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update()
            step += 1
            running.append(loss.item())
            if step % tc.log_every == 0 or step == total:
                avg = float(np.mean(running))
                running.clear()
                life.log_train(step, epoch=step / spe, loss=avg, lr=scheduler.get_last_lr()[0])
                bar.update(step, loss=avg)
            else:
                bar.update(step)
            if life.is_checkpoint_step(step, total):
                checkpoint(step)
            life.after_step(step)
            if step >= total:
                break

    summary = {"steps": total, "train_records": n, "parameters": n_params, "trainable_parameters": trainable,
               "train_seconds_this_session": round(time.time() - started, 1), "device": device, **align_stats}
    from finextract.backends.encoder.extractor import load

    if val_recs:  # decoder choice (decoder: auto) and confidence temperature, fitted on the validation split
        from finextract.backends.encoder.calibration import fit_after_training

        summary["calibration"] = fit_after_training(run, cfg, load(str(run.root), "best", device=device), val_recs)
    return life.finish(lambda: load(str(run.root), "best", device=device), summary)
