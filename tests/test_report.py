"""``finextract report`` on hand-made run directories: tables match the files, Pareto marks,
recommendations, validations, and a real headless-Chromium render of the HTML."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")


def _val(tp: int, fp: int, fn: int, invalid: float = 0.0) -> dict:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    keys = {"MERCHANT_NAME": {"tp": tp, "fp": fp, "fn": fn, "f1": f}, "CITY": {"tp": 1, "fp": 0, "fn": 1, "f1": 2 / 3}}
    return {"micro": {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r, "f1": f},
            "macro": {"f1": f}, "invalid_rate": invalid, "n_records": 10, "per_key": keys}


def make_run(root: Path, name: str, backend: str, counts: list[tuple[int, int, int]], p50: float, rate: float,
             params: int, extra_cfg: dict | None = None, validations: list[dict] | None = None) -> Path:
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    cfg = {"backend": backend, "task": "merchant", "output_dir": str(run), **(extra_cfg or {})}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    lines, best = [], None
    for i, c in enumerate(counts):
        step = 10 * (i + 1)
        row = {"step": step, "checkpoint": f"step-{step}", "val": _val(*c)}
        lines.append(json.dumps(row))
        if best is None or row["val"]["micro"]["f1"] > best["value"]:
            best = {"checkpoint": f"step-{step}", "step": step, "metric": "micro_f1", "value": row["val"]["micro"]["f1"]}
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (run / "best.json").write_text(json.dumps(best))
    (run / "speed.json").write_text(json.dumps({"samples_per_s": rate, "p50_ms": p50, "peak_mem_mb": 300.0,
                                                "describe": {"parameters": params}}))
    (run / "sweep.json").write_text(json.dumps({"status": "ok", "train_seconds": 12.5}))
    (run / "DONE").write_text("{}")
    for i, v in enumerate(validations or []):
        (run / "validations").mkdir(exist_ok=True)
        (run / "validations" / f"v{i}.json").write_text(json.dumps(v))
    return run


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    make_run(root, "crf", "crf", [(6, 2, 4), (7, 2, 3)], p50=0.4, rate=2000.0, params=5000)
    make_run(root, "encoder", "encoder", [(8, 1, 2), (7, 1, 3)], p50=9.0, rate=500.0, params=22_000_000,
             extra_cfg={"model": {"name_or_path": "/x/minilm"}},
             validations=[{"url": "http://127.0.0.1:8000", "offline_micro_f1": 0.84, "endpoint_micro_f1": 0.84,
                           "delta_points": 0.0, "n": 10}])
    make_run(root, "llm-json", "causal_lm", [(9, 1, 1)], p50=120.0, rate=20.0, params=600_000_000,
             extra_cfg={"model": {"name_or_path": "Qwen/Qwen3-0.6B"}, "prompt": {"style": "json-only",
                        "enable_thinking": False}, "lora": {"rank": 16}})
    make_run(root, "llm-slow-worse", "causal_lm", [(8, 2, 2)], p50=300.0, rate=8.0, params=1_700_000_000,
             extra_cfg={"model": {"name_or_path": "Qwen/Qwen3-1.7B"}, "prompt": {"style": "two-step",
                        "enable_thinking": True}, "lora": {"rank": 8}})
    failed = root / "broken"
    failed.mkdir()
    (failed / "config.yaml").write_text(yaml.safe_dump({"backend": "crf", "task": "merchant"}))
    (failed / "sweep.json").write_text(json.dumps({"status": "failed", "error": "train: DataError: bad file"}))
    tiers = tmp_path_factory.mktemp("cfg") / "tiers.yaml"
    tiers.write_text(yaml.safe_dump({"report": {"title": "Test report", "tiers": [
        {"name": "maximum accuracy", "objective": "f1"},
        {"name": "balanced", "objective": "throughput", "max_f1_drop": 0.06},
        {"name": "latency-critical", "objective": "f1", "max_p50_ms": 5},
    ]}}))
    out = root.parent / "report-out"
    res = subprocess.run([sys.executable, "-m", "finextract", "report", str(root), "--out", str(out),
                          "--config", str(tiers)], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "COLUMNS": "200"})
    assert res.returncode == 0, res.stderr
    return root, out


def test_report_tables_match_metric_files(report):
    root, out = report
    rows = {r["name"]: r for r in csv.DictReader((out / "results.csv").open())}
    assert set(rows) == {"crf", "encoder", "llm-json", "llm-slow-worse", "broken"}
    for name in ("crf", "encoder", "llm-json", "llm-slow-worse"):
        best = json.loads((root / name / "best.json").read_text())
        metric = [json.loads(x) for x in (root / name / "metrics.jsonl").read_text().splitlines()
                  if json.loads(x)["checkpoint"] == best["checkpoint"]][0]
        assert float(rows[name]["f1"]) == pytest.approx(metric["val"]["micro"]["f1"])
        assert int(rows[name]["best_step"]) == best["step"]
    assert rows["encoder"]["best_step"] == "10" and rows["crf"]["best_step"] == "20"
    assert rows["llm-json"]["prompt_style"] == "json-only" and rows["llm-json"]["template"] == "no-think"
    assert rows["llm-slow-worse"]["template"] == "think" and rows["llm-json"]["lora_rank"] == "16"
    assert rows["encoder"]["params"] == "22000000" and rows["encoder"]["model"] == "minilm"
    assert rows["broken"]["status"] == "failed"
    md = (out / "report.md").read_text()
    # the Markdown table shows the same F1 (4 decimals) as metrics.jsonl
    assert f"| llm-json | ok | Qwen3-0.6B |" in md and f"{float(rows['llm-json']['f1']):.4f}" in md


def test_pareto_marks_and_recommendations(report):
    _, out = report
    md = (out / "report.md").read_text()
    line = {m.group(1): m.group(0) for m in re.finditer(r"^\| (\S+) \| ok \|.*$", md, re.M)}
    assert line["llm-slow-worse"].endswith("| dominated |")  # slower and worse than llm-json
    for name in ("crf", "encoder", "llm-json"):
        assert line[name].endswith("| frontier |")
    recs = {r["tier"]["name"]: r for r in json.loads((out / "recommendations.json").read_text())}
    assert recs["maximum accuracy"]["pick"] == "llm-json"
    assert recs["maximum accuracy"]["runner_up"] == "encoder"
    assert recs["balanced"]["pick"] == "encoder"  # F1 0.842 is within 6 points of 0.9, and faster than llm-json
    assert recs["latency-critical"]["pick"] == "crf" and recs["latency-critical"]["runner_up"] is None
    assert "maximum accuracy: **llm-json**" in md


def test_html_is_self_contained_with_all_sections(report):
    _, out = report
    html = (out / "report.html").read_text()
    for title in ("Recommendations", "Results", "Accuracy-latency Pareto frontier", "F1 vs parameter count",
                  "F1 vs training step", "Prompt-style comparison", "Per-key F1", "Offline vs endpoint F1",
                  "Failed runs"):
        assert title in html, title
    assert html.count("<svg") == 6  # every figure inline
    assert "src=\"figures" not in html and "http://127.0.0.1:8000" in html
    assert sorted(p.name for p in (out / "figures").glob("*.png")) == sorted(
        ["pareto.png", "f1_vs_params.png", "f1_vs_step.png", "prompt_styles.png", "per_key.png", "endpoint.png"])


def test_report_user_errors(tmp_path):
    res = subprocess.run([sys.executable, "-m", "finextract", "report", str(tmp_path), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, cwd=REPO, env={**os.environ, "COLUMNS": "300"})
    assert res.returncode == 2 and "no run directories" in res.stderr and "Traceback" not in res.stderr


def chromium_screenshot(html: Path, png: Path, height: int = 2400) -> subprocess.CompletedProcess:
    """Render ``html`` in headless Chromium (the flags keep it offline and profile-free)."""
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        return subprocess.run(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size=1280,{height}",
             html.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    _, out = report
    png = tmp_path / "shot.png"
    res = chromium_screenshot(out / "report.html", png)
    assert png.exists() and png.stat().st_size > 20_000, res.stderr[-2000:]
    from PIL import Image

    img = Image.open(png).convert("L")
    assert img.size == (1280, 2400)
    # a blank or error page is one flat colour; a rendered report has text, tables and plots
    hist = img.histogram()
    assert max(hist) / sum(hist) < 0.97
    dark = sum(hist[:100]) / sum(hist)
    assert dark > 0.002
