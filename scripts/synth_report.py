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
from finextract.synth import DEFAULT_PRESENCE, write_splits
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


def crf_check(train, evals: dict, task, iterations: int) -> dict:
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
        rep = score([r.values for r in recs], ex.predict([r.text for r in recs]), task)
        out[name] = {"micro_f1": round(rep.micro.f1, 4), "macro_f1": round(rep.macro_f1, 4),
                     "per_key": {k: {"f1": round(c.f1, 4), "support": c.support} for k, c in rep.per_key.items()}}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=8000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/synth_report"))
    ap.add_argument("--examples", type=int, default=10)
    ap.add_argument("--crf", action="store_true", help="train a quick CRF and score it on --pilot")
    ap.add_argument("--pilot", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/merchant/pilot_memos.jsonl")
    ap.add_argument("--iterations", type=int, default=100)
    args = ap.parse_args()

    task = load_task("merchant")
    t0 = time.perf_counter()
    paths = write_splits(args.out, n=args.n, seed=args.seed)
    gen_s = time.perf_counter() - t0
    splits = {k: read_records(p, task) for k, p in paths.items()}
    allrecs = [r for recs in splits.values() for r in recs]
    report = {"seed": args.seed, "generate_seconds": round(gen_s, 2),
              "split_sizes": {k: len(v) for k, v in splits.items()}, **describe(allrecs)}
    print(f"{report['records']} records in {gen_s:.1f}s; splits {report['split_sizes']}")
    print("format mix:", ", ".join(f"{k} {v:.1%}" for k, v in report["format_mix"].items()))
    print(f"{'key':20s} {'target':>7s} {'measured':>9s}")
    for k, v in report["presence"].items():
        print(f"{k:20s} {DEFAULT_PRESENCE[k]:7.3f} {v:9.3f}")
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
        report["crf"] = crf_check(splits["train"], evals, task, args.iterations)
        for name in evals:
            r = report["crf"][name]
            print(f"CRF on {name}: micro F1 {r['micro_f1']:.3f}, macro F1 {r['macro_f1']:.3f}")
            print("  " + ", ".join(f"{k} {v['f1']:.3f}" for k, v in r["per_key"].items()))
    (args.out / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"wrote {args.out / 'report.json'}")


if __name__ == "__main__":
    main()
