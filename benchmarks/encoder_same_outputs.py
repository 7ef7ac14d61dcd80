"""Do two source trees give byte-identical encoder outputs? (issue 16's Python speed-ups must not change any.)

Each tree is imported in its own subprocess (``PYTHONPATH=TREE/src``), predicts every text of
``--data`` (JSONL files with a ``text`` field) plus a list of odd inputs, 64 at a time and one at a
time, and featurizes them; the parent compares the JSON of ``predict_with_confidence`` (values and
confidences) and every featurize array (names, order, dtype, shape, values) exactly::

    python benchmarks/encoder_same_outputs.py --run runs/k7_3f512 --before /tmp/base/src \\
        --data ../shared/data/merchant/pilot_memos.jsonl --data /tmp/synth/train.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

HERE_SRC = Path(__file__).resolve().parents[1] / "src"
ODD = ["", " ", "   ", "\t", "ß", "STRASSE ßÜ MÜNCHEN", "straße café 1234 BERLIN", "ﬁﬂ SQ *ﬁx", "İstanbul TST* ŞEHİR",
       "SAN FRANCISCOCA", "TORONTOON", "SQ *JOE'S COFFEE SAN FRANCISCO CA", "SQ*BLUE BOTTLE OAKLAND CA",
       "TST*SHAKE SHACK NEW YORK NY 10001", "PAYPAL *EBAY 402-935-7733 CA", "PP*ETSY", "SQUARE SQ",
       "FT LAUDERDA FL", "ABC LOCKSMITH CO GOSSan Francis", "FARM AT THE CARNEROSNAPA CA",
       "FARM FRESH TO FARM FRESH TO YOU", "AMZN Mktp US*2Y2L ß AMZN.COM/BILL WA", "x" * 500,
       " ".join(["WALMART SUPERCENTER #1234 SPRINGFIELD IL 62701"] * 12), "ß" * 80, "ẞ ß ŉ ǰ ﬀ ΐ" * 5,
       "#1234 $12.34 12/31/2024 555-010-2030 94107-1234 A1B2C3D4 1234567", "  leading and trailing  ",
       "日本語 東京 TOKYO JP", "😀 EMOJI STORE 😀 LA CA", "ß SQ *ß", "ßSQ *ABC", "sq *lower case ny ny"]


def dump(run: str, data: list[str], out: str) -> None:
    """In the child: predictions and featurize arrays of this process's tree, pickled to ``out``."""
    from finextract.records import iter_jsonl
    from finextract.runtime import load_with_runtime

    texts = [r["text"] for f in data for _, r in iter_jsonl(f)] + ODD * 2
    ex = load_with_runtime(run, "best", "onnx", workers=1, num_threads=1)
    calls = [texts[i:i + 64] for i in range(0, len(texts), 64)]
    res = {"texts": texts,
           "preds": [json.dumps(p, sort_keys=True) for c in calls for p in ex.predict_with_confidence(c)],
           "preds1": [json.dumps(p, sort_keys=True) for t in ODD for p in ex.predict_with_confidence([t])],
           "feats": [ex._encode(c) for c in calls],
           "feats7": [ex._encode(texts[i:i + 7]) for i in range(0, min(len(texts), 700), 7)]}
    Path(out).write_bytes(pickle.dumps(res))


def same_batch(a: tuple, b: tuple) -> bool:
    (fa, oa), (fb, ob) = a, b
    return oa == ob and list(fa) == list(fb) and all(
        fa[n].dtype == fb[n].dtype and fa[n].shape == fb[n].shape and (fa[n] == fb[n]).all() for n in fa)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--before", required=True, help="the other tree's src/ folder")
    ap.add_argument("--data", action="append", required=True)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_out:
        dump(args.run, args.data, args.child_out)
        return
    outs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, src in (("before", args.before), ("this", str(HERE_SRC))):
            out = str(Path(tmp) / f"{name}.pkl")
            cmd = [sys.executable, __file__, "--run", args.run, "--before", args.before, "--child-out", out]
            cmd += [x for d in args.data for x in ("--data", d)]
            subprocess.run(cmd, env={**os.environ, "PYTHONPATH": src}, check=True)
            outs[name] = pickle.loads(Path(out).read_bytes())
    a, b = outs["before"], outs["this"]
    assert a["texts"] == b["texts"]
    report = {"texts": len(a["texts"])}
    for k in ("preds", "preds1"):
        report[f"{k}_differ"] = sum(x != y for x, y in zip(a[k], b[k])) + abs(len(a[k]) - len(b[k]))
    for k in ("feats", "feats7"):
        report[f"{k}_batches"] = len(a[k])
        report[f"{k}_differ"] = sum(not same_batch(x, y) for x, y in zip(a[k], b[k])) + abs(len(a[k]) - len(b[k]))
    report["equal"] = not any(v for k, v in report.items() if k.endswith("_differ"))
    print(json.dumps(report))
    sys.exit(0 if report["equal"] else 1)


if __name__ == "__main__":
    main()
