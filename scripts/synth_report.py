"""Describe a generated merchant set, and optionally check how a quick CRF trained on it
scores on real descriptors (the only measure that matters for a generator).

    python scripts/synth_report.py --n 8000 --seed 0 --out /tmp/synth_report
    python scripts/synth_report.py --crf --pilot ../shared/data/merchant/pilot_memos.jsonl

Prints the format mix, presence rates, diversity counts and example records; with ``--crf``
trains python-crfsuite on the train split with the ``crf`` backend's features and prints
per-key scores on the synthetic test split and on the real file. Writes ``report.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from pathlib import Path

from finextract.records import read_records
from finextract.synth import DEFAULT_PRESENCE, DEFAULT_PROFILE, PROFILES, resolve_presence, with_options, write_splits
from finextract.tasks import load_task


def describe(recs) -> dict:
    n = len(recs)
    fam = Counter(r.meta.get("family", "?") for r in recs)
    return {
        "records": n,
        "format_mix": {k: round(v / n, 4) for k, v in fam.most_common()},
        "presence": {k: round(sum(1 for r in recs if r.values[k]) / n, 4) for k in DEFAULT_PRESENCE},
        "distinct_merchant_names": len({r.values["MERCHANT_NAME"] for r in recs}),
        "distinct_cities": len({r.values["CITY"] for r in recs if r.values["CITY"]}),
        "distinct_states": len({r.values["STATE"] for r in recs if r.values["STATE"]}),
        "distinct_intermediaries": len({r.values["INTERMEDIARY"] for r in recs if r.values["INTERMEDIARY"]}),
        "name_repeated_in_text": round(sum(r.text.count(r.values["MERCHANT_NAME"]) > 1 for r in recs) / n, 4),
        "mean_chars": round(sum(len(r.text) for r in recs) / n, 1),
    }


def crf_check(train, evals: dict, task, iterations: int, errors: Path | None = None) -> dict:
    import pycrfsuite

    from finextract.backends.crf.model import CrfExtractor
    from finextract.backends.crf.tagging import bio_tags
    from finextract.backends.crf.tokens import sentence_features, tokenize
    from finextract.scoring import score

    trainer = pycrfsuite.Trainer(verbose=False)
    for r in train:
        toks = tokenize(r.text)
        if toks:
            trainer.append(sentence_features(r.text, toks, 2), bio_tags(r.text, toks, r.values, task))
    trainer.set_params({"c1": 0.05, "c2": 0.01, "max_iterations": iterations, "feature.possible_transitions": True})
    path = Path("/tmp/synth_report_crf.model")
    t0 = time.perf_counter()
    trainer.train(str(path))
    out = {"train_seconds": round(time.perf_counter() - t0, 1), "iterations": iterations}
    ex = CrfExtractor(task, path, 2, "marginal")
    for name, recs in evals.items():
        preds = ex.predict([r.text for r in recs])
        rep = score([r.values for r in recs], preds, task)
        if errors is not None:   # for error analysis only: written outside the repository, never committed
            errors.parent.mkdir(parents=True, exist_ok=True)
            with open(errors.with_suffix(f".{name}.jsonl"), "w", encoding="utf-8") as fh:
                for r, p in zip(recs, preds):
                    p = p or {}
                    diff = {k: [r.values[k], p.get(k, "")] for k in r.values
                            if r.values[k].strip() != str(p.get(k, "") or "").strip()}
                    if diff:
                        fh.write(json.dumps({"text": r.text, "diff": diff}, ensure_ascii=False) + "\n")
        out[name] = {"micro_f1": round(rep.micro.f1, 4), "macro_f1": round(rep.macro_f1, 4),
                     "per_key": {k: {"f1": round(c.f1, 4), "support": c.support} for k, c in rep.per_key.items()}}
        fams = sorted({r.meta.get("family") for r in recs if r.meta.get("family")})
        if fams:   # generated sets: micro F1 per format family
            out[name]["per_family_micro_f1"] = {
                f: round(score([r.values for r, _ in pairs], [p for _, p in pairs], task).micro.f1, 4)
                for f in fams for pairs in [[(r, p) for r, p in zip(recs, preds) if r.meta.get("family") == f]]}
    return out


def add_result(path: Path, variant: str, args, options: dict, report: dict) -> None:
    """Add one seed's CRF scores to the variants file (one entry per variant, one row per seed)."""
    data = json.loads(path.read_text()) if path.exists() else {"variants": {}}
    entry = data["variants"].setdefault(variant, {
        "generator": {"profile": args.profile, "options": options, "presence_overrides": args.presence,
                      "n": args.n, "format_mix": report["format_mix"], "presence_measured": report["presence"]},
        "model": f"crf (python-crfsuite, {args.iterations} L-BFGS iterations, crf backend features)",
        "runs": {}})
    crf = report["crf"]
    row = {"train_records": report["split_sizes"]["train"], "train_seconds": crf["train_seconds"],
           "generated_test": {"micro_f1": crf["synthetic_test"]["micro_f1"], "macro_f1": crf["synthetic_test"]["macro_f1"]}}
    if "pilot" in crf:
        row["pilot"] = {"micro_f1": crf["pilot"]["micro_f1"], "macro_f1": crf["pilot"]["macro_f1"],
                        "per_key_f1": {k: v["f1"] for k, v in crf["pilot"]["per_key"].items()}}
    for name, res in crf.items():
        if isinstance(res, dict) and name != "pilot":
            key = "generated_test" if name == "synthetic_test" else name
            row.setdefault(key, {"micro_f1": res["micro_f1"], "macro_f1": res["macro_f1"]})
            if "per_family_micro_f1" in res:
                row[key]["per_family_micro_f1"] = res["per_family_micro_f1"]
    entry["runs"][str(args.seed)] = row
    runs = [r for r in entry["runs"].values() if "pilot" in r]
    if runs:
        keys = runs[0]["pilot"]["per_key_f1"]
        entry["mean"] = {"seeds": sorted(int(s) for s in entry["runs"]),
                         "pilot_micro_f1": round(sum(r["pilot"]["micro_f1"] for r in runs) / len(runs), 4),
                         "pilot_per_key_f1": {k: round(sum(r["pilot"]["per_key_f1"][k] for r in runs) / len(runs), 4)
                                              for k in keys},
                         "generated_test_micro_f1": round(sum(r["generated_test"]["micro_f1"] for r in runs) / len(runs), 4)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=8000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/synth_report"))
    ap.add_argument("--examples", type=int, default=10)
    ap.add_argument("--profile", default=DEFAULT_PROFILE, choices=sorted(PROFILES), help="generator profile")
    ap.add_argument("--option", action="append", default=[], metavar="FIELD=JSON",
                    help="replace a profile field for an ablation, e.g. --option name_cut=0 --option weights='\"study\"'")
    ap.add_argument("--eval", action="append", default=[], metavar="NAME=PATH",
                    help="with --crf: also score this labeled .jsonl (e.g. another profile's generated test split)")
    ap.add_argument("--variant", default="", help="name of this run in --results")
    ap.add_argument("--results", type=Path, default=None,
                    help="JSON file of variants to add this run to (benchmarks/results/generator_realism.json)")
    ap.add_argument("-p", "--presence", action="append", default=[], metavar="KEY=RATE",
                    help="per-key presence override (repeatable), as in `finextract data synth -p`")
    ap.add_argument("--crf", action="store_true", help="train a quick CRF and score it on --pilot")
    ap.add_argument("--pilot", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/merchant/pilot_memos.jsonl")
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--errors", type=Path, default=None,
                    help="with --crf: write each scored record whose prediction differs (gold, predicted) to "
                         "ERRORS.<split>.jsonl, for error analysis (keep it outside the repository)")
    args = ap.parse_args()

    task = load_task("merchant")
    t0 = time.perf_counter()
    presence = {k.strip().upper(): float(v) for k, _, v in (item.partition("=") for item in args.presence)}
    options = {k.strip(): json.loads(v) for k, _, v in (item.partition("=") for item in args.option)}
    profile = with_options(args.profile, options)
    rates = resolve_presence(presence, profile)
    paths = write_splits(args.out, n=args.n, seed=args.seed, presence=presence, profile=profile)
    gen_s = time.perf_counter() - t0
    splits = {k: read_records(p, task) for k, p in paths.items()}
    allrecs = [r for recs in splits.values() for r in recs]
    report = {"seed": args.seed, "profile": args.profile, "options": options, "presence_target": rates,
              "generate_seconds": round(gen_s, 2),
              "split_sizes": {k: len(v) for k, v in splits.items()}, **describe(allrecs)}
    print(f"{report['records']} records in {gen_s:.1f}s; splits {report['split_sizes']}")
    print("format mix:", ", ".join(f"{k} {v:.1%}" for k, v in report["format_mix"].items()))
    print(f"{'key':20s} {'target':>7s} {'measured':>9s}")
    for k, v in report["presence"].items():
        print(f"{k:20s} {rates[k]:7.3f} {v:9.3f}")
    for k in ("distinct_merchant_names", "distinct_cities", "distinct_states", "distinct_intermediaries",
              "name_repeated_in_text", "mean_chars"):
        print(f"{k}: {report[k]}")
    rng = random.Random(args.seed)
    report["examples"] = []
    for r in rng.sample(allrecs, min(args.examples, len(allrecs))):
        ex = {"family": r.meta.get("family"), "text": r.text, "fields": {k: v for k, v in r.values.items() if v}}
        report["examples"].append(ex)
        print(json.dumps(ex, ensure_ascii=False))
    if args.crf:
        evals = {"synthetic_test": splits["test"]}
        if args.pilot.exists():
            evals["pilot"] = read_records(args.pilot, task)
        for item in args.eval:
            name, _, path = item.partition("=")
            evals[name] = read_records(Path(path), task)
        report["crf"] = crf_check(splits["train"], evals, task, args.iterations, args.errors)
        for name in evals:
            r = report["crf"][name]
            print(f"CRF on {name}: micro F1 {r['micro_f1']:.3f}, macro F1 {r['macro_f1']:.3f}")
            print("  " + ", ".join(f"{k} {v['f1']:.3f}" for k, v in r["per_key"].items()))
    (args.out / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    if args.results is not None and args.crf:
        add_result(args.results, args.variant or args.profile, args, options, report)
    print(f"wrote {args.out / 'report.json'}")


if __name__ == "__main__":
    main()
