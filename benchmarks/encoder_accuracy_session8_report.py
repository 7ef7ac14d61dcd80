"""Session 8 (issue 11): the generator's cut Fedwire memos and department tags, judged on the pilot,
from the raw GPU JSON of ``encoder_accuracy_issue11.py`` (call rA: ``e_s0..e_s2`` on the new data,
``g_g80`` on the old as the control, ensemble ``ens_e3``; call rB: mpnet ``e_p0``, ``e_p1``, killed at the
deadline, and their ensemble ``ens_ep2``; the two members scored alone afterwards are in
``encoder_accuracy_session8_mpnet.json``)::

    python benchmarks/encoder_accuracy_session8_report.py --raw rA.json rB.json

Writes ``benchmarks/results/encoder_accuracy_session8.{json,md}`` (same layout as sessions 6 and 7).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from encoder_accuracy_session6_report import report_cli  # noqa: E402

WHAT = {
    "e_s0": ("MiniLM", "new generator (n80k), lr 1e-4, 3 ep, seed 0; gen. test = n20k"),
    "e_s1": ("MiniLM", "same, seed 1"),
    "e_s2": ("MiniLM", "same, seed 2"),
    "ens_e3": ("MiniLM", "logits of e_s0..e_s2 averaged"),
    "g_g80": ("MiniLM", "control: session 7's g_g80 again (old generator, g80k), seed 0"),
    "ens_ep2": ("mpnet", "all-mpnet-base-v2 on n80k, 2 ep, seeds 0 and 1 (e_p0, e_p1), killed at the call's 400 s "
                "deadline (both had written their last checkpoint, step 3,822): best checkpoints "
                "so far averaged"),
}


def main() -> None:
    head = ["# Encoder accuracy, session 8 (issue 11; one H200)", "",
            "n80k = `data synth --n 80000 --seed 3` after the generator change (Fedwire memos cut at the memo",
            "column, department tags), g80k = the same command before it; the pilot memos (301 real) are scored,",
            "never trained on."]
    seeds = {"new generator (e_s0..e_s2)": ["e_s0", "e_s1", "e_s2"]}
    report_cli(__doc__, "encoder_accuracy_session8", head, seeds, ["e_s1", "e_s2", "e_s0", "g_g80"], WHAT)


if __name__ == "__main__":
    main()
