"""Span decoders: one span or none per single-valued key, word snapping, pointer null option, Viterbi."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finextract.backends.encoder import default_model_path
from finextract.backends.encoder.model import load_tokenizer
from finextract.backends.encoder.tagging import (DecodeOptions, decode_with_confidence, inword_boundaries,
                                                 label_names, log_softmax, viterbi_path)
from finextract.tasks import load_task

MERCHANT = load_task("merchant")
NER = load_task("fin-ner")
NAMES = label_names(MERCHANT)


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(default_model_path())


def tokens(tok, text):
    enc = tok(text, return_offsets_mapping=True)
    return [tuple(o) for o in enc["offset_mapping"]]


def logits_for(text, offsets, tags, task=MERCHANT, strength=None):
    """Logits giving each token piece (matched by its text) a label distribution.

    ``tags``: list of (token text, {label: prob}); tokens not listed are O with p=0.98.
    """
    names = label_names(task)
    out = np.full((len(offsets), len(names)), np.log(1e-4))
    pieces = [text[s:e] for s, e in offsets]
    used = set()
    for t, (s, e) in enumerate(offsets):
        out[t, 0] = np.log(0.98)
    for piece, dist in tags:
        t = next(i for i, p in enumerate(pieces) if p == piece and i not in used and offsets[i][0] < offsets[i][1])
        used.add(t)
        out[t, :] = np.log(1e-4)
        for label, p in dist.items():
            out[t, names.index(label)] = np.log(p)
    return out


def decode(text, offsets, logits, method="bio", penalty=1.0):
    return decode_with_confidence(text, offsets, logits, MERCHANT, DecodeOptions(method=method, inword_penalty=penalty))


def test_inword_boundaries_free_at_spaces_and_punctuation(tok):
    text = "SQ*NAME SAN FRANCISCOCA #12345"
    offs = [o for o in tokens(tok, text) if o[0] < o[1]]
    pieces = [text[s:e] for s, e in offs]
    b = inword_boundaries(text, offs)
    flags = dict(zip(pieces, b[:len(offs)]))
    assert flags == {"SQ": False, "*": False, "NAME": False, "SAN": False, "FRANCISCO": False, "CA": True,
                     "#": False, "123": False, "45": True}  # MiniLM's pieces of this string
    assert not b[len(offs)]  # the edge after the last token is free


def test_city_state_glue_splits_only_when_confident(tok):
    text = "SAN FRANCISCOCA"
    offs = tokens(tok, text)
    pieces = [text[s:e] for s, e in offs if s < e]
    assert len(pieces) >= 3  # SAN / FRANCISCO / CA-ish pieces
    last = pieces[-1]
    unsure = logits_for(text, offs, [("SAN", {"B-CITY": 0.95}), (pieces[1], {"I-CITY": 0.95}),
                                     (last, {"B-STATE": 0.55, "I-CITY": 0.45})])
    sure = logits_for(text, offs, [("SAN", {"B-CITY": 0.95}), (pieces[1], {"I-CITY": 0.95}),
                                   (last, {"B-STATE": 0.97, "I-CITY": 0.03})])
    out_unsure, _ = decode(text, offs, unsure)
    out_sure, _ = decode(text, offs, sure)
    assert out_unsure["CITY"] == "SAN FRANCISCOCA" and out_unsure["STATE"] == ""  # snapped to the word
    assert out_sure["CITY"] == "SAN FRANCISCO" and out_sure["STATE"] == text[len("SAN FRANCISCO"):]
    # without snapping the weak split is taken
    out_nosnap, _ = decode(text, offs, unsure, penalty=0.0)
    assert out_nosnap["STATE"] != ""


def test_glued_prefix_splits_at_asterisk_for_free(tok):
    text = "SQ*BLUE MOON"
    offs = tokens(tok, text)
    lg = logits_for(text, offs, [("SQ", {"B-INTERMEDIARY": 0.9}), ("*", {"I-INTERMEDIARY": 0.6, "B-MERCHANT_NAME": 0.4}),
                                 ("BLUE", {"B-MERCHANT_NAME": 0.7, "I-INTERMEDIARY": 0.3}), ("MOON", {"I-MERCHANT_NAME": 0.9})])
    out, conf = decode(text, offs, lg, penalty=4.0)
    assert out["INTERMEDIARY"] == "SQ*" and out["MERCHANT_NAME"] == "BLUE MOON"
    assert 0 < conf["MERCHANT_NAME"] <= 1


def test_leading_code_digits_are_not_a_name(tok):
    # the first digits of a leading "#CODE" must not be returned as a fragment of a word
    text = "#4471923 HARBOR VIEW"
    offs = tokens(tok, text)
    pieces = [text[s:e] for s, e in offs if s < e]
    digit_pieces = [p for p in pieces if any(c.isdigit() for c in p)]
    assert len(digit_pieces) >= 2, pieces  # the code splits into several word pieces
    lg = logits_for(text, offs, [(digit_pieces[0], {"B-MERCHANT_NAME": 0.6, "O": 0.4}),
                                 ("HARBOR", {"B-MERCHANT_NAME": 0.9}), ("VIEW", {"I-MERCHANT_NAME": 0.9})])
    out, _ = decode(text, offs, lg)
    assert out["MERCHANT_NAME"] == "HARBOR VIEW"


def test_summed_score_prefers_whole_name_over_confident_fragment(tok):
    text = "HARBOR VIEW SEAFOOD RESTA MIAMI FL"
    offs = tokens(tok, text)
    lg = logits_for(text, offs, [("HARBOR", {"B-MERCHANT_NAME": 0.8, "O": 0.2}), ("VIEW", {"I-MERCHANT_NAME": 0.8, "O": 0.2}),
                                 ("SEAFOOD", {"I-MERCHANT_NAME": 0.8, "O": 0.2}),
                                 ("MIAMI", {"B-MERCHANT_NAME": 0.9, "O": 0.1})])
    old, _ = decode(text, offs, lg, method="argmax")
    new, _ = decode(text, offs, lg, method="bio")
    assert old["MERCHANT_NAME"] == "MIAMI"  # highest *mean* probability: the short fragment
    assert new["MERCHANT_NAME"] == "HARBOR VIEW SEAFOOD"


def label_range(lg, offsets, start, end, key, p=0.95, task=MERCHANT):
    """Give the tokens inside characters [start, end) B-key then I-key with probability p."""
    names = label_names(task)
    first = True
    for t, (s, e) in enumerate(offsets):
        if s < e and s >= start and e <= end:
            lg[t, :] = np.log((1 - p) / (len(names) - 1))
            lg[t, names.index(f"{'B' if first else 'I'}-{key}")] = np.log(p)
            first = False
    return lg


def test_null_option_and_confidence_of_empty(tok):
    text = "PAYMENT THANK YOU"
    offs = tokens(tok, text)
    lg = logits_for(text, offs, [])
    out, conf = decode(text, offs, lg)
    assert all(v == "" for v in out.values())
    assert all(c > 0.99 for c in conf.values())  # confidently empty
    t = next(i for i, (s, e) in enumerate(offs) if s < e)
    lg[t, 0], lg[t, NAMES.index("B-MERCHANT_NAME")] = np.log(0.55), np.log(0.45)
    out, conf = decode(text, offs, lg)
    assert out["MERCHANT_NAME"] == "" and 0.3 < conf["MERCHANT_NAME"] < 0.8  # empty, but not sure


def test_values_are_exact_substrings_with_unicode(tok):
    text = "TST* CAFÉ  Müller São Paulo SP"
    offs = tokens(tok, text)
    lg = logits_for(text, offs, [])
    label_range(lg, offs, 0, 4, "INTERMEDIARY")
    label_range(lg, offs, 5, 17, "MERCHANT_NAME")
    label_range(lg, offs, 18, 27, "CITY")
    out, _ = decode(text, offs, lg)
    assert out["INTERMEDIARY"] == "TST*" and out["MERCHANT_NAME"] == "CAFÉ  Müller" and out["CITY"] == "São Paulo"
    for value in out.values():
        assert value == "" or value in text


def test_overlapping_keys_get_one_span_each(tok):
    text = "BOSTON MA"
    offs = tokens(tok, text)
    lg = logits_for(text, offs, [("BOSTON", {"B-CITY": 0.6, "B-MERCHANT_NAME": 0.4}), ("MA", {"B-STATE": 0.9})])
    out, _ = decode(text, offs, lg)
    assert out["CITY"] == "BOSTON" and out["MERCHANT_NAME"] == "" and out["STATE"] == "MA"


# ------------------------------------------------------------------ pointer heads
def pointer_logits(offsets, spans, null_bias=5.0):
    """BIO part all-O, pointer part: start/end at the given token indices per key, else [CLS]."""
    L, K = len(NAMES), len(MERCHANT.key_names)
    lg = np.zeros((len(offsets), L + 2 * K))
    lg[:, 0] = 5.0
    lg[:, L:] = -5.0
    lg[0, L:] = null_bias  # [CLS] holds the null option
    for key, (u, v) in spans.items():
        k = MERCHANT.key_names.index(key)
        lg[0, L + k] = lg[0, L + K + k] = -5.0
        lg[u, L + k] = 5.0
        lg[v, L + K + k] = 5.0
    return lg


def test_pointer_null_everywhere_gives_empty(tok):
    text = "SQ *BLUE MOON AUSTIN TX"
    offs = tokens(tok, text)
    out, conf = decode(text, offs, pointer_logits(offs, {}), method="pointer")
    assert all(v == "" for v in out.values()) and all(c > 0.99 for c in conf.values())


def test_pointer_span_and_null_per_key(tok):
    text = "SQ *BLUE MOON AUSTIN TX"
    offs = tokens(tok, text)
    pieces = [text[s:e] for s, e in offs]
    u, v = pieces.index("BLUE"), pieces.index("MOON")
    st_ = pieces.index("TX")
    out, conf = decode(text, offs, pointer_logits(offs, {"MERCHANT_NAME": (u, v), "STATE": (st_, st_)}), method="pointer")
    assert out["MERCHANT_NAME"] == "BLUE MOON" and out["STATE"] == "TX" and out["CITY"] == ""
    # an end before the start is no span: with a fair null option the key stays empty
    lg = pointer_logits(offs, {"MERCHANT_NAME": (v, u)})
    k = MERCHANT.key_names.index("MERCHANT_NAME")
    lg[0, len(NAMES) + k] = lg[0, len(NAMES) + len(MERCHANT.key_names) + k] = 3.0
    out, conf = decode(text, offs, lg, method="pointer")
    assert out["MERCHANT_NAME"] == "" and conf["MERCHANT_NAME"] > 0.5


def test_pointer_needs_pointer_logits_and_single_valued(tok):
    text = "SQ *BLUE MOON"
    offs = tokens(tok, text)
    with pytest.raises(ValueError, match="pointer_head"):
        decode(text, offs, np.zeros((len(offs), len(NAMES))), method="pointer")
    with pytest.raises(ValueError, match="single-valued"):
        decode_with_confidence(text, offs, np.zeros((len(offs), len(label_names(NER)))), NER,
                               DecodeOptions(method="pointer"))


def test_pointer_targets_from_bio_labels():
    torch = pytest.importorskip("torch")
    from finextract.backends.encoder.model import pointer_loss, pointer_targets

    # [CLS] B-INTERMEDIARY I-INTERMEDIARY B-MERCHANT I-MERCHANT I-MERCHANT O [SEP] pad
    labels = torch.tensor([[-100, 1, 2, 3, 4, 4, 0, -100, -100]])
    s, e = pointer_targets(labels, len(MERCHANT.key_names))
    assert s[0, :2].tolist() == [1, 3] and e[0, :2].tolist() == [2, 5]
    assert s[0, 2:].tolist() == [0] * 8 and e[0, 2:].tolist() == [0] * 8  # absent keys -> null ([CLS])
    ptr = torch.zeros(1, 9, 2 * len(MERCHANT.key_names), requires_grad=True)
    loss = pointer_loss(ptr, labels)
    loss.backward()
    assert torch.isfinite(loss) and ptr.grad[0, 7].abs().sum() == 0  # masked [SEP]/pad get no gradient


# ------------------------------------------------------------------ Viterbi
NER_NAMES = label_names(NER)


def valid_bio(path, names):
    prev = "O"
    for lab in path:
        name = names[lab]
        if name.startswith("I-") and prev not in (f"B-{name[2:]}", name):
            return False
        prev = name
    return True


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.integers(0, 10_000), st.floats(0, 3))
def test_viterbi_never_returns_i_without_b(n, seed, penalty):
    rng = np.random.default_rng(seed)
    logp = log_softmax(rng.normal(size=(n, len(NER_NAMES))) * 3)
    inword = rng.random(n + 1) < 0.3
    path = viterbi_path(logp, inword, NER, penalty)
    assert len(path) == n and valid_bio(path, NER_NAMES)


def test_viterbi_is_the_best_valid_path():
    rng = np.random.default_rng(1)
    L = len(NER_NAMES)
    for _ in range(5):
        n = 3
        logp = log_softmax(rng.normal(size=(n, L)) * 2)
        inword = np.zeros(n + 1, dtype=bool)
        best = max((p for p in itertools.product(range(L), repeat=n) if valid_bio(p, NER_NAMES)),
                   key=lambda p: sum(logp[t, p[t]] for t in range(n)))
        assert viterbi_path(logp, inword, NER, 0.0) == list(best)


def test_multi_valued_keeps_all_spans(tok):
    text = "Apple and Beats rose"
    offs = tokens(tok, text)
    lg = logits_for(text, offs, [("Apple", {"B-Company": 0.9}), ("Beats", {"B-Company": 0.9})], task=NER)
    out, conf = decode_with_confidence(text, offs, lg, NER, DecodeOptions())
    assert out["Company"] == ["Apple", "Beats"] and len(conf["Company"]) == 2
    # a stray I- (argmax would open a run with it) is never decoded as a span start by Viterbi
    stray = logits_for(text, offs, [("rose", {"I-Company": 0.6, "O": 0.4})], task=NER)
    out, _ = decode_with_confidence(text, offs, stray, NER, DecodeOptions())
    assert out["Company"] == []


# ------------------------------------------------------------------ batched decoding
@pytest.mark.parametrize("method", ["bio", "pointer"])
@pytest.mark.parametrize("penalty", [0.0, 1.0, 4.0])
@pytest.mark.parametrize("max_span", [3, 48])
def test_batched_decoding_equals_per_text_decoding(method, penalty, max_span):
    """``decode_many`` (one padded batch) gives the per-text decoder's values and confidences; a short
    ``max_span_tokens`` checks the pointer decoder's closed-form partition function over the band."""
    from finextract.backends.encoder.span_batch import decode_many

    task = load_task("merchant")
    rng = np.random.default_rng(7)
    n_labels, k = len(label_names(task)), len(task.key_names)
    texts = ["SQ *TURTLE TOWER SAN FRANCISCOCA", "AMZN MKTP US*2Y2L", "X", "", "CAFE 79", "A B C D E F G H"]
    offsets, logits = [], []
    for t in texts:
        # sub-word pieces of at most 3 characters, so spans can start or end inside a word
        toks = [(p, min(p + 3, m.end())) for m in re.finditer(r"\w+|[^\w\s]", t) for p in range(m.start(), m.end(), 3)]
        off = [(0, 0)] + toks + [(0, 0)] + [(0, 0)] * int(rng.integers(0, 4))  # [CLS] ... [SEP] padding
        offsets.append(off)
        lg = rng.normal(scale=3.0, size=(len(off), n_labels + 2 * k)).astype(np.float32)
        lg[1:len(toks) + 1, 0] += 2.0  # mostly "O", a few confident spans
        logits.append(lg)
    opts = DecodeOptions(method=method, inword_penalty=penalty, temperature={"CITY": 2.0, "STATE": 0.25},
                         max_span_tokens=max_span)
    got = decode_many(texts, offsets, logits, task, opts)
    for t, off, lg, (values, conf) in zip(texts, offsets, logits, got):
        ref_values, ref_conf = decode_with_confidence(t, off, lg, task, opts)
        assert values == ref_values
        assert conf.keys() == ref_conf.keys()
        assert all(abs(conf[key] - ref_conf[key]) < 1e-4 for key in conf)


