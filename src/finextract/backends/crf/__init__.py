"""CRF baseline: a linear-chain CRF over hand-made token features (python-crfsuite).

Fast on one CPU core, a few MB on disk, and every output is an exact substring of the
input by construction: the floor any neural model has to beat.
"""

from finextract.backends import Backend, register_backend
from finextract.backends.crf.config import CrfRunConfig
from finextract.backends.crf.model import CrfExtractor, load, train

register_backend(Backend(
    name="crf",
    config_cls=CrfRunConfig,
    train=train,
    load=load,
    description="linear-chain CRF over hand-made token features (python-crfsuite)",
))

__all__ = ["CrfRunConfig", "CrfExtractor", "train", "load"]
