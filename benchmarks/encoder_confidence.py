"""Reliability of field confidence: fit per-key temperatures on generated validation, then
report reliability curves and precision/coverage at thresholds on generated test and the pilot.

    python benchmarks/encoder_confidence.py RUN_DIR --validation V.jsonl --set test=T.jsonl --set pilot=P.jsonl \
        --out benchmarks/results/encoder_confidence.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir")
    ap.add_argument("--validation", required=True, help="held-out split the temperatures are fitted on")
    ap.add_argument("--set", action="append", default=[], help="NAME=PATH scored with the fitted temperatures")
    ap.add_argument("--max-validation", type=int, default=500)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    from finextract.backends.encoder import load
    from finextract.backends.encoder.calibration import (expected_calibration_error, field_outcomes, fit_temperature,
                                                         reliability)
    from finextract.records import read_records
    from finextract.scoring import coverage_table, score

    ex = load(args.run_dir)
    val = read_records(args.validation, ex.task)[:args.max_validation]
    t0 = time.time()
    fitted = fit_temperature(ex, val)
    from dataclasses import replace

    ex.decode_options = replace(ex.decode_options, temperature=fitted["temperature"])
    out = {"run": args.run_dir, "decoder": ex.decode_options.method, "inword_penalty": ex.decode_options.inword_penalty,
           "fitted_on": args.validation, "fit": fitted, "fit_seconds": round(time.time() - t0, 1), "sets": {}}
    for item in args.set:
        name, path = item.split("=", 1)
        recs = read_records(path, ex.task, skip_invalid=True)
        pairs = ex.predict_with_confidence([r.text for r in recs])
        golds = [r.values for r in recs]
        conf, correct, filled = field_outcomes(pairs, golds, ex.task)
        rep = score(golds, [p for p, _ in pairs], ex.task)
        out["sets"][name] = {
            "n": len(recs), "micro_f1": round(rep.micro.f1, 4),
            "ece_all_fields": round(expected_calibration_error(conf, correct), 4),
            "ece_filled_fields": round(expected_calibration_error(conf[filled], correct[filled]), 4),
            "reliability_filled": reliability(conf[filled], correct[filled]),
            "coverage": coverage_table(golds, pairs, ex.task)}
        print(name, json.dumps({k: v for k, v in out["sets"][name].items() if k != "reliability_filled"}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
