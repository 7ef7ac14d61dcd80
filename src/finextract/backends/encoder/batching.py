"""Length-bucketed batch order and lower-layer freezing: the two cheap speed-ups of CPU training.

Why: descriptors are short but uneven (8 to 60 sub-words); a batch is padded to its longest
text, so random batches waste compute on padding. Bucketing sorts texts by length inside
windows of ``window`` batches and then shuffles the batches, keeping most of the randomness.
The order depends only on the epoch's permutation and seed, so resumed runs replay it exactly.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any


def bucket_by_length(perm: Sequence[int], lengths: Sequence[int], batch_size: int, seed: int,
                     window: int = 50) -> list[int]:
    """``perm`` reordered so consecutive ``batch_size`` slices hold texts of similar length."""
    perm = list(perm)
    span = batch_size * window
    batches: list[list[int]] = []
    for w in range(0, len(perm), span):
        chunk = sorted(perm[w:w + span], key=lambda i: lengths[i])
        batches += [chunk[b:b + batch_size] for b in range(0, len(chunk), batch_size)]
    random.Random(seed).shuffle(batches)
    return [i for b in batches for i in b]


def freeze_word_embeddings(tagger: Any) -> int:
    """Freeze the encoder's sub-word embedding table; returns the number of frozen parameters.

    Why: in MiniLM-L6 that table is half the weights (30,522 x 384), and AdamW updates all of
    it every step although a batch touches a few hundred rows. Frozen, a CPU training step
    is about 30% faster (benchmarks/encoder_quickstart_step.py). Position embeddings, the
    layers, heads and the case/lexical/layout embeddings stay trainable.
    """
    emb = getattr(getattr(tagger.model.base_model, "embeddings", None), "word_embeddings", None)
    if emb is None:
        raise ValueError("train.freeze_embeddings: this encoder has no embeddings.word_embeddings")
    emb.weight.requires_grad_(False)
    return emb.weight.numel()


def freeze_lower_layers(tagger: Any, n_layers: int) -> int:
    """Freeze the word/position embeddings and the first ``n_layers`` transformer layers.

    Returns the number of frozen parameters. The new parts (heads, case/lexical
    embeddings) stay trainable. Works for BERT-like and MPNet models (``base_model.embeddings``,
    ``base_model.encoder.layer``).
    """
    if n_layers <= 0:
        return 0
    base = tagger.model.base_model
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if layers is None or not hasattr(base, "embeddings"):
        raise ValueError("train.freeze_layers: this encoder has no embeddings/encoder.layer to freeze")
    frozen = 0
    for module in [base.embeddings, *list(layers)[:n_layers]]:
        for p in module.parameters():
            if p.requires_grad:
                p.requires_grad_(False)
                frozen += p.numel()
    return frozen
