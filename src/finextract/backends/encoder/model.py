"""Building, saving and loading the token-classification model, and its :class:`Extractor`.

A checkpoint folder holds everything inference needs, so it can be copied alone::

    step-N/model/        save_pretrained weights + tokenizer (full fine-tuning)
    step-N/adapter/      peft adapter + tagging head (LoRA); the base comes from model.name_or_path
    step-N/case.safetensors  capitalisation embedding (when model.case_features)
    step-N/labels.json   label names in id order
    step-N/state.pt      optimizer, scheduler, RNG states, step (resume only)
    step-N/onnx/         ONNX variants + meta.json after ``finextract export-onnx``
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from finextract.errors import InputError, NotFoundError
from finextract.backends.encoder.config import EncoderRunConfig
from finextract.backends.encoder.tagging import N_CASE_IDS, case_ids, decode, label_names, softmax
from finextract.extractor import Extractor, Prediction
from finextract.tasks import Task

log = logging.getLogger("finextract")

Forward = Callable[[dict[str, np.ndarray]], np.ndarray]  # encoded batch -> logits [B, T, L]


def quiet_transformers() -> None:
    """Hide per-file load/save bars and the "newly initialised head" report: our own
    progress bar is the one that matters, and a fresh tagging head is expected."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:
        pass


def _from_pretrained(cls: Any, name_or_path: str, **kw: Any) -> Any:
    """``from_pretrained`` offline first (local folders, warm caches), then the hub."""
    quiet_transformers()
    try:
        return cls.from_pretrained(name_or_path, local_files_only=True, **kw)
    except OSError:
        if Path(name_or_path).exists():
            raise
        try:
            return cls.from_pretrained(name_or_path, **kw)
        except OSError as exc:
            raise InputError(f"model.name_or_path: cannot load {name_or_path!r}: not a local folder and "
                             f"not reachable on the hub ({exc})") from exc


def load_tokenizer(name_or_path: str):
    from transformers import AutoTokenizer

    tok = _from_pretrained(AutoTokenizer, name_or_path)
    if not getattr(tok, "is_fast", False):
        raise InputError(f"model.name_or_path: {name_or_path!r} has no fast tokenizer; "
                         "span decoding needs offset mappings")
    return tok


def build_model(cfg: EncoderRunConfig, task: Task):
    """A fresh token-classification model on top of the configured encoder (+ LoRA if asked)."""
    from transformers import AutoConfig, AutoModelForTokenClassification

    names = label_names(task)
    hf_cfg = _from_pretrained(AutoConfig, cfg.model.name_or_path)
    hf_cfg.num_labels = len(names)
    hf_cfg.id2label = dict(enumerate(names))
    hf_cfg.label2id = {n: i for i, n in enumerate(names)}
    if cfg.model.dropout is not None and hasattr(hf_cfg, "hidden_dropout_prob"):
        hf_cfg.hidden_dropout_prob = cfg.model.dropout
    model = _from_pretrained(AutoModelForTokenClassification, cfg.model.name_or_path, config=hf_cfg,
                             ignore_mismatched_sizes=True)
    if cfg.lora.enabled:
        model = wrap_lora(model, cfg)
    return model


def wrap_lora(model: Any, cfg: EncoderRunConfig):
    from peft import LoraConfig, TaskType, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in cfg.lora.target_modules if m not in present]
    if missing:
        raise InputError(f"lora.target_modules: {missing} not found in {cfg.model.name_or_path}")
    lcfg = LoraConfig(task_type=TaskType.TOKEN_CLS, r=cfg.lora.rank, lora_alpha=cfg.lora.alpha,
                      lora_dropout=cfg.lora.dropout, target_modules=list(cfg.lora.target_modules))
    return get_peft_model(model, lcfg)


def make_tagger(model: Any, case_features: bool):
    """Wrap the HF model with the optional capitalisation embedding into one ``nn.Module``.

    The embedding starts at zero, so step 0 is exactly the pretrained encoder; it is added to
    the word embeddings (``inputs_embeds``), which every HF encoder accepts, so any
    architecture and LoRA keep working and ONNX export sees one plain graph.
    """
    import torch

    class Tagger(torch.nn.Module):
        def __init__(self, inner: Any, case: Any):
            super().__init__()
            self.model = inner
            self.case = case

        def forward(self, input_ids, attention_mask=None, token_type_ids=None, case_ids=None, labels=None):
            kw = {"attention_mask": attention_mask, "labels": labels}
            if token_type_ids is not None:
                kw["token_type_ids"] = token_type_ids
            if self.case is None:
                return self.model(input_ids=input_ids, **kw)
            embeds = self.model.get_input_embeddings()(input_ids) + self.case(case_ids)
            return self.model(inputs_embeds=embeds, **kw)

    case = None
    if case_features:
        case = torch.nn.Embedding(N_CASE_IDS, model.config.hidden_size)
        torch.nn.init.zeros_(case.weight)
    return Tagger(model, case)


