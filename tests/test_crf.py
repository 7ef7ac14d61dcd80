"""CRF baseline: tokenizer offsets, BIO alignment, overfitting, substrings, resume, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finextract.backends import get_backend
from finextract.backends.crf.tagging import bio_tags, spans_from_tags, spans_to_output
from finextract.backends.crf.tokens import sentence_features, tokenize
from finextract.config import load_run_config
from finextract.records import Record, write_records
from finextract.tasks import load_task

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "tests" / "data" / "merchant_sample.jsonl"
MERCHANT = load_task("merchant")
NER = load_task("fin-ner")

NER_RECORDS = [
    Record("Albertsons and Rite Aid called off the merger .",
           {**NER.empty_output(), "Company": ["Albertsons", "Rite Aid"]}),
    Record("On February 21 , Broadcom cut its offer to $117 billion in the US .",
           {**NER.empty_output(), "Company": ["Broadcom"], "Date": ["February 21"], "Money": ["$117 billion"],
            "Location": ["US"]}),
    Record("Donald Trump said Broadcom shares rose 5 % in the US and the US market .",
           {**NER.empty_output(), "Person": ["Donald Trump"], "Company": ["Broadcom"], "Quantity": ["5 %"],
            "Location": ["US"]}),
]


def test_tokens_keep_offsets_and_split_glued_punctuation():
    text = "AMZN Mktp US*2Y2LX2NF2 Amzn.com/bill WA"
    toks = tokenize(text)
    assert [t.text for t in toks][:5] == ["AMZN", "Mktp", "US", "*", "2Y2LX2NF2"]
    assert all(text[t.start:t.end] == t.text for t in toks)
    feats = sentence_features(text, toks)
    star = feats[3]
    assert star["punct"] == "*" and star["space_before"] is False and feats[4]["space_before"] is False
    assert feats[-1]["state_code"] is True
    phone = sentence_features("JOES PIZZA 650-300-5180 CA", None)
    assert phone[2].get("pat:phone") and phone[2].get("pat:phone:B")


def test_bio_alignment_single_takes_first_multi_takes_all():
    text = "ZARA ZARA NEW YORK NY"
    toks = tokenize(text)
    tags = bio_tags(text, toks, {**MERCHANT.empty_output(), "MERCHANT_NAME": "ZARA", "CITY": "NEW YORK",
                                 "STATE": "NY"}, MERCHANT)
    assert tags == ["B-MERCHANT_NAME", "O", "B-CITY", "I-CITY", "B-STATE"]
    rec = NER_RECORDS[2]
    toks = tokenize(rec.text)
    tags = bio_tags(rec.text, toks, rec.values, NER)
    assert tags.count("B-Location") == 2  # both occurrences of "US"
    spans = spans_from_tags(tags)
    out = spans_to_output(rec.text, toks, spans, NER)
    assert out["Location"] == ["US"] and out["Person"] == ["Donald Trump"] and out["Quantity"] == ["5 %"]


def test_single_value_choice():
    text = "A B C D"
    toks = tokenize(text)
    spans = spans_from_tags(["B-CITY", "O", "B-CITY", "I-CITY"], [0.6, 0.9, 0.95, 0.99])
    assert spans_to_output(text, toks, spans, MERCHANT, "first")["CITY"] == "A"
    assert spans_to_output(text, toks, spans, MERCHANT, "longest")["CITY"] == "C D"
    assert spans_to_output(text, toks, spans, MERCHANT, "marginal")["CITY"] == "C D"


def _cfg(tmp_path: Path, task: str, train: Path, **over) -> object:
    sets = [f"output_dir={tmp_path / 'run'}", f"task={task}", f"data.train={train}",
            f"data.validation={train}", "train.max_iterations=60", "train.checkpoint_every=30"]
    sets += [f"{k}={v}" for k, v in over.items()]
    return load_run_config(None, ["backend=crf", *sets])


@pytest.mark.slow
@pytest.mark.parametrize("task_name", ["merchant", "fin-ner"])
def test_overfits_handful_of_records(tmp_path, task_name):
    if task_name == "merchant":
        train = SAMPLE
    else:
        train = tmp_path / "ner.jsonl"
        write_records(train, NER_RECORDS, NER)
    cfg = _cfg(tmp_path, task_name, train)
    summary = get_backend("crf").train(cfg)
    assert summary["best"]["value"] == 1.0
    run = tmp_path / "run"
    assert (run / "DONE").exists() and (run / "curve.png").exists()
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    ex = get_backend("crf").load(str(run), "best")
    assert ex.describe()["params"] > 0
    # resume: a finished run's checkpoints are reused, nothing is re-scored
    model = run / "checkpoints" / "step-30" / "model.crfsuite"
    before = model.stat().st_mtime_ns
    get_backend("crf").train(cfg)
    assert model.stat().st_mtime_ns == before
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2


@pytest.fixture(scope="module")
def sample_extractor(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("crf")
    cfg = load_run_config(None, ["backend=crf", f"output_dir={tmp / 'run'}", f"data.train={SAMPLE}",
                                 "train.max_iterations=30", "train.checkpoint_every=30"])
    get_backend("crf").train(cfg)
    return get_backend("crf").load(str(tmp / "run"))


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("AB z9*#/.-' \t$é")), max_size=40))
def test_predictions_are_exact_substrings(sample_extractor, text):
    pred = sample_extractor.predict([text])[0]
    assert pred is not None and set(pred) == set(MERCHANT.key_names)
    for value in pred.values():
        assert value == "" or value in text


def test_missing_train_file_is_a_clear_error(tmp_path):
    cfg = load_run_config(None, ["backend=crf", f"output_dir={tmp_path / 'r'}"])
    with pytest.raises(ValueError, match="data.train is required"):
        get_backend("crf").train(cfg)


@pytest.mark.slow
def test_cli_train_and_predict(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    run = tmp_path / "smoke"
    res = subprocess.run([sys.executable, "-m", "finextract", "train", "configs/crf-smoke.yaml", "-o", str(run)],
                         capture_output=True, text=True, cwd=REPO, env=env)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["best"]["value"] == 1.0
    text = "SQ *TURTLE TOWER SAN FRANCISCO CA"
    res = subprocess.run([sys.executable, "-m", "finextract", "predict", str(run), text],
                         capture_output=True, text=True, cwd=REPO, env=env)
    assert res.returncode == 0, res.stderr
    row = json.loads(res.stdout.splitlines()[0])
    assert row["valid"] and row["fields"]["MERCHANT_NAME"] == "TURTLE TOWER" and row["fields"]["STATE"] == "CA"
