"""Glued fixed-width fields: the name/city edge moves onto the city's first letter, and only there."""

from __future__ import annotations

import numpy as np
import pytest

from finextract.backends.encoder.glued import glued_city_starts, refine_glued_edges
from finextract.backends.encoder.span_batch import decode_many
from finextract.backends.encoder.tagging import DecodeOptions, decode_with_confidence, label_names
from finextract.tasks import load_task

pytest.importorskip("zipcodes")


def values(text: str, spans: dict[str, tuple[int, int]]) -> dict[str, str]:
    return {k: text[a:b] for k, (a, b) in refine_glued_edges(text, spans).items()}


def span(text: str, value: str) -> tuple[int, int]:
    i = text.index(value)
    return i, i + len(value)


@pytest.mark.parametrize("text, name, city, want_name, want_city", [
    # the model's edge falls inside the glued word, a token too late or too early
    ("ABC LOCKSMITH CO GOSSan Francis JGRCQ2", "ABC LOCKSMITH CO GOSSa", "n Francis", "ABC LOCKSMITH CO GOS", "San Francis"),
    ("FARM AT THE CARNEROSNAPA CA 0000059004", "FARM AT THE CARNER", "OSNAPA", "FARM AT THE CARNEROS", "NAPA"),
    ("41453182 SHOPIFY.COMELK GROVE V OPSNT", "SHOPIFY.COME", None, "SHOPIFY.COM", None),
    # the name stopped before the glued word: the fragment joins the name
    ("CIRRUS INSIGHT FOR SIRVINE CA RE_BJ7AE5KC", "CIRRUS INSIGHT FOR", "IRVINE", "CIRRUS INSIGHT FOR S", "IRVINE"),
    # the name took the city's first word (EL CERRITO is a city; CERRITO alone is not what was printed)
    ("LARP THAI FOOD & TAPEL CERRITO 33110184", "LARP THAI FOOD & TAPEL", "CERRITO", "LARP THAI FOOD & TAP", "EL CERRITO"),
])
def test_edges_move_onto_the_glued_city(text, name, city, want_name, want_city):
    spans = {"MERCHANT_NAME": span(text, name)}
    if city:
        spans["CITY"] = span(text, city)
    got = values(text, spans)
    assert got["MERCHANT_NAME"] == want_name
    if city:
        assert got["CITY"] == want_city


@pytest.mark.parametrize("text, name, city", [
    ("JOES PIZZA SAN JOSE CA", "JOES PIZZA", "SAN JOSE"),               # spaced fields: nothing to move
    ("GOLDEN DRAGON LAS VEGAS NV", "GOLDEN DRAGON", "LAS VEGAS"),        # N LAS VEGAS is a spelling, DRAGO|N is not a cut
    ("BRANDBRAVO CREATI", "BRANDBRAVO CREATI", None),                   # a cut word with no city after it
    ("SAN FRANCISCOCA 94105", "", "SAN FRANCISCO"),                     # a city glued to its state is not a name edge
    ("CORNER DELI 8XJ2K QSAN JOSE CA", "CORNER DELI", "SAN JOSE"),       # a code between: the name is not stretched
])
def test_edges_stay_where_no_city_is_glued_to_the_name(text, name, city):
    spans = {"MERCHANT_NAME": span(text, name)} if name else {}
    if city:
        spans["CITY"] = span(text, city)
    assert refine_glued_edges(text, spans) == spans


