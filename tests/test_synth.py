"""The merchant generator: determinism, validity, presence rates, splits, diversity, CLI."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from finextract.records import read_records
from finextract.synth import DEFAULT_PRESENCE, FAMILIES, generate, write_splits
from finextract.synth.pieces import P, labels, truncate, verify
from finextract.tasks import load_task
from finextract.validate import check_object

TASK = load_task("merchant")


@pytest.fixture(scope="module")
def sample():
    return generate(4000, seed=7)


def test_every_record_is_valid_and_spans_point_at_values(sample):
    assert len(sample) == 4000
    for rec in sample:
        obj = rec.to_json(TASK)
        assert check_object(obj, TASK) == [], obj
        assert set(rec.values) == set(TASK.key_names)
        assert rec.values["MERCHANT_NAME"]
        for key, (s, e) in rec.meta["spans"].items():
            assert rec.text[s:e] == rec.values[key]
        for key, v in rec.values.items():
            if key != "INTERMEDIARY":
                assert v == v.strip(), (key, v)


def test_texts_are_distinct(sample):
    assert len({r.text for r in sample}) == len(sample)


def test_presence_rates_follow_defaults(sample):
    for key, target in DEFAULT_PRESENCE.items():
        got = sum(1 for r in sample if r.values[key]) / len(sample)
        assert abs(got - target) < 0.035, (key, got, target)


def test_presence_is_configurable():
    custom = {"PHONE": 0.6, "WEBSITE": 0.0, "ZIP": 0.3, "INTERMEDIARY": 0.05}
    recs = generate(1500, seed=3, presence=custom)
    for key, target in custom.items():
        got = sum(1 for r in recs if r.values[key]) / len(recs)
        assert abs(got - target) < 0.04, (key, got, target)


@pytest.mark.parametrize("bad", [{"NOPE": 0.1}, {"PHONE": 1.5}, {"MERCHANT_NAME": 0.5}, {"CITY": "x"}])
def test_bad_presence_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="presence"):
        generate(5, presence=bad)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = write_splits(tmp_path / "a", n=600, seed=1)
    b = write_splits(tmp_path / "b", n=600, seed=1)
    c = write_splits(tmp_path / "c", n=600, seed=2)
    for split in ("train", "validation", "test"):
        assert a[split].read_bytes() == b[split].read_bytes()
    assert a["train"].read_bytes() != c["train"].read_bytes()


def test_splits_sizes_and_no_leakage(tmp_path):
    paths = write_splits(tmp_path, n=1000, seed=4)
    texts = {k: [r.text for r in read_records(p, TASK)] for k, p in paths.items()}
    assert [len(texts[k]) for k in ("train", "validation", "test")] == [764, 83, 153]
    assert not set(texts["train"]) & set(texts["validation"])
    assert not set(texts["train"]) & set(texts["test"])
    assert not set(texts["validation"]) & set(texts["test"])


def test_diversity_floors(sample):
    names = Counter(r.values["MERCHANT_NAME"] for r in sample)
    cities = {r.values["CITY"] for r in sample if r.values["CITY"]}
    states = {r.values["STATE"] for r in sample if r.values["STATE"]}
    inters = {r.values["INTERMEDIARY"].strip() for r in sample if r.values["INTERMEDIARY"]}
    fams = Counter(r.meta["family"] for r in sample)
    assert len(names) > 0.75 * len(sample)            # mostly distinct merchants
    assert names.most_common(1)[0][1] < 0.01 * len(sample)
    assert len(cities) > 800
    assert len(states) >= 50
    assert len(inters) >= 25
    assert set(fams) == set(FAMILIES) and min(fams.values()) > 0.02 * len(sample)
    # bank wrappers, repeats, glued fields and mixed case all occur
    assert sum("Crd" in r.text or "CARD" in r.text.upper() for r in sample) > 200
    repeated = sum(r.text.count(r.values["MERCHANT_NAME"]) > 1 for r in sample)
    assert repeated > 0.15 * len(sample)
    glued = sum(bool(r.values["CITY"] and r.values["STATE"] and r.values["CITY"] + r.values["STATE"] in r.text)
                for r in sample)
    assert glued > 20
    assert sum(r.text != r.text.upper() for r in sample) > 0.05 * len(sample)
    domain_names = sum("." in r.values["MERCHANT_NAME"] and not r.values["WEBSITE"] for r in sample)
    assert domain_names > 50


def test_first_complete_occurrence_rule():
    pieces = [P("SAN FRANCISCO", "CITY"), P(" "), P("CA", "STATE")]
    cut = truncate(pieces, 9)
    text, fields, spans = labels(cut + [P(" ")] + pieces)
    assert text == "SAN FRANC SAN FRANCISCO CA"
    assert fields["CITY"] == "SAN FRANCISCO" and spans["CITY"] == [10, 23]
    # a dangling separator is never part of a cut value
    assert truncate([P("FATHER'S OFFICE-GRILL", "MERCHANT_NAME")], 16)[0].text == "FATHER'S OFFICE"
    bad = [P("SAN FRANC", "CITY"), P(" "), P("OAKLAND", "CITY"), P(" "), P("X", "MERCHANT_NAME")]
    assert any("not a prefix" in p for p in verify(bad))


def test_cli_writes_splits_and_refuses_other_tasks(tmp_path, capsys):
    from finextract.cli import main

    with pytest.raises(SystemExit) as ok:
        main(["data", "synth", "--task", "merchant", "--n", "200", "--seed", "5", "--out", str(tmp_path),
              "--presence", "PHONE=0.5"])
    assert ok.value.code in (0, None)
    out = capsys.readouterr().out
    assert "PHONE" in out and "train" in out and "format mix" in out
    lines = (tmp_path / "train.jsonl").read_text().splitlines()
    assert len(lines) == 153 and "fields" in json.loads(lines[0])
    with pytest.raises(SystemExit) as exc:
        main(["data", "synth", "--task", "fin-ner", "--out", str(tmp_path / "x")])
    assert exc.value.code == 2
    assert "only exists for the 'merchant'" in " ".join(capsys.readouterr().err.split())
    with pytest.raises(SystemExit) as bad:
        main(["data", "synth", "--out", str(tmp_path / "y"), "--presence", "PHONE"])
    assert bad.value.code == 2 and "KEY=RATE" in " ".join(capsys.readouterr().err.split())


def test_brand_list_is_large_and_well_formed():
    from finextract.synth.merchants import brands

    bs = brands()
    assert len(bs) >= 150
    assert len({b.kind for b in bs}) >= 10
    assert all(b.names and all(n.strip() for n in b.names) for b in bs)


def test_pilot_memos_stay_unseen(shared_data, sample):
    """The real evaluation memos must not leak into the generator (brands or whole texts)."""
    import re

    from finextract.synth.merchants import brands

    pilot = read_records(shared_data / "merchant" / "pilot_memos.jsonl", TASK)
    texts = [r.text.upper() for r in pilot]
    for b in brands():
        for name in b.names:
            pat = re.compile(r"(?<![A-Z0-9])" + re.escape(name.upper()) + r"(?![A-Z0-9])")
            assert not any(pat.search(t) for t in texts), f"brand {name!r} occurs in the pilot memos"
    assert not {r.text for r in pilot} & {r.text for r in sample}
