"""The scorer on hand-computed cases (LABELING.md scoring rules)."""

from __future__ import annotations

import pytest

from finextract.scoring import score
from finextract.tasks import load_task

M = load_task("merchant")
N = load_task("fin-ner")


def m(**kv):
    out = M.empty_output()
    out.update(kv)
    return out


def n(**kv):
    out = N.empty_output()
    out.update(kv)
    return out


def test_both_empty_counts_for_nothing():
    r = score([m(MERCHANT_NAME="X")], [m(MERCHANT_NAME="X")], M)
    assert r.per_key["CITY"].tp == r.per_key["CITY"].fp == r.per_key["CITY"].fn == 0
    assert r.micro.tp == 1 and r.micro.fp == 0 and r.micro.fn == 0
    assert r.micro.f1 == 1.0


def test_empty_gold_and_empty_prediction_everywhere():
    r = score([m()], [m()], M)
    assert (r.micro.tp, r.micro.fp, r.micro.fn) == (0, 0, 0)
    assert r.micro.f1 == 0.0 and r.macro_f1 == 0.0  # nothing to score: no division by zero


def test_wrong_nonempty_prediction_is_fp_and_fn():
    r = score([m(MERCHANT_NAME="TURTLE TOWER")], [m(MERCHANT_NAME="TURTLE")], M)
    c = r.per_key["MERCHANT_NAME"]
    assert (c.tp, c.fp, c.fn) == (0, 1, 1)


def test_spurious_prediction_is_fp_only_and_missed_is_fn_only():
    r = score([m(MERCHANT_NAME="A", CITY="")], [m(MERCHANT_NAME="", CITY="B")], M)
    assert (r.per_key["CITY"].tp, r.per_key["CITY"].fp, r.per_key["CITY"].fn) == (0, 1, 0)
    assert (r.per_key["MERCHANT_NAME"].tp, r.per_key["MERCHANT_NAME"].fp, r.per_key["MERCHANT_NAME"].fn) == (0, 0, 1)


def test_whitespace_is_trimmed_before_matching():
    # "SP " (a facilitator prefix with its trailing space) equals "SP" after trimming.
    r = score([m(INTERMEDIARY="SP ", MERCHANT_NAME=" CAFE RIO 0050")], [m(INTERMEDIARY="SP", MERCHANT_NAME="CAFE RIO 0050  ")], M)
    assert r.micro.tp == 2 and r.micro.fp == 0 and r.micro.fn == 0
    # a whitespace-only prediction counts as empty, not as a false positive
    r = score([m(MERCHANT_NAME="A")], [m(MERCHANT_NAME="A", CITY="  ")], M)
    assert r.micro.fp == 0


def test_case_matters():
    r = score([m(WEBSITE="Amzn.com/bill")], [m(WEBSITE="AMZN.COM/BILL")], M)
    assert (r.micro.tp, r.micro.fp, r.micro.fn) == (0, 1, 1)


def test_hand_computed_micro_and_macro():
    golds = [
        m(MERCHANT_NAME="A", CITY="X", STATE="CA"),
        m(MERCHANT_NAME="B", STATE="NY"),
        m(MERCHANT_NAME="C", PHONE="555"),
    ]
    preds = [
        m(MERCHANT_NAME="A", CITY="X", STATE="CA"),  # 3 TP
        m(MERCHANT_NAME="BB", STATE="NY"),           # name FP+FN, state TP
        m(MERCHANT_NAME="C", ZIP="9"),               # name TP, zip FP, phone FN
    ]
    r = score(golds, preds, M)
    # TP = 3 + 1 + 1 = 5, FP = 1 + 1 = 2, FN = 1 + 1 = 2
    assert (r.micro.tp, r.micro.fp, r.micro.fn) == (5, 2, 2)
    assert r.micro.precision == pytest.approx(5 / 7)
    assert r.micro.recall == pytest.approx(5 / 7)
    assert r.micro.f1 == pytest.approx(5 / 7)
    # per key: MERCHANT_NAME tp2 fp1 fn1 -> F1 2/3; CITY 1; STATE 1; PHONE 0; ZIP 0 -> macro over 5 present keys
    assert r.per_key["MERCHANT_NAME"].f1 == pytest.approx(2 / 3)
    assert r.macro_f1 == pytest.approx((2 / 3 + 1 + 1 + 0 + 0) / 5)


