"""The validator on a corpus of broken files, one per failure kind, and on the real data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from finextract.records import read_records
from finextract.tasks import load_task
from finextract.validate import DataError, check_file

DATA = Path(__file__).parent / "data"
M = load_task("merchant")


@pytest.mark.parametrize("path", sorted((DATA / "broken").glob("*.jsonl")), ids=lambda p: p.stem)
def test_each_broken_file_reports_its_failure_kind_with_line(path: Path):
    report = check_file(path, M)
    kind = path.stem
    codes = {p.code for p in report.problems}
    assert kind in codes, f"{path.name}: expected [{kind}] in {codes}"
    expected_line = 0 if kind == "empty-file" else (3 if kind == "duplicate-text" else 2)
    assert any(p.code == kind and p.line == expected_line for p in report.problems)
    if kind == "duplicate-text":
        assert report.ok  # a warning, not an error
        assert "same text as line 1" in str(report.warnings[0])
    else:
        assert not report.ok


def test_sample_is_valid():
    report = check_file(DATA / "merchant_sample.jsonl", M)
    assert report.ok and not report.warnings and report.n_lines == 4


def test_loading_refuses_invalid_data_unless_skip_invalid(caplog):
    path = DATA / "broken" / "not-substring.jsonl"
    with pytest.raises(DataError) as exc:
        read_records(path, M)
    assert "not-substring.jsonl:2" in str(exc.value) and "--skip-invalid" in str(exc.value)
    records = read_records(path, M, skip_invalid=True)
    assert len(records) == 1
    assert "1 invalid (not-substring: 1)" in caplog.text


def test_multi_valued_shape_errors():
    ner = load_task("fin-ner")
    report = check_file(DATA / "merchant_sample.jsonl", ner)
    assert {p.code for p in report.errors} == {"missing-field"}
    assert "multi-valued" not in str(report.errors[0]) and "single-valued" in str(report.errors[0])


@pytest.mark.needs_shared
def test_real_data_passes(shared_data: Path):
    assert check_file(shared_data / "merchant" / "pilot_memos.jsonl", M).ok
    assert check_file(shared_data / "fire" / "dev.jsonl", load_task("fin-ner")).ok


@pytest.mark.needs_shared
def test_corrupted_copy_fails_naming_the_line(shared_data: Path, tmp_path: Path):
    src = shared_data / "merchant" / "pilot_memos.jsonl"
    lines = src.read_text(encoding="utf-8").splitlines()
    obj = json.loads(lines[6])
    obj["fields"]["MERCHANT_NAME"] = obj["fields"]["MERCHANT_NAME"] + " XYZ-NOT-THERE"
    lines[6] = json.dumps(obj)
    bad = tmp_path / "pilot_bad.jsonl"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = check_file(bad, M)
    assert [(p.line, p.code) for p in report.errors] == [(7, "not-substring")]
