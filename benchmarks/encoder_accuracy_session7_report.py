"""Session 7 (issues 11 and 16): the FFN-narrowed students and MiniLM lr 1e-4 on g80k, one compact
report from the raw GPU JSON of ``encoder_accuracy_issue11.py`` (calls rA: ``t_h``, ``g_g80``; rB: the
students ``k7_*`` of ``t_h``; rC: ``g_g80_s1``, ``g_g80_s2``, ``k7_g80f512``, ensemble ``ens_g80``)::

    python benchmarks/encoder_accuracy_session7_report.py --raw rA.json rB.json rC.json

Writes ``benchmarks/results/encoder_accuracy_session7.{json,md}`` (same layout as session 6's).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from encoder_accuracy_session6_report import report_cli  # noqa: E402

WHAT = {
    "t_h": ("MiniLM", "teacher: h_s0's recipe again (g40k, 6 ep, lr 2e-4, max_length 128)"),
    "g_g80": ("MiniLM", "lr 1e-4 (the default), g80k, 3 ep, seed 0"),
    "g_g80_s1": ("MiniLM", "same, seed 1"),
    "g_g80_s2": ("MiniLM", "same, seed 2"),
    "ens_g80": ("MiniLM", "logits of g_g80, g_g80_s1, g_g80_s2 averaged"),
    "k7_3": ("student", "3 layers distilled from t_h (k_h's recipe: the control)"),
    "k7_3f768": ("student", "same, each FFN cut to 768 of 1536 neurons (model.ffn_size)"),
    "k7_3f512": ("student", "same, FFN 512 (returned, CPU-benchmarked)"),
    "k7_3f384": ("student", "same, FFN 384 (returned, CPU-benchmarked)"),
    "k7_g80f512": ("student", "FFN 512 distilled from g_g80 on g80k, 3 ep, lr 1e-4"),
}


def main() -> None:
    head = ["# Encoder accuracy, session 7 (issues 11 and 16; one H200)", "",
            "Trained on generated data only (g40k = `data synth --n 40000 --seed 2`, g80k = `--n 80000 --seed 3`,",
            "test = g20k's test split); the pilot memos (301 real) are scored, never trained on."]
    seeds = {"MiniLM lr 1e-4 g80k 3 ep (g_g80, _s1, _s2)": ["g_g80", "g_g80_s1", "g_g80_s2"]}
    report_cli(__doc__, "encoder_accuracy_session7", head, seeds, ["g_g80", "t_h", "k7_3", "k7_3f512"], WHAT)


if __name__ == "__main__":
    main()
