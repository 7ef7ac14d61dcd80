"""Decoding steps scored paired: the same trained encoder runs, the same logits, each step on and off.

Session 11 (issue 11) added two deterministic steps after span decoding: the task's ``strip`` rule
(separators glued to a value's ends) and, inside the glued-edge step, a CITY found at the name's
glued edge when the model decoded none (``glued._city_from_name_edge``). A step that needs no
retraining is measured best on models that already exist: every run is scored with all steps, then
with one step switched off, on every data set given::

    python benchmarks/encoder_decoding_paired.py runs/quickstart runs/quickstart-seed1 \\
        --data pilot=../shared/data/merchant/pilot_memos.jsonl --data gen=runs/quickstart/data/test.jsonl

Prints a table and writes ``benchmarks/results/encoder_decoding_paired.{json,md}`` (``--name`` to
change). Pilot-only figures can flatter a step; give a generated set too.
"""

from __future__ import annotations

import argparse
import json
import statistics
from contextlib import contextmanager
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
KEYS = ("MERCHANT_NAME", "CITY")


@contextmanager
def step_off(step: str, extractor):
    """Switch one decoding step off for the ``with`` block."""
    import finextract.backends.encoder.glued as glued

    task = extractor.task
    original = glued._city_from_name_edge
    if step == "strip":
        extractor.task = task.without_strip()
    elif step == "glued_city":
        glued._city_from_name_edge = lambda text, spans, name, words: spans
    elif step != "all":
        raise ValueError(f"unknown step {step!r}")
    try:
        yield
    finally:
        extractor.task = task
        glued._city_from_name_edge = original


def score_run(run: str, data: dict[str, str], limit: int) -> dict:
    from finextract.extractor import load_extractor
    from finextract.records import read_records
    from finextract.scoring import score

    ex = load_extractor(run)
    out: dict = {}
    for name, path in data.items():
        recs = read_records(path, ex.task)[:limit]
        texts, golds = [r.text for r in recs], [r.values for r in recs]
        for step in ("all", "strip", "glued_city"):
            with step_off(step, ex):
                rep = score(golds, ex.predict(texts), ex.task)
            out.setdefault(name, {})["all" if step == "all" else f"without_{step}"] = {
                "micro_f1": round(rep.micro.f1, 4), **{k: round(rep.per_key[k].f1, 4) for k in KEYS}, "n": rep.n_records}
    return out


def render(results: dict) -> list[str]:
    sets = sorted({s for r in results.values() for s in r})
    lines = ["| run | set | all steps | without strip | without glued city | Δ strip | Δ glued city | CITY without → with |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for run, r in results.items():
        for s in sets:
            a, ns, ng = r[s]["all"], r[s]["without_strip"], r[s]["without_glued_city"]
            lines.append(f"| {run} | {s} | {a['micro_f1']:.4f} | {ns['micro_f1']:.4f} | {ng['micro_f1']:.4f} | "
                         f"{100 * (a['micro_f1'] - ns['micro_f1']):+.2f} | {100 * (a['micro_f1'] - ng['micro_f1']):+.2f} | "
                         f"{ng['CITY']:.3f} → {a['CITY']:.3f} |")
    lines += ["", "Mean gain in micro-F1 points (all steps minus one step off), over the runs:", ""]
    for s in sets:
        for step in ("strip", "glued_city"):
            d = [100 * (r[s]["all"]["micro_f1"] - r[s][f"without_{step}"]["micro_f1"]) for r in results.values()]
            lines.append(f"- {s}, {step}: {statistics.mean(d):+.2f} (min {min(d):+.2f}, max {max(d):+.2f}, {len(d)} runs)")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="trained encoder run directories")
    ap.add_argument("--data", action="append", required=True, metavar="NAME=PATH", help="a labeled JSONL set (repeat)")
    ap.add_argument("--limit", type=int, default=2000, help="first N records of each set")
    ap.add_argument("--name", default="encoder_decoding_paired", help="result file stem under benchmarks/results")
    args = ap.parse_args()
    data = dict(d.split("=", 1) for d in args.data)
    results = {}
    for run in args.runs:
        results[Path(run).name] = score_run(run, data, args.limit)
        print(Path(run).name, json.dumps({s: v["all"]["micro_f1"] for s, v in results[Path(run).name].items()}), flush=True)
    lines = render(results)
    print("\n".join(lines))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps({"data": data, "limit": args.limit, "runs": results}, indent=1))
    (RESULTS / f"{args.name}.md").write_text(f"# Decoding steps scored paired ({args.name})\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
