"""Causal-LM backend: LoRA SFT of any Hugging Face causal LM with a chat template.

See ``docs/causal-lm.md``. ``train`` lives in :mod:`.train`; ``load`` (in :mod:`.extractor`)
rebuilds the extractor from a run directory: base model + adapter of the chosen checkpoint
(or a merged export), the run's tokenizer, and a chat-template check against the hash stored
with the adapter. ``export --merged`` lives in :mod:`.export`. This module imports neither
torch nor transformers: both wrappers below import lazily.
"""

from __future__ import annotations

from typing import Any

from finextract.backends.causal_lm.config import CausalRunConfig
from finextract.registry import Backend, register_backend


def _train(cfg: CausalRunConfig, **kwargs: Any) -> dict[str, Any]:
    from finextract.backends.causal_lm.train import train

    return train(cfg, **kwargs)


def _tiny_config(workdir: Any) -> dict[str, Any]:
    from pathlib import Path

    from finextract.testing import build_tiny_causal_lm

    model = build_tiny_causal_lm(Path(workdir) / "tiny-causal")
    return {"model": {"name_or_path": str(model), "precision": "fp32"}, "prompt": {"style": "minimal"},
            "train": {"max_steps": 2, "checkpoint_every": 1, "log_every": 1, "batch_size": 2,
                      "gradient_accumulation": 1, "learning_rate": 3e-3, "warmup_ratio": 0.0},
            "decoding": {"engine": "engine", "constrained": True, "max_new_tokens": 24, "batch_size": 8}}


def load(source: str, checkpoint: str | None = None, **kwargs: Any):
    """Lazy wrapper of :func:`finextract.backends.causal_lm.extractor.load` (see there)."""
    from finextract.backends.causal_lm.extractor import load as _load

    return _load(source, checkpoint, **kwargs)


def _commands(app: Any) -> None:
    from finextract.backends.causal_lm.export import register
    from finextract.backends.causal_lm.grammar_export import register as register_grammar

    register(app)
    register_grammar(app)


register_backend(Backend(name="causal_lm", config_cls=CausalRunConfig, train=_train, load=load, commands=_commands,
                         tiny_config=_tiny_config,
                         description="LoRA SFT of a Hugging Face causal LM (chat template, answer-only loss)"))