def test_batched_pointer_keeps_a_span_that_beats_null_by_a_little():
    """A span only 0.2 nats better than the null option is still found by the batched pointer decoder
    (it builds span tables only for rows whose upper bound is positive; the bound must not be stricter)."""
    from finextract.backends.encoder.span_batch import decode_many

    task = load_task("merchant")
    n_labels, k = len(label_names(task)), len(task.key_names)
    ki = task.key_names.index("MERCHANT_NAME")
    text = "AB CD EF"
    offsets = [(0, 0), (0, 2), (3, 5), (6, 8), (0, 0)]
    lg = np.zeros((len(offsets), n_labels + 2 * k), dtype=np.float32)
    lg[:, 0] = 5.0                                              # BIO: everything "O"
    lg[:, n_labels:] = -8.0                                     # pointer: no key starts or ends anywhere...
    lg[0, n_labels:] = 0.0                                      # ...but at the null option
    lg[1, n_labels + ki], lg[2, n_labels + k + ki] = 4.0, 4.0   # MERCHANT_NAME "AB CD": start at AB, end at CD
    lg[0, n_labels + ki], lg[0, n_labels + k + ki] = 3.9, 3.9   # its null option just below
    opts = DecodeOptions(method="pointer", inword_penalty=1.0)
    (values, conf), = decode_many([text], [offsets], [lg], task, opts)
    ref_values, ref_conf = decode_with_confidence(text, offsets, lg, task, opts)
    assert values == ref_values and values["MERCHANT_NAME"] == "AB CD"
    assert abs(conf["MERCHANT_NAME"] - ref_conf["MERCHANT_NAME"]) < 1e-4


