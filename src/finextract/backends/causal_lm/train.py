"""LoRA SFT loop: answer-only loss, checkpoints every N steps, every checkpoint scored, exact resume.

A compact loop instead of HF Trainer so the whole path is readable in one file and the
things that matter here are explicit: token-weighted loss over the whole accumulation
group, a checkpoint that holds everything needed to continue bit-for-bit (adapter,
optimizer, scheduler, RNG, data position), scoring by greedy generation (not eval loss),
and the end-of-turn check on every batch.

Multi-GPU: launch with ``torchrun --nproc_per_node N $(which finextract) train CFG`` (or
``accelerate launch``, which sets the same environment). Each rank takes every N-th
micro-batch of the same seeded order; gradients are averaged by DDP; rank 0 saves and
scores while the others wait.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from finextract.backends.causal_lm.config import CausalRunConfig
from finextract.backends.causal_lm.data import (IGNORE, Example, check_batch, collate_packed, collate_padded,
                                                encode_records)
from finextract.backends.causal_lm.extractor import CausalLMExtractor
from finextract.backends.causal_lm.loss import compute_loss
from finextract.backends.causal_lm.modeling import add_lora, load_base_model, load_tokenizer, pick_device
from finextract.backends.causal_lm.template import ensure_pad_token, save_template_info, template_info
from finextract.rundir import RunDir, mark_checkpoint_complete
from finextract.training import finish_run, load_split, score_checkpoint, seed_everything, rng_state, set_rng_state
from finextract.tracking import start_tracking

log = logging.getLogger("finextract")
STATE_FILE = "trainer_state.json"


class LossModule(nn.Module):
    """Wraps the peft model so DDP sees one forward that returns the summed token loss."""

    def __init__(self, model: nn.Module, mode: str, chunk: int | None) -> None:
        super().__init__()
        self.model, self.mode, self.chunk = model, mode, chunk

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        return compute_loss(self.model, batch, self.mode, self.chunk)[0]


def compile_layers(model: Any) -> int:
    """``torch.compile`` each decoder layer: identical layers share one compiled graph, so
    compile time stays that of one block while most per-kernel launch overhead goes."""
    from finextract.backends.causal_lm.loss import _causal_lm

    layers = getattr(_causal_lm(model).get_decoder(), "layers", [])
    for layer in layers:
        layer.compile()
    return len(layers)


# ------------------------------------------------------------------------ distributed
def _dist_info() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", 1))
    rank = int(os.environ.get("RANK", 0))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        torch.distributed.init_process_group(backend)
    return rank, world


def _barrier(world: int) -> None:
    if world > 1:
        torch.distributed.barrier()


# ------------------------------------------------------------------------ data order
def epoch_groups(n: int, epoch: int, cfg: CausalRunConfig, examples: list[Example], rank: int,
                 world: int) -> list[list[list[int]]]:
    """Optimizer-step groups of micro-batches (lists of example indexes) for this rank.

    Depends only on (seed, epoch), so a resumed run replays the same order.
    """
    t = cfg.train
    g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
    perm = torch.randperm(n, generator=g).tolist()
    if t.group_by_length:
        span = t.per_device_batch * 64
        perm = [i for s in range(0, n, span) for i in sorted(perm[s:s + span], key=lambda i: len(examples[i]))]
    micro = [perm[i:i + t.per_device_batch] for i in range(0, n, t.per_device_batch)]
    if t.group_by_length:
        random.Random(cfg.seed * 7 + epoch).shuffle(micro)
    if world > 1 and len(micro) % world:  # every rank must take the same number of steps
        micro += micro[: world - len(micro) % world]
    mine = micro[rank::world]
    return [mine[i:i + t.gradient_accumulation] for i in range(0, len(mine), t.gradient_accumulation)]


def make_batch(examples: list[Example], idx: list[int], cfg: CausalRunConfig, pad_id: int) -> dict[str, torch.Tensor]:
    exs = [examples[i] for i in idx]
    if cfg.train.packing:
        return collate_packed(exs, cfg.train.max_length, pad_id)
    return collate_padded(exs, pad_id, cfg.train.pad_to_multiple)


# ------------------------------------------------------------------------ checkpoints


def save_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any, state: dict[str, Any],
                    rng: dict[str, Any], info: Any, cfg: CausalRunConfig) -> None:
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)  # adapter_model.safetensors + adapter_config.json
    torch.save(optimizer.state_dict(), path / "optimizer.pt")
    torch.save(scheduler.state_dict(), path / "scheduler.pt")
    torch.save(rng, path / "rng.pt")
    (path / STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")
    save_template_info(info, path, cfg.prompt.style, cfg.prompt.enable_thinking)
    mark_checkpoint_complete(path)


def _scheduler(optimizer: Any, cfg: CausalRunConfig, total: int) -> Any:
    from transformers import get_scheduler

    name = {"constant": "constant_with_warmup"}.get(cfg.train.scheduler, cfg.train.scheduler)
    return get_scheduler(name, optimizer, num_warmup_steps=math.ceil(cfg.train.warmup_ratio * total),
                         num_training_steps=total)


# ------------------------------------------------------------------------ train
def train(cfg: CausalRunConfig, on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train per ``cfg``; resumes from the newest complete checkpoint in ``cfg.output_dir``.

    ``on_step(step)`` is called after every optimizer step (tests use it to simulate a kill).
    """
    rank, world = _dist_info()
    device = pick_device()
    seed_everything(cfg.seed)
    task = cfg.load_task()
    run = RunDir(cfg.output_dir)
    if run.done_path.exists():
        log.info("%s is already finished (DONE exists); nothing to train", run.root)
        return json.loads(run.done_path.read_text(encoding="utf-8"))
    resume = run.checkpoints()[-1][1] if run.checkpoints() else None
    if rank == 0:
        run.create(cfg)
    _barrier(world)

    tok = load_tokenizer(cfg.model.name_or_path, cfg.model.trust_remote_code)
    info = template_info(tok, task, cfg.prompt.style, cfg.prompt.enable_thinking)
    ensure_pad_token(tok, info.end_token_id)
    if rank == 0:
        tok.save_pretrained(run.root / "tokenizer")

    train_recs = load_split(cfg.data.train, task, cfg.data.skip_invalid, cfg.data.max_train_records)
    if not train_recs:
        raise ValueError("data.train is required and must hold at least one record")
    val_recs = load_split(cfg.data.validation, task, cfg.data.skip_invalid, cfg.data.max_eval_records)
    examples = encode_records(tok, task, train_recs, cfg.prompt.style, cfg.prompt.enable_thinking,
                              info.end_token_id, info.prompt_has_think, cfg.train.max_length)
    max_answer = max(sum(1 for x in e.labels if x != IGNORE) for e in examples)

    model = load_base_model(cfg.model.name_or_path, cfg.model.precision, cfg.model.attn_implementation,
                            device, cfg.model.trust_remote_code)
    if cfg.train.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = add_lora(model, cfg.lora)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.train.learning_rate, weight_decay=cfg.train.weight_decay)

    steps_per_epoch = len(epoch_groups(len(examples), 0, cfg, examples, rank, world))
    total = cfg.train.max_steps or math.ceil(cfg.train.epochs * steps_per_epoch)
    scheduler = _scheduler(optimizer, cfg, total)
    state: dict[str, Any] = {"global_step": 0, "tokens": 0, "train_seconds": 0.0}
    if resume is not None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(model, load_file(str(resume / "adapter_model.safetensors"), device=str(device)))
        optimizer.load_state_dict(torch.load(resume / "optimizer.pt", map_location=device, weights_only=False))
        scheduler.load_state_dict(torch.load(resume / "scheduler.pt", weights_only=False))
        set_rng_state(torch.load(resume / "rng.pt", weights_only=False))
        state = json.loads((resume / STATE_FILE).read_text(encoding="utf-8"))
        if rank == 0:
            run.rewind(state["global_step"])
        log.info("resuming from %s (step %d of %d)", resume.name, state["global_step"], total)

    loss_module: nn.Module = LossModule(model, cfg.train.loss, cfg.train.ce_chunk)
    if cfg.train.torch_compile:
        compile_layers(model)
    if world > 1:
        loss_module = nn.parallel.DistributedDataParallel(
            loss_module, device_ids=[device.index] if device.type == "cuda" else None)
    amp = (torch.autocast("cuda", dtype=torch.bfloat16 if cfg.model.precision == "bf16" else torch.float16)
           if device.type == "cuda" and cfg.model.precision != "fp32" else contextlib.nullcontext())
    tracker = start_tracking(cfg, run.root) if rank == 0 else None

    def extractor() -> CausalLMExtractor:
        return CausalLMExtractor(model, tok, task, cfg.prompt.style, cfg.prompt.enable_thinking, info.end_token_id,
                                 engine=cfg.decoding.engine, constrained=cfg.decoding.constrained,
                                 max_new_tokens=min(cfg.decoding.max_new_tokens, 2 * max_answer + 16),
                                 batch_size=cfg.decoding.batch_size)

    def checkpoint_and_score(step: int) -> None:
        rng = rng_state()
        if rank == 0:
            path = run.checkpoint_path(step)
            save_checkpoint(path, model, optimizer, scheduler, {**state, "global_step": step}, rng, info, cfg)
            if val_recs:
                score_checkpoint(run, extractor(), val_recs, step, epoch=round(step / steps_per_epoch, 3),
                                 tracker=tracker)
        _barrier(world)
        set_rng_state(rng)  # scoring must not change what training does next

    if resume is not None and rank == 0 and val_recs and not any(
            m["step"] == state["global_step"] for m in run.metrics()):
        score_checkpoint(run, extractor(), val_recs, state["global_step"],
                         epoch=round(state["global_step"] / steps_per_epoch, 3), tracker=tracker)

    step = state["global_step"]
    epoch, within = divmod(step, steps_per_epoch)
    window_loss, window_tok = 0.0, 0
    model.train()
    progress = _progress(rank == 0, total, step)
    t0 = time.perf_counter()
    while step < total:
        groups = epoch_groups(len(examples), epoch, cfg, examples, rank, world)
        for group in groups[within:]:
            batches = [make_batch(examples, idx, cfg, tok.pad_token_id) for idx in group]
            for b in batches:
                check_batch(b, info.end_token_id)
            n_tok = torch.tensor(sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in batches), device=device)
            if world > 1:
                torch.distributed.all_reduce(n_tok)
            for k, b in enumerate(batches):
                b = {key: v.to(device) for key, v in b.items()}
                sync = contextlib.nullcontext() if world == 1 or k == len(batches) - 1 else loss_module.no_sync()
                with sync, amp:
                    loss_sum = loss_module(**b)
                (loss_sum * world / n_tok).backward()
                window_loss += float(loss_sum.detach())
                state["tokens"] += int(b["input_ids"].numel())
            window_tok += int(n_tok)  # already summed over ranks
            if cfg.train.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, cfg.train.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if progress:
                progress[0].update(progress[1], completed=step)
            if step % cfg.train.logging_steps == 0 or step == total:
                if world > 1:  # every rank's summed token loss, so the logged loss is the global one
                    summed = torch.tensor([window_loss], dtype=torch.float64, device=device)
                    torch.distributed.all_reduce(summed)
                    window_loss = float(summed)
                if rank == 0:
                    row = {"step": step, "epoch": round(step / steps_per_epoch, 3),
                           "loss": window_loss / max(window_tok, 1), "lr": scheduler.get_last_lr()[0]}
                    run.log_train(row)
                    if tracker is not None:
                        tracker.log_metrics({"train_loss": row["loss"], "lr": row["lr"]}, step=step)
                window_loss, window_tok = 0.0, 0
            if step % cfg.train.save_steps == 0 or step == total:
                state["train_seconds"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                checkpoint_and_score(step)
            if on_step is not None:
                on_step(step)
            if step >= total:
                break
        epoch, within = epoch + 1, 0
    if progress:
        progress[0].stop()
    summary = {"run_dir": str(run.root), "steps": total, "steps_per_epoch": steps_per_epoch,
               "world_size": world, "train_seconds": round(state["train_seconds"], 2),
               "train_tokens": state["tokens"] * world}
    if rank == 0:
        from finextract.backends.causal_lm.extractor import load

        out = finish_run(run, lambda: load(str(run.root), "best"), cfg, summary)
        if tracker is not None:
            tracker.end()
    else:
        out = summary
    _barrier(world)
    return out


def _progress(enabled: bool, total: int, done: int) -> tuple[Any, Any] | None:
    if not enabled or not os.isatty(2):
        return None
    from rich.progress import Progress

    p = Progress(transient=True)
    p.start()
    return p, p.add_task("training", total=total, completed=done)
