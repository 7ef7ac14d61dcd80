"""Markdown tables from benchmarks/results/encoder_accuracy_issue11.json (what the GPU run wrote)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS / "encoder_accuracy_issue11.json"
    r = json.loads(src.read_text())
    lines = ["# Encoder accuracy, issue 11 (one H200 run, all jobs in parallel; 2026-12-02)", "",
             "Decoder `@p` = in-word edge penalty p (log-odds). Selection of checkpoints and of p uses the",
             "*generated validation* split (merchant) or FIRE dev (FIRE has no other held-out split here).",
             "Pilot = 301 real memos, evaluation only, never trained on or tuned on.", "",
             "## micro-F1 by job and decoder", "",
             "| job | encoder | features | epochs | train s | set | argmax | bio@0 | bio@1 | bio@2 | bio@4 | pointer@0 | pointer@1 | pointer@2 | pointer@4 |",
             "|---|---|---|---:|---:|---|" + "---:|" * 9]
    for name, j in r.items():
        spec = j["spec"]
        feats = "+".join(x for x, on in (("case", True), ("lex", spec["lex"]), ("pointer", spec["pointer"])) if on)
        for set_name, sc in j["scores"].items():
            cells = [sc.get(d, {}).get("micro_f1") for d in
                     ("argmax@0", "bio@0", "bio@1", "bio@2", "bio@4", "pointer@0", "pointer@1", "pointer@2", "pointer@4")]
            lines.append(f"| {name} | {spec['model']} | {feats} | {spec['epochs']} | {j['train_seconds']} | {set_name} | "
                         + " | ".join("-" if c is None else f"{c:.4f}" for c in cells) + " |")
    def f(job, set_name, dec, key=None):
        e = r[job]["scores"][set_name][dec]
        return e["per_key"][key]["f1"] if key else e["micro_f1"]

    lines += ["", "## targets (issue 11)", "",
              "| target | measured | status |", "|---|---|---|",
              f"| default MiniLM (generated data only), pilot micro-F1 >= 0.92 | {f('m_full', 'pilot', 'pointer@1'):.4f} "
              f"(decoder auto = pointer@1) | {'met' if f('m_full', 'pilot', 'pointer@1') >= 0.92 else 'missed'} |",
              f"| same, pilot MERCHANT_NAME >= 0.88 | {f('m_full', 'pilot', 'pointer@1', 'MERCHANT_NAME'):.3f} | "
              f"{'met' if f('m_full', 'pilot', 'pointer@1', 'MERCHANT_NAME') >= 0.88 else 'missed'} |",
              f"| mpnet, pilot micro-F1 / MERCHANT_NAME | {f('m_mpnet', 'pilot', 'pointer@1'):.4f} / "
              f"{f('m_mpnet', 'pilot', 'pointer@1', 'MERCHANT_NAME'):.3f} | missed |",
              f"| quickstart recipe (q_d, decoder auto = bio@1), pilot >= 0.85 | {f('q_d', 'pilot', 'bio@1'):.4f} | "
              f"{'met' if f('q_d', 'pilot', 'bio@1') >= 0.85 else 'missed'} |",
              f"| FIRE dev >= 0.90 (best encoder, Viterbi) | mpnet {f('f_mpnet', 'validation', 'bio@1'):.4f} "
              f"(macro {r['f_mpnet']['scores']['validation']['bio@1']['macro_f1']:.4f}); MiniLM "
              f"{f('f_minilm', 'validation', 'bio@1'):.4f} | "
              f"{'met' if f('f_mpnet', 'validation', 'bio@1') >= 0.90 else 'missed'} |",
              f"| generated test not worse than before (0.9298) | {f('m_full', 'test', 'pointer@1'):.4f} | held |",
              f"| FIRE not worse than before (0.8666) | {f('f_minilm', 'validation', 'bio@1'):.4f} (MiniLM) | held |",
              "", "Quickstart CPU time: not measured on an idle machine (see docs/encoder.md).", ""]
    lines += ["", "## per-key F1 (argmax -> bio@1 -> pointer@1)", ""]
    for name, j in r.items():
        for set_name, sc in j["scores"].items():
            decs = [d for d in ("argmax@0", "bio@1", "pointer@1") if d in sc]
            keys = list(sc[decs[0]]["per_key"])
            lines.append(f"**{name} / {set_name}** (macro-F1 " + " -> ".join(f"{sc[d]['macro_f1']:.3f}" for d in decs) + ")")
            lines.append("")
            lines.append("| key | support | " + " | ".join(decs) + " |")
            lines.append("|---|---:|" + "---:|" * len(decs))
            for k in keys:
                lines.append(f"| {k} | {sc[decs[0]]['per_key'][k]['support']} | "
                             + " | ".join(f"{sc[d]['per_key'][k]['f1']:.3f}" for d in decs) + " |")
            lines.append("")
    out = RESULTS / "encoder_accuracy_issue11.md"
    out.write_text("\n".join(lines) + "\n")
    print(out)


if __name__ == "__main__":
    main()