def _length_buckets_reference(lengths, call_cost=48):
    """The scalar dynamic programme length_buckets had before issue 16's vectorised inner step."""
    order = np.argsort(lengths, kind="stable")
    s = lengths[order]
    n = len(s)
    best, cut = np.zeros(n + 1), np.zeros(n + 1, dtype=int)
    for j in range(1, n + 1):
        costs = [best[i] + (j - i) * s[j - 1] + call_cost for i in range(j)]
        i = int(np.argmin(costs))
        best[j], cut[j] = costs[i], i
    groups, j = [], n
    while j > 0:
        groups.append(order[cut[j]:j])
        j = cut[j]
    return groups[::-1]


@pytest.mark.parametrize("seed", range(6))
def test_length_buckets_equal_the_scalar_reference(seed):
    """Same groups as the scalar programme, ties (equal lengths, equal costs) included."""
    from finextract.backends.encoder.onnx import length_buckets

    rng = np.random.default_rng(seed)
    for n in (1, 2, 7, 64):
        lengths = rng.choice([3, 5, 12, 12, 30, 64], size=n) if seed % 2 else rng.integers(2, 65, size=n)
        for cost in (0, 48, 500):
            got = length_buckets(lengths, cost)
            ref = _length_buckets_reference(lengths, cost)
            assert [g.tolist() for g in got] == [g.tolist() for g in ref]


