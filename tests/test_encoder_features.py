"""Lexical features: gazetteer (abbreviations, cut-off and glued cities), region codes, prefixes, shapes."""

from __future__ import annotations

import numpy as np
import pytest

from finextract.backends.encoder import default_model_path
from finextract.backends.encoder.features import (CITY_EXACT, CITY_GLUED, CITY_PREFIX, LEX_CHANNELS, LEX_OFFSETS,
                                                  PREFIX_KNOWN, PREFIX_SHAPE, SHAPE_PHONE, SHAPE_STORE, SHAPE_ZIP5,
                                                  SHAPE_ZIP9, city_chars, featurize, prefix_chars, region_chars,
                                                  shape_chars)
from finextract.backends.encoder.gazetteer import gazetteer, region_class, spellings
from finextract.backends.encoder.model import load_tokenizer

pytest.importorskip("zipcodes")


def at(arr, text, piece):
    """The channel value at the first character of ``piece`` in ``text``."""
    return arr[text.index(piece)]


def test_spellings_abbreviate_network_style():
    assert {"FORT LAUDERDALE", "FT LAUDERDALE"} <= spellings("Fort Lauderdale")
    assert "N LAS VEGAS" in spellings("North Las Vegas")
    assert "ST LOUIS" in spellings("St. Louis")


@pytest.mark.parametrize("text,city,value", [
    ("SQ *BLUE BOTTLE COFFEE SAN FRANCISCO CA", "SAN FRANCISCO", CITY_EXACT),
    ("HARBOR VIEW SEAFOOD RESTA FT LAUDERDA FL 33301", "FT LAUDERDA", CITY_PREFIX),  # cut at the field width
    ("TST* JOES PIZZA N LAS VEGA NV", "N LAS VEGA", CITY_PREFIX),
    ("WAL-MART #1234 SAN FRANCISCOCA", "SAN FRANCISCO", CITY_GLUED),  # city glued to its state
    ("TIM HORTONS #2231 TORONTO ON", "TORONTO", CITY_EXACT),  # hand-written Canadian list
])
def test_city_runs(text, city, value):
    arr = city_chars(text)
    start = text.index(city)
    assert arr[start] == value
    assert all(arr[c] for c in range(start, start + len(city)) if text[c] != " ")
    assert arr[start - 2] == 0 or text[start - 2] == " "  # the name before the city is not a city


def test_city_needs_its_state_for_prefix_matches():
    # "LAUDERDA" is a prefix of a Florida city, not of a Texas one
    assert city_chars("JOES FT LAUDERDA TX")[5] != CITY_PREFIX


def test_region_codes():
    assert region_class("TX") == 1 and region_class("ON") == 2 and region_class("GBR") == 3 and region_class("CA") == 4
    text = "STORE 12 AUSTIN TX USA"
    arr = region_chars(text)
    assert at(arr, text, "TX") == 1 and at(arr, text, "USA") == 3 and at(arr, text, "STORE") == 0


def test_processor_prefixes_known_and_generic():
    text = "SQ *BLUE MOON"
    assert prefix_chars(text)[0] == PREFIX_KNOWN
    text = "XYZ*BRAND CHICAGO IL"  # not in the generator's list: the generic shape
    arr = prefix_chars(text)
    assert arr[0] == PREFIX_SHAPE and arr[text.index("BRAND")] == 0


def test_number_shapes():
    text = "ACME #0042 55 MAIN ST 94103 80525-1234 (415) 555-0134"
    arr = shape_chars(text)
    assert at(arr, text, "#0042") == SHAPE_STORE
    assert at(arr, text, "94103") == SHAPE_ZIP5
    assert at(arr, text, "80525-1234") == SHAPE_ZIP9
    assert at(arr, text, "(415)") == SHAPE_PHONE


