"""ONNX Runtime CPU path: export, saved graph optimisation, and the extractor that runs it.

Why ONNX Runtime: on a CPU it runs the same graph 1.5-4x faster than eager PyTorch (fused
attention / LayerNorm / GELU kernels, int8 matrix kernels using VNNI where the CPU has them) and
needs no torch at serving time. Tokenisation and decoding are shared with the PyTorch path
(:class:`EncoderExtractor`), so predictions can differ only by the model's numbers; the
export measures that difference (``finextract export-onnx``, :mod:`.onnx_select`) and
records it in ``onnx/meta.json``, and a quantized export without a recorded F1 delta is
refused (:func:`onnx_extractor`).

Layout, inside a checkpoint folder::

    step-N/onnx/model.onnx        fp32 graph as exported from PyTorch
    step-N/onnx/model.opt.onnx    same graph after ORT's graph optimisations, saved (what fp32 runs)
    step-N/onnx/model.int8.onnx   int8 variant (see :mod:`.quantize`)
    step-N/onnx/meta.json         inputs, outputs, variants with their measured F1 deltas and speed, "chosen"

The exported graph takes exactly the inputs the featurizer (:meth:`EncoderExtractor._encode`)
produces, by name, with dynamic batch and sequence axes, and returns every tensor head the
model returns (``logits`` today), so new per-token features or heads need no change here.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from finextract.backends.encoder.config import EncoderRunConfig
from finextract.backends.encoder.model import (EncoderExtractor, decode_options, load_model_from_checkpoint,
                                               load_tokenizer)
from finextract.errors import InputError, NotFoundError
from finextract.tasks import Task

log = logging.getLogger("finextract")

ONNX_DIR = "onnx"
META_NAME = "meta.json"
EXPORT_NAME = "model.onnx"
OPTIMIZED_NAME = "model.opt.onnx"
INT8_NAME = "model.int8.onnx"
META_FORMAT = 1
EXPORT_SAMPLE = ["SQ *Example Store 123 SPRINGFIELD IL 94107 (555) 010-2030 www.example.com", "x"]


def require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise InputError("the ONNX path needs the optional extra: pip install 'finextract[onnx]'") from exc


def onnx_dir(ckpt: Path) -> Path:
    return Path(ckpt) / ONNX_DIR


def read_meta(ckpt: Path) -> dict[str, Any] | None:
    path = onnx_dir(ckpt) / META_NAME
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); re-run `finextract export-onnx`") from exc


def write_meta(ckpt: Path, meta: dict[str, Any]) -> Path:
    path = onnx_dir(ckpt) / META_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
    return path


def featurizer(tok: Any, task: Task, cfg: EncoderRunConfig, inputs: Any) -> EncoderExtractor:
    """An extractor without a forward: its ``_encode`` (:func:`.features.featurize`) is the one
    featurizer both runtimes use. ``inputs``: the model's extra input names (or the tagger itself)."""
    names = set(inputs) if not hasattr(inputs, "forward") else {
        n for n, part in (("case_ids", "case"), ("lex_ids", "lex"), ("layout_ids", "layout"))
        if getattr(inputs, part, None) is not None}
    return EncoderExtractor(None, tok, task, cfg.model.max_length, case_features="case_ids" in names,
                            lexical_features="lex_ids" in names, layout_features="layout_ids" in names)


def _dynamic_axes(shape: tuple[int, ...], batch: int, seq: int) -> dict[int, str]:
    """Axis 0 is the batch, axis 1 (when it has the sample's sequence length) the sequence;
    later axes (``lex_ids`` channels, label logits) are fixed."""
    axes = {0: "batch"} if shape and shape[0] == batch else {}
    if len(shape) > 1 and shape[1] == seq:
        axes[1] = "seq"
    return axes


