"""CRF baseline benchmark: FIRE dev accuracy, throughput, latency, memory (+ merchant if synth exists).

    OMP_NUM_THREADS=1 python benchmarks/crf_bench.py [--iterations 100] [--out benchmarks/results]

Trains on FIRE train (invalid records skipped), scores FIRE dev (micro/macro/per type),
measures descriptors/s (batched) and p50 single-text latency with
``finextract.speed.measure_throughput``, and the process's peak RSS. If
``finextract.synth.write_splits`` is importable, also trains on generated merchant data and
scores the real pilot memos per key (evaluation only). Writes crf_bench.json and .md.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FINEXTRACT_SHARED", REPO.parent / "shared")) / "data"


def train_and_score(task: str, train: Path, dev: Path, out_dir: Path, iterations: int, extra_sets=None) -> dict:
    from finextract.backends import get_backend
    from finextract.config import load_run_config
    from finextract.records import read_records
    from finextract.speed import measure_throughput

    sets = [f"task={task}", f"output_dir={out_dir}", f"data.train={train}", f"data.validation={dev}",
            "data.skip_invalid=true", f"train.max_iterations={iterations}", f"train.checkpoint_every={iterations}"]
    for name, path in (extra_sets or {}).items():
        sets.append(f"data.eval_sets.{name}={path}")
    cfg = load_run_config(None, ["backend=crf", *sets])
    t0 = time.perf_counter()
    summary = get_backend("crf").train(cfg)
    train_s = time.perf_counter() - t0
    ex = get_backend("crf").load(str(out_dir), "best")
    recs = read_records(dev, ex.task, skip_invalid=True)
    report, _ = ex.evaluate(recs)
    speed = measure_throughput(ex, [r.text for r in recs], batch_size=64, latency_samples=100)
    return {
        "task": task, "train_records": summary.get("train_records"), "dev_records": len(recs),
        "iterations": iterations, "train_seconds": round(train_s, 2),
        "micro_f1": report.micro.f1, "micro_p": report.micro.precision, "micro_r": report.micro.recall,
        "macro_f1": report.macro_f1, "invalid_rate": report.invalid_rate,
        "per_key_f1": {k: c.f1 for k, c in report.per_key.items()},
        "descriptors_per_s": speed["samples_per_s"], "p50_ms": speed["p50_ms"], "p90_ms": speed["p90_ms"],
        "params": ex.describe()["params"], "model_bytes": ex.describe()["model_bytes"],
        "eval_sets": {k: v for k, v in summary.items() if k in (extra_sets or {})},
    }


def merchant_part(work: Path, iterations: int) -> dict | None:
    try:
        from finextract.synth import write_splits  # written by another engineer
    except ImportError:
        return None
    params = inspect.signature(write_splits).parameters
    kwargs = {k: v for k, v in {"n_train": 3000, "n_dev": 300, "n_test": 300, "seed": 0}.items() if k in params}
    first = next(iter(params))
    splits = write_splits(work / "synth", **kwargs) if first not in kwargs else write_splits(**kwargs)
    files = {k: Path(v) for k, v in (splits.items() if isinstance(splits, dict) else [])}
    if not files:
        files = {p.stem: p for p in (work / "synth").glob("*.jsonl")}
    train, dev = files.get("train"), files.get("dev") or files.get("validation")
    if train is None or dev is None:
        return {"error": f"write_splits gave {sorted(files)}; need train and dev"}
    pilot = SHARED / "merchant" / "pilot_memos.jsonl"
    res = train_and_score("merchant", train, dev, work / "merchant", iterations, {"pilot": pilot})
    score = json.loads((work / "merchant" / "predictions" / "pilot.score.json").read_text())
    res["pilot"] = {"micro_f1": score["micro"]["f1"], "macro_f1": score["macro"]["f1"], "n": score["n_records"],
                    "per_key_f1": {k: v["f1"] for k, v in score["per_key"].items()},
                    "per_key_support": {k: v["support"] for k, v in score["per_key"].items()}}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    from finextract.speed import peak_rss_mb

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fire = train_and_score("fin-ner", SHARED / "fire" / "train.jsonl", SHARED / "fire" / "dev.jsonl",
                               work / "fire", args.iterations)
        merchant = merchant_part(work, args.iterations)
    result = {"machine": {"platform": platform.platform(), "cpus_visible": os.cpu_count(),
                          "omp_threads": os.environ.get("OMP_NUM_THREADS")},
              "fire": fire, "merchant": merchant, "peak_rss_mb": round(peak_rss_mb(), 1)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "crf_bench.json").write_text(json.dumps(result, indent=2), encoding="utf-8")

    lines = ["# CRF baseline benchmark", "", f"Machine: {result['machine']}; peak RSS {result['peak_rss_mb']} MB", "",
             "| data | train recs | iters | train s | micro F1 | macro F1 | P | R | desc/s (batch 64) | p50 ms | params |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    table = Table(title="CRF baseline")
    for col in ("data", "micro F1", "macro F1", "desc/s", "p50 ms", "train s"):
        table.add_column(col)
    for name, r in (("FIRE dev", fire), ("merchant synth dev", merchant)):
        if not r or "error" in r:
            continue
        lines.append(f"| {name} | {r['train_records']} | {r['iterations']} | {r['train_seconds']} | {r['micro_f1']:.4f} | "
                     f"{r['macro_f1']:.4f} | {r['micro_p']:.4f} | {r['micro_r']:.4f} | {r['descriptors_per_s']:.0f} | "
                     f"{r['p50_ms']:.3f} | {r['params']} |")
        table.add_row(name, f"{r['micro_f1']:.4f}", f"{r['macro_f1']:.4f}", f"{r['descriptors_per_s']:.0f}",
                      f"{r['p50_ms']:.3f}", str(r["train_seconds"]))
    lines += ["", "FIRE dev per type F1: " + ", ".join(f"{k} {v:.3f}" for k, v in fire["per_key_f1"].items())]
    if merchant and "pilot" in merchant:
        p = merchant["pilot"]
        lines += ["", f"Merchant (trained on generated data) on the {p['n']} pilot memos: micro F1 {p['micro_f1']:.4f}, "
                  f"macro {p['macro_f1']:.4f}", "", "| key | F1 | support |", "|---|---|---|"]
        lines += [f"| {k} | {v:.4f} | {p['per_key_support'][k]} |" for k, v in p["per_key_f1"].items()]
        table.add_row("pilot memos", f"{p['micro_f1']:.4f}", f"{p['macro_f1']:.4f}", "", "", "")
    elif merchant:
        lines += ["", f"Merchant part failed: {merchant.get('error')}"]
    else:
        lines += ["", "Merchant part skipped: finextract.synth.write_splits not available."]
    (args.out / "crf_bench.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    Console().print(table)
    print(f"peak RSS {result['peak_rss_mb']} MB; wrote {args.out / 'crf_bench.json'}")


if __name__ == "__main__":
    main()
