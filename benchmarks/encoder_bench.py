"""Encoder benchmark: F1 and CPU speed of PyTorch vs ONNX int8 (and the CRF when available).

Each variant runs in its own subprocess so its peak memory is its own. Prints a table and
writes ``benchmarks/results/encoder_bench.json`` and ``encoder_bench.md``.

    python benchmarks/encoder_bench.py --run runs/encoder-merchant [--crf-run runs/crf-merchant] \
        --data ../shared/data/merchant/pilot_memos.jsonl --threads 2

F1 is exact match on ``--data``; throughput is ``finextract.speed.measure_throughput`` over
``--n-texts`` texts (the data's texts repeated) at batch 64, latency from batches of one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def measure(args: argparse.Namespace) -> dict:
    """Child process: load one variant, score it, time it, report peak RSS."""
    import torch

    torch.set_num_threads(args.threads)
    from finextract.extractor import load_extractor
    from finextract.records import read_records
    from finextract.speed import measure_throughput, peak_rss_mb

    kw = {}
    if args.variant == "onnx-int8":
        kw = {"runtime": "onnx", "quantized": True, "num_threads": args.threads}
    elif args.variant == "onnx-fp32":
        kw = {"runtime": "onnx", "quantized": False, "num_threads": args.threads}
    t0 = time.perf_counter()
    ex = load_extractor(args.run_dir, "best", **kw)
    load_s = time.perf_counter() - t0
    records = read_records(args.data, ex.task, skip_invalid=True)
    report, _ = ex.evaluate(records)
    texts = [r.text for r in records]
    texts = (texts * (args.n_texts // max(1, len(texts)) + 1))[:args.n_texts]
    speed = measure_throughput(ex, texts, batch_size=64, latency_samples=100, repeats=3)
    return {"variant": args.variant, "run_dir": args.run_dir, "load_s": load_s, "micro_f1": report.micro.f1,
            "macro_f1": report.macro_f1, "per_key_f1": {k: c.f1 for k, c in report.per_key.items()},
            "n_records": report.n_records, "invalid_rate": report.invalid_rate, **speed,
            "peak_rss_mb": peak_rss_mb(), "threads": args.threads}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="encoder run directory")
    ap.add_argument("--crf-run", help="CRF run directory on the same task (optional)")
    ap.add_argument("--data", required=True, help="labeled JSONL to score and to draw texts from")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-texts", type=int, default=2000)
    ap.add_argument("--name", default="encoder_bench", help="results file stem")
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--run-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.variant:  # child
        print(json.dumps(measure(args)))
        return

    from finextract.rundir import RunDir

    run = RunDir(args.run)
    ckpt = run.resolve_checkpoint("best")
    if not (ckpt / "model.int8.onnx").exists():
        subprocess.run([sys.executable, "-m", "finextract", "export-onnx", args.run], check=True)
    variants = [("pytorch", args.run), ("onnx-int8", args.run)]
    if args.crf_run:
        variants.append(("crf", args.crf_run))
    rows = []
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    for variant, run_dir in variants:
        print(f"measuring {variant} ...", file=sys.stderr)
        proc = subprocess.run([sys.executable, __file__, "--run", args.run, "--data", args.data, "--threads",
                               str(args.threads), "--n-texts", str(args.n_texts), "--variant", variant,
                               "--run-dir", run_dir], capture_output=True, text=True, env=env)
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{variant} failed")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))

    lines = ["| variant | micro-F1 | macro-F1 | desc/s (batch 64, median of 3) | p50 ms (1 text) | p90 ms | peak RSS MB |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['micro_f1']:.4f} | {r['macro_f1']:.4f} | {r['samples_per_s']:.0f} | "
                     f"{r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['peak_rss_mb']:.0f} |")
    base = rows[0]
    for r in rows[1:]:
        lines.append(f"\n{r['variant']} vs pytorch: throughput x{r['samples_per_s'] / base['samples_per_s']:.2f}, "
                     f"p50 x{r['p50_ms'] / base['p50_ms']:.2f}, micro-F1 {r['micro_f1'] - base['micro_f1']:+.4f}")
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"data": args.data, "threads": args.threads, "n_texts": args.n_texts, "cpu_count": os.cpu_count(),
            "load_average_at_end": os.getloadavg(), "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    (RESULTS / f"{args.name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2), encoding="utf-8")
    (RESULTS / f"{args.name}.md").write_text(
        f"# {args.name}\n\ndata: `{args.data}`, {args.threads} threads, {args.n_texts} texts, "
        f"load average at end {meta['load_average_at_end'][0]:.1f} on {meta['cpu_count']} cores (shared machine)\n\n"
        + table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
