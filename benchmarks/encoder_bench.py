"""Encoder CPU benchmark: PyTorch fp32 vs the ONNX Runtime variants, F1 and speed, in one run.

Each (variant, repeat) runs in its own subprocess, so peak memory is its own and no variant
warms another's caches; repeats are interleaved (A B C, A B C, ...), so a burst of load from
other jobs hits every variant alike. Reported: medians over repeats, and the fast/fp32 ratio
of each repeat (both measured minutes apart in the same run), with the load average seen.

    python benchmarks/encoder_bench.py --run runs/qs --data ../shared/data/merchant/pilot_memos.jsonl \
        --heldout runs/qs/data/test.jsonl --threads 2 --repeats 3 [--crf-run runs/crf]

Variants: ``pytorch`` (the fp32 reference), ``onnx:fp32``, ``onnx`` (the variant export-onnx
chose), any ``onnx:NAME`` from ``onnx/meta.json``, ``onnx:NAME:nobucket`` (length buckets
off, to see what they gain) and ``...:w2`` (two worker processes of one thread each; peak RSS
is then the parent's plus the workers'), ``...:solo2`` (two independent one-thread processes at once, rates
summed: the two-core ceiling without a parent); ``VARIANT@RUN`` takes the variant from another run (a teacher
measured beside its distilled student; the first variant is the reference). F1 is exact-match micro/macro on
``--data`` (and ``--heldout``); throughput is ``finextract.speed.measure_throughput`` over
``--n-texts`` texts (``--data``'s texts repeated, in file order) at batch 64, latency from
batches of one. Writes ``benchmarks/results/{--name}.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def load_for(variant: str, run_dir: str, threads: int):
    """``pytorch``/``crf``/``onnx[:NAME]`` with flags after a colon: ``nobucket`` (length buckets off),
    ``wN`` (N worker processes of one thread each, :mod:`finextract.parallel`)."""
    from finextract.runtime import load_with_runtime

    parts = variant.split(":")
    flags = [f for f in parts[1:] if f == "nobucket" or (f[:1] == "w" and f[1:].isdigit())]
    workers = next((int(f[1:]) for f in flags if f.startswith("w")), 1)
    name = next((p for p in parts[1:] if p not in flags), "")
    if parts[0] in ("pytorch", "crf"):
        return load_with_runtime(run_dir, "best", "torch", workers=workers, num_threads=threads)
    return load_with_runtime(run_dir, "best", "onnx", workers=workers, variant=name or None, num_threads=threads,
                             bucket="nobucket" not in flags)


def workers_peak_rss_mb(ex) -> float:
    """Peak resident memory of an extractor's worker processes (VmHWM each, summed); 0 without workers."""
    total = 0.0
    for pid in getattr(ex, "worker_pids", []):
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            total += next(int(line.split()[1]) for line in fh if line.startswith("VmHWM")) / 1024
    return total


