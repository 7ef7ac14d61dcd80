"""Encoder span tagger: finextract's default model.

Every value is a substring of the input, so a small bidirectional encoder (MiniLM-L6 by
default, 22M parameters) that tags BIO spans over sub-word tokens does the job: it cannot
hallucinate, runs on a CPU, and decodes through offset mappings to exact substrings.
"""

from finextract.backends import Backend, register_backend
from finextract.backends.encoder.config import EncoderRunConfig, default_model_path
from finextract.backends.encoder.model import EncoderExtractor, load
from finextract.backends.encoder.trainer import train

register_backend(Backend(
    name="encoder",
    config_cls=EncoderRunConfig,
    train=train,
    load=load,
    description="small bidirectional encoder tagging BIO spans (default: bundled MiniLM-L6)",
))

__all__ = ["EncoderRunConfig", "EncoderExtractor", "default_model_path", "train", "load"]
