"""Issue 16's fast paths give exactly what their session-8 forms (tests/encoder_reference.py) give.

Each fast form is run beside its reference on generated descriptors of every family, on the odd inputs
that broke earlier speed-ups (empty, all-space, upper-casing that changes length, non-ASCII, very long),
and on random strings over a small alphabet of the characters the rules look at (digits, ``*``, ``#``,
quotes, spaces, region codes).
"""

from __future__ import annotations

import random

import numpy as np
import pytest

import encoder_reference as ref
from finextract.backends.encoder import features as F

pytest.importorskip("zipcodes")

TRICKY = ["", " ", "     ", "\t", "ß", "STRASSE ß MÜNCHEN DE", "straße 12 ẞ ﬁx café", "İSTANBUL TST* ŞEHİR",
          "SAN FRANCISCOCA", "TORONTOON 12", "SQ *JOE'S COFFEE SAN FRANCISCO CA", "SQ*BLUE BOTTLE OAKLAND CA",
          "TST*SHAKE SHACK NEW YORK NY 10001", "PAYPAL *EBAY 402-935-7733 CA", "ßSQ *ABC", "ß SQ *ß CA",
          "HARBOR VIEW SEAFOOD RESTA FT LAUDERDA FL 33301", "FARM FRESH TO FARM FRESH TO YOU 800-796-6009",
          "#1234 $12.34 12/31/2024 555-010-2030 94107-1234 A1B2C3D4 1234567", "  spaces  around  ",
          "😀 EMOJI STORE 😀 LOS ANGELES CA", " ".join(["WALMART SUPERCENTER #1234 SPRINGFIELD IL 62701"] * 8),
          "x" * 400, "ß" * 90, "APPLE PAY STARBUCKS", "SP AFFIRM", "EB TICKETS", "LS NETFLIX", "apple pay x",
          '"NUTS ON CLARK" CHICAGO IL', "'''", "(CA)", "\"\" ,, ;;", "ABC ABC ABC", "ABCDEF ABCDEF", "ABCDEFABCDEF",
          "FARM AT THE CARNEROSNAPA CA", "ABC LOCKSMITH CO GOSSan Francis", "٣٤٥ ARABIC DIGITS ٦٧٨٩٠", "x\u00a0ABCDEF ABCDEF",
          "ABCDEF\u2003ABCDEF", "ABCDEF\x1cABCDEF", "sq *lower case ny ny", "ﬀﬀﬀﬀﬀﬀ ﬀﬀﬀﬀﬀﬀ", "12 34 5678 90"]


def corpus(n_generated: int = 500, n_random: int = 400) -> list[str]:
    from finextract.synth import generate

    rng = random.Random(16)
    alphabet = list("AB CA NY 0123456789*#$./-'\",;()") + ["SQ *", "TST*", " FL ", "NAPA", "ß", "É", "\t", "ON "]
    rand = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(n_random)]
    return TRICKY + [r.text for r in generate(n_generated, seed=16)] + rand


TEXTS = corpus()


@pytest.mark.parametrize("name", ["words", "city_chars", "region_chars", "prefix_chars", "shape_chars",
                                  "repeat_of_start", "lex_chars"])
def test_per_text_channels_equal_the_reference(name):
    fast, slow = getattr(F, name), getattr(ref, name)
    for text in TEXTS:
        assert fast(text) == slow(text), (name, text)


def test_glued_city_starts_equal_the_reference():
    """The prefix prune (a run no city spelling starts with ends the search) finds the same starts."""
    from finextract.backends.encoder.glued import _words, glued_city_starts

    extra = ["ABC LOCKSMITH CO GOSSan Francis", "FARM AT THE CARNEROSNAPA CA", "TAPEL CERRITO CA", "DRAGON LAS VEGAS NV",
             "CAFE SAN FRANCISCOCA 94110", "JOES ELK GROVE V", "XYZ VERNON HILLS IL", "ABCNAPA", "ÄÖÜßNAPA CA"]
    for text in TEXTS + extra:
        words = _words(text)
        for word in words:
            assert glued_city_starts(text, word, words) == ref.glued_city_starts(text, word, words), (text, word)


