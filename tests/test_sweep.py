"""Sweeps: grid expansion, resume, failure recording, results table vs run files, smoke config."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from finextract.config import ConfigError
from finextract.sweep.config import SweepConfig, load_sweep_config
from finextract.sweep.grid import expand

REPO = Path(__file__).resolve().parents[1]
SMOKE_CRF = str(REPO / "configs" / "crf-smoke.yaml")


def cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "finextract", *args], capture_output=True, text=True, cwd=cwd,
                          env=env)


def test_grid_expansion_names_overrides_and_placeholders(tmp_path):
    sweep = SweepConfig.model_validate({
        "output_dir": str(tmp_path / "out"),
        "set": {"data.train": "a.jsonl"},
        "models": {"tiny": {"fn": "finextract.testing.tiny:build_tiny_causal_lm"}},
        "candidates": [
            {"name": "crf", "base": SMOKE_CRF, "grid": {"model.c1": [0.0, 0.5], "model.window": [1, 2]}},
            {"name": "lm", "base": {"backend": "causal_lm", "model": {"name_or_path": "{models.tiny}"}},
             "grid": {"prompt.style": ["json-only", "minimal"], "prompt.enable_thinking": [True, False]}},
        ],
    })
    specs = expand(sweep)
    assert [s.name for s in specs[:4]] == ["crf__c1-0.0__window-1", "crf__c1-0.0__window-2",
                                           "crf__c1-0.5__window-1", "crf__c1-0.5__window-2"]
    assert specs[1].config["model"]["window"] == 2 and specs[1].config["data"]["train"] == "a.jsonl"
    assert specs[1].config["output_dir"] == str(tmp_path / "out" / "crf__c1-0.0__window-2")
    lm = specs[4]
    assert lm.name == "lm__style-json-only__enable_thinking-true"
    assert lm.config["model"]["name_or_path"] == str(tmp_path / "out" / "_models" / "tiny")
    assert lm.config["prompt"]["enable_thinking"] is True
    assert len(specs) == 8 and len({s.name for s in specs}) == 8


def test_bad_sweep_configs_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"candidates": [{"name": "x", "base": SMOKE_CRF, "grid": {"model.c1": []}}]}))
    with pytest.raises(ConfigError, match="no values"):
        load_sweep_config(bad)
    sweep = SweepConfig.model_validate({"candidates": [{"name": "x", "base": SMOKE_CRF, "set": ["model.nope=1"]}]})
    with pytest.raises(ConfigError, match="run x: invalid config"):
        expand(sweep)
    res = cli("sweep", str(bad))
    assert res.returncode == 2 and "Traceback" not in res.stderr and "no values" in res.stderr


@pytest.fixture(scope="module")
def crf_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    path = tmp / "sweep.yaml"
    path.write_text(yaml.safe_dump({
        "name": "t", "output_dir": str(tmp / "out"),
        "throughput": {"texts": 16, "batch_size": 8, "latency_samples": 4, "repeats": 1},
        "candidates": [
            {"name": "crf", "base": SMOKE_CRF, "grid": {"model.window": [1]}},
            {"name": "broken", "base": SMOKE_CRF, "set": [f"data.train={tmp / 'missing.jsonl'}"]},
            {"name": "crf-c1", "base": SMOKE_CRF, "set": ["model.c1=0.5"]},
        ],
    }))
    first = cli("sweep", str(path), "--no-report")
    return tmp, path, first


@pytest.mark.slow
def test_failing_run_is_recorded_and_sweep_continues(crf_sweep):
    tmp, _, res = crf_sweep
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in csv.DictReader((tmp / "out" / "results.csv").open())}
    assert list(rows) == ["crf__window-1", "broken", "crf-c1"]  # the run after the failure ran
    assert rows["broken"]["status"] == "failed" and "DataError" in rows["broken"]["error"]
    assert "Traceback" in (tmp / "out" / "broken" / "error.txt").read_text()
    assert rows["crf-c1"]["status"] == "ok" and (tmp / "out" / "crf-c1" / "DONE").exists()
    assert "did not finish: broken" in res.stdout


@pytest.mark.slow
def test_results_table_matches_run_files(crf_sweep):
    tmp, _, _ = crf_sweep
    table = json.loads((tmp / "out" / "results.json").read_text())
    for row in table:
        if row["status"] != "ok":
            continue
        run = Path(row["run_dir"])
        best = json.loads((run / "best.json").read_text())
        metric = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()
                  if json.loads(x)["checkpoint"] == best["checkpoint"]][-1]
        speed = json.loads((run / "speed.json").read_text())
        assert row["best_step"] == best["step"]
        assert row["f1"] == metric["val"]["micro"]["f1"] == best["value"]
        assert row["invalid_rate"] == metric["val"]["invalid_rate"]
        assert row["samples_per_s"] == speed["samples_per_s"] and row["p50_ms"] == speed["p50_ms"]
        assert row["params"] == speed["describe"]["params"] > 0
        assert row["train_seconds"] > 0 and row["peak_mem_mb"] > 0


@pytest.mark.slow
def test_resume_skips_finished_runs(crf_sweep):
    tmp, path, _ = crf_sweep
    done = tmp / "out" / "crf__window-1" / "DONE"
    model = tmp / "out" / "crf__window-1" / "checkpoints" / "step-20" / "model.crfsuite"
    stamps = (done.stat().st_mtime_ns, model.stat().st_mtime_ns)
    res = cli("sweep", str(path), "--no-report")
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("skipped (DONE)") == 2 and "broken: failed" in res.stdout
    assert (done.stat().st_mtime_ns, model.stat().st_mtime_ns) == stamps
    dry = cli("sweep", str(path), "--dry-run")
    assert dry.stdout.count("DONE") == 2 and "to run" in dry.stdout


@pytest.mark.slow
def test_smoke_sweep_config_runs_and_renders_report(tmp_path):
    """configs/sweep-smoke.yaml, one run per backend (the full grid is what CI's smoke job runs)."""
    out = tmp_path / "smoke"
    res = cli("sweep", "configs/sweep-smoke.yaml", "--set", f"output_dir={out}",
              "--only", "crf__window-2", "--only", "encoder", "--only", "causal__*false__rank-4")
    assert res.returncode == 0, res.stdout + res.stderr
    rows = {r["name"]: r for r in csv.DictReader((out / "results.csv").open())}
    assert set(rows) == {"crf__window-2", "encoder", "causal__style-minimal__enable_thinking-false__rank-4"}
    assert all(r["status"] == "ok" for r in rows.values()), rows
    lm = rows["causal__style-minimal__enable_thinking-false__rank-4"]
    assert lm["prompt_style"] == "minimal" and lm["template"] == "no-think" and lm["lora_rank"] == "4"
    html = (out / "report" / "report.html").read_text()
    assert "<svg" in html and "Pareto" in html and "encoder" in html
    assert (out / "report" / "report.md").exists() and (out / "report" / "figures" / "pareto.png").exists()


def test_timeout_is_recorded_as_failure(tmp_path):
    from finextract.sweep.runner import run_one

    sweep = SweepConfig.model_validate({"output_dir": str(tmp_path / "out"), "run_timeout_s": 0.2,
                                        "candidates": [{"name": "slow", "base": SMOKE_CRF}]})
    (spec,) = expand(sweep)
    row = run_one(spec, sweep)
    assert row["status"] == "failed" and "timed out after 0.2 s" in row["error"]
    assert "TimeoutError" in (tmp_path / "out" / "slow" / "error.txt").read_text()
    assert not (tmp_path / "out" / "slow" / "DONE").exists()
