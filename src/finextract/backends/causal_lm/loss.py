"""Causal-LM loss, two ways that give the same number.

``naive``: the model's logits at every position ([batch, seq, vocab], mostly prompt and
padding), then cross-entropy where labels are set - what a plain peft loop does.

``answer-only``: run the decoder, keep the hidden states at supervised positions only, and
apply ``lm_head`` there (optionally in chunks with recomputation, so the [tokens, vocab]
logits are never all alive). Prompts are ~10x longer than answers here, so this skips
most of the lm_head FLOPs and nearly all logits memory (151k-vocab logits in fp32 are
the largest tensor of the step).

Both return the **sum** of token losses and the token count; the trainer divides by the
token count of the whole accumulation group, so gradient accumulation and padding do not
change the weighting of tokens.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

IGNORE = -100


def _causal_lm(model: Any) -> Any:
    """The ``*ForCausalLM`` module under DDP and peft wrappers."""
    model = getattr(model, "module", model)  # DistributedDataParallel
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _finish_logits(lm: Any, logits: torch.Tensor) -> torch.Tensor:
    cfg = lm.config
    scale = getattr(cfg, "logit_scale", None)  # Cohere
    if scale is not None:
        logits = logits * scale
    cap = getattr(cfg, "final_logit_softcapping", None)  # Gemma 2/3
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def naive_loss(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs, use_cache=False).logits.float()
    labels = batch["labels"][:, 1:]
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels.reshape(-1),
                           ignore_index=IGNORE, reduction="sum")
    return loss, int((labels != IGNORE).sum())


def _chunk_ce(lm: Any, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = _finish_logits(lm, lm.get_output_embeddings()(hidden)).float()
    return F.cross_entropy(logits, targets, reduction="sum")


def answer_only_loss(model: Any, batch: dict[str, torch.Tensor], chunk: int | None = None) -> tuple[torch.Tensor, int]:
    lm = _causal_lm(model)
    decoder = lm.get_decoder()
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    hidden = decoder(**inputs, use_cache=False).last_hidden_state  # [B, T, H]
    labels = batch["labels"][:, 1:]
    keep = labels != IGNORE
    h = hidden[:, :-1][keep]  # [N, H] - only positions that predict an answer token
    targets = labels[keep]
    n = int(targets.numel())
    if not chunk or n <= chunk:
        return _chunk_ce(lm, h, targets), n
    total = hidden.new_zeros((), dtype=torch.float32)
    for i in range(0, n, chunk):
        total = total + checkpoint(_chunk_ce, lm, h[i:i + chunk], targets[i:i + chunk], use_reentrant=False)
    return total, n


def compute_loss(model: Any, batch: dict[str, torch.Tensor], mode: str = "answer-only",
                 chunk: int | None = None) -> tuple[torch.Tensor, int]:
    if mode == "naive":
        return naive_loss(model, batch)
    if mode == "answer-only":
        return answer_only_loss(model, batch, chunk)
    raise ValueError(f"unknown loss mode {mode!r}; use 'naive' or 'answer-only'")