def test_featurize_gives_int64_inputs_of_one_shape():
    tok = load_tokenizer(default_model_path())
    texts = ["SQ *BLUE BOTTLE COFFEE SAN FRANCISCO CA", "x"]
    batch, offsets = featurize(tok, texts, 64, case=True, lex=True)
    assert set(batch) >= {"input_ids", "attention_mask", "case_ids", "lex_ids"}
    assert all(v.dtype == np.int64 for v in batch.values())
    B, T = batch["input_ids"].shape
    assert batch["lex_ids"].shape == (B, T, len(LEX_CHANNELS))
    # special and padding tokens carry each channel's "none" id; ids stay inside their channel's range
    assert batch["lex_ids"][1, -1].tolist() == LEX_OFFSETS
    for c, (off, size) in enumerate(zip(LEX_OFFSETS, LEX_CHANNELS.values())):
        assert ((batch["lex_ids"][..., c] >= off) & (batch["lex_ids"][..., c] < off + size)).all()
    only = featurize(tok, texts, 64, case=True, lex=True, input_names=["input_ids", "lex_ids"])[0]
    assert set(only) == {"input_ids", "lex_ids"}


def test_gazetteer_is_not_fit_to_the_pilot(shared_data):
    """The hand-written Canadian list must not be mined from the pilot memos' vendors."""
    from finextract.backends.encoder.gazetteer import CANADIAN_CITIES

    import json

    vendors = set()
    for line in (shared_data / "merchant" / "pilot_memos.jsonl").read_text(encoding="utf-8").splitlines():
        vendors.add(json.loads(line).get("vendor", "").upper())
    hand = {c for cs in CANADIAN_CITIES.values() for c in cs}
    assert not (hand & vendors)
    assert gazetteer().is_city("TORONTO", "ON")


# ------------------------------------------------------------------ layout (column / repeat)
from finextract.backends.encoder.features import (LAYOUT_OFFSETS, MAX_COLUMN, REPEAT_FIRST, REPEAT_IN,  # noqa: E402
                                                  REPEAT_START, layout_ids, repeat_of_start)


@pytest.mark.parametrize("text,expected", [
    ("FARM FRESH TO FARM FRESH TO YOU 800-796-6009 CA", (14, 14)),          # cut first copy, full second
    ("11/03 SQ *KULA HOUSE LOS ANGEL 11/03 SQ *KULA HOUSE LOS ANGELES CA", (31, 30)),
    ("STARBUCKS STORE 123 SEATTLE WA", (0, 0)),                               # no repeat
    ("AB CD AB CD", (0, 0)),                                                  # 5 characters: too short to count
    ("THE THE THE", (0, 0)),                                                  # "THE " repeats only 4 characters
])
def test_repeat_of_start(text, expected):
    assert repeat_of_start(text) == expected


def test_layout_columns_restart_in_the_repeated_copy():
    tok = load_tokenizer(default_model_path())
    text = "FARM FRESH TO FARM FRESH TO YOU CA"
    enc = tok(text, return_offsets_mapping=True)
    offs = [tuple(o) for o in enc["offset_mapping"]]
    ids = layout_ids(text, offs)
    col0, rep0 = LAYOUT_OFFSETS
    by_start = {s: row for (s, e), row in zip(offs, ids) if s < e}
    assert ids[0] == [col0, rep0] and ids[-1] == [col0, rep0]           # [CLS], [SEP]
    assert by_start[0] == [col0 + 1, rep0 + REPEAT_FIRST]               # first copy, column 0
    assert by_start[14] == [col0 + 1, rep0 + REPEAT_START]              # second copy restarts the column
    assert by_start[19] == [col0 + 1 + 5, rep0 + REPEAT_IN]             # "FRESH" of the second copy: column 5
    assert by_start[28] == [col0 + 1 + 14, rep0]                        # "YOU": past the repeat
    long = "X" * 60 + " Y"
    enc = tok(long, return_offsets_mapping=True)
    last = layout_ids(long, [tuple(o) for o in enc["offset_mapping"]])[-2]
    assert last[0] == col0 + 1 + MAX_COLUMN                              # far columns share one id


