"""Causal-LM backend: LoRA SFT of any Hugging Face causal LM with a chat template.

See ``docs/causal-lm.md``. ``train`` lives in :mod:`.trainer`; ``load`` rebuilds the
extractor from a run directory: base model + adapter of the chosen checkpoint (or a
merged export), the run's tokenizer, and a chat-template check against the hash stored
with the adapter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from finextract.backends import Backend, register_backend
from finextract.backends.causal_lm.config import CausalRunConfig


def _train(cfg: CausalRunConfig) -> dict[str, Any]:
    from finextract.backends.causal_lm.trainer import train

    return train(cfg)


def load(source: str, checkpoint: str | None = None, allow_template_mismatch: bool = False,
         tokenizer_path: str | None = None, device: str | None = None, **overrides: Any):
    """Extractor for a run directory's checkpoint ("best", "last", "step-N", a path, or "merged").

    ``tokenizer_path`` swaps the tokenizer (the template hash check then decides whether
    that is allowed). ``FINEXTRACT_ALLOW_TEMPLATE_MISMATCH=1`` turns the refusal into a
    warning for commands (predict, eval, serve) that have no flag for it. ``overrides`` replace ``decoding`` fields (engine, max_new_tokens, ...).
    """
    import os

    import torch

    from finextract.backends.causal_lm.extractor import CausalLMExtractor
    from finextract.backends.causal_lm.modeling import load_base_model, load_tokenizer, pick_device
    from finextract.backends.causal_lm.template import check_template, ensure_pad_token, template_info
    from finextract.rundir import RunDir

    run = RunDir(Path(source))
    cfg = CausalRunConfig.model_validate(run.read_config())
    task = cfg.load_task()
    dev = torch.device(device) if device else pick_device()
    merged = checkpoint == "merged" or (checkpoint and (Path(checkpoint) / "config.json").exists())
    ckpt = (run.root / "merged") if checkpoint == "merged" else run.resolve_checkpoint(checkpoint)
    if not ckpt.exists():
        raise FileNotFoundError(f"{ckpt}: no such checkpoint")
    tok_dir = tokenizer_path or (run.root / "tokenizer" if (run.root / "tokenizer").exists() else cfg.model.name_or_path)
    tok = load_tokenizer(tok_dir, cfg.model.trust_remote_code)
    info = template_info(tok, task, cfg.prompt.style, cfg.prompt.enable_thinking)
    ensure_pad_token(tok, info.end_token_id)
    allow = allow_template_mismatch or os.environ.get("FINEXTRACT_ALLOW_TEMPLATE_MISMATCH", "") not in ("", "0")
    check_template(ckpt, info, allow)
    if merged:
        model = load_base_model(ckpt, cfg.model.precision, cfg.model.attn_implementation, dev)
    else:
        from peft import PeftModel

        base = load_base_model(cfg.model.name_or_path, cfg.model.precision, cfg.model.attn_implementation, dev,
                               cfg.model.trust_remote_code)
        model = PeftModel.from_pretrained(base, str(ckpt)).to(dev)
    model.eval()
    dec = cfg.decoding.model_copy(update={k: v for k, v in overrides.items() if k in cfg.decoding.model_fields})
    return CausalLMExtractor(model, tok, task, cfg.prompt.style, cfg.prompt.enable_thinking, info.end_token_id,
                             engine=dec.engine, constrained=dec.constrained, max_new_tokens=dec.max_new_tokens,
                             batch_size=dec.batch_size, show_progress=True)


register_backend(Backend(name="causal_lm", config_cls=CausalRunConfig, train=_train, load=load,
                         description="LoRA SFT of a Hugging Face causal LM (chat template, answer-only loss)"))
