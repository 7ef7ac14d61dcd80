"""int8 variants of an exported encoder graph, with the accuracy-sensitive parts kept in fp32.

ONNX Runtime's quantizer does the work (``quantize_static`` with QDQ nodes, per-channel
weights, activation ranges calibrated on generated descriptors; ``quantize_dynamic`` for
comparison). What it cannot know is *which* nodes of this model must stay in fp32: that is the
only logic written here. Nodes are chosen from the module paths the PyTorch exporter keeps in
node names (``/…/encoder/layer.3/…``, ``/…/embeddings/…``, ``/…/classifier/…``), so the rule
works for any BERT-style depth, including a distilled student.

Why keep some parts in fp32: the word / case embeddings feed every layer (their rounding
error is amplified), the classification head decides the labels directly, and the first and
last transformer layers are the ones whose activations have the widest ranges; quantizing
only the middle layers keeps most of the int8 speed-up for a fraction of the error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from finextract.errors import InputError

log = logging.getLogger("finextract")

LAYER_RE = re.compile(r"/layer\.(\d+)/")
KEEP_CHOICES = ("embeddings", "head", "first", "last", "attention_products", "ffn_out")
FFN_OUT_RE = re.compile(r"/layer\.\d+/output/dense/")   # BERT's FFN down-projection (not attention/output)
DEFAULT_KEEP = ("embeddings", "head", "first", "last", "attention_products")


def _load(path: Path):
    import onnx

    return onnx.load(str(path))


def node_parts(model: Any) -> dict[str, set[str]]:
    """Node name -> the parts it belongs to (``embeddings``, ``head`` incl. the pointer head, ``layer:N``,
    ``attention_products``, ``ffn_out``)."""
    inits = {i.name for i in model.graph.initializer}
    consts = {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    out: dict[str, set[str]] = {}
    for node in model.graph.node:
        parts: set[str] = set()
        m = LAYER_RE.search(node.name)
        if m:
            parts.add(f"layer:{m.group(1)}")
        if any(f"/{m}/" in node.name for m in ("embeddings", "case", "lex", "layout")):
            parts.add("embeddings")  # word/position embeddings, capitalisation and lexical feature embeddings
        if any(f"/{m}" in node.name for m in ("classifier/", "pointer/", "head")):
            parts.add("head")
        if node.op_type == "MatMul" and not any(i in inits or i in consts for i in node.input):
            parts.add("attention_products")  # Q.K^T and P.V: both sides are activations
        if FFN_OUT_RE.search(node.name):
            parts.add("ffn_out")  # its input is the GELU output: the widest activation range in a layer
        out[node.name] = parts
    return out


def nodes_to_keep_fp32(model_path: Path, keep: Iterable[str] = DEFAULT_KEEP) -> list[str]:
    """Names of the nodes ``quantize_*`` must leave in fp32 (``nodes_to_exclude``)."""
    keep = set(keep)
    unknown = keep - set(KEEP_CHOICES)
    if unknown:
        raise InputError(f"keep_fp32: unknown part(s) {sorted(unknown)}; choose from {KEEP_CHOICES}")
    model = _load(model_path)
    parts = node_parts(model)
    layers = sorted({int(p.split(":")[1]) for ps in parts.values() for p in ps if p.startswith("layer:")})
    wanted = {p for p in keep if p in ("embeddings", "head", "attention_products", "ffn_out")}
    if layers and "first" in keep:
        wanted.add(f"layer:{layers[0]}")
    if layers and "last" in keep:
        wanted.add(f"layer:{layers[-1]}")
    return [name for name, ps in parts.items() if ps & wanted]


class TextCalibrationReader:
    """Feeds featurized batches of calibration texts to ``quantize_static`` (its data-reader protocol)."""

    def __init__(self, encode: Any, texts: Sequence[str], input_names: Sequence[str], batch_size: int = 32,
                 pad_to: int | None = None):
        self.encode = encode
        self.texts = list(texts)
        self.input_names = list(input_names)
        self.batch_size = batch_size
        self.pad_to = pad_to  # histogram calibrators (percentile, entropy) need one shape for every batch
        self._it: Iterator[dict[str, np.ndarray]] | None = None

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(0, len(self.texts), self.batch_size):
            batch, _ = self.encode(self.texts[i:i + self.batch_size])
            out = {k: batch[k] for k in self.input_names}
            if self.pad_to:
                out = {k: np.pad(v, [(0, 0), (0, self.pad_to - v.shape[1])] + [(0, 0)] * (v.ndim - 2))
                       if v.ndim >= 2 else v for k, v in out.items()}
            yield out

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = self._batches()
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None


def _quiet_root_logger():
    """onnxruntime's quantizer logs generic advice on the root logger; silence it around calls."""
    class _Ctx:
        def __enter__(self):
            self.root = logging.getLogger()
            self.level = self.root.level
            self.root.setLevel(logging.ERROR)

        def __exit__(self, *exc):
            self.root.setLevel(self.level)

    return _Ctx()


def quantize_int8(src: Path, dst: Path, method: str = "static", calib: TextCalibrationReader | None = None,
                  keep_fp32: Iterable[str] = DEFAULT_KEEP, per_channel: bool = True,
                  calibrate_method: str = "minmax") -> dict[str, Any]:
    """Write an int8 version of ``src`` to ``dst``; returns the settings (recorded in meta.json).

    ``method="static"``: QDQ format, int8 weights per output channel, int8 activations with
    ranges from ``calib`` (ORT fuses each DQ->MatMul->Q into an int8 kernel at load time).
    ``method="dynamic"``: activations quantized per batch at run time (no calibration).
    Only ``MatMul`` nodes are quantized (they hold ~all the FLOPs); ``keep_fp32`` parts stay fp32.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    keep_fp32 = list(keep_fp32)
    excluded = nodes_to_keep_fp32(src, keep_fp32)
    total = sum(1 for n in _load(src).graph.node if n.op_type == "MatMul")
    excluded_mm = sum(1 for n in _load(src).graph.node if n.op_type == "MatMul" and n.name in set(excluded))
    settings: dict[str, Any] = {"method": method, "per_channel": per_channel, "weights": "int8",
                                "keep_fp32": keep_fp32, "matmuls_quantized": total - excluded_mm, "matmuls_total": total}
    with _quiet_root_logger():
        if method == "static":
            if calib is None:
                raise InputError("static int8 needs calibration texts")
            cm = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[calibrate_method]
            quantize_static(str(src), str(dst), calib, quant_format=QuantFormat.QDQ, op_types_to_quantize=["MatMul"],
                            per_channel=per_channel, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            nodes_to_exclude=excluded, calibrate_method=cm,
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
            settings.update({"activations": "int8 (static, calibrated)", "calibrate_method": calibrate_method,
                             "calibration_texts": len(calib.texts), "format": "QDQ"})
        elif method == "dynamic":
            quantize_dynamic(str(src), str(dst), op_types_to_quantize=["MatMul"], per_channel=per_channel,
                             weight_type=QuantType.QInt8, nodes_to_exclude=excluded)
            settings.update({"activations": "uint8 (dynamic, per batch)", "format": "QOperator"})
        else:
            raise InputError(f"quantization method must be 'static' or 'dynamic', got {method!r}")
    return settings