def test_featurize_layout_input_shape_and_padding():
    tok = load_tokenizer(default_model_path())
    batch, _ = featurize(tok, ["SQ *A B C SQ *A B C CA", "X"], 32, case=True, lex=True, layout=True)
    assert batch["layout_ids"].shape == (*batch["input_ids"].shape, 2) and batch["layout_ids"].dtype == np.int64
    pad_rows = batch["attention_mask"] == 0
    assert (batch["layout_ids"][pad_rows] == LAYOUT_OFFSETS).all()      # padding: each channel's "none"
    assert list(batch) == ["input_ids", "token_type_ids", "attention_mask", "case_ids", "lex_ids", "layout_ids"]


def test_featurize_rows_do_not_depend_on_batch_mates():
    """Features are computed on each text's real tokens and padded after: a row equals the text alone."""
    tok = load_tokenizer(default_model_path())
    texts = ["FARM FRESH TO FARM FRESH TO YOU 800-796-6009 CA", "SQ *NUTS", "CAFE 79 SAN FRANCISCOCA 94110",
             "PAYPAL *A B C D E F G H I J K L M N O P Q R S T U V W X Y Z SEATTLE WA"]
    batch, offsets = featurize(tok, texts, 32, case=True, lex=True, layout=True)
    for i, text in enumerate(texts):
        alone, off = featurize(tok, [text], 32, case=True, lex=True, layout=True)
        n = alone["input_ids"].shape[1]
        assert offsets[i][:n] == off[0]
        for name in ("case_ids", "lex_ids", "layout_ids"):
            assert (batch[name][i, :n] == alone[name][0]).all(), name


def _lex_ids_reference(text, offsets):
    """The NumPy formulation lex_ids had until session 6 (kept here as the reference): per channel, the
    next non-zero character at or after each position, looked up at each token's start."""
    from finextract.backends.encoder.features import words

    ws = words(text)
    chans = np.array([city_chars(text, ws), region_chars(text, ws), prefix_chars(text), shape_chars(text)],
                     dtype=np.int64).reshape(4, len(text))
    n = len(text)
    se = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    starts, ends = se[:, 0], np.minimum(se[:, 1], n)
    out = np.zeros((len(se), 4), dtype=np.int64)
    if n:
        pos = np.where(chans != 0, np.arange(n), n)
        nxt = np.minimum.accumulate(pos[:, ::-1], axis=1)[:, ::-1]
        first = nxt[:, np.clip(starts, 0, n - 1)]
        hit = (first < ends) & (starts < ends)
        out = np.where(hit, np.take_along_axis(chans, np.clip(first, 0, n - 1), 1), 0).T
    return (out + np.asarray(LEX_OFFSETS, dtype=np.int64)).tolist()


def test_lex_ids_equal_the_numpy_reference_on_generated_and_odd_texts():
    """The bisection form (issue 16's speed-up) gives the old ids exactly: generated descriptors of
    every family, and odd inputs (empty, offsets past the end, upper-casing that changes length)."""
    from finextract.backends.encoder.features import lex_ids
    from finextract.synth import generate

    tok = load_tokenizer(default_model_path())
    texts = [r.text for r in generate(400, seed=7)]
    texts += ["", " ", "straße 12 MÜNCHEN DE", "SQ *ß SAN FRANCISCOCA", "A" * 300 + " NEW YORK NY 10001"]
    for text in texts:
        offsets = [tuple(o) for o in tok(text, truncation=True, max_length=64, return_offsets_mapping=True)
                   ["offset_mapping"]]
        assert lex_ids(text, offsets) == _lex_ids_reference(text, offsets), text
    odd = [(0, 0), (0, 3), (2, 9), (5, 500), (40, 41)]
    assert lex_ids("SQ *CAFE NAPA CA", odd) == _lex_ids_reference("SQ *CAFE NAPA CA", odd)