def measure(args: argparse.Namespace) -> dict:
    """Child process: load one variant, (optionally) score it, time it, report peak RSS."""
    import torch

    torch.set_num_threads(args.threads)
    from finextract.records import read_records
    from finextract.speed import measure_throughput, peak_rss_mb

    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    ex = load_for(args.variant, args.run_dir, args.threads)
    load_s = time.perf_counter() - t0
    records = read_records(args.data, ex.task, skip_invalid=True)
    row: dict = {"variant": args.variant, "runtime": ex.describe().get("runtime"), "load_s": round(load_s, 2)}
    if args.score:
        sets = {"pilot": records}
        if args.heldout:
            sets["generated"] = read_records(args.heldout, ex.task, skip_invalid=True)
        for name, recs in sets.items():
            report, preds = ex.evaluate(recs)
            row[f"{name}_micro_f1"] = report.micro.f1
            row[f"{name}_macro_f1"] = report.macro_f1
            row[f"{name}_n"] = report.n_records
            row[f"{name}_predictions"] = preds
    texts = [r.text for r in records]
    texts = (texts * (args.n_texts // max(1, len(texts)) + 1))[:args.n_texts]
    speed = measure_throughput(ex, texts, batch_size=64, latency_samples=100, repeats=3)
    row.update({k: speed[k] for k in ("samples_per_s", "samples_per_s_all", "p50_ms", "p90_ms", "p99_ms")})
    workers_mb = workers_peak_rss_mb(ex)
    row.update({"peak_rss_mb": round(peak_rss_mb() + workers_mb, 1), "workers_rss_mb": round(workers_mb, 1),
                "threads": args.threads,
                "load_average_before": round(load0, 2), "load_average_after": round(os.getloadavg()[0], 2)})
    return row


def _child_cmd(args: argparse.Namespace, variant: str, run_dir: str, score: bool, threads: int) -> list[str]:
    cmd = [sys.executable, __file__, "--run", args.run, "--data", args.data, "--threads", str(threads),
           "--n-texts", str(args.n_texts), "--variant", variant, "--run-dir", run_dir]
    if args.heldout:
        cmd += ["--heldout", args.heldout]
    return cmd + (["--score"] if score else [])


def run_child(args: argparse.Namespace, variant: str, run_dir: str, score: bool) -> dict:
    """One subprocess for the variant; ``...:solo2`` starts two one-thread processes of it at once,
    no parent between them, and sums their rates: the ceiling two cores give this model, which a
    ``:w2`` variant (workers behind one parent) can be held against."""
    solo = variant.endswith(":solo2")
    base = variant.removesuffix(":solo2")
    threads = 1 if solo else args.threads
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmds = [_child_cmd(args, base, run_dir, score and i == 0, threads) for i in range(2 if solo else 1)]
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for c in cmds]
    rows = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode:
            print(err[-3000:], file=sys.stderr)
            raise SystemExit(f"{variant} failed")
        rows.append(json.loads(out.strip().splitlines()[-1]))
    row = rows[0]
    if solo:
        row.update(variant=variant, samples_per_s=sum(r["samples_per_s"] for r in rows),
                   peak_rss_mb=sum(r["peak_rss_mb"] for r in rows), solo_samples_per_s=[r["samples_per_s"] for r in rows])
    return row


def differing(a: list, b: list, texts: list[str]) -> list[dict]:
    return [{"index": i, "text": texts[i], "fp32": x, "variant": y} for i, (x, y) in enumerate(zip(a, b)) if x != y]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="encoder run directory (export-onnx done)")
    ap.add_argument("--crf-run", help="CRF run directory on the same task (optional)")
    ap.add_argument("--data", required=True, help="labeled JSONL (the pilot memos) to score and draw texts from")
    ap.add_argument("--heldout", help="labeled held-out generated JSONL, also scored")
    ap.add_argument("--variants", default="pytorch,onnx:fp32,onnx", help="comma-separated; first is the reference")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-texts", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3, help="subprocess runs per variant (medians reported)")
    ap.add_argument("--name", default="encoder_cpu", help="results file stem")
    ap.add_argument("--note", default="", help="free text stored with the results (e.g. whether the machine was shared)")
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--run-dir", help=argparse.SUPPRESS)
    ap.add_argument("--score", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.variant:  # child
        print(json.dumps(measure(args)))
        return

    from finextract.backends.encoder.onnx import cpu_flags, read_meta
    from finextract.records import read_records
    from finextract.rundir import RunDir

    ckpt = RunDir(args.run).resolve_checkpoint("best")
    meta = read_meta(ckpt)
    if meta is None:
        raise SystemExit(f"{ckpt}: run `finextract export-onnx {args.run}` first")
    # VARIANT@RUN takes a variant from another run (a teacher beside its distilled student)
    variants = [tuple(v.split("@", 1)) if "@" in v else (v, args.run) for v in args.variants.split(",")]
    if args.crf_run:
        variants.append(("crf", args.crf_run))
    def label(variant: str, run_dir: str) -> str:
        return variant if run_dir == args.run else f"{variant}@{Path(run_dir).name}"

    variants = [(label(v, r), v, r) for v, r in variants]
    runs: dict[str, list[dict]] = {lab: [] for lab, _, _ in variants}
    t_start = time.time()
    for rep in range(args.repeats):
        for lab, variant, run_dir in variants:
            print(f"[{time.strftime('%H:%M:%S')}] repeat {rep + 1}/{args.repeats}: {lab}", file=sys.stderr, flush=True)
            runs[lab].append(run_child(args, variant, run_dir, score=rep == 0))

    ref_name = variants[0][0]
    pilot_texts = [r.text for r in read_records(args.data, meta_task(args.run), skip_invalid=True)]
    held_texts = ([r.text for r in read_records(args.heldout, meta_task(args.run), skip_invalid=True)]
                  if args.heldout else [])
    rows = []
    for variant, _, _ in variants:
        rs = runs[variant]
        first = rs[0]
        row = {"variant": variant, "runtime": first["runtime"], "repeats": len(rs),
               "samples_per_s": statistics.median(r["samples_per_s"] for r in rs),
               "samples_per_s_runs": [round(r["samples_per_s"], 1) for r in rs],
               "p50_ms": statistics.median(r["p50_ms"] for r in rs), "p50_ms_runs": [round(r["p50_ms"], 3) for r in rs],
               "p90_ms": statistics.median(r["p90_ms"] for r in rs),
               "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in rs),
               "load_average": [r["load_average_before"] for r in rs]}
        for s in ("pilot", "generated"):
            if f"{s}_micro_f1" in first:
                row[f"{s}_micro_f1"] = first[f"{s}_micro_f1"]
                row[f"{s}_macro_f1"] = first[f"{s}_macro_f1"]
        if variant != "crf" and variant != ref_name:
            ref0 = runs[ref_name][0]
            row["ratio_vs_ref_runs"] = [round(a["samples_per_s"] / b["samples_per_s"], 3)
                                        for a, b in zip(rs, runs[ref_name])]
            row["ratio_vs_ref"] = statistics.median(row["ratio_vs_ref_runs"])
            row["p50_ratio_vs_ref"] = statistics.median(a["p50_ms"] / b["p50_ms"] for a, b in zip(rs, runs[ref_name]))
            for s, texts in (("pilot", pilot_texts), ("generated", held_texts)):
                if f"{s}_predictions" in first:
                    row[f"{s}_delta_points"] = round(100 * (first[f"{s}_micro_f1"] - ref0[f"{s}_micro_f1"]), 3)
                    diffs = differing(ref0[f"{s}_predictions"], first[f"{s}_predictions"], texts)
                    row[f"{s}_differing_records"] = len(diffs)
                    row[f"{s}_differences"] = diffs
        rows.append(row)

    def f1(r: dict, s: str) -> str:
        if f"{s}_micro_f1" not in r:
            return "-"
        d = f" ({r[f'{s}_delta_points']:+.2f}, {r[f'{s}_differing_records']} differ)" if f"{s}_delta_points" in r else ""
        return f"{r[f'{s}_micro_f1']:.4f}{d}"

    chosen = meta.get("chosen")
    lines = [f"| variant | runtime | pilot micro-F1 (change pts, records differing) | generated test micro-F1 | "
             f"desc/s batch 64 (median of {args.repeats}) | x vs {ref_name} | p50 ms 1 text | p90 ms | peak RSS MB |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ratio = f"x{r['ratio_vs_ref']:.2f}" if "ratio_vs_ref" in r else "-"
        lines.append(f"| {r['variant']} | {r['runtime']} | {f1(r, 'pilot')} | {f1(r, 'generated')} | "
                     f"{r['samples_per_s']:.0f} | {ratio} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['peak_rss_mb']:.0f} |")
    table = "\n".join(lines)
    loads = [x for r in rows for x in r["load_average"]]
    info = (f"run `{args.run}` (onnx chosen: `{chosen}`), data `{args.data}`, {args.threads} threads, "
            f"{args.n_texts} texts, {args.repeats} interleaved repeats, load average {min(loads):.1f}-{max(loads):.1f} "
            f"on {os.cpu_count()} cores; {cpu_flags()['model']}")
    print(info + "\n\n" + table)
    for r in rows:
        print(f"{r['variant']}: desc/s per repeat {r['samples_per_s_runs']}, ratios {r.get('ratio_vs_ref_runs', '-')}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out_meta = {"run": args.run, "data": args.data, "heldout": args.heldout, "threads": args.threads,
                "n_texts": args.n_texts, "repeats": args.repeats, "cpu": cpu_flags(), "chosen": chosen,
                "note": args.note, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_start)),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (RESULTS / f"{args.name}.json").write_text(json.dumps({"meta": out_meta, "rows": rows}, indent=2), encoding="utf-8")
    (RESULTS / f"{args.name}.md").write_text(f"# {args.name}\n\n{info}\n\n{args.note}\n\n{table}\n", encoding="utf-8")


def meta_task(run: str):
    from finextract.backends import get_backend  # noqa: F401  (registers backends)
    from finextract.rundir import RunDir
    from finextract.tasks import load_task

    return load_task(RunDir(run).read_config().get("task", "merchant"))


if __name__ == "__main__":
    main()