def test_decode_many_with_given_real_tokens_equals_without():
    """predict_with_confidence hands decode_many the real-token indices it found; same result as finding them."""
    from finextract.backends.encoder.span_batch import decode_many, real_tokens

    task = load_task("merchant")
    rng = np.random.default_rng(3)
    n_labels, k = len(label_names(task)), len(task.key_names)
    texts = ["SQ *TURTLE TOWER SAN FRANCISCOCA", "", "CAFE 79"]
    offsets = [[(0, 0)] + [(p, min(p + 3, len(t))) for p in range(0, len(t), 3)] + [(0, 0)] * 2 for t in texts]
    logits = [rng.normal(scale=3.0, size=(len(o), n_labels + 2 * k)).astype(np.float32) for o in offsets]
    opts = DecodeOptions(method="pointer")
    assert real_tokens(offsets)[1] == []
    assert decode_many(texts, offsets, logits, task, opts, reals=real_tokens(offsets)) == \
        decode_many(texts, offsets, logits, task, opts)


# ------------------------------------------------------------------ glued separators (task key ``strip``)
def test_glued_separator_is_dropped_from_a_name_but_not_from_other_keys(tok):
    """A name word with a glued ``-`` or ``"`` snaps to the whole word; the task's ``strip`` drops the
    separator (MERCHANT_NAME, CITY, STREET), while keys without it keep what was decoded."""
    text = 'FATHERS OFFICE- SEATTLE, WA "ORDER"'
    offs = tokens(tok, text)
    lg = logits_for(text, offs, [("FATHERS", {"B-MERCHANT_NAME": 0.95}), ("OFFICE", {"I-MERCHANT_NAME": 0.95}),
                                 ("-", {"I-MERCHANT_NAME": 0.9}), ("SEATTLE", {"B-CITY": 0.95}),
                                 (",", {"I-CITY": 0.9}), ("WA", {"B-STATE": 0.95}),
                                 ('"', {"B-DYNAMIC_DESCRIPTOR": 0.9}), ("ORDER", {"I-DYNAMIC_DESCRIPTOR": 0.9})])
    out, _ = decode(text, offs, lg)
    assert out["MERCHANT_NAME"] == "FATHERS OFFICE" and out["CITY"] == "SEATTLE" and out["STATE"] == "WA"
    assert out["DYNAMIC_DESCRIPTOR"].startswith('"')   # no strip on this key: the decoded span as it is
    raw, _ = decode_with_confidence(text, offs, lg, MERCHANT.without_strip(), DecodeOptions(method="bio"))
    assert raw["MERCHANT_NAME"] == "FATHERS OFFICE-" and raw["CITY"] == "SEATTLE,"


def test_batched_decoder_strips_like_the_per_text_one():
    from finextract.backends.encoder.span_batch import decode_many

    text = "NAME- X"
    off = [(0, 0), (0, 4), (4, 5), (6, 7), (0, 0)]
    n_labels, k = len(NAMES), len(MERCHANT.key_names)
    lg = np.full((len(off), n_labels + 2 * k), -6.0, dtype=np.float32)
    lg[:, 0] = 3.0
    lg[1, NAMES.index("B-MERCHANT_NAME")] = 8.0
    lg[2, NAMES.index("I-MERCHANT_NAME")] = 8.0
    opts = DecodeOptions(method="bio")
    [(values, _)] = decode_many([text], [off], [lg], MERCHANT, opts)
    assert values == decode_with_confidence(text, off, lg, MERCHANT, opts)[0]
    assert values["MERCHANT_NAME"] == "NAME"
