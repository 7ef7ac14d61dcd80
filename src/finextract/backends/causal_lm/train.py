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
from finextract.errors import ConfigError, RunDirError
from finextract.training import RunLifecycle, load_split, load_state, rng_state, seed_everything, set_rng_state

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
        span = t.batch_size * 64
        perm = [i for s in range(0, n, span) for i in sorted(perm[s:s + span], key=lambda i: len(examples[i]))]
    micro = [perm[i:i + t.batch_size] for i in range(0, n, t.batch_size)]
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
STATE_FILES = ("optimizer.pt", "scheduler.pt", "rng.pt")  # tensors and plain data, loaded with weights_only=True
# Fields a resumed run may change: decoding batch size only changes scoring speed.
_RESUMABLE_CHANGES = ("decoding.batch_size",)


def write_checkpoint_files(path: Path, model: Any, state: dict[str, Any], info: Any, cfg: CausalRunConfig) -> None:
    """The causal backend's model I/O: adapter (safetensors), data position (JSON), template facts."""
    model.save_pretrained(path)  # adapter_model.safetensors + adapter_config.json
    (path / STATE_FILE).write_text(json.dumps(state, indent=2), encoding="utf-8")
    save_template_info(info, path, cfg.prompt.style, cfg.prompt.enable_thinking)


def read_resume_state(path: Path, device: Any) -> dict[str, Any]:
    """Everything :func:`train` needs to continue from checkpoint ``path`` (nothing is unpickled)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    adapter = path / "adapter_model.safetensors"
    try:
        weights = load_file(str(adapter), device=str(device))
    except (OSError, SafetensorError, RuntimeError) as exc:
        raise RunDirError(f"{adapter}: cannot read adapter weights ({exc})") from None
    try:
        state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
        int(state["global_step"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RunDirError(f"{path / STATE_FILE}: unreadable trainer state ({exc!r})") from None
    return {"adapter": weights, "optimizer": load_state(path / "optimizer.pt", device),
            "scheduler": load_state(path / "scheduler.pt"), "rng": load_state(path / "rng.pt"), "state": state}


def _scheduler(optimizer: Any, cfg: CausalRunConfig, total: int) -> Any:
    from transformers import get_scheduler

    name = {"constant": "constant_with_warmup"}.get(cfg.train.scheduler, cfg.train.scheduler)
    return get_scheduler(name, optimizer, num_warmup_steps=math.ceil(cfg.train.warmup_ratio * total),
                         num_training_steps=total)


# ------------------------------------------------------------------------ train
def train(cfg: CausalRunConfig, on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train per ``cfg``; resumes from the newest good checkpoint in ``cfg.output_dir``.

    ``on_step(step)`` is called after every optimizer step (tests use it to simulate a kill).
    """
    rank, world = _dist_info()
    with RunLifecycle(cfg, resumable=_RESUMABLE_CHANGES, on_step=on_step, is_main=rank == 0) as life:
        if life.finished is not None:
            return life.finished
        return _train(cfg, life, rank, world)


def _train(cfg: CausalRunConfig, life: RunLifecycle, rank: int, world: int) -> dict[str, Any]:
    device = pick_device()
    seed_everything(cfg.seed)
    task = cfg.load_task()
    run = life.run
    _, resumed = life.start(lambda path: read_resume_state(path, device))
    _barrier(world)

    tok = load_tokenizer(cfg.model.name_or_path, cfg.model.trust_remote_code)
    info = template_info(tok, task, cfg.prompt.style, cfg.prompt.enable_thinking)
    ensure_pad_token(tok, info.end_token_id)
    if rank == 0:
        tok.save_pretrained(run.root / "tokenizer")

    train_recs = load_split(cfg.data.train, task, cfg.data.skip_invalid, cfg.data.max_train_records)
    if not train_recs:
        raise ConfigError("data.train is required and must hold at least one record")
    val_recs = load_split(cfg.data.validation, task, cfg.data.skip_invalid, cfg.data.max_eval_records)
    life.val_records = val_recs
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
    if resumed is not None:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, resumed["adapter"])
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        set_rng_state(resumed["rng"])
        state = resumed["state"]
        log.info("resuming at step %d of %d", state["global_step"], total)

    loss_module: nn.Module = LossModule(model, cfg.train.loss, cfg.train.ce_chunk)
    if cfg.train.torch_compile:
        compile_layers(model)
    if world > 1:
        loss_module = nn.parallel.DistributedDataParallel(
            loss_module, device_ids=[device.index] if device.type == "cuda" else None)
    amp = (torch.autocast("cuda", dtype=torch.bfloat16 if cfg.model.precision == "bf16" else torch.float16)
           if device.type == "cuda" and cfg.model.precision != "fp32" else contextlib.nullcontext())

    def extractor() -> CausalLMExtractor:
        return CausalLMExtractor(model, tok, task, cfg.prompt.style, cfg.prompt.enable_thinking, info.end_token_id,
                                 engine=cfg.decoding.engine, constrained=cfg.decoding.constrained,
                                 max_new_tokens=min(cfg.decoding.max_new_tokens, 2 * max_answer + 16),
                                 batch_size=cfg.decoding.batch_size)

    def checkpoint_and_score(step: int) -> None:
        rng = rng_state()
        life.save_checkpoint(
            step, lambda path: write_checkpoint_files(path, model, {**state, "global_step": step}, info, cfg),
            {"optimizer.pt": optimizer.state_dict(), "scheduler.pt": scheduler.state_dict(), "rng.pt": rng})
        life.score(step, extractor, epoch=round(step / steps_per_epoch, 3))
        _barrier(world)
        set_rng_state(rng)  # scoring must not change what training does next

    life.rescore(state["global_step"], extractor, epoch=round(state["global_step"] / steps_per_epoch, 3))

    step = state["global_step"]
    epoch, within = divmod(step, steps_per_epoch)
    window_loss, window_tok = 0.0, 0
    model.train()
    bar = life.progress(total, step, enabled=cfg.train.progress)
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
            if step % cfg.train.log_every == 0 or step == total:
                if world > 1:  # every rank's summed token loss, so the logged loss is the global one
                    summed = torch.tensor([window_loss], dtype=torch.float64, device=device)
                    torch.distributed.all_reduce(summed)
                    window_loss = float(summed)
                loss = window_loss / max(window_tok, 1)
                life.log_train(step, epoch=round(step / steps_per_epoch, 3), loss=loss, lr=scheduler.get_last_lr()[0])
                bar.update(step, loss=loss)
                window_loss, window_tok = 0.0, 0
            else:
                bar.update(step)
            if life.is_checkpoint_step(step, total):
                state["train_seconds"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                checkpoint_and_score(step)
            life.after_step(step)
            if step >= total:
                break
        epoch, within = epoch + 1, 0
    summary = {"run_dir": str(run.root), "steps": total, "steps_per_epoch": steps_per_epoch,
               "world_size": world, "train_seconds": round(state["train_seconds"], 2),
               "train_tokens": state["tokens"] * world}
    from finextract.backends.causal_lm.extractor import load

    out = life.finish(lambda: load(str(run.root), "best"), summary)
    _barrier(world)
    return out
