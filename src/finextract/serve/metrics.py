"""Prometheus metrics for one app instance.

Each app gets its own ``CollectorRegistry`` so several servers (tests, benchmarks) can live
in one process without "duplicated timeseries" errors.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("finextract_requests_total", "HTTP requests to /v1/extract by status code",
                                ["status"], registry=r)
        self.responses = Counter("finextract_http_responses_total",
                                 "every HTTP response by route and status (401, 404, 499 = client gone, 5xx included)",
                                 ["path", "status"], registry=r)
        self.latency = Histogram("finextract_request_latency_seconds", "end-to-end /v1/extract latency",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.texts = Counter("finextract_texts_total", "texts extracted", registry=r)
        self.batch_size = Histogram("finextract_batch_size", "texts per predict() call",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.predict_latency = Histogram("finextract_predict_latency_seconds", "time inside one predict() call",
                                         buckets=LATENCY_BUCKETS, registry=r)
        self.model_errors = Counter("finextract_model_errors_total", "predict() calls that raised", registry=r)
        self.invalid_outputs = Counter("finextract_invalid_outputs_total",
                                       "texts for which the model produced no valid output", registry=r)
        self.timeouts = Counter("finextract_timeouts_total", "requests that hit the per-request deadline",
                                registry=r)
        self.queue_depth = Gauge("finextract_queue_depth", "texts waiting for a batch", registry=r)
        self.in_flight = Gauge("finextract_in_flight_requests", "requests being handled", registry=r)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
