"""Building, saving and loading the token-classification model, and its :class:`Extractor`.

A checkpoint folder holds everything inference needs, so it can be copied alone::

    step-N/model/        save_pretrained weights + tokenizer (full fine-tuning)
    step-N/adapter/      peft adapter + tagging head (LoRA); the base comes from model.name_or_path
    step-N/case.safetensors  capitalisation embedding (when model.case_features)
    step-N/lex.safetensors   lexical-feature embedding (when model.lexical_features)
    step-N/layout.safetensors  column/repeat embedding (when model.layout_features)
    step-N/pointer.safetensors  start/end pointer head (when model.pointer_head)
    step-N/calibration.json  fitted confidence temperature (best checkpoint, after training)
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
from finextract.backends.encoder.features import N_CASE_IDS, N_LAYOUT_IDS, N_LEX_IDS, featurize
from finextract.backends.encoder.tagging import IGNORE, DecodeOptions, decode_with_confidence, label_names
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
    if cfg.model.num_layers:
        from finextract.backends.encoder.distill import keep_layers

        keep_layers(model, cfg.model.num_layers)
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


def make_tagger(model: Any, case_features: bool, lexical_features: bool = False, pointer_keys: int = 0,
                layout_features: bool = False):
    """Wrap the HF model with the optional extra embeddings and pointer head into one ``nn.Module``.

    The capitalisation and lexical embeddings (:mod:`~finextract.backends.encoder.features`)
    start at zero, so step 0 is exactly the pretrained encoder; they are added to the word
    embeddings (``inputs_embeds``), which every HF encoder accepts, so any architecture and
    LoRA keep working and ONNX export sees one plain graph. ``pointer_keys > 0`` adds a
    start/end head per key (reading-comprehension style, null option on position 0); its
    logits are appended to the BIO logits, so every runtime still has one output.
    """
    import torch
    from transformers.modeling_outputs import TokenClassifierOutput

    class Tagger(torch.nn.Module):
        def __init__(self, inner: Any, case: Any, lex: Any, pointer: Any, layout: Any = None):
            super().__init__()
            self.model = inner
            self.case = case
            self.lex = lex
            self.pointer = pointer
            self.layout = layout

        def forward(self, input_ids, attention_mask=None, token_type_ids=None, case_ids=None, lex_ids=None,
                    labels=None, layout_ids=None):
            kw: dict[str, Any] = {"attention_mask": attention_mask}
            if token_type_ids is not None:
                kw["token_type_ids"] = token_type_ids
            if self.pointer is not None:
                kw["output_hidden_states"] = True
            if self.case is None and self.lex is None and self.layout is None:
                kw["input_ids"] = input_ids
            else:
                embeds = self.model.get_input_embeddings()(input_ids)
                if self.case is not None:
                    embeds = embeds + self.case(case_ids)
                if self.lex is not None:
                    embeds = embeds + self.lex(lex_ids).sum(-2)
                if self.layout is not None:
                    embeds = embeds + self.layout(layout_ids).sum(-2)
                kw["inputs_embeds"] = embeds
            out = self.model(**kw)
            logits = out.logits
            loss = None
            if labels is not None:
                loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(),
                                                         ignore_index=IGNORE)
            if self.pointer is not None:
                ptr = self.pointer(out.hidden_states[-1]).to(logits.dtype)  # [B, T, 2K]
                if labels is not None:
                    loss = loss + pointer_loss(ptr, labels)
                logits = torch.cat([logits, ptr], -1)
            return TokenClassifierOutput(loss=loss, logits=logits)

    case = lex = pointer = layout = None
    if case_features:
        case = torch.nn.Embedding(N_CASE_IDS, model.config.hidden_size)
        torch.nn.init.zeros_(case.weight)
    if lexical_features:
        lex = torch.nn.Embedding(N_LEX_IDS, model.config.hidden_size)
        torch.nn.init.zeros_(lex.weight)
    if layout_features:
        layout = torch.nn.Embedding(N_LAYOUT_IDS, model.config.hidden_size)
        torch.nn.init.zeros_(layout.weight)
    if pointer_keys:
        pointer = torch.nn.Sequential(torch.nn.Dropout(0.1), torch.nn.Linear(model.config.hidden_size, 2 * pointer_keys))
    return Tagger(model, case, lex, pointer, layout)


def pointer_targets(labels: Any, n_keys: int) -> tuple[Any, Any]:
    """Gold start/end token per key from BIO labels (``[B, K]`` each; 0 = the null option).

    Single-valued keys label one occurrence, so the first ``B-k`` and the end of its run
    are the span; a key without ``B-k`` points both ends at position 0 ([CLS]).
    """
    import torch

    B, T = labels.shape
    idx = torch.arange(T, device=labels.device).expand(B, T)
    starts, ends = [], []
    for k in range(n_keys):
        is_b = labels == 1 + 2 * k
        has = is_b.any(1)
        first = torch.where(is_b, idx, T).min(1).values
        stop = (idx > first[:, None]) & (labels != 2 + 2 * k)
        last = torch.where(stop, idx, T).min(1).values - 1
        starts.append(torch.where(has, first, 0))
        ends.append(torch.where(has, last, 0))
    return torch.stack(starts, 1), torch.stack(ends, 1)


def pointer_loss(ptr: Any, labels: Any) -> Any:
    """Cross-entropy of the start and end pointers of every key over the real tokens + [CLS]."""
    import torch

    B, T, two_k = ptr.shape
    k = two_k // 2
    start_t, end_t = pointer_targets(labels, k)
    valid = labels != IGNORE
    valid[:, 0] = True  # the null option
    masked = ptr.float().masked_fill(~valid[:, :, None], -1e4)
    ce = torch.nn.functional.cross_entropy
    loss_s = ce(masked[:, :, :k].transpose(1, 2).reshape(B * k, T), start_t.reshape(-1))
    loss_e = ce(masked[:, :, k:].transpose(1, 2).reshape(B * k, T), end_t.reshape(-1))
    return (loss_s + loss_e) / 2


def save_model(tagger: Any, tokenizer: Any, path: Path, task: Task, lora: bool) -> None:
    quiet_transformers()
    path.mkdir(parents=True, exist_ok=True)
    sub = path / ("adapter" if lora else "model")
    tagger.model.save_pretrained(sub)
    tokenizer.save_pretrained(sub)
    from safetensors.torch import save_file

    for name in _EXTRA_PARTS:
        part = getattr(tagger, name)
        if part is not None:
            state = {k: v.detach().cpu().contiguous() for k, v in part.state_dict().items()}
            save_file(state, str(path / f"{name}.safetensors"))
    (path / "labels.json").write_text(json.dumps(label_names(task)), encoding="utf-8")


_EXTRA_PARTS = ("case", "lex", "pointer", "layout")  # saved beside the HF weights as NAME.safetensors


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
    files = {name: ckpt / f"{name}.safetensors" for name in _EXTRA_PARTS}
    tagger = make_tagger(model, files["case"].exists(), files["lex"].exists(),
                         len(task.key_names) if files["pointer"].exists() else 0, files["layout"].exists())
    from safetensors.torch import load_file

    for name, f in files.items():
        if f.exists():
            getattr(tagger, name).load_state_dict(load_file(str(f)))
    return tagger, tok


def torch_forward(model: Any, device: str = "cpu") -> Forward:
    import torch

    def forward(batch: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            inputs = {k: torch.from_numpy(v).to(device) for k, v in batch.items()}
            return model(**inputs).logits.float().cpu().numpy()  # model: a Tagger

    return forward


DECODE_CHUNK = 8  # texts decoded together (batch-64 calls, student int8: 8 -> 0.19 ms/text, 16 -> 0.25, 64 -> 0.77)


class EncoderExtractor(Extractor):
    """Tags spans with an encoder and decodes them into exact substrings of each text.

    ``forward`` is the only runtime-specific part (PyTorch or ONNX Runtime), so both share
    featurisation (:func:`~finextract.backends.encoder.features.featurize`), batching and
    decoding and can only differ by the model's numbers.

    Confidence is a side channel: :meth:`predict` keeps the ``list[dict | None]`` contract
    and :meth:`predict_with_confidence` returns ``(values, confidence per key)`` pairs.
    """

    def __init__(self, forward: Forward, tokenizer: Any, task: Task, max_length: int,
                 batch_size: int = 64, input_names: Sequence[str] | None = None, info: dict[str, Any] | None = None,
                 case_features: bool = False, lexical_features: bool = False,
                 decode_options: DecodeOptions | None = None, layout_features: bool = False):
        self.forward = forward
        self.tokenizer = tokenizer
        self.task = task
        self.max_length = max_length
        self.batch_size = batch_size
        self.input_names = list(input_names) if input_names else None
        self.info = info or {}
        self.case_features = case_features
        self.lexical_features = lexical_features
        self.layout_features = layout_features
        self.decode_options = decode_options or DecodeOptions()

    def _encode(self, texts: Sequence[str]) -> tuple[dict[str, np.ndarray], list[list[tuple[int, int]]]]:
        return featurize(self.tokenizer, texts, self.max_length, case=self.case_features,
                         lex=self.lexical_features, input_names=self.input_names, layout=self.layout_features)

    def logits(self, texts: Sequence[str]) -> list[tuple[list[tuple[int, int]], np.ndarray]]:
        """``(offsets, logits [T, n_outputs])`` per text: what decoders and calibration start from."""
        texts = list(texts)
        out: list[Any] = [None] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # little padding per batch
        for b in range(0, len(order), self.batch_size):
            idx = order[b:b + self.batch_size]
            batch, offsets = self._encode([texts[i] for i in idx])
            logits = self.forward(batch)
            for j, i in enumerate(idx):
                out[i] = (offsets[j], logits[j])
        return out

    def predict_with_confidence(self, texts: Sequence[str], options: DecodeOptions | None = None
                                ) -> list[tuple[Prediction, dict[str, Any]]]:
        """One ``(values, confidence)`` pair per text; confidence maps each key to the
        calibrated probability that its value (or its emptiness) is right."""
        from finextract.backends.encoder.span_batch import decode_many, real_tokens

        opts = options or self.decode_options
        texts = list(texts)
        pairs = self.logits(texts)
        out: list[Any] = [None] * len(texts)
        reals = real_tokens([off for off, _ in pairs])  # found once here, reused by decode_many
        order = sorted(range(len(texts)), key=lambda i: len(reals[i]))  # similar lengths decode together
        step = DECODE_CHUNK  # small chunks of similar length: the span tables grow with the longest text squared
        for b in range(0, len(order), step):
            idx = order[b:b + step]
            decoded = decode_many([texts[i] for i in idx], [pairs[i][0] for i in idx], [pairs[i][1] for i in idx],
                                  self.task, opts, reals=[reals[i] for i in idx])
            for i, d in zip(idx, decoded):
                out[i] = d
        return out

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return [values for values, _ in self.predict_with_confidence(texts)]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "backend": "encoder", "max_length": self.max_length,
                "decoder": self.decode_options.method, "temperature": self.decode_options.temperature, **self.info}


def decode_options(cfg: EncoderRunConfig, ckpt: Path | None = None) -> DecodeOptions:
    """The run's decoder settings. What training fitted afterwards lives in ``ckpt/calibration.json``:
    the confidence temperature and, for ``model.decoder: auto``, the decoder chosen on validation."""
    fitted: dict[str, Any] = {}
    if ckpt is not None and (ckpt / "calibration.json").exists():
        fitted = json.loads((ckpt / "calibration.json").read_text(encoding="utf-8"))
    method = cfg.model.decoder
    if method == "auto":
        method = fitted.get("decoder", "bio")
    return DecodeOptions(method=method, inword_penalty=cfg.model.inword_penalty, glued_fields=cfg.model.glued_fields,
                         temperature=_temperature(fitted.get("temperature", 1.0)))


def _temperature(value: Any) -> float | dict[str, float]:
    return {k: float(v) for k, v in value.items()} if isinstance(value, dict) else float(value)


def count_parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())
