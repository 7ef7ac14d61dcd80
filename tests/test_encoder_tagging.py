"""Encoder span tagging: gold spans -> BIO labels -> decoded values must be exact substrings."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finextract.backends.encoder import default_model_path
from finextract.backends.encoder.model import load_tokenizer
from finextract.backends.encoder.tagging import IGNORE, align_labels, decode, label_names
from finextract.tasks import load_task

MERCHANT = load_task("merchant")
NER = load_task("fin-ner")


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(default_model_path())


def roundtrip(tok, text, values, task, max_length=128):
    """Label from gold, turn labels into certain probabilities, decode: must give gold back."""
    enc = tok(text, return_offsets_mapping=True, truncation=True, max_length=max_length)
    al = align_labels(text, enc["offset_mapping"], values, task)
    probs = np.full((len(al.labels), len(label_names(task))), 0.01)
    for i, lab in enumerate(al.labels):
        probs[i, max(lab, 0)] = 1.0
    return al, decode(text, enc["offset_mapping"], probs, task)


TRICKY = [
    ("SQ *CAFÉ  Müller #123 São Paulo  SP", {"INTERMEDIARY": "SQ *", "MERCHANT_NAME": "CAFÉ  Müller",
                                              "DYNAMIC_DESCRIPTOR": "#123", "CITY": "São Paulo", "STATE": "SP"}),
    ("MA MARKET 55 MAIN ST  BOSTON MA 02110", {"MERCHANT_NAME": "MA MARKET", "STREET": "55 MAIN ST",
                                               "CITY": "BOSTON", "STATE": "MA", "ZIP": "02110"}),
    ("TST* ŁÓDŹ  ﬁne Café 東京 +1 (555) 010-9999", {"INTERMEDIARY": "TST*", "MERCHANT_NAME": "ŁÓDŹ  ﬁne Café",
                                                  "CITY": "東京", "PHONE": "+1 (555) 010-9999"}),
    ("AMZN Mktp US*2Y2LX2NF2 Amzn.com/bill WA", {"MERCHANT_NAME": "AMZN Mktp US", "DYNAMIC_DESCRIPTOR": "*2Y2LX2NF2",
                                                 "WEBSITE": "Amzn.com/bill", "STATE": "WA"}),
    ("PAYPAL *NETFLIX NETFLIX NETFLIX.COM CA", {"INTERMEDIARY": "PAYPAL *", "MERCHANT_NAME": "NETFLIX",
                                                "WEBSITE": "NETFLIX.COM", "STATE": "CA"}),
]


@pytest.mark.parametrize("text,fields", TRICKY)
def test_roundtrip_exact_on_tricky_strings(tok, text, fields):
    gold = {**MERCHANT.empty_output(), **fields}
    al, out = roundtrip(tok, text, gold, MERCHANT)
    assert al.missed == 0
    assert out == gold  # original case, accents, double spaces and punctuation kept
    for value in out.values():
        assert value == "" or value in text


def test_first_token_aligned_occurrence_is_labeled(tok):
    # "MA" as a state must not be taken from inside "MARKET", and the merchant name's "MA" is a
    # separate occurrence: the single-valued STATE takes the first *free* aligned occurrence.
    text = "MA MARKET BOSTON MA"
    enc = tok(text, return_offsets_mapping=True)
    gold = {**MERCHANT.empty_output(), "MERCHANT_NAME": "MA MARKET", "STATE": "MA"}
    al = align_labels(text, enc["offset_mapping"], gold, MERCHANT)
    names = label_names(MERCHANT)
    tagged = [(text[s:e], names[lab]) for (s, e), lab in zip(enc["offset_mapping"], al.labels) if lab != IGNORE]
    assert tagged == [("MA", "B-MERCHANT_NAME"), ("MARKET", "I-MERCHANT_NAME"), ("BOSTON", "O"), ("MA", "B-STATE")]


def test_special_tokens_get_no_loss(tok):
    enc = tok("SQ *X", return_offsets_mapping=True)
    al = align_labels("SQ *X", enc["offset_mapping"], MERCHANT.empty_output(), MERCHANT)
    assert al.labels[0] == IGNORE and al.labels[-1] == IGNORE


def test_multi_valued_every_occurrence_longest_first(tok):
    text = "Shares hit Rs 113.80 , then Rs 113 ; Allergan plc and Allergan fell ."
    gold = {**NER.empty_output(), "Money": ["Rs 113", "Rs 113.80"], "Company": ["Allergan", "Allergan plc"]}
    al, out = roundtrip(tok, text, gold, NER)
    assert al.missed == 0
    assert sorted(out["Money"]) == ["Rs 113", "Rs 113.80"]
    assert sorted(out["Company"]) == ["Allergan", "Allergan plc"]


def test_repeated_value_multi_valued_is_listed_once(tok):
    text = "Apple beat Apple estimates , Apple said"
    gold = {**NER.empty_output(), "Company": ["Apple"]}
    enc = tok(text, return_offsets_mapping=True)
    al = align_labels(text, enc["offset_mapping"], gold, NER)
    assert sum(1 for lab in al.labels if lab == label_names(NER).index("B-Company")) == 3
    _, out = roundtrip(tok, text, gold, NER)
    assert out["Company"] == ["Apple"]


def test_truncated_value_is_reported_missed(tok):
    text = "word " * 40 + "SEATTLE WA"
    gold = {**MERCHANT.empty_output(), "CITY": "SEATTLE", "STATE": "WA"}
    al, out = roundtrip(tok, text, gold, MERCHANT, max_length=16)
    assert al.missed == 2 and out == MERCHANT.empty_output()


def test_single_valued_takes_best_scoring_span(tok):
    text = "AUSTIN TX DALLAS TX"
    enc = tok(text, return_offsets_mapping=True)
    names = label_names(MERCHANT)
    probs = np.full((len(enc["input_ids"]), len(names)), 0.0)
    probs[:, 0] = 1.0
    toks = [text[s:e] for s, e in enc["offset_mapping"]]
    probs[toks.index("AUSTIN")] = 0.0
    probs[toks.index("AUSTIN"), names.index("B-CITY")] = 0.6
    probs[toks.index("DALLAS")] = 0.0
    probs[toks.index("DALLAS"), names.index("B-CITY")] = 0.9
    assert decode(text, enc["offset_mapping"], probs, MERCHANT)["CITY"] == "DALLAS"


def test_stray_inside_tag_opens_a_span(tok):
    text = "JOE S PIZZA"
    enc = tok(text, return_offsets_mapping=True)
    names = label_names(MERCHANT)
    probs = np.zeros((len(enc["input_ids"]), len(names)))
    probs[:, 0] = 1
    for i, (s, e) in enumerate(enc["offset_mapping"]):
        if s < e:
            probs[i] = 0
            probs[i, names.index("I-MERCHANT_NAME")] = 1
    assert decode(text, enc["offset_mapping"], probs, MERCHANT)["MERCHANT_NAME"] == text


TEXT_CHARS = st.sampled_from(list("ABCxyz019 *#-./&'éÉßøŁ東ﬁ") + ["  ", "\t"])


@settings(max_examples=60, deadline=None)
@given(chars=st.lists(TEXT_CHARS, min_size=0, max_size=40), seed=st.integers(0, 2**16))
def test_any_decoding_returns_substrings_of_the_input(tok, chars, seed):
    text = "".join(chars)
    enc = tok(text, return_offsets_mapping=True)
    rng = np.random.default_rng(seed)
    for task in (MERCHANT, NER):
        probs = rng.random((len(enc["input_ids"]), len(label_names(task))))
        out = decode(text, enc["offset_mapping"], probs, task)
        assert set(out) == set(task.key_names)
        for value in out.values():
            for v in (value if isinstance(value, list) else [value]):
                assert v == "" or (v in text and v == v.strip())
