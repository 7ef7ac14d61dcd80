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


def _train(cfg: CausalRunConfig) -> dict[str, Any]:
    from finextract.backends.causal_lm.train import train

    return train(cfg)


def load(source: str, checkpoint: str | None = None, **kwargs: Any):
    """Lazy wrapper of :func:`finextract.backends.causal_lm.extractor.load` (see there)."""
    from finextract.backends.causal_lm.extractor import load as _load

    return _load(source, checkpoint, **kwargs)


def _commands(app: Any) -> None:
    from finextract.backends.causal_lm.export import register

    register(app)


register_backend(Backend(name="causal_lm", config_cls=CausalRunConfig, train=_train, load=load, commands=_commands,
                         description="LoRA SFT of a Hugging Face causal LM (chat template, answer-only loss)"))