def export_fp32(ckpt: Path, cfg: EncoderRunConfig, task: Task, opset: int = 17) -> dict[str, Any]:
    """Trace the checkpoint's tagger to ``onnx/model.onnx``; returns ``{"inputs", "outputs", "path"}``.

    Inputs are whatever the featurizer produces (names and order from its dict), outputs every
    tensor the model's forward returns except ``loss``.
    """
    require_onnx()
    import torch

    model, tok = load_model_from_checkpoint(ckpt, cfg, task)
    model.eval()
    feats = featurizer(tok, task, cfg, model)
    batch, _ = feats._encode(EXPORT_SAMPLE)
    names = list(batch)
    tensors = {k: torch.from_numpy(v) for k, v in batch.items()}
    with torch.inference_mode():
        sample_out = model(**tensors)
    out_names = [k for k, v in sample_out.items() if k != "loss" and torch.is_tensor(v)]
    b, t = batch[names[0]].shape[:2]

    class Wrapped(torch.nn.Module):
        """Positional tensor inputs -> tuple of tensor heads, so the graph has plain inputs/outputs."""

        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any) -> tuple[Any, ...]:
            out = self.inner(**dict(zip(names, args)))
            return tuple(out[k] for k in out_names)

    folder = onnx_dir(ckpt)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / EXPORT_NAME
    axes = {n: _dynamic_axes(tuple(batch[n].shape), b, t) for n in names}
    axes.update({n: _dynamic_axes(tuple(sample_out[n].shape), b, t) for n in out_names})
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python branches
        torch.onnx.export(Wrapped(model), tuple(tensors[n] for n in names), str(path), input_names=names,
                          output_names=out_names, dynamic_axes=axes, opset_version=opset, dynamo=False)
    return {"path": path, "inputs": names, "outputs": out_names}