@pytest.mark.parametrize("text, name, want_name, want_city", [
    # no city decoded: the name ended on the glued edge, stopped before the glued word, or ran through the city
    ("HARBOR VIEW SEAFOOD RESSAN FRANCISCO 4155550100", "HARBOR VIEW SEAFOOD RES", "HARBOR VIEW SEAFOOD RES", "SAN FRANCISCO"),
    ("CIRRUS INSIGHT FOR SIRVINE 8005550100", "CIRRUS INSIGHT FOR", "CIRRUS INSIGHT FOR S", "IRVINE"),
    ("HARBOR VIEW SEAFOOD RESSAN FRANCISCO *X1Y2", "HARBOR VIEW SEAFOOD RESSAN FRANCISCO", "HARBOR VIEW SEAFOOD RES",
     "SAN FRANCISCO"),
    ("FARM AT THE CARNEROSNAPA CA 0000059004", "FARM AT THE CARNEROSNAPA", "FARM AT THE CARNEROS", "NAPA"),
])
def test_a_missing_city_is_found_at_the_glued_edge(text, name, want_name, want_city):
    got = values(text, {"MERCHANT_NAME": span(text, name)})
    assert (got["MERCHANT_NAME"], got.get("CITY")) == (want_name, want_city)


@pytest.mark.parametrize("text, name, other", [
    ("JOES PIZZA 8005550100", "JOES PIZZA", None),                          # nothing glued: no city invented
    ("BRANDBRAVO CREATI 8005550100", "BRANDBRAVO CREATI", None),             # a cut word, no city in it
    ("HARBOR VIEW SEAFOOD RESSAN FRANCISCO X1", "HARBOR VIEW SEAFOOD RES", "FRANCISCO"),   # overlaps another key
])
def test_no_city_is_made_where_none_is_glued_or_it_would_overlap(text, name, other):
    spans = {"MERCHANT_NAME": span(text, name)}
    if other:
        spans["DYNAMIC_DESCRIPTOR"] = span(text, other)
    assert refine_glued_edges(text, spans) == spans


def test_city_runs_end_where_the_spelling_ends():
    from finextract.backends.encoder.glued import _words, glued_city_runs

    text = "HARBOR VIEW SEAFOOD RESTASAN FRANCIS 94105"
    words = _words(text)
    assert glued_city_runs(text, words[3], words) == [(25, 36)]              # RESTA|SAN FRANCIS, cut by the network


def test_city_starts_are_inside_words_and_spelled_to_a_word_end():
    text = "HARBOR VIEW SEAFOOD RESTASAN FRANCISCO CA"
    words = [(0, 6), (7, 11), (12, 19), (20, 28), (29, 38), (39, 41)]
    assert glued_city_starts(text, (20, 28), words) == [25]            # RESTA|SAN FRANCISCO
    assert glued_city_starts(text, (0, 6), words) == []


def test_both_decoders_apply_it_only_when_asked():
    """The per-text reference decoder and the batched one refine the same way, and not at all with
    ``glued_fields`` off (logits that put the name's end a token past the glued edge)."""
    task = load_task("merchant")
    text = "ABC LOCKSMITH CO GOSSan Francis CA"
    # tokens: ABC | LOCKSMITH | CO | GOSSA | N | FRANCIS | CA (character offsets, CLS first)
    offsets = [(0, 0), (0, 3), (4, 13), (14, 16), (17, 22), (22, 23), (24, 31), (32, 34), (0, 0)]
    labels = label_names(task)
    k = len(task.key_names)
    logits = np.full((len(offsets), len(labels) + 2 * k), -8.0, dtype=np.float32)
    o = labels.index("O")
    logits[:, o] = 4.0
    name, city, state = (task.key_names.index(x) for x in ("MERCHANT_NAME", "CITY", "STATE"))
    ptr = len(labels)
    logits[0, ptr:] = 0.0                                   # the null option of every key at CLS
    for key, start, end in ((name, 1, 4), (city, 5, 6), (state, 7, 7)):
        logits[start, ptr + key] = 8.0
        logits[end, ptr + k + key] = 8.0
    for glued, want in ((False, "ABC LOCKSMITH CO GOSSa"), (True, "ABC LOCKSMITH CO GOS")):
        opts = DecodeOptions(method="pointer", glued_fields=glued)
        one, _ = decode_with_confidence(text, offsets, logits, task, opts)
        (many, _), = decode_many([text], [offsets], [logits], task, opts)
        assert one == many
        assert one["MERCHANT_NAME"] == want and one["STATE"] == "CA"
