"""Throughput and latency of any Extractor, measured the same way everywhere.

Used by sweeps (results table), benchmarks and the report, so "descriptors/s" always
means the same thing: wall time of ``predict`` over the whole list at a given batch size,
after a warm-up, and per-text latency from batches of one.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

from finextract.errors import InputError
from finextract.extractor import Extractor


def measure_throughput(
    extractor: Extractor,
    texts: Sequence[str],
    batch_size: int = 64,
    latency_samples: int = 50,
    warmup: int = 2,
    repeats: int = 3,
) -> dict[str, Any]:
    """Return samples/s (median over ``repeats`` passes) and p50/p90/p99 single-text latency in ms."""
    texts = list(texts)
    if not texts:
        raise InputError("measure_throughput needs at least one text")
    for _ in range(warmup):
        extractor.predict(texts[:batch_size])
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(0, len(texts), batch_size):
            extractor.predict(texts[i:i + batch_size])
        rates.append(len(texts) / (time.perf_counter() - t0))
    lat = []
    for text in texts[:latency_samples]:
        t0 = time.perf_counter()
        extractor.predict([text])
        lat.append((time.perf_counter() - t0) * 1000)
    lat.sort()

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, int(round(q * (len(lat) - 1))))]

    return {
        "n_texts": len(texts),
        "batch_size": batch_size,
        "samples_per_s": statistics.median(rates),
        "samples_per_s_all": rates,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
