"""Load base models, tokenizers and LoRA adapters the same way for training, scoring and serving."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("finextract")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def pick_device() -> torch.device:
    import os

    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    if device.type == "cpu" and precision != "fp32":
        log.info("precision %s requested on CPU: using fp32", precision)
        return torch.float32
    return DTYPES[precision]


def load_tokenizer(path: str | Path, trust_remote_code: bool = False) -> Any:
    """Tokenizer of a hub id, folder, ``.gguf`` file or catalog name (GGUFs: the converted folder's)."""
    from transformers import AutoTokenizer

    from finextract.backends.causal_lm.gguf import resolve_base_path

    tok = AutoTokenizer.from_pretrained(resolve_base_path(path), trust_remote_code=trust_remote_code)
    tok.padding_side = "left"
    return tok


def load_base_model(name_or_path: str | Path, precision: str, attn_implementation: str | None,
                    device: torch.device, trust_remote_code: bool = False) -> Any:
    """Base model of a hub id, folder, ``.gguf`` file or catalog name (``finextract models``).

    A GGUF is converted once into a cached plain folder (``backends/causal_lm/gguf.py``).
    """
    from transformers import AutoModelForCausalLM

    from finextract.backends.causal_lm.gguf import resolve_base_path

    name_or_path = resolve_base_path(name_or_path)
    kwargs: dict[str, Any] = {"dtype": resolve_dtype(precision, device), "trust_remote_code": trust_remote_code}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = AutoModelForCausalLM.from_pretrained(str(name_or_path), **kwargs)
    return model.to(device)


def add_lora(model: Any, lora_cfg: Any) -> Any:
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=lora_cfg.rank, lora_alpha=lora_cfg.alpha, lora_dropout=lora_cfg.dropout,
                     target_modules=lora_cfg.target_modules, task_type="CAUSAL_LM", bias="none")
    return get_peft_model(model, cfg)
