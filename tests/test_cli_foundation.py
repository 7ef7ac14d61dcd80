"""CLI behaviour of the foundation commands: data check, score, user-defined tasks, I/O."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from finextract.records import read_predictions, read_texts, write_predictions
from finextract.tasks import load_task

DATA = Path(__file__).parent / "data"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "finextract", *args], capture_output=True, text=True,
                          cwd=cwd, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})


def test_data_check_ok_and_failures_never_traceback():
    ok = run_cli("data", "check", str(DATA / "merchant_sample.jsonl"), "--task", "merchant")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "OK" in ok.stdout
    for path in sorted((DATA / "broken").glob("*.jsonl")):
        res = run_cli("data", "check", str(path), "--task", "merchant")
        assert "Traceback" not in res.stdout + res.stderr, path
        assert res.returncode == (0 if path.stem == "duplicate-text" else 1), (path, res.stdout)
        if path.stem not in ("empty-file",):
            assert f"{path.name}:" in res.stdout.replace("\n", "")


def test_unknown_task_is_a_clear_error():
    res = run_cli("data", "check", str(DATA / "merchant_sample.jsonl"), "--task", "nope")
    assert res.returncode == 2 and "unknown task 'nope'" in res.stderr and "Traceback" not in res.stderr


def write_preds(path: Path, rows: list[dict], field: str = "fields") -> None:
    path.write_text("".join(json.dumps({"text": r["text"], field: r[field]}) + "\n" for r in rows), encoding="utf-8")


def test_score_self_is_one(tmp_path: Path):
    out = tmp_path / "r.json"
    res = run_cli("score", str(DATA / "merchant_sample.jsonl"), str(DATA / "merchant_sample.jsonl"), "-o", str(out))
    assert res.returncode == 0, res.stderr
    report = json.loads(out.read_text())
    assert report["micro"]["f1"] == 1.0 and report["n_invalid"] == 0


def test_score_perturbed_copy_hand_computed(tmp_path: Path):
    rows = [json.loads(l) for l in (DATA / "merchant_sample.jsonl").read_text().splitlines()]
    # gold non-empty values: 4 + 4 + 3 + 3 = 14
    rows[0]["fields"]["CITY"] = "SAN"              # FP + FN
    rows[1]["fields"]["WEBSITE"] = ""              # FN
    rows[2]["fields"]["ZIP"] = "CO"                # FP (gold ZIP empty)
    pred = tmp_path / "pred.jsonl"
    write_preds(pred, rows)
    lines = pred.read_text().splitlines()
    lines[3] = json.dumps({"text": rows[3]["text"], "fields": {}, "valid": False})  # invalid: 3 FN
    pred.write_text("\n".join(lines) + "\n")
    out = tmp_path / "r.json"
    res = run_cli("score", str(DATA / "merchant_sample.jsonl"), str(pred), "-o", str(out), "--errors")
    assert res.returncode == 0, res.stderr
    r = json.loads(out.read_text())
    tp, fp, fn = 14 - 1 - 1 - 3, 2, 1 + 1 + 3
    assert (r["micro"]["tp"], r["micro"]["fp"], r["micro"]["fn"]) == (tp, fp, fn)
    p, rec = tp / (tp + fp), tp / (tp + fn)
    assert r["micro"]["f1"] == pytest.approx(2 * p * rec / (p + rec))
    assert r["n_invalid"] == 1 and r["invalid_rate"] == 0.25
    assert "gold='SAN FRANCISCO' pred='SAN'" in res.stdout


def test_score_refuses_misaligned_files(tmp_path: Path):
    rows = [json.loads(l) for l in (DATA / "merchant_sample.jsonl").read_text().splitlines()]
    pred = tmp_path / "pred.jsonl"
    write_preds(pred, rows[::-1])
    res = run_cli("score", str(DATA / "merchant_sample.jsonl"), str(pred))
    assert res.returncode == 2 and "texts differ" in res.stderr


def test_user_defined_task_from_yaml(tmp_path: Path):
    task_yaml = tmp_path / "invoice.yaml"
    task_yaml.write_text(
        "name: invoice\nmulti_valued: false\nrules: copy values verbatim\n"
        "keys:\n  - {name: VENDOR, description: who sent it}\n  - {name: TOTAL, description: amount due}\n",
        encoding="utf-8")
    data = tmp_path / "inv.jsonl"
    data.write_text(json.dumps({"text": "ACME CORP total $12.50", "fields": {"VENDOR": "ACME CORP", "TOTAL": "$12.50"}}) + "\n"
                    + json.dumps({"text": "BOLT LLC", "fields": {"VENDOR": "BOLT LLC", "TOTAL": "$1"}}) + "\n")
    res = run_cli("data", "check", str(data), "--task", str(task_yaml))
    assert res.returncode == 1 and "inv.jsonl:2" in res.stdout and "not-substring" in res.stdout
    t = load_task(task_yaml)
    assert t.key_names == ["VENDOR", "TOTAL"] and t.record_field == "fields"


def test_bad_task_yaml_is_a_clear_error(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nkeys: []\n")
    with pytest.raises(ValueError, match="bad.yaml: invalid task definition"):
        load_task(bad)


def test_text_inputs_and_prediction_round_trip(tmp_path: Path):
    import pandas as pd

    texts = ["SQ *A CA", 'quote " and, comma', "ünïcode ★"]
    pd.DataFrame({"memo": texts}).to_parquet(tmp_path / "t.parquet")
    pd.DataFrame({"memo": texts}).to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "t.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    assert read_texts(tmp_path / "t.parquet", "memo") == texts
    assert read_texts(tmp_path / "t.csv", "memo") == texts
    assert read_texts(tmp_path / "t.txt") == texts
    with pytest.raises(ValueError, match="no column 'text'"):
        read_texts(tmp_path / "t.csv")
    t = load_task("merchant")
    preds = [dict(t.empty_output(), MERCHANT_NAME="A"), None, t.empty_output()]
    write_predictions(tmp_path / "p.jsonl", texts, preds, t)
    back = read_predictions(tmp_path / "p.jsonl", t)
    assert [p for _, p in back] == preds
    write_predictions(tmp_path / "p.csv", texts, preds, t)
    assert pd.read_csv(tmp_path / "p.csv")["valid"].tolist() == [True, False, True]
