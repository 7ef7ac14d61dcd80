"""Round trip between finextract records and LLaMA-Factory alpaca JSON."""

from __future__ import annotations

import json

import pytest

from finextract.commands.convert import alpaca_to_records, records_to_alpaca
from finextract.records import Record, read_records, write_records
from finextract.tasks import load_task


@pytest.mark.parametrize("task_name,values", [
    ("merchant", {"INTERMEDIARY": "SQ *", "MERCHANT_NAME": "TURTLE TOWER", "CITY": "SEATTLE", "STATE": "WA"}),
    ("fin-ner", {"Company": ["Essilor", "Luxottica"], "Location": ["EU"]}),
])
def test_round_trip(tmp_path, task_name, values):
    task = load_task(task_name)
    text = ("SQ *TURTLE TOWER SEATTLE WA" if task_name == "merchant"
            else "EU clears merger of Essilor , Luxottica without conditions")
    src = tmp_path / "train.jsonl"
    write_records(src, [Record(text, task.normalize_output(values)), Record(text, task.empty_output())], task)
    data_file = records_to_alpaca(src, tmp_path / "lf", task_name, style="two-step")
    rows = json.loads(data_file.read_text())
    assert set(rows[0]) == {"instruction", "input", "output", "system"} and rows[0]["instruction"] == text
    info = json.loads((tmp_path / "lf" / "dataset_info.json").read_text())
    assert info["train"]["file_name"] == "train.json"
    back = tmp_path / "back.jsonl"
    assert alpaca_to_records(tmp_path / "lf", back, task_name) == 2
    assert [r.values for r in read_records(back, task)] == [r.values for r in read_records(src, task)]


def test_llamafactory_layout_and_bad_output(tmp_path):
    f = tmp_path / "d.json"
    f.write_text(json.dumps([{"instruction": "Extract the merchant.", "input": "HEB AUSTIN TX",
                              "output": '```json\n{"MERCHANT_NAME": "HEB", "CITY": "AUSTIN", "STATE": "TX"}\n```'}]))
    out = tmp_path / "r.jsonl"
    alpaca_to_records(f, out, "merchant")
    rec = read_records(out, load_task("merchant"))[0]
    assert rec.text == "HEB AUSTIN TX" and rec.values["CITY"] == "AUSTIN"
    f.write_text(json.dumps([{"instruction": "x", "input": "y", "output": "not json"}]))
    with pytest.raises(ValueError, match=r"d.json\[0\]"):
        alpaca_to_records(f, out, "merchant")


def test_cli_convert(tmp_path):
    from finextract.cli import main

    task = load_task("merchant")
    src = tmp_path / "a.jsonl"
    write_records(src, [Record("HEB AUSTIN TX", task.normalize_output({"MERCHANT_NAME": "HEB"}))], task)
    with pytest.raises(SystemExit) as exc:
        main(["data", "convert", str(src), str(tmp_path / "lf"), "--task", "merchant"])
    assert exc.value.code == 0
    assert (tmp_path / "lf" / "a.json").exists()
