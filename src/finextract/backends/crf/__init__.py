"""CRF baseline: a linear-chain CRF over hand-made token features (python-crfsuite).

Fast on one CPU core, a few MB on disk, and every output is an exact substring of the
input by construction: the floor any neural model has to beat.
"""

from finextract.backends.crf.config import CrfRunConfig
from finextract.backends.crf.extractor import CrfExtractor, load
from finextract.backends.crf.train import train
from finextract.registry import Backend, register_backend

def _tiny_config(workdir: object) -> dict:
    return {"train": {"max_iterations": 2, "checkpoint_every": 1}}


register_backend(Backend(
    name="crf",
    config_cls=CrfRunConfig,
    train=train,
    load=load,
    tiny_config=_tiny_config,
    description="linear-chain CRF over hand-made token features (python-crfsuite)",
))

__all__ = ["CrfRunConfig", "CrfExtractor", "train", "load"]
