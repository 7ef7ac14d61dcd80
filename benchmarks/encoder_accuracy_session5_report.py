"""Session 5 (issue 11): generator change, glued-edge decoding, quickstart recipes; one report.

Two kinds of figures, kept apart:

* **GPU jobs** (``encoder_accuracy_issue11.py`` raw JSON, one H200): every model decoded with the
  pointer heads (``decoder: pointer``, now the merchant default) *without* the glued-edge step,
  which was written after those jobs ran (their logits were not kept).
* **Re-decoded here** (``--runs``): the checkpoints that came back, decoded with the glued-edge
  step off and on, on the pilot memos and both generated test splits (old generator ``c20k``,
  new ``g20k``), in one process on this machine.

    python benchmarks/encoder_accuracy_session5_report.py --raw s5.json s6.json s7.json \\
        --runs runs/g_s0 runs/c_s0 runs/d_s0 runs/d_kd runs/k_g --pilot PILOT --test c20k=PATH --test g20k=PATH

Writes ``benchmarks/results/encoder_accuracy_session5.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import replace
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

ROWS = [  # (job, group, what)
    ("d_len128", "old generator", "default recipe, max_length 128, seed 0 (session 4)"),
    ("c_s0", "old generator", "same, seed 0 again (exported)"),
    ("c_s1", "old generator", "same, seed 1"),
    ("c_s2", "old generator", "same, seed 2"),
    ("c_lr2", "old generator", "same, lr 2e-4"),
    ("g_s0", "new generator", "default recipe, max_length 128, glued acceptor fields, seed 0 (exported)"),
    ("g_s1", "new generator", "same, seed 1"),
    ("g_s2", "new generator", "same, seed 2"),
    ("g_lr2", "new generator", "same, lr 2e-4"),
    ("g_fe", "new generator", "same, word embeddings frozen"),
    ("ens_g3", "new generator", "logits of g_s0..g_s2 averaged"),
    ("k_g", "student", "3 layers distilled from g_s0 (exported)"),
    ("k_g_s1", "student", "same, seed 1"),
    ("qs_old", "quickstart", "old quickstart recipe, old generator (bs 32, lr 1e-4, 2.5 ep)"),
    ("qs_base", "quickstart", "old quickstart recipe, new generator"),
    ("qs_lr2", "quickstart", "lr 2e-4"),
    ("qs_bs16", "quickstart", "batch 16"),
    ("qs_fe", "quickstart", "frozen word embeddings"),
    ("qs_fe35", "quickstart", "frozen, 3.5 epochs"),
    ("qs_fe35_lr2", "quickstart", "frozen, 3.5 epochs, lr 2e-4"),
    ("qc_g_s1", "quickstart", "frozen, 3.5 epochs, lr 2e-4, seed 1"),
    ("qa_g", "quickstart", "**new recipe**: frozen, batch 16, lr 2e-4, 3 epochs"),
    ("qa_g_s1", "quickstart", "new recipe, seed 1"),
    ("qa_g_s2", "quickstart", "new recipe, seed 2"),
    ("qa_c", "quickstart", "new recipe, old generator data"),
    ("qb_g", "quickstart", "new recipe with lr 1e-4"),
    ("qd_g", "quickstart", "new recipe with lr 3e-4"),
]
DEC = "pointer@1"


def gpu_rows(raw_files: list[Path], session4: Path) -> dict:
    jobs: dict = {}
    for f in raw_files:
        jobs.update({k: v for k, v in json.loads(f.read_text()).items() if v.get("scores")})
    rows = {}
    for name, group, what in ROWS:
        if name == "d_len128":  # session 4's compact table kept only the pilot/test figures
            r = json.loads(session4.read_text())["d_len128"]
            rows[name] = {"group": group, "what": what, "pilot": r["micro_f1_bio_pointer_argmax"]["pilot"][DEC],
                          "test_own": r["micro_f1_bio_pointer_argmax"]["test"][DEC], "pilot_bio": r[
                              "micro_f1_bio_pointer_argmax"]["pilot"]["bio@1"], "pilot_mn": None}
            continue
        if name not in jobs:
            continue
        s = jobs[name]["scores"]
        dec = f"{DEC}-noglue" if f"{DEC}-noglue" in s["pilot"] else DEC   # round 3 scored both
        rows[name] = {"group": group, "what": what, "train_seconds": jobs[name].get("train_seconds"),
                      "pilot": s["pilot"][dec]["micro_f1"], "pilot_bio": s["pilot"]["bio@1"]["micro_f1"] if
                      "-noglue" not in dec else s["pilot"]["bio@1-noglue"]["micro_f1"],
                      "pilot_mn": s["pilot"][dec]["per_key"]["MERCHANT_NAME"]["f1"],
                      "validation": s["validation"][dec]["micro_f1"], "test_own": s["test"][dec]["micro_f1"],
                      **{k: s[k][dec]["micro_f1"] for k in s if k.startswith("test_")},
                      **({"pilot_glued": s["pilot"][DEC]["micro_f1"],
                          "pilot_mn_glued": s["pilot"][DEC]["per_key"]["MERCHANT_NAME"]["f1"]}
                         if dec.endswith("-noglue") else {})}
    return rows


def redecode(runs: list[str], sets: dict[str, str]) -> dict:
    from finextract.backends.encoder import load
    from finextract.backends.encoder.span_batch import decode_many
    from finextract.records import read_records
    from finextract.scoring import score

    out = {}
    for run in runs:
        ex = load(run, "best")
        out[run] = {}
        for set_name, path in sets.items():
            recs = read_records(path, ex.task, skip_invalid=True)
            texts, golds = [r.text for r in recs], [r.values for r in recs]
            logits = ex.logits(texts)
            for glued in (False, True):
                opts = replace(ex.decode_options, method="pointer", glued_fields=glued)
                preds = [p for p, _ in decode_many(texts, [o for o, _ in logits], [lg for _, lg in logits], ex.task, opts)]
                rep = score(golds, preds, ex.task)
                out[run][f"{set_name}/{'glued' if glued else 'plain'}"] = {
                    "micro_f1": round(rep.micro.f1, 4), "n": rep.n_records,
                    "MERCHANT_NAME": round(rep.per_key["MERCHANT_NAME"].f1, 4), "CITY": round(rep.per_key["CITY"].f1, 4)}
            print(run, set_name, out[run][f"{set_name}/plain"], out[run][f"{set_name}/glued"], flush=True)
    return out


def mean(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.4f}" if xs else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", type=Path, nargs="+", required=True)
    ap.add_argument("--session4", type=Path, default=RESULTS / "encoder_accuracy_session4.json")
    ap.add_argument("--runs", nargs="*", default=[])
    ap.add_argument("--pilot", required=True)
    ap.add_argument("--test", action="append", default=[], help="NAME=PATH generated test split (repeatable)")
    args = ap.parse_args()
    rows = gpu_rows(args.raw, args.session4)
    sets = {"pilot": args.pilot, **dict(t.split("=", 1) for t in args.test)}
    local = redecode(args.runs, sets) if args.runs else {}
    (RESULTS / "encoder_accuracy_session5.json").write_text(json.dumps({"gpu_jobs": rows, "redecoded": local}, indent=1))

    L = ["# Encoder accuracy, session 5 (issue 11; one H200 for training, this machine for re-decoding)", "",
         "Trained on generated data only; the pilot memos (301 real) are scored, never trained on.",
         f"GPU rows: decoder {DEC} (the merchant default now), glued-edge step **off** (written after these",
         "jobs ran). `gen. test (own)` is each model's own generator's test split; `c20k` / `g20k` the old / new.",
         "", "| job | group | what | train s | gen. test (own) | c20k | g20k | pilot | pilot bio@1 | pilot MERCHANT_NAME |",
         "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        def f(k):
            v = r.get(k)
            return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)
        own = r.get("test_own")
        c20 = r.get("test_c20k", own if r["group"] == "old generator" else None)
        g20 = r.get("test_g20k", own if r["group"] == "new generator" else None)
        secs = "-" if r.get("train_seconds") is None else f"{r['train_seconds']:.0f}"
        L.append(f"| {name} | {r['group']} | {r['what']} | {secs} | {f('test_own')} | "
                 f"{'-' if c20 is None else f'{c20:.4f}'} | {'-' if g20 is None else f'{g20:.4f}'} | "
                 f"{f('pilot')} | {f('pilot_bio')} | {f('pilot_mn')} |")
    old = [rows[n]["pilot"] for n in ("d_len128", "c_s0", "c_s1", "c_s2", "c_lr2") if n in rows]
    new = [rows[n]["pilot"] for n in ("g_s0", "g_s1", "g_s2", "g_lr2") if n in rows]
    qa = [rows[n]["pilot"] for n in ("qa_g", "qa_g_s1", "qa_g_s2") if n in rows]
    L += ["", f"Pilot means ({DEC}, no glued step): old generator {mean(old)} over {len(old)} runs, new generator "
          f"{mean(new)} over {len(new)}; new quickstart recipe {mean(qa)} over {len(qa)} seeds."]
    if local:
        L += ["", "## Re-decoded here: glued-edge step off / on (pointer decoder)", "",
              "| run | " + " | ".join(f"{s} micro (off / on)" for s in sets) + " | pilot MERCHANT_NAME (off / on) |",
              "|---|" + "---:|" * (len(sets) + 1)]
        for run, res in local.items():
            cells = [f"{res[f'{s}/plain']['micro_f1']:.4f} / {res[f'{s}/glued']['micro_f1']:.4f}" for s in sets]
            mn = f"{res['pilot/plain']['MERCHANT_NAME']:.3f} / {res['pilot/glued']['MERCHANT_NAME']:.3f}"
            L.append(f"| {run} | " + " | ".join(cells) + f" | {mn} |")
    (RESULTS / "encoder_accuracy_session5.md").write_text("\n".join(L) + "\n")
    print("\n".join(L))


if __name__ == "__main__":
    main()