def save_model(tagger: Any, tokenizer: Any, path: Path, task: Task, lora: bool) -> None:
    quiet_transformers()
    path.mkdir(parents=True, exist_ok=True)
    sub = path / ("adapter" if lora else "model")
    tagger.model.save_pretrained(sub)
    tokenizer.save_pretrained(sub)
    if tagger.case is not None:
        from safetensors.torch import save_file

        save_file({"weight": tagger.case.weight.detach().cpu().contiguous()}, str(path / "case.safetensors"))
    (path / "labels.json").write_text(json.dumps(label_names(task)), encoding="utf-8")


def load_model_from_checkpoint(ckpt: Path, cfg: EncoderRunConfig, task: Task, trainable: bool = False):
    """The tagger saved in ``ckpt`` and its tokenizer; LoRA adapters are merged unless ``trainable``."""
    labels_file = ckpt / "labels.json"
    if not labels_file.exists():
        raise NotFoundError(f"{ckpt}: not an encoder checkpoint (no labels.json)")
    if json.loads(labels_file.read_text(encoding="utf-8")) != label_names(task):
        raise InputError(f"{ckpt}: labels do not match task {task.name!r}")
    from transformers import AutoModelForTokenClassification

    quiet_transformers()
    if (ckpt / "adapter").exists():
        from peft import PeftModel

        base = build_model(cfg.model_copy(update={"lora": cfg.lora.model_copy(update={"enabled": False})}), task)
        model = PeftModel.from_pretrained(base, ckpt / "adapter", is_trainable=trainable)
        tok = load_tokenizer(str(ckpt / "adapter"))
        if not trainable:
            model = model.merge_and_unload()
    else:
        model = AutoModelForTokenClassification.from_pretrained(ckpt / "model", local_files_only=True)
        tok = load_tokenizer(str(ckpt / "model"))
    case_file = ckpt / "case.safetensors"
    tagger = make_tagger(model, case_file.exists())
    if case_file.exists():
        from safetensors.torch import load_file

        tagger.case.load_state_dict(load_file(str(case_file)))
    return tagger, tok


def torch_forward(model: Any, device: str = "cpu") -> Forward:
    import torch

    def forward(batch: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            inputs = {k: torch.from_numpy(v).to(device) for k, v in batch.items()}
            return model(**inputs).logits.float().cpu().numpy()  # model: a Tagger

    return forward


class EncoderExtractor(Extractor):
    """Tags spans with an encoder and decodes them into exact substrings of each text.

    ``forward`` is the only runtime-specific part (PyTorch or ONNX Runtime), so both share
    tokenisation, batching and decoding and can only differ by the model's numbers.
    """

    def __init__(self, forward: Forward, tokenizer: Any, task: Task, max_length: int,
                 batch_size: int = 64, input_names: Sequence[str] | None = None, info: dict[str, Any] | None = None,
                 case_features: bool = False):
        self.forward = forward
        self.tokenizer = tokenizer
        self.task = task
        self.max_length = max_length
        self.batch_size = batch_size
        self.input_names = list(input_names) if input_names else None
        self.info = info or {}
        self.case_features = case_features

    def _encode(self, texts: Sequence[str]) -> tuple[dict[str, np.ndarray], list[list[tuple[int, int]]]]:
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length, padding=True,
                             return_offsets_mapping=True, return_tensors="np")
        offsets = [[(int(s), int(e)) for s, e in row] for row in enc.pop("offset_mapping")]
        batch = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}
        if self.case_features:
            batch["case_ids"] = np.asarray([case_ids(t, o) for t, o in zip(texts, offsets)], dtype=np.int64)
        if self.input_names is not None:
            batch = {k: v for k, v in batch.items() if k in self.input_names}
        return batch, offsets

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Batched and sorted by length, so padding (wasted compute) stays small."""
        texts = list(texts)
        out: list[Prediction] = [None] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for b in range(0, len(order), self.batch_size):
            idx = order[b:b + self.batch_size]
            chunk = [texts[i] for i in idx]
            batch, offsets = self._encode(chunk)
            probs = softmax(self.forward(batch))
            for j, i in enumerate(idx):
                out[i] = decode(texts[i], offsets[j], probs[j], self.task)
        return out

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "backend": "encoder", "max_length": self.max_length, **self.info}


def count_parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())
