"""Small encoders for tests and smoke runs, built offline in seconds.

A 2-layer slice of the bundled MiniLM keeps its pretrained embeddings and tokenizer
(so it learns a handful of records in a few dozen steps), while a random tiny BERT
exercises the "any architecture" path without pretrained weights.
"""

from __future__ import annotations

from pathlib import Path

from finextract.backends.encoder.config import default_model_path


def build_tiny_encoder(dir: str | Path, layers: int = 2, pretrained: bool = True, hidden: int = 64,
                       seed: int = 0) -> Path:
    """Save a small BERT encoder + the MiniLM tokenizer in ``dir``; returns ``dir``.

    ``pretrained=True``: the first ``layers`` layers of the bundled MiniLM-L6.
    ``pretrained=False``: a random BERT with ``hidden`` units and ``layers`` layers.
    """
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from finextract.backends.encoder.model import quiet_transformers

    quiet_transformers()
    dir = Path(dir)
    src = default_model_path()
    tok = AutoTokenizer.from_pretrained(src, local_files_only=True)
    if pretrained:
        model = BertModel.from_pretrained(src, local_files_only=True)
        model.encoder.layer = model.encoder.layer[:layers]
        model.config.num_hidden_layers = layers
    else:
        torch.manual_seed(seed)
        cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                         num_attention_heads=max(1, hidden // 32), intermediate_size=2 * hidden,
                         max_position_embeddings=256)
        model = BertModel(cfg)
    model.save_pretrained(dir)
    tok.save_pretrained(dir)
    return dir


def train_tiny_run(base: str | Path, layers: int = 2, hidden: int = 64, n: int = 400, data_seed: int = 5,
                   max_length: int = 48, max_steps: int = 60, model: dict | None = None) -> Path:
    """A random-init tiny BERT trained ``max_steps`` on generated merchant descriptors: a real run
    directory with a real checkpoint, in seconds on one core. ``model`` adds ``model.*`` settings."""
    from finextract.backends.encoder.config import EncoderRunConfig
    from finextract.backends.encoder.train import train
    from finextract.synth import write_splits

    base = Path(base)
    encoder = build_tiny_encoder(base / "bert", layers=layers, pretrained=False, hidden=hidden)
    paths = write_splits(base / "data", n=n, seed=data_seed)
    cfg = EncoderRunConfig.model_validate({
        "backend": "encoder", "task": "merchant", "output_dir": str(base / "run"), "seed": 0,
        "data": {"train": str(paths["train"]), "validation": str(paths["validation"]), "test": str(paths["test"])},
        "model": {"name_or_path": str(encoder), "max_length": max_length, **(model or {})},
        "train": {"learning_rate": 3e-3, "max_steps": max_steps, "batch_size": 16, "checkpoint_every": max_steps,
                  "warmup_ratio": 0.0, "progress": False, "num_threads": 1}})
    train(cfg)
    return Path(cfg.output_dir)
