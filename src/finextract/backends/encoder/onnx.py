"""ONNX Runtime export (fp32 + dynamic int8) and an ONNX-backed extractor.

Why: int8 dynamic quantisation of the linear layers makes CPU inference smaller and
usually faster with no extra dependency beyond onnxruntime; tokenisation and decoding
are shared with the PyTorch path (:class:`EncoderExtractor`), so F1 can differ only by
the model's numbers, which the benchmark reports.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from finextract.errors import InputError, NotFoundError
from finextract.backends.encoder.config import EncoderRunConfig
from finextract.backends.encoder.model import EncoderExtractor, decode_options, load_model_from_checkpoint, load_tokenizer
from finextract.backends.encoder.features import featurize
from finextract.tasks import Task

log = logging.getLogger("finextract")

FP32_NAME = "model.onnx"
INT8_NAME = "model.int8.onnx"


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise InputError("ONNX export needs the optional extra: pip install 'finextract[onnx]'") from exc


def export_checkpoint(ckpt: Path, cfg: EncoderRunConfig, task: Task, quantize: bool = True,
                      opset: int = 17) -> dict[str, Path]:
    """Write ``model.onnx`` (and ``model.int8.onnx`` when ``quantize``) next to the checkpoint's weights."""
    _require_onnx()
    import torch

    model, tok = load_model_from_checkpoint(ckpt, cfg, task)
    model.eval()
    sample = ["SQ *Example Store 123 SPRINGFIELD IL", "x"]
    batch, _ = featurize(tok, sample, cfg.model.max_length, case=model.case is not None, lex=model.lex is not None)
    enc = {k: torch.from_numpy(v) for k, v in batch.items()}
    names = [k for k in ("input_ids", "attention_mask", "token_type_ids", "case_ids", "lex_ids") if k in enc]

    class Wrapped(torch.nn.Module):
        """Positional inputs -> logits only, so the graph has plain tensor inputs/outputs."""

        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any) -> Any:
            return self.inner(**dict(zip(names, args))).logits  # inner: a Tagger

    fp32 = ckpt / FP32_NAME
    axes = {n: {0: "batch", 1: "seq"} for n in names}  # lex_ids: [batch, seq, channels]
    axes["logits"] = {0: "batch", 1: "seq"}
    import warnings

    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python branches
        torch.onnx.export(Wrapped(model), tuple(enc[n] for n in names), str(fp32), input_names=names,
                          output_names=["logits"], dynamic_axes=axes, opset_version=opset, dynamo=False)
    out = {"fp32": fp32}
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        int8 = ckpt / INT8_NAME
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # onnxruntime logs generic "run pre-processing" advice on the root logger
        try:
            quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
        out["int8"] = int8
    return out


def onnx_extractor(ckpt: Path, cfg: EncoderRunConfig, task: Task, batch_size: int = 64,
                   num_threads: int | None = None, quantized: bool = True) -> EncoderExtractor:
    _require_onnx()
    import onnxruntime as ort

    path = ckpt / (INT8_NAME if quantized else FP32_NAME)
    if not path.exists():
        raise NotFoundError(f"{path}: not exported yet; run `finextract export-onnx {ckpt.parent.parent}`")
    opts = ort.SessionOptions()
    if num_threads:
        opts.intra_op_num_threads = num_threads
        opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    input_names = [i.name for i in sess.get_inputs()]
    tok_dir = ckpt / ("adapter" if (ckpt / "adapter").exists() else "model")
    tok = load_tokenizer(str(tok_dir))

    def forward(batch):
        return sess.run(["logits"], {k: batch[k] for k in input_names})[0]

    return EncoderExtractor(forward, tok, task, cfg.model.max_length, batch_size, input_names=input_names,
                            case_features="case_ids" in input_names, lexical_features="lex_ids" in input_names,
                            decode_options=decode_options(cfg, ckpt),
                            info={"checkpoint": str(ckpt), "runtime": "onnx-int8" if quantized else "onnx-fp32",
                                  "onnx_file": str(path), "onnx_mb": round(path.stat().st_size / 2**20, 2)})