def test_featurize_without_a_fast_tokenizer_gives_the_same_inputs():
    """A tokenizer that is not ``is_fast`` has no Rust-side encodings to read: offsets then come from the
    ``offset_mapping`` array it is asked for. (transformers 5 ships BERT only as a fast tokenizer, so the
    fast one is wrapped to report otherwise.)"""

    class NotFast:
        is_fast = False
        padding_side = "right"

        def __init__(self, tok):
            self.tok = tok

        def __call__(self, texts, **kw):
            assert kw.get("return_offsets_mapping"), "a tokenizer that is not fast must be asked for offsets"
            enc = self.tok(texts, **kw)
            return {k: v for k, v in enc.items()}   # a plain dict: no .encodings to read

    fast = load_tokenizer(default_model_path())
    texts = ["SQ *TURTLE TOWER SAN FRANCISCO CA", "AMZN Mktp US*2Y2LX2NF2 Amzn.com/bill WA", "X"]
    a, off_a = featurize(fast, texts, 32, case=True, lex=True, layout=True)
    b, off_b = featurize(NotFast(fast), texts, 32, case=True, lex=True, layout=True)
    assert off_a == off_b
    assert list(a) == list(b)
    for name in a:
        assert (a[name] == b[name]).all(), name


TRICKY_TEXTS = ["", " ", "     ", "ß", "STRASSE ß MÜNCHEN DE", "straße 12 ẞ ﬁx café", "İSTANBUL TST* ŞEHİR",
                "SAN FRANCISCOCA", "TORONTOON 12", "SQ *JOE'S COFFEE SAN FRANCISCO CA", "SQ*BLUE BOTTLE OAKLAND CA",
                "TST*SHAKE SHACK NEW YORK NY 10001", "PAYPAL *EBAY 402-935-7733 CA", "ßSQ *ABC", "ß SQ *ß CA",
                "HARBOR VIEW SEAFOOD RESTA FT LAUDERDA FL 33301", "FARM FRESH TO FARM FRESH TO YOU 800-796-6009",
                "#1234 $12.34 12/31/2024 555-010-2030 94107-1234 A1B2C3D4 1234567", "  spaces  around  ",
                "😀 EMOJI STORE 😀 LOS ANGELES CA", " ".join(["WALMART SUPERCENTER #1234 SPRINGFIELD IL 62701"] * 8),
                "x" * 400, "ß" * 90]


def test_batched_featurize_equals_token_features_row_by_row():
    """featurize's batch form (one NumPy lookup over the whole batch, issue 16) gives exactly the ids of
    the per-text reference ``token_features`` on each row's real tokens, and padding elsewhere: glued
    CITYST, prefixes, upper-casing that changes length, empty and all-space texts, texts cut at max_length."""
    from finextract.backends.encoder.features import pad_value, token_features
    from finextract.synth import generate

    tok = load_tokenizer(default_model_path())
    texts = TRICKY_TEXTS + [r.text for r in generate(150, seed=3)]
    for max_length in (16, 64):
        batch, offsets = featurize(tok, texts, max_length, case=True, lex=True, layout=True)
        lengths = batch["attention_mask"].sum(1)
        assert (lengths == max_length).any()  # some texts are cut
        for row, (text, off) in enumerate(zip(texts, offsets)):
            n = int(lengths[row])
            ref = token_features(text, off[:n], case=True, lex=True, layout=True)
            for name, ids in ref.items():
                assert batch[name][row, :n].tolist() == ids, (name, text)
                assert (batch[name][row, n:] == pad_value(name)).all(), (name, text)


def test_batched_lex_ids_cut_tokens_at_their_own_text():
    """Odd offsets (past a text's end, empty, reaching into where the next text lies end to end) get
    what the per-text ``lex_ids`` gives them: no text's marks leak into a neighbour's tokens."""
    from finextract.backends.encoder.features import _batch_lex_ids, lex_ids

    texts = ["SQ *CAFE NAPA CA", "", "ß 94107", "TORONTOON", "12345"]
    odd = [(0, 0), (0, 3), (2, 9), (5, 500), (40, 41), (14, 30), (16, 20)]
    offsets = [odd, [(0, 0), (0, 5)], [(0, 0), (1, 12), (6, 9)], [(0, 9), (9, 30)], [(3, 9), (5, 6)]]
    se = np.array([p for o in offsets for p in o], dtype=np.int64)
    got = _batch_lex_ids(texts, se, [len(o) for o in offsets]).tolist()
    assert got == [ids for t, o in zip(texts, offsets) for ids in lex_ids(t, o)]
