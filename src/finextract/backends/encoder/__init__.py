"""Encoder span tagger: finextract's default model.

Every value is a substring of the input, so a small bidirectional encoder (MiniLM-L6 by
default, 22M parameters) that tags BIO spans over sub-word tokens does the job: it cannot
hallucinate, runs on a CPU, and decodes through offset mappings to exact substrings.
"""

from typing import Any

from finextract.backends.encoder.config import EncoderRunConfig, default_model_path
from finextract.backends.encoder.extractor import EncoderExtractor, load
from finextract.backends.encoder.train import train
from finextract.registry import Backend, register_backend


def _commands(app: Any) -> None:
    """``export-onnx`` and ``quickstart`` are encoder-only, so they live with the encoder."""
    from finextract.backends.encoder import commands, quickstart

    commands.register(app)
    quickstart.register(app)


def _tiny_config(workdir: Any) -> dict[str, Any]:
    from pathlib import Path

    from finextract.backends.encoder.testing import build_tiny_encoder

    model = build_tiny_encoder(Path(workdir) / "tiny-encoder", layers=2, pretrained=False, hidden=64)
    return {"model": {"name_or_path": str(model), "max_length": 32},
            "train": {"max_steps": 2, "checkpoint_every": 1, "log_every": 1, "batch_size": 2, "keep_last": 2,
                      "learning_rate": 3e-3, "warmup_ratio": 0.0, "num_threads": 1}}


register_backend(Backend(
    name="encoder",
    config_cls=EncoderRunConfig,
    train=train,
    load=load,
    commands=_commands,
    tiny_config=_tiny_config,
    description="small bidirectional encoder tagging BIO spans (default: bundled MiniLM-L6)",
))

__all__ = ["EncoderRunConfig", "EncoderExtractor", "default_model_path", "train", "load"]
