"""Load an encoder run's checkpoint as an :class:`EncoderExtractor` (PyTorch or ONNX Runtime).

Lives apart from :mod:`.model` (weights, tagger head) and :mod:`.onnx` (export, ONNX forward)
so that both of those import only downward and this module picks between them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from finextract.errors import InputError, NotFoundError
from finextract.backends.encoder.config import EncoderRunConfig
from finextract.errors import RunDirError
from finextract.backends.encoder.model import (EncoderExtractor, count_parameters, decode_options,
                                               load_model_from_checkpoint, torch_forward)

__all__ = ["EncoderExtractor", "load"]


def load(source: str, checkpoint: str | None = None, runtime: str = "torch", num_threads: int | None = None,
         batch_size: int | None = None, device: str = "cpu", variant: str | None = None,
         quantized: bool | None = None, allow_unvalidated: bool = False, bucket: bool = True,
         **_: Any) -> EncoderExtractor:
    """Load a run's checkpoint ("best" by default) as an extractor.

    ``runtime="onnx"`` uses the ONNX variant ``finextract export-onnx`` chose (fastest within
    its F1 tolerance), or ``variant`` ("fp32", "int8-dynamic", ...); ``quantized=False`` means "fp32".
    A quantized variant without a recorded F1 delta is refused unless ``allow_unvalidated``;
    ``bucket=False`` turns off the ONNX path's length buckets (for measuring what they gain).
    """
    from finextract.rundir import RunDir

    run = RunDir(Path(source))
    try:
        cfg = EncoderRunConfig.model_validate(run.read_config())
    except ValueError as exc:  # pydantic's ValidationError: name the file, not only the model class
        detail = " ".join(str(exc).split())[:300]
        raise RunDirError(f"{run.config_path}: not a valid encoder run config ({detail})") from exc
    task = cfg.load_task()
    ckpt = run.resolve_checkpoint(checkpoint)
    if not ckpt.exists():
        raise NotFoundError(f"{ckpt}: no such checkpoint")
    bs = batch_size or cfg.train.eval_batch_size
    if runtime == "onnx":
        from finextract.backends.encoder.onnx import onnx_extractor

        if quantized is False:
            variant = variant or "fp32"
        return onnx_extractor(ckpt, cfg, task, batch_size=bs, num_threads=num_threads, variant=variant,
                              allow_unvalidated=allow_unvalidated, bucket=bucket)
    if runtime != "torch":
        raise InputError(f"runtime must be 'torch' or 'onnx', got {runtime!r}")
    import torch

    if num_threads:
        torch.set_num_threads(num_threads)
    tagger, tok = load_model_from_checkpoint(ckpt, cfg, task)
    tagger.to(device).eval()
    return EncoderExtractor(torch_forward(tagger, device), tok, task, cfg.model.max_length, bs,
                            info={"checkpoint": str(ckpt), "runtime": "torch", "parameters": count_parameters(tagger)},
                            case_features=tagger.case is not None, lexical_features=tagger.lex is not None,
                            layout_features=tagger.layout is not None, decode_options=decode_options(cfg, ckpt))