def _rows_with_ties(rng: np.random.Generator, n_rows: int, cells: int) -> np.ndarray:
    """Span-score rows like the decoder's: mostly negative, a few positive, -inf cells, and exact ties
    (repeated values inside a row, at and around its 4th best)."""
    rows = rng.normal(-3, 3, size=(n_rows, cells)).astype(np.float32)
    rows[rng.random(rows.shape) < 0.2] = -np.inf
    for r in range(0, n_rows, 3):
        best = np.sort(rows[r][rows[r] > 0])[::-1]
        if len(best) >= 2:
            rows[r, rng.integers(0, cells)] = best[rng.integers(0, min(len(best), 6))]   # a tie among the best
    rows[rng.random(rows.shape) < 0.05] = np.float32(1.5)                                # many equal cells
    return rows


def test_top_spans_equal_the_argpartition_reference():
    """Same cells and scores for every text; in the same order wherever scores tie (those rows are taken
    from the reference), and otherwise best first (the reference's order is argpartition's, and only
    the scores order the candidates downstream)."""
    import span_batch_reference as sb_ref
    from finextract.backends.encoder.span_batch import _top_spans

    rng = np.random.default_rng(16)
    for trial in range(300):
        cells = int(rng.choice([1, 2, 4, 5, 9, 36, 400, 1600]))
        n_rows = int(rng.integers(1, 12))
        rows = _rows_with_ties(rng, n_rows, cells)
        texts = np.sort(rng.integers(0, 4, n_rows))
        labels = []
        for b in texts.tolist():   # rows sorted by text, then key, one row per (text, key), as decode_many makes them
            ki = labels[-1][1] + 1 if labels and labels[-1][0] == b else int(rng.integers(0, 3))
            labels.append((np.int64(b), np.int64(ki)))
        got, want = _top_spans(rows, labels), sb_ref._top_spans(rows, labels)
        for row, (b, ki) in zip(rows, labels):
            g = [e for e in got.get(int(b), []) if e[0] == ki]
            w = [e for e in want.get(int(b), []) if e[0] == ki]
            best = np.sort(row[row > 0])[::-1][:5]
            if len(set(best.tolist())) < len(best):   # a tie among its best five: the reference's own answer
                assert g == w, trial
            else:
                assert sorted(g) == sorted(w) and [sc for _, _, sc in g] == sorted([sc for _, _, sc in g], reverse=True)


def _same_batch(a: tuple, b: tuple) -> bool:
    """Two featurize results are identical: offsets, input names and order, dtypes, shapes, values."""
    (fa, oa), (fb, ob) = a, b
    return oa == ob and list(fa) == list(fb) and all(
        fa[n].dtype == fb[n].dtype and fa[n].shape == fb[n].shape and (fa[n] == fb[n]).all() for n in fa)


def test_featurize_equals_the_session8_featurizer():
    """The whole featurizer (direct tokenizer call, flat offsets, fast channels) gives the session-8
    featurizer's arrays and offsets, batch by batch, with every extra input on or off, texts cut at
    ``max_length`` and batches of one."""
    from finextract.backends.encoder import default_model_path
    from finextract.backends.encoder.model import load_tokenizer

    tok = load_tokenizer(default_model_path())
    assert F._direct_tokenizer(tok, 64) is not None      # the fast path is the one under test
    for max_length in (16, 64):
        for size in (1, 7, 64):
            for start in range(0, len(TEXTS), size * 5):
                batch = TEXTS[start:start + size]
                for flags in ({"case": True, "lex": True, "layout": True}, {"case": False, "lex": True, "layout": False}):
                    want = ref.featurize_reference(tok, batch, max_length, **flags)
                    assert _same_batch(F.featurize(tok, batch, max_length, **flags), want), (batch, flags)
                    assert _same_batch(F.featurize(tok, batch, max_length, direct=False, **flags), want)