def test_invalid_output_counts_all_gold_as_fn_and_is_reported():
    golds = [m(MERCHANT_NAME="A", CITY="X"), m(MERCHANT_NAME="B")]
    r = score(golds, [None, m(MERCHANT_NAME="B")], M)
    assert r.n_invalid == 1 and r.invalid_rate == 0.5
    assert (r.micro.tp, r.micro.fp, r.micro.fn) == (1, 0, 2)
    assert r.n_records == 2  # never dropped


def test_multi_valued_set_matching_with_duplicates():
    golds = [n(Company=["Broadcom", "Qualcomm", "Broadcom"], Money=["$117 billion"])]
    preds = [n(Company=["Broadcom", "Broadcom ", "NXP"], Money=[])]
    r = score(golds, preds, N)
    c = r.per_key["Company"]
    assert (c.tp, c.fp, c.fn) == (1, 1, 1)  # {Broadcom, Qualcomm} vs {Broadcom, NXP}
    assert (r.per_key["Money"].tp, r.per_key["Money"].fn) == (0, 1)
    assert r.micro.f1 == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))


def test_multi_valued_invalid_prediction():
    r = score([n(Person=["Donald Trump"], Date=["February 21"])], [None], N)
    assert (r.micro.tp, r.micro.fn, r.n_invalid) == (0, 2, 1)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="2 gold records but 1 predictions"):
        score([m(), m()], [m()], M)


def test_errors_are_collected_per_key():
    r = score([m(MERCHANT_NAME="A")], [m(MERCHANT_NAME="B")], M, texts=["A"], collect_errors=True)
    assert [(e.key, e.gold, e.pred) for e in r.errors] == [("MERCHANT_NAME", "A", "B")]
    d = r.to_dict(with_errors=True)
    assert d["micro"]["fp"] == 1 and d["errors"][0]["key"] == "MERCHANT_NAME"


def test_normalize_output_rejects_wrong_shapes():
    assert M.normalize_output({"MERCHANT_NAME": 3}) is None
    assert M.normalize_output(["x"]) is None
    assert M.normalize_output({"MERCHANT_NAME": "A", "EXTRA": "y"}) == m(MERCHANT_NAME="A")
    assert N.normalize_output({"Company": ["A", "A", ""]})["Company"] == ["A"]
    assert N.normalize_output({"Company": [1]}) is None


def test_markdown_table_and_weakest_keys_live_on_the_report():
    from finextract.scoring import score
    from finextract.tasks import load_task

    task = load_task("merchant")
    keys = task.key_names
    gold = [{k: "" for k in keys} | {keys[0]: "ACME", keys[1]: "AUSTIN"}]
    pred = [{k: "" for k in keys} | {keys[0]: "ACME", keys[1]: "DALLAS"}]
    report = score(gold, pred, task)
    table = report.markdown_table().splitlines()
    assert table[0] == "| key | P | R | F1 | support |"
    assert f"| {keys[0]} | 1.000 | 1.000 | 1.000 | 1 |" in table
    assert f"| {keys[1]} | 0.000 | 0.000 | 0.000 | 1 |" in table
    assert table[-2].startswith("| **micro** | 0.500 | 0.500 | **0.500** | 2")
    assert report.weakest_keys(1) == [(keys[1], 0.0)]


# ------------------------------------------------------------------ key ``strip`` (glued separators)
def test_strip_span_drops_glued_separators_and_exposed_spaces():
    from finextract.tasks import KeySpec, Task

    task = Task(name="t", keys=(KeySpec(name="A", strip='-;"'), KeySpec(name="B")))
    text = '"  CAFE RIO "- X'
    a, b = task.strip_span("A", text, 0, 14)
    assert text[a:b] == "CAFE RIO"
    assert task.strip_span("B", text, 0, 14) == (0, 14)          # a key without strip is untouched
    assert task.strip_span("A", "--", 0, 2) == (0, 2)            # never strips a value away to nothing
    assert task.strip_span("A", "WAL-MART", 0, 8) == (0, 8)      # inner separators stay


def test_strip_refuses_letters_digits_and_spaces():
    from pydantic import ValidationError

    from finextract.tasks import KeySpec

    for bad in ("a-", "-1", "- "):
        with pytest.raises(ValidationError, match="separator characters only"):
            KeySpec(name="A", strip=bad)
