"""Session 6 (issue 11): all-mpnet-base-v2 at max_length 128 on the new generator, learning-rate and
data-size repeats of the MiniLM default, issue 16's student; one compact report from the raw GPU JSON.

Every job was trained and scored on one H200 by ``encoder_accuracy_issue11.py`` (jobs ``h_*``,
``p_*``, ``k_h``, ensemble ``ens_h3``), the decoder being the merchant default ``pointer@1`` with
the glued-edge step on; ``-noglue`` figures are the same logits decoded without it, the column
that compares with session 5's GPU table (its jobs predate that step)::

    python benchmarks/encoder_accuracy_session6_report.py --raw r6.json r6b.json r6c.json

Writes ``benchmarks/results/encoder_accuracy_session6.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
DEC = "pointer@1"
KEYS = ("MERCHANT_NAME", "CITY", "STATE", "INTERMEDIARY", "DYNAMIC_DESCRIPTOR", "PHONE", "WEBSITE", "STREET",
        "ZIP", "COUNTRY")
WHAT = {
    "h_s0": ("MiniLM", "default recipe (g40k, 6 ep, max_length 128) at lr 2e-4, seed 0 (exported)"),
    "h_s1": ("MiniLM", "same, seed 1"),
    "h_s2": ("MiniLM", "same, seed 2"),
    "ens_h3": ("MiniLM", "logits of h_s0..h_s2 averaged"),
    "h_g80": ("MiniLM", "lr 2e-4, twice the distinct data (g80k, 3 ep)"),
    "k_h": ("student", "3 layers distilled from h_s0 (issue 16's CPU model, exported)"),
    "p_g": ("mpnet", "all-mpnet-base-v2, g40k, 3 ep, lr 5e-5, max_length 128"),
    "p_g80": ("mpnet", "mpnet, g80k, 2 ep (**new mpnet recipe**)"),
    "p_g80_s1": ("mpnet", "same, seed 1"),
    "p_g80_e3": ("mpnet", "mpnet, g80k, 3 ep"),
    "ens_p3": ("mpnet", "p_g80_s2, p_g80_s3 (seeds 2, 3) and p_g160 (g160k, 1 ep) averaged; all three were "
                        "killed **unfinished** at the call's 445 s deadline: their best checkpoints so far"),
}


def rows(raw: list[Path], what_by_job: dict = WHAT) -> dict:
    jobs: dict = {}
    for f in raw:
        jobs.update(json.loads(f.read_text()))
    out = {}
    for name, (group, what) in what_by_job.items():
        s = jobs.get(name, {}).get("scores")
        if not s:
            continue
        pilot = s["pilot"][DEC]
        out[name] = {"group": group, "what": what, "train_seconds": jobs[name].get("train_seconds"),
                     "test": s["test"][DEC]["micro_f1"], "pilot": pilot["micro_f1"],
                     "pilot_noglue": s["pilot"].get(f"{DEC}-noglue", {}).get("micro_f1"),
                     "test_noglue": s["test"].get(f"{DEC}-noglue", {}).get("micro_f1"),
                     "pilot_macro": pilot.get("macro_f1"),
                     "pilot_per_key": {k: pilot["per_key"][k] for k in KEYS if k in pilot["per_key"]}}
    return out


def fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def render(table: dict, name: str, head: list[str], seeds: dict, best: list[str]) -> str:
    """Write ``RESULTS/{name}.{json,md}``: the job table, seed means and the pilot's per-key F1."""
    (RESULTS / f"{name}.json").write_text(json.dumps(table, indent=1))
    lines = head + [
             f"Decoder {DEC} with the glued-edge step (the shipped default); `noglue` = same logits without it.",
             "", "| job | group | what | train s | gen. test | pilot | pilot noglue | pilot MERCHANT_NAME | pilot macro |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for job, r in table.items():
        mn = r["pilot_per_key"].get("MERCHANT_NAME", {}).get("f1")
        lines.append(f"| {job} | {r['group']} | {r['what']} | {fmt(r['train_seconds'] and round(r['train_seconds']))} | "
                     f"{fmt(r['test'])} | {fmt(r['pilot'])} | {fmt(r['pilot_noglue'])} | {fmt(mn)} | "
                     f"{fmt(r['pilot_macro'])} |")
    lines += ["", "Seed means (pilot, with / without the glued step):"]
    for label, names in seeds.items():
        got = [table[n] for n in names if n in table]
        if got:
            noglue = [r["pilot_noglue"] for r in got if r["pilot_noglue"] is not None]
            lines.append(f"- {label}: {statistics.mean(r['pilot'] for r in got):.4f} / "
                         + (f"{statistics.mean(noglue):.4f}" if len(noglue) == len(got) else "-"))
    best = [n for n in best if n in table]
    if best:
        lines += ["", "## Pilot per key (F1 / support)", "", "| key | " + " | ".join(best) + " |",
                  "|---|" + "---:|" * len(best)]
        for k in KEYS:
            cells = [table[n]["pilot_per_key"].get(k) for n in best]
            sup = next((c["support"] for c in cells if c), 0)
            lines.append(f"| {k} ({sup}) | " + " | ".join(fmt(c and c["f1"]) for c in cells) + " |")
    text = "\n".join(lines) + "\n"
    (RESULTS / f"{name}.md").write_text(text)
    return text


def report_cli(doc: str, name: str, head: list[str], seeds: dict, best: list[str], what_by_job: dict = WHAT) -> None:
    """``--raw FILE...`` -> the report, printed and written (one entry point for every session's report)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", type=Path, nargs="+", required=True)
    args = ap.parse_args()
    print(render(rows(args.raw, what_by_job), name, head, seeds, best))


def main() -> None:
    head = ["# Encoder accuracy, session 6 (issue 11; one H200)", "",
            "Trained on generated data only (card profile, new generator: g40k = `data synth --n 40000 --seed 2`,",
            "g80k = `--n 80000 --seed 3`, test = g20k's test split); the pilot memos (301 real) are scored, never",
            "trained on."]
    seeds = {"MiniLM lr 2e-4 (h_s0..h_s2)": ["h_s0", "h_s1", "h_s2"], "mpnet g80k 2 ep (p_g80, p_g80_s1)":
             ["p_g80", "p_g80_s1"]}
    report_cli(__doc__, "encoder_accuracy_session6", head, seeds, ["p_g80_s1", "p_g80", "h_g80", "h_s0"])


if __name__ == "__main__":
    main()
