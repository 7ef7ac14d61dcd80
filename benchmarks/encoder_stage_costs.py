"""Where the CPU time of one ONNX prediction goes: featurize, ONNX Runtime forward, span decoding.

Issue 16 asks for 1,000 descriptors/s on 2 cores; with the 3-layer student the forward is about two
thirds of the time and the Python around it the rest. This times each stage alone (one thread, one
process, per text, median of ``--repeats``) and the whole ``predict`` with one and with two worker
processes, for this source tree and, with ``--src NAME=PATH`` (repeatable), for other checkouts of
the project (``git worktree add /tmp/old COMMIT``) in the same run, interleaved, so that a change to
the Python side is measured against its parent on the same machine at the same time::

    python benchmarks/encoder_stage_costs.py --run runs/k_h --data ../shared/data/merchant/pilot_memos.jsonl \\
        --src before=/tmp/old/src --name encoder_stage_costs_session6

Writes ``benchmarks/results/{--name}.json`` and ``.md``.
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

RESULTS = Path(__file__).resolve().parent / "results"
HERE_SRC = Path(__file__).resolve().parents[1] / "src"


def measure(run: str, data: str, n: int, workers: int) -> dict:
    """One process: per-stage microseconds per text (workers=1) or whole-predict texts/s."""
    from finextract.backends.encoder.span_batch import decode_many
    from finextract.records import iter_jsonl
    from finextract.runtime import load_with_runtime

    texts = [r["text"] for _, r in iter_jsonl(data)]
    texts = (texts * (n // len(texts) + 1))[:n]
    ex = load_with_runtime(run, "best", "onnx", workers=workers, num_threads=1)
    calls = [texts[i:i + 64] for i in range(0, n, 64)]
    for c in calls[:4]:
        ex.predict(c)  # warm-up: gazetteer, ORT arenas
    t0 = time.perf_counter()
    for c in calls:
        ex.predict(c)
    out = {"predict_per_s": round(n / (time.perf_counter() - t0), 1)}
    if workers > 1:
        return out
    t0 = time.perf_counter()
    for c in calls:
        ex._encode(c)  # the predict path's own featurize call
    out["featurize_us"] = round((time.perf_counter() - t0) / n * 1e6, 1)
    t0 = time.perf_counter()
    pairs = [p for c in calls for p in ex.logits(c)]
    out["featurize_plus_forward_us"] = round((time.perf_counter() - t0) / n * 1e6, 1)
    out["forward_us"] = round(out["featurize_plus_forward_us"] - out["featurize_us"], 1)
    t0 = time.perf_counter()
    for call in range(0, n, 64):  # decode as predict does: each call's texts by length, in chunks of 8
        order = sorted(range(call, min(call + 64, n)), key=lambda i: sum(s < e for s, e in pairs[i][0]))
        for start in range(0, len(order), 8):
            chunk = order[start:start + 8]
            decode_many([texts[i] for i in chunk], [pairs[i][0] for i in chunk], [pairs[i][1] for i in chunk],
                        ex.task, ex.decode_options)
    out["decode_us"] = round((time.perf_counter() - t0) / n * 1e6, 1)
    return out


def child(src: Path, args: argparse.Namespace, workers: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, __file__, "--run", args.run, "--data", args.data, "--n-texts", str(args.n_texts),
           "--child-workers", str(workers)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="encoder run with an ONNX export (export-onnx done)")
    ap.add_argument("--data", required=True, help="JSONL with a text field (the pilot memos)")
    ap.add_argument("--n-texts", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--src", action="append", default=[], help="NAME=PATH: another source tree to time beside this one")
    ap.add_argument("--name", default="encoder_stage_costs")
    ap.add_argument("--child-workers", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_workers:
        print(json.dumps(measure(args.run, args.data, args.n_texts, args.child_workers)))
        return
    trees = {"this": HERE_SRC, **{s.split("=", 1)[0]: Path(s.split("=", 1)[1]) for s in args.src}}
    runs: dict[str, list[dict]] = {f"{t}:w{w}": [] for t in trees for w in (1, 2)}
    for rep in range(args.repeats):  # interleaved: a burst of load hits every tree alike
        for t, src in trees.items():
            for w in (1, 2):
                runs[f"{t}:w{w}"].append(child(src, args, w))
                print(rep, t, w, runs[f"{t}:w{w}"][-1], flush=True)
    med = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in runs.items()}
    load = os.getloadavg()[0]
    result = {"meta": {"run": args.run, "data": args.data, "n_texts": args.n_texts, "repeats": args.repeats,
                       "trees": {k: str(v) for k, v in trees.items()}, "load_avg_1m_at_end": round(load, 2)},
              "median": med, "runs": runs}
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=1))
    lines = [f"# {args.name}", "", f"run `{args.run}`, {args.n_texts} texts of `{args.data}` predicted 64 at a time, "
             f"one ORT thread per process, medians of {args.repeats} interleaved repeats (load {load:.1f} at the end).",
             "", "| source tree | featurize us/text | forward us/text | decode us/text | desc/s 1 process | desc/s 2 workers |",
             "|---|---:|---:|---:|---:|---:|"]
    for t in trees:
        one, two = med[f"{t}:w1"], med[f"{t}:w2"]
        lines.append(f"| {t} | {one['featurize_us']:.0f} | {one['forward_us']:.0f} | {one['decode_us']:.0f} | "
                     f"{one['predict_per_s']:.0f} | {two['predict_per_s']:.0f} |")
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
