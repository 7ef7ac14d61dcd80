"""Session 9 (issue 11): Fedwire memos in the wire's own party order, judged on the pilot, from the raw
GPU JSON of ``encoder_accuracy_issue11.py`` (call rA: MiniLM ``f_s0..f_s3`` and their ensembles
``ens_f3`` / ``ens_f4``; call rB: mpnet ``f_p0``, ``f_p1`` and ``ens_fp2``; call rC: mpnet ``f_p2``,
``f_p3``)::

    python benchmarks/encoder_accuracy_session9_report.py --raw rA.json rB.json rC.json \\
        --before session8_rA.json --pilot ../shared/data/merchant/pilot_memos.jsonl

Writes ``benchmarks/results/encoder_accuracy_session9.{json,md}`` (the layout of sessions 6-8), then adds
two sections: every model scored on session 8's generated test set (``test_n20k``: one set for both
generators' models), and wrong fields on the pilot's Fedwire memos against the rest, per job, for this
session's jobs and ``--before``'s (session 8's ``e_s*``), from the pilot predictions each job kept.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from encoder_accuracy_session6_report import DEC, RESULTS, render, rows  # noqa: E402

WHAT = {
    "f_s0": ("MiniLM", "Fedwire-order generator (f80k), lr 1e-4, 3 ep, seed 0; gen. test = f20k"),
    "f_s1": ("MiniLM", "same, seed 1"),
    "f_s2": ("MiniLM", "same, seed 2"),
    "f_s3": ("MiniLM", "same, seed 3"),
    "ens_f3": ("MiniLM", "logits of f_s0..f_s2 averaged"),
    "ens_f4": ("MiniLM", "logits of f_s0..f_s3 averaged"),
    "f_p0": ("mpnet", "all-mpnet-base-v2 on f80k, 2 ep, lr 5e-5, seed 0 (finished)"),
    "f_p1": ("mpnet", "same, seed 1"),
    "f_p2": ("mpnet", "same, seed 2"),
    "f_p3": ("mpnet", "same, seed 3"),
    "ens_fp2": ("mpnet", "logits of f_p0 and f_p1 averaged"),
}
BEFORE = ("e_s0", "e_s1", "e_s2")


def wrong_fields(preds: list[dict], gold: list[dict], idx: list[int]) -> int:
    """Fields whose predicted value is not the labeled one (either side may be empty)."""
    return sum(preds[i][k] != v for i in idx for k, v in gold[i]["fields"].items())


def wire_split(jobs: dict, pilot: Path) -> list[str]:
    gold = [json.loads(line) for line in pilot.read_text().splitlines() if line.strip()]
    wire = [i for i, g in enumerate(gold) if ":=" in g["text"]]
    rest = [i for i, g in enumerate(gold) if ":=" not in g["text"]]
    lines = ["", f"## Wrong fields on the pilot: its {len(wire)} Fedwire memos against the other {len(rest)}", "",
             "| job | Fedwire memos | other memos |", "|---|---:|---:|"]
    for name, job in jobs.items():
        preds = job.get("pilot_predictions")
        if preds:
            lines.append(f"| {name} | {wrong_fields(preds, gold, wire)} | {wrong_fields(preds, gold, rest)} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", type=Path, nargs="+", required=True)
    ap.add_argument("--before", type=Path, help="session 8's raw call rA (e_s0..e_s2), for the Fedwire table")
    ap.add_argument("--pilot", type=Path, help="the pilot memos (labels), for the Fedwire table")
    args = ap.parse_args()
    head = ["# Encoder accuracy, session 9 (issue 11; one H200)", "",
            "f80k = `data synth --n 80000 --seed 3` after the Fedwire-order change (session 8's n80k is the same",
            "command before it); the pilot memos (301 real) are scored, never trained on."]
    seeds = {"MiniLM, Fedwire-order data (f_s0..f_s3)": ["f_s0", "f_s1", "f_s2", "f_s3"],
             "mpnet, Fedwire-order data (f_p0..f_p3)": ["f_p0", "f_p1", "f_p2", "f_p3"]}
    table = rows(args.raw, WHAT)
    text = render(table, "encoder_accuracy_session9", head, seeds, ["f_s0", "f_s3", "f_p1", "ens_f4", "ens_fp2"])
    jobs: dict = {}
    for f in args.raw:
        jobs.update(json.loads(f.read_text()))
    extra = ["", "## Both generators' models on one generated set (session 8's test split, n20k)", "",
             "| job | f20k (own test) | n20k |", "|---|---:|---:|"]
    for name in WHAT:
        s = jobs.get(name, {}).get("scores", {})
        if "test_n20k" in s:
            extra.append(f"| {name} | {s['test'][DEC]['micro_f1']:.4f} | {s['test_n20k'][DEC]['micro_f1']:.4f} |")
            table[name]["test_n20k"] = s["test_n20k"][DEC]["micro_f1"]
    if args.pilot and args.pilot.exists():
        compared = {n: j for n, j in jobs.items() if n in WHAT}
        if args.before:
            before = json.loads(args.before.read_text())
            compared = {**{f"{n} (session 8)": before[n] for n in BEFORE if n in before}, **compared}
        extra += wire_split(compared, args.pilot)
    means = {label: statistics.mean(table[n]["pilot"] for n in names if n in table) for label, names in seeds.items()}
    (RESULTS / "encoder_accuracy_session9.json").write_text(json.dumps({"jobs": table, "pilot_seed_means": means},
                                                                         indent=1))
    text += "\n".join(extra) + "\n"
    (RESULTS / "encoder_accuracy_session9.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
