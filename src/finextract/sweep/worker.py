"""One sweep run phase in its own process: ``python -m finextract.sweep.worker PHASE SPEC.json``.

Each run trains (phase ``train``) and is timed (phase ``measure``) in a fresh process, so
a crash, an out-of-memory kill or a leaked thread pool in one run cannot take the sweep
down, and the peak memory measured is that one model's, not the sweep's.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from finextract.errors import InputError


def _set_threads(n: int | None) -> None:
    if n is None:
        return
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass


def train_phase(spec: dict[str, Any]) -> dict[str, Any]:
    from finextract.registry import get_backend

    backend = get_backend(spec["backend"])
    cfg = backend.config_cls.model_validate(spec["config"])
    t0 = time.perf_counter()
    backend.train(cfg)
    return {"train_seconds": time.perf_counter() - t0}


def _timing_texts(spec: dict[str, Any]) -> list[str]:
    from finextract.records import read_records, read_texts
    from finextract.tasks import load_task

    tp = spec["throughput"]
    if tp.get("texts_file"):
        texts = read_texts(tp["texts_file"])
    else:
        val = spec["config"].get("data", {}).get("validation") or spec["config"].get("data", {}).get("train")
        if not val:
            raise InputError("no validation or train data to time the run on; set throughput.texts_file")
        task = load_task(spec["config"]["task"])
        texts = [r.text for r in read_records(val, task, skip_invalid=True)]
    if not texts:
        raise InputError("no texts to time the run on")
    n = tp["texts"]
    return [texts[i % len(texts)] for i in range(n)]


def measure_phase(spec: dict[str, Any]) -> dict[str, Any]:
    from finextract.registry import get_backend
    from finextract.speed import measure_throughput, peak_rss_mb

    run_dir = spec["config"]["output_dir"]
    extractor = get_backend(spec["backend"]).load(run_dir, "best")
    tp = spec["throughput"]
    speed = measure_throughput(extractor, _timing_texts(spec), batch_size=tp["batch_size"],
                               latency_samples=tp["latency_samples"], repeats=tp["repeats"])
    speed["peak_mem_mb"] = peak_rss_mb()
    speed["threads"] = tp.get("threads")
    try:
        speed["describe"] = extractor.describe()
    except Exception as exc:  # a describe() bug must not lose the timing
        speed["describe"] = {"error": str(exc)}
    return speed


def main(argv: list[str]) -> int:
    phase, spec_path = argv[0], Path(argv[1])
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    run_dir = Path(spec["config"]["output_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    _set_threads(spec["throughput"].get("threads"))
    try:
        result = train_phase(spec) if phase == "train" else measure_phase(spec)
    except BaseException as exc:
        # first line: a one-line summary for the results table; then the whole traceback
        msg = (str(exc).strip().splitlines() or [""])[0]
        (run_dir / "error.txt").write_text(f"{type(exc).__name__}: {msg}\nphase: {phase}\n{traceback.format_exc()}",
                                           encoding="utf-8")
        return 1
    out = run_dir / ("speed.json" if phase == "measure" else ".sweep_train.json")
    out.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
