"""A tiny real model for the serving tests: the ``toy`` backend (test-only).

It "trains" a lexicon of merchant names from labeled records and tags a trailing two-letter
state code -- deterministic, instant, every value a substring of the input -- and lives in a
real run directory (config.yaml, checkpoints/step-1/COMPLETE, best.json), so serving, batch
and validation code paths are exercised exactly as with a trained backend. Control texts:
``__FAIL__`` makes predict() raise, ``__INVALID__`` yields an invalid output (None).
``FX_TOY_DELAY`` (seconds per predict call) slows it down for timeout/kill tests.

Importing this module registers the backend; a subprocess does it with ``toy_cli_command``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from finextract.backends import Backend, register_backend
from finextract.extractor import Extractor
from finextract.rundir import RunDir, mark_checkpoint_complete
from finextract.tasks import load_task

TESTS = Path(__file__).resolve().parent
_STATE = re.compile(r"\b([A-Z]{2})\s*$")

TRAIN = [
    ("SQ *BLUE BOTTLE COFFEE OAKLAND CA", "BLUE BOTTLE COFFEE", "CA"),
    ("TARGET 00000794 MINNEAPOLIS MN", "TARGET 00000794", "MN"),
    ("SHELL OIL 5744 HOUSTON TX", "SHELL OIL 5744", "TX"),
    ("WALGREENS #1234 CHICAGO IL", "WALGREENS #1234", "IL"),
    ("TST* JOES PIZZA BROOKLYN NY", "JOES PIZZA", "NY"),
]
TEXTS = [
    "POS PURCHASE BLUE BOTTLE COFFEE OAKLAND CA",
    "TARGET 00000794 MINNEAPOLIS MN",
    "DEBIT SHELL OIL 5744 HOUSTON TX",
    "UNKNOWN SHOP SPRINGFIELD",
    "WALGREENS #1234 CHICAGO IL",
    "JOES PIZZA",
    "ACH TRANSFER 0042",
]


class ToyExtractor(Extractor):
    def __init__(self, lexicon: list[str]) -> None:
        self.task = load_task("merchant")
        self.lexicon = sorted(lexicon, key=len, reverse=True)  # longest match wins

    def predict(self, texts: Sequence[str]) -> list[dict | None]:
        delay = float(os.environ.get("FX_TOY_DELAY", "0") or 0)
        if delay:
            time.sleep(delay)
        if any("__FAIL__" in t for t in texts):
            raise RuntimeError("toy model failure")
        out: list[dict | None] = []
        for t in texts:
            if "__INVALID__" in t:
                out.append(None)
                continue
            pred = self.task.empty_output()
            for name in self.lexicon:
                if name in t:
                    pred["MERCHANT_NAME"] = name
                    break
            m = _STATE.search(t)
            if m:
                pred["STATE"] = m.group(1)
            out.append(pred)
        return out

    def describe(self) -> dict:
        return {"backend": "toy", "task": "merchant", "lexicon_size": len(self.lexicon)}


def make_toy_run(root: Path, records=TRAIN) -> Path:
    """'Train' the toy: write a real run directory holding the learned lexicon."""
    run = RunDir(root)
    run.create({"backend": "toy", "task": "merchant", "output_dir": str(root)})
    ckpt = run.checkpoint_path(1)
    ckpt.mkdir(parents=True, exist_ok=True)
    (ckpt / "lexicon.json").write_text(json.dumps(sorted({r[1] for r in records})), encoding="utf-8")
    mark_checkpoint_complete(ckpt)
    run.set_best("step-1", 1, 1.0)
    (run.root / "DONE").write_text("{}", encoding="utf-8")
    return root


def load(source: str, checkpoint: str | None = None, **kw) -> ToyExtractor:
    ckpt = RunDir(Path(source)).resolve_checkpoint(checkpoint)
    return ToyExtractor(json.loads((ckpt / "lexicon.json").read_text(encoding="utf-8")))


register_backend(Backend(name="toy", config_cls=None, train=None, load=load, description="test-only lexicon"))


def gold_jsonl(path: Path) -> Path:
    """Labeled merchant records for TEXTS (what a perfect model would say)."""
    task = load_task("merchant")
    rows = []
    for t in TEXTS:
        f = task.empty_output()
        for _, name, _state in TRAIN:
            if name in t:
                f["MERCHANT_NAME"] = name
                break
        m = _STATE.search(t)
        if m:
            f["STATE"] = m.group(1)
        rows.append({"text": t, "fields": f})
    rows[3]["fields"]["CITY"] = "SPRINGFIELD"  # one miss so F1 < 1
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def toy_cli_command(*args: str) -> list[str]:
    """argv running ``finextract ARGS`` in a fresh interpreter with the toy backend registered."""
    code = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_serve_toy; "
            "from finextract.cli import main; main(sys.argv[1:])")
    return [sys.executable, "-c", code, *args]


def test_toy_run_roundtrip(tmp_path):
    from finextract.extractor import load_extractor

    ex = load_extractor(make_toy_run(tmp_path / "toy"))
    assert ex.predict(["TARGET 00000794 MINNEAPOLIS MN"])[0]["MERCHANT_NAME"] == "TARGET 00000794"
    assert ex.predict(["x __INVALID__"]) == [None]


def train_crf_run(root: Path, iterations: int = 30) -> Path:
    """A real CRF run trained on the repo's small merchant sample (seconds on one core)."""
    from finextract.backends import get_backend
    from finextract.config import load_run_config

    sample = TESTS / "data" / "merchant_sample.jsonl"
    cfg = load_run_config(None, ["backend=crf", f"output_dir={root}", f"data.train={sample}",
                                 f"data.validation={sample}", f"train.max_iterations={iterations}",
                                 f"train.checkpoint_every={iterations}"])
    get_backend("crf").train(cfg)
    return root
