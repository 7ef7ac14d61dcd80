"""``endpoint`` backend: a served model (``finextract serve`` or MLflow) called over HTTP.

It has no config and no training; ``load_extractor("http://...")`` lands in
:func:`.extractor.load`. See :mod:`.extractor` for the protocol details.
"""

from finextract.backends.endpoint.extractor import EndpointExtractor, base_url, detect_kind, load
from finextract.registry import Backend, register_backend

register_backend(Backend(name="endpoint", config_cls=None, train=None, load=load,
                         description="a served model (finextract serve or MLflow) called over HTTP"))

__all__ = ["EndpointExtractor", "base_url", "detect_kind", "load"]