def test_direct_tokenizer_leaves_the_tokenizer_alone():
    """The direct path owns a copy of the Rust tokenizer: calling the transformers tokenizer with other
    settings in between changes nothing for either."""
    from finextract.backends.encoder import default_model_path
    from finextract.backends.encoder.model import load_tokenizer

    tok = load_tokenizer(default_model_path())
    texts = TEXTS[:40]
    first = F.featurize(tok, texts, 32, lex=True, layout=True)
    plain = tok(texts[:3])                                            # no truncation, no padding
    assert _same_batch(F.featurize(tok, texts, 32, lex=True, layout=True), first)
    assert tok(texts[:3]) == plain
    assert _same_batch(F.featurize(tok, texts, 32, lex=True, layout=True, direct=False), first)


def test_direct_tokenizer_is_not_used_where_it_cannot_be_checked():
    """Not a fast tokenizer, or left padding: the ordinary call."""
    from finextract.backends.encoder import default_model_path
    from finextract.backends.encoder.model import load_tokenizer

    tok = load_tokenizer(default_model_path())
    tok.padding_side = "left"
    assert F._DirectTokenizer.build(tok, 32) is None

    class NotFast:
        is_fast = False
        padding_side = "right"

    assert F._DirectTokenizer.build(NotFast(), 32) is None


@pytest.mark.parametrize("method", ["pointer", "bio"])
def test_decode_many_equals_the_session8_decoder_exactly(method):
    """The same values and the same confidence doubles as the session-8 ``decode_many`` (not only to float
    rounding): real tokenizer offsets with padding, texts of every family, glued fields, per-key
    temperatures, confident and unsure logits, ties between span scores (rounded logits), chunks of 1-8."""
    import span_batch_reference as sb_ref
    from finextract.backends.encoder import default_model_path
    from finextract.backends.encoder.model import load_tokenizer
    from finextract.backends.encoder.span_batch import decode_many
    from finextract.backends.encoder.tagging import DecodeOptions, label_names
    from finextract.tasks import load_task

    task = load_task("merchant")
    tok = load_tokenizer(default_model_path())
    n_labels, k = len(label_names(task)), len(task.key_names)
    rng = np.random.default_rng(16)
    texts = TEXTS[:260]
    for start in range(0, len(texts), 8):
        chunk = texts[start:start + int(rng.integers(1, 9))]
        _, offsets = F.featurize(tok, chunk, 64, case=False)
        logits = []
        for off in offsets:
            lg = rng.normal(scale=float(rng.choice([1.0, 3.0, 6.0])), size=(len(off), n_labels + 2 * k))
            lg[:, 0] += 2.0
            if rng.random() < 0.3:
                lg = np.round(lg)                        # many equal span scores
            logits.append(lg.astype(np.float32))
        for glued in (True, False):
            opts = DecodeOptions(method=method, inword_penalty=float(rng.choice([0.0, 1.0])), glued_fields=glued,
                                 temperature={"CITY": 2.0, "STATE": 0.25} if glued else 1.3)
            got = decode_many(chunk, offsets, logits, task, opts)
            want = sb_ref.decode_many(chunk, offsets, logits, task, opts)
            assert got == want, chunk


def test_real_tokens_skip_padding_only():
    from finextract.backends.encoder.span_batch import real_tokens

    offs = [[], [(0, 0)], [(0, 0), (0, 3), (0, 0)], [(0, 0), (0, 2), (2, 2), (3, 4), (0, 0), (0, 0), (0, 0)],
            [(0, 0), (1, 2), [0, 0], (0, 0)], [(0, 3), (0, 0), (4, 6), (0, 0)], [(5, 9)] * 3 + [(0, 0)] * 40]
    assert real_tokens(offs) == [[t for t, (s, e) in enumerate(o) if s < e] for o in offs]
