"""Fine-tune the encoder tagger, checkpoint every N steps, and resume after a kill.

Why resume is exact: the data order of epoch ``e`` comes from its own generator seeded
with ``(seed, e)``, and each checkpoint stores the weights, optimizer, scheduler and every
RNG state taken *before* the checkpoint is scored. A resumed run therefore replays the
same batches with the same dropout masks as an uninterrupted one and ends bit-identical
(on the same device and thread count).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from typing import Any

import numpy as np

from finextract.backends.encoder.config import EncoderRunConfig
from finextract.backends.encoder.model import (EncoderExtractor, build_model, count_parameters,
                                               load_model_from_checkpoint, load_tokenizer, make_tagger,
                                               decode_options, save_model, torch_forward)
from finextract.backends.encoder.batching import bucket_by_length, freeze_lower_layers
from finextract.backends.encoder.features import LEX_OFFSETS, token_features
from finextract.backends.encoder.tagging import IGNORE, align_labels
from finextract.config import ConfigError
from finextract.records import Record
from finextract.rundir import RunDir, mark_checkpoint_complete
from finextract.tasks import Task
from finextract.training import finish_run, load_split, score_checkpoint, seed_everything, rng_state, set_rng_state

log = logging.getLogger("finextract")

# Fields that may change between a run and its resumption (where results go, not what is trained).
_RESUMABLE_CHANGES = {"output_dir", "tracking", "data.test", "data.eval_sets", "train.progress",
                      "train.eval_batch_size", "train.num_threads"}


class _Interrupt(Exception):
    """Raised by the test hook ``stop_after_step`` to simulate a kill mid-run."""


def encode_records(records: list[Record], tokenizer: Any, task: Task, max_length: int,
                   with_case: bool = False, with_lex: bool = False) -> tuple[list[dict[str, list[int]]], dict[str, int]]:
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
            feat.update(token_features(rec.text, enc["offset_mapping"][j], with_case, with_lex))
            feats.append(feat)
    return feats, {"values_placed": placed, "values_missed": missed}


def collate(feats: list[dict[str, list[int]]], pad_id: int):
    import torch

    width = max(len(f["input_ids"]) for f in feats)
    out: dict[str, Any] = {}
    for key in feats[0]:
        pad = IGNORE if key == "labels" else (pad_id if key == "input_ids" else (list(LEX_OFFSETS) if key == "lex_ids" else 0))
        out[key] = torch.tensor([f[key] + [pad] * (width - len(f[key])) for f in feats], dtype=torch.long)
    return out


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "eval_sets":
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_resume_compatible(run: RunDir, cfg: EncoderRunConfig) -> None:
    """Refuse to resume a run with a different model/data/training recipe (it would mix two runs)."""
    if not run.config_path.exists() or not run.checkpoints():
        return
    old = _flat(run.read_config())
    new = _flat(cfg.model_dump(mode="json"))
    diff = sorted(k for k in set(old) | set(new)
                  if old.get(k) != new.get(k) and not any(k == p or k.startswith(p + ".") for p in _RESUMABLE_CHANGES))
    if diff:
        detail = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:6])
        raise ConfigError(f"{run.root}: has checkpoints from a different config ({detail}); "
                          "use a new output_dir or delete the old run to start over")




def _prune(run: RunDir, keep_last: int) -> None:
    """Keep the best checkpoint and the newest ``keep_last``; the best loses its resume state."""
    cps = run.checkpoints()
    best = (run.best() or {}).get("checkpoint")
    recent = {p.name for _, p in cps[-keep_last:]}
    for _, path in cps:
        if path.name in recent:
            continue
        if path.name == best:
            (path / "state.pt").unlink(missing_ok=True)
            continue
        shutil.rmtree(path, ignore_errors=True)


def _device(cfg: EncoderRunConfig) -> str:
    import torch

    if cfg.train.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.train.device


def train(cfg: EncoderRunConfig, stop_after_step: int | None = None) -> dict[str, Any]:
    """Train (or resume) the run in ``cfg.output_dir``; returns the run summary.

    ``stop_after_step`` is a test hook: raise after that optimizer step, as a kill would.
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    from finextract.tracking import start_tracking

    if cfg.data.train is None:
        raise ConfigError("data.train: the encoder needs a training JSONL (set data.train=PATH)")
    task = cfg.load_task()
    run = RunDir(cfg.output_dir)
    if run.done_path.exists():
        log.info("%s is already finished (DONE); use a new output_dir to train again", run.root)
        return json.loads(run.done_path.read_text(encoding="utf-8") or "{}")
    check_resume_compatible(run, cfg)
    run.create(cfg)
    tc = cfg.train
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)
    device = _device(cfg)

    train_recs = load_split(cfg.data.train, task, cfg.data.skip_invalid, cfg.data.max_train_records)
    val_recs = load_split(cfg.data.validation, task, cfg.data.skip_invalid, cfg.data.max_eval_records)
    if not train_recs:
        raise ConfigError(f"data.train: {cfg.data.train} has no usable records")
    tokenizer = load_tokenizer(cfg.model.name_or_path)
    if cfg.model.pointer_head and task.multi_valued:
        raise ConfigError("model.pointer_head: pointer heads are for single-valued tasks (this task is multi-valued)")
    feats, align_stats = encode_records(train_recs, tokenizer, task, cfg.model.max_length, cfg.model.case_features,
                                        cfg.model.lexical_features)
    if align_stats["values_missed"]:
        log.warning("%d of %d gold values could not be tagged (not found in the text, cut by max_length=%d, "
                    "or overlapping another value)", align_stats["values_missed"],
                    align_stats["values_missed"] + align_stats["values_placed"], cfg.model.max_length)

    n = len(feats)
    lengths = [len(f["input_ids"]) for f in feats]
    spe = math.ceil(n / tc.batch_size)
    total = tc.max_steps or max(1, math.ceil(tc.epochs * spe))

    seed_everything(cfg.seed)
    cps = run.checkpoints()
    state: dict[str, Any] | None = None
    if cps:
        step, path = cps[-1]
        if not (path / "state.pt").exists():
            raise ConfigError(f"{path}: newest checkpoint has no resume state")
        log.info("resuming from %s", path)
        model, _ = load_model_from_checkpoint(path, cfg, task, trainable=True)
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
        run.rewind(step)
    else:
        step = 0
        model = make_tagger(build_model(cfg, task), cfg.model.case_features, cfg.model.lexical_features,
                            len(task.key_names) if cfg.model.pointer_head else 0)
    freeze_lower_layers(model, tc.freeze_layers)
    model.to(device)

    def is_new(name: str) -> bool:  # freshly initialised parts: tagging/pointer heads, extra embeddings
        return "classifier" in name or name.startswith(("case.", "lex.", "pointer."))

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

    tracker = start_tracking(cfg, run.root)
    tracker.log_params(cfg.model_dump(mode="json"))
    n_params = count_parameters(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    def extractor() -> EncoderExtractor:
        return EncoderExtractor(torch_forward(model, device), tokenizer, task, cfg.model.max_length, tc.eval_batch_size,
                                case_features=model.case is not None, lexical_features=model.lex is not None,
                                decode_options=decode_options(cfg))

    def evaluate(at: int) -> None:
        model.eval()
        if val_recs:
            score_checkpoint(run, extractor(), val_recs, at, epoch=at / spe, tracker=tracker)
        else:  # nothing to select on: the newest checkpoint is the best
            run.set_best(f"step-{at}", at, 0.0)
        model.train()

    def checkpoint(at: int) -> None:
        path = run.checkpoint_path(at)
        if path.exists():  # a half-written folder left by a kill
            shutil.rmtree(path)
        save_model(model, tokenizer, path, task, cfg.model.lora)
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "rng": rng_state(), "step": at, "running_loss": list(running)}, path / "state.pt")
        mark_checkpoint_complete(path)
        evaluate(at)
        _prune(run, tc.keep_last)

    if step and not any(m["step"] == step for m in run.metrics()):
        evaluate(step)  # killed between saving and scoring that checkpoint

    model.train()
    started = time.time()
    running: list[float] = list(state.get("running_loss", [])) if state else []  # losses since the last log row
    pbar = tqdm(total=total, initial=step, desc=f"train {run.root.name}", unit="step", disable=not tc.progress,
                dynamic_ncols=True)
    try:
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
                loss = model(**batch).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), tc.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                running.append(loss.item())
                pbar.update(1)
                if step % tc.log_every == 0 or step == total:
                    avg = float(np.mean(running))
                    running.clear()
                    run.log_train({"step": step, "epoch": step / spe, "loss": avg, "lr": scheduler.get_last_lr()[0]})
                    tracker.log_metrics({"train_loss": avg}, step=step)
                    pbar.set_postfix(loss=f"{avg:.4f}")
                if step % tc.eval_every == 0 or step == total:
                    checkpoint(step)
                if stop_after_step is not None and step >= stop_after_step:
                    raise _Interrupt(f"stopped after step {step}")
                if step >= total:
                    break
    except BaseException:
        pbar.close()
        tracker.end("KILLED")
        raise
    pbar.close()

    summary = {"steps": total, "train_records": n, "parameters": n_params, "trainable_parameters": trainable,
               "train_seconds_this_session": round(time.time() - started, 1), "device": device, **align_stats}
    from finextract.backends.encoder.model import load

    if val_recs:  # decoder choice (decoder: auto) and confidence temperature, fitted on the validation split
        from finextract.backends.encoder.calibration import fit_after_training

        summary["calibration"] = fit_after_training(run, cfg, load(str(run.root), "best", device=device), val_recs)
    out = finish_run(run, lambda: load(str(run.root), "best", device=device), cfg, summary)
    tracker.log_artifacts(run.root)
    tracker.end()
    return out