def session_options(num_threads: int | None = None, level: str = "all", save_to: Path | None = None):
    """ORT settings for small-batch CPU inference on a few cores.

    ``intra_op`` threads split each matrix product; one inter-op thread and sequential
    execution, because a BERT graph is a chain (parallel branches would only fight for the
    same cores). ``save_to`` writes the optimised graph so a later load skips the work.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                   "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                   "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[level]
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.inter_op_num_threads = 1
    if num_threads:
        so.intra_op_num_threads = num_threads
    so.log_severity_level = 3  # warnings about unused initialisers etc. are noise for users
    if save_to is not None:
        so.optimized_model_filepath = str(save_to)
    return so


def make_session(path: Path, num_threads: int | None = None):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), session_options(num_threads), providers=["CPUExecutionProvider"])


def save_optimized(src: Path, dst: Path) -> Path:
    """Run ORT's graph optimiser once and save the result.

    Saved at the *extended* level (operator fusions: attention, LayerNorm, GELU, bias adds),
    which is hardware-independent; the *all* level adds layout changes tied to this CPU, so it
    is applied at load time instead (``make_session``), where it costs milliseconds.
    """
    import onnxruntime as ort

    ort.InferenceSession(str(src), session_options(1, level="extended", save_to=dst),
                         providers=["CPUExecutionProvider"])
    return dst


def cpu_flags() -> dict[str, Any]:
    """What decides the int8 kernels: VNNI (avx512_vnni / avx_vnni), AMX, bf16 support."""
    flags: set[str] = set()
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            elif line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    keys = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16", "amx_tile")
    return {"model": model, "cpus": os.cpu_count(), **{k: k in flags for k in keys}}


def resolve_variant(meta: dict[str, Any] | None, variant: str | None, ckpt: Path) -> str:
    """``variant`` if given, else the one export-onnx chose; errors name the file to fix."""
    folder = onnx_dir(ckpt)
    if meta is None:
        if (Path(ckpt) / "model.int8.onnx").exists() or (Path(ckpt) / "model.onnx").exists():
            raise NotFoundError(f"{ckpt}: ONNX files from an older export (no {ONNX_DIR}/{META_NAME}); "
                                    f"re-run `finextract export-onnx {Path(ckpt).parent.parent}`")
        raise NotFoundError(f"{folder / META_NAME}: not exported yet; run "
                                f"`finextract export-onnx {Path(ckpt).parent.parent}`")
    name = variant or meta.get("chosen")
    if name not in meta.get("variants", {}):
        raise InputError(f"{folder / META_NAME}: no ONNX variant {name!r} (have {sorted(meta.get('variants', {}))})")
    return name


def check_validated(meta: dict[str, Any], name: str, ckpt: Path) -> None:
    """Refuse a reduced-precision variant whose F1 change was never measured.

    A quantized model can lose accuracy silently (dynamic int8 of this encoder once cost 3.6
    micro-F1 points), so it may only be served once export-onnx has recorded how much.
    """
    v = meta["variants"][name]
    if v.get("precision", "fp32") == "fp32":
        return
    deltas = [s.get("delta_points") for s in (v.get("f1") or {}).values()]
    if not deltas or any(d is None for d in deltas):
        raise InputError(f"{onnx_dir(ckpt) / META_NAME}: variant {name!r} ({v.get('precision')}) has no recorded "
                         f"F1 delta against the fp32 model; re-run `finextract export-onnx "
                         f"{Path(ckpt).parent.parent}` (it measures it) or use --runtime torch")


def length_buckets(lengths: np.ndarray, call_cost: int = 48) -> list[np.ndarray]:
    """Split a batch's rows into groups of similar length, each to be run at its own longest.

    The featurizer pads every row to the batch's longest text; one long memo would make the
    whole batch pay for its length. Rows are sorted by length and cut where it pays: a dynamic
    programme minimising the sum over groups of ``rows x longest + call_cost`` (the fixed cost
    of one more model call, in token units; ~48 tokens on a 2-core CPU, measured).
    Returns row indices per group.
    """
    order = np.argsort(lengths, kind="stable")
    s = lengths[order]
    n = len(s)
    best = np.zeros(n + 1)
    cut = np.zeros(n + 1, dtype=int)
    steps = np.arange(n + 1)
    for j in range(1, n + 1):  # best[j]: cost of rows order[:j]; last group order[i:j] runs at length s[j-1]
        costs = best[:j] + (j - steps[:j]) * s[j - 1] + call_cost  # one array op, not j scalar ones
        i = int(np.argmin(costs))
        best[j], cut[j] = costs[i], i
    groups, j = [], n
    while j > 0:
        groups.append(order[cut[j]:j])
        j = cut[j]
    return groups[::-1]


def bucketed(run: Any, seq_axes: list[set[int]], bucket: bool = True, call_cost: int = 48) -> Any:
    """``run(inputs) -> list of outputs`` made to skip padding: each length group is trimmed to its
    longest row and the outputs are re-assembled at the batch's full shape (padding positions
    get zeros, which decoding never reads: they have no characters). Exact for right-padded
    inputs, because padded positions are masked out of attention anyway. ``seq_axes[o]``: the
    axes of output ``o`` that are sequence positions."""

    def forward(batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        mask = batch.get("attention_mask")
        if not bucket or mask is None or len(mask) < 2:
            return run(batch)
        lengths = mask.sum(1).astype(int)
        t = mask.shape[1]
        groups = length_buckets(lengths, call_cost)
        if len(groups) == 1 and lengths.max() == t:
            return run(batch)
        full: list[np.ndarray | None] = [None] * len(seq_axes)
        for rows in groups:
            width = int(lengths[rows].max())
            part = {k: (v[rows, :width] if v.ndim >= 2 and v.shape[1] == t else v[rows]) for k, v in batch.items()}
            outs = run(part)
            for o, out in enumerate(outs):
                if full[o] is None:
                    shape = [len(mask)] + [t if a in seq_axes[o] else d for a, d in enumerate(out.shape[1:], 1)]
                    full[o] = np.zeros(shape, dtype=out.dtype)
                index = (rows,) + tuple(slice(0, d) for d in out.shape[1:])
                full[o][index] = out
        return full

    return forward


def onnx_extractor(ckpt: Path, cfg: EncoderRunConfig, task: Task, batch_size: int = 64,
                   num_threads: int | None = None, variant: str | None = None,
                   allow_unvalidated: bool = False, bucket: bool = True) -> EncoderExtractor:
    """An extractor on ``onnx/<variant>`` (default: the variant export-onnx chose)."""
    require_onnx()
    meta = read_meta(ckpt)
    name = resolve_variant(meta, variant, ckpt)
    if not allow_unvalidated:
        check_validated(meta, name, ckpt)
    path = onnx_dir(ckpt) / meta["variants"][name]["file"]
    if not path.exists():
        raise NotFoundError(f"{path}: listed in {onnx_dir(ckpt) / META_NAME} but missing; re-run export-onnx")
    sess = make_session(path, num_threads)
    input_names = [i.name for i in sess.get_inputs()]
    output_names = [o.name for o in sess.get_outputs()]
    tok_dir = Path(ckpt) / ("adapter" if (Path(ckpt) / "adapter").exists() else "model")
    tok = load_tokenizer(str(tok_dir))
    logits_at = output_names.index("logits")
    right_padded = getattr(tok, "padding_side", "right") == "right"

    def run(batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        return sess.run(output_names, {k: batch[k] for k in input_names})

    seq_axes = [{a for a, d in enumerate(o.shape) if d == "seq"} for o in sess.get_outputs()]
    run_bucketed = bucketed(run, seq_axes, bucket=bucket and right_padded)

    def forward(batch: dict[str, np.ndarray]) -> np.ndarray:
        return run_bucketed(batch)[logits_at]

    v = meta["variants"][name]
    return EncoderExtractor(forward, tok, task, cfg.model.max_length, batch_size, input_names=input_names,
                            case_features="case_ids" in input_names, lexical_features="lex_ids" in input_names,
                            layout_features="layout_ids" in input_names,
                            decode_options=decode_options(cfg, ckpt),
                            info={"checkpoint": str(ckpt), "runtime": f"onnx-{name}", "onnx_variant": name,
                                  "precision": v.get("precision"), "onnx_file": str(path),
                                  "onnx_mb": round(path.stat().st_size / 2**20, 2),
                                  # dynamic int8 takes activation scales from the whole batch, so a text's
                                  # output can depend on the texts batched with it (docs/encoder.md)
                                  "batch_dependent": (v.get("quantization") or {}).get("method") == "dynamic",
                                  "f1_delta_points": {k: d.get("delta_points") for k, d in (v.get("f1") or {}).items()},
                                  # per call size (64, 32, 1 texts) where the output depends on batch mates
                                  "f1_delta_points_by_call_size": {
                                      size: {k: d.get("delta_points") for k, d in by_set.items()}
                                      for size, by_set in (v.get("f1_calls") or {}).items()}})


def export_checkpoint(ckpt: Path, cfg: EncoderRunConfig, task: Task, quantize: bool = True,
                      opset: int = 17) -> dict[str, Path]:
    """Export without measuring (library use, tests): fp32 + saved optimisations, and a dynamic
    int8 variant when ``quantize``. ``chosen`` stays fp32 and the int8 variant has no F1 delta,
    so it is refused until ``finextract export-onnx`` measures it."""
    from finextract.backends.encoder.quantize import quantize_int8

    exported = export_fp32(ckpt, cfg, task, opset=opset)
    folder = onnx_dir(ckpt)
    save_optimized(folder / EXPORT_NAME, folder / OPTIMIZED_NAME)
    variants: dict[str, Any] = {"fp32": {"file": OPTIMIZED_NAME, "precision": "fp32", "built_from": EXPORT_NAME}}
    out = {"fp32": folder / OPTIMIZED_NAME}
    if quantize:
        settings = quantize_int8(folder / EXPORT_NAME, folder / INT8_NAME, method="dynamic")
        variants["int8"] = {"file": INT8_NAME, "precision": "int8", "quantization": settings, "built_from": EXPORT_NAME}
        out["int8"] = folder / INT8_NAME
    write_meta(ckpt, {"format": META_FORMAT, "checkpoint": str(ckpt), "inputs": exported["inputs"],
                      "outputs": exported["outputs"], "variants": variants, "chosen": "fp32", "cpu": cpu_flags()})
    return out
