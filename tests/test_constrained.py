"""The substring/JSON automaton alone (no model): every walk through its allowed tokens is valid."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finextract.backends.causal_lm.constrained import JsonShape, TextGrammar, TokenVocab
from finextract.tasks import load_task
from finextract.testing.tiny import build_tiny_tokenizer


@pytest.fixture(scope="module")
def vocab(tmp_path_factory) -> TokenVocab:
    tok = build_tiny_tokenizer(tmp_path_factory.mktemp("tok"))
    return TokenVocab.for_tokenizer(tok)


def _shape(task_name: str) -> JsonShape:
    task = load_task(task_name)
    return JsonShape(tuple(task.key_names), task.multi_valued)


def _walk(g: TextGrammar, rng: random.Random, max_steps: int = 400) -> bytes:
    """Follow random allowed tokens (biased to content) until done; completion if too long."""
    s, out = g.initial(), b""
    for _ in range(max_steps):
        if s.mode == "done":
            return out
        allowed = g.allowed(s)
        assert allowed, f"dead end in state {s}"
        longish = [t for t in allowed if b'"' not in g.vocab.token_bytes[t]]
        pool = longish if longish and rng.random() < 0.7 else allowed
        t = rng.choice(pool)
        s = g.try_token(s, t)
        assert s is not None
        out += g.vocab.token_bytes[t]
    drop, tail = g.completion(s)
    return (out[:len(out) - drop] if drop else out) + tail


def _check(text: str, raw: bytes, task_name: str) -> None:
    task = load_task(task_name)
    obj = json.loads(raw.decode("utf-8", "surrogatepass"))
    assert list(obj) == task.key_names
    for key, value in obj.items():
        values = value if task.multi_valued else [value]
        assert isinstance(values, list)
        if task.multi_valued:
            # raw lists may end with one "" only after a budget cut-off; everything else distinct
            nonblank = [v for v in values if v.strip()]
            assert len(set(nonblank)) == len(nonblank), (key, values)
        for v in values:
            assert isinstance(v, str) and v in text, (key, v, text)


ODD_TEXTS = [
    'SQ *CAFE "LA" \\ NY',
    "é€😀 unicode 東京 café",
    "tab\tnewline\nnull\x00ctrl\x1f",
    "aaaa aaaa aaaa",
    '\\"\\"\\',
    "",
    "x" * 600,
]


@pytest.mark.parametrize("task_name", ["merchant", "fin-ner"])
@pytest.mark.parametrize("text", ODD_TEXTS)
def test_random_walks_are_valid(vocab, task_name, text):
    g = TextGrammar(text, _shape(task_name), vocab)
    for seed in range(4):
        _check(text, _walk(g, random.Random(seed)), task_name)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80),
       seed=st.integers(0, 10_000), multi=st.booleans())
def test_property_any_text(vocab, text, seed, multi):
    name = "fin-ner" if multi else "merchant"
    g = TextGrammar(text, _shape(name), vocab)
    _check(text, _walk(g, random.Random(seed)), name)


def test_allowed_set_equals_full_vocabulary_scan(vocab):
    """The indexed candidate search finds exactly the tokens a brute-force scan accepts."""
    for name in ("merchant", "fin-ner"):
        g = TextGrammar('PAYPAL *"ACME" 12\\34 CITY', _shape(name), vocab)
        rng = random.Random(1)
        s = g.initial()
        for _ in range(40):
            if s.mode == "done":
                break
            brute = sorted(t for t in range(vocab.size) if g.try_token(s, t) is not None)
            assert g.allowed(s) == brute, s
            s = g.try_token(s, rng.choice(brute))


def test_escaped_quote_never_closes_a_value(vocab):
    shape = JsonShape(("A",), False)
    g = TextGrammar('a"b', shape, vocab)  # E = a\"b
    s = g.feed(g.initial(), b'{"A":"a\\')
    assert s is not None and s.mode == "str"
    assert g.step(s, ord('"')).mode == "str"  # the quote continues the escape \"
    assert g.feed(s, b'"}') is None  # ...so a\" cannot be closed: `"b` must follow
    assert g.feed(s, b'"b"}').mode == "done"
    assert json.loads('{"A":"a\\"b"}')["A"] in 'a"b'


def test_half_utf8_character_cannot_close(vocab):
    g = TextGrammar("é", JsonShape(("A",), False), vocab)
    s = g.feed(g.initial(), b'{"A":"' + "é".encode()[:1])
    assert s is not None and g.step(s, ord('"')) is None
    assert g.feed(s, "é".encode()[1:] + b'"}').mode == "done"


def test_merged_quote_tokens_are_allowed_only_where_the_literal_fits(vocab):
    merged = [t for t, b in enumerate(vocab.token_bytes) if b and len(b) > 1 and b.startswith(b'"')]
    assert merged, "the test tokenizer should have merged quote tokens such as '\",\"'"
    g = TextGrammar("SQ *CAFE", _shape("merchant"), vocab)
    s = g.feed(g.initial(), b'{"INTERMEDIARY":"SQ *')
    allowed = set(g.allowed(s))
    for t in merged:
        ok = b'","MERCHANT_NAME":"'.startswith(vocab.token_bytes[t])
        assert (t in allowed) == ok, vocab.token_bytes[t]


def test_lists_refuse_duplicates_and_blank_items(vocab):
    g = TextGrammar("ab ab", JsonShape(("K",), True), vocab)
    s = g.feed(g.initial(), b'{"K":["ab"')
    assert s is not None and s.mode == "choice"
    assert g.feed(s, b',"ab"') is None
    assert g.feed(s, b',"ab "') is not None
    assert g.feed(s, b',"  "') is None if "  " in "ab ab" else True
    assert g.feed(s, b',"b a"]}').mode == "done"


def test_dead_end_lists_are_avoided(vocab):
    """Text 'a': after item "a" no new distinct item exists, so ',' is not allowed."""
    g = TextGrammar("a", JsonShape(("K",), True), vocab)
    s = g.feed(g.initial(), b'{"K":["a"')
    assert all(not vocab.token_bytes[t].startswith(b",") for t in g.allowed(s))


@pytest.mark.parametrize("prefix", [b'{"INTERMEDIARY":"SQ *C', b'{"INTERMEDIARY":"', b'{"INTERMEDIARY":"",',
                                    b'{"INTERMEDIARY":"\\"', b'{'])
def test_completion_is_valid_from_any_state(vocab, prefix):
    text = 'SQ *CAFE "x"'
    g = TextGrammar(text, _shape("merchant"), vocab)
    s = g.feed(g.initial(), prefix)
    assert s is not None
    drop, tail = g.completion(s)
    _check(text, (prefix[:len(prefix) - drop] if drop else prefix) + tail, "merchant")


# ------------------------------------------------- the device path's position automaton
def _compare_walks(vocab: TokenVocab, text: str, seeds=range(3)) -> None:
    from finextract.backends.causal_lm.constrained import SkeletonTables, TextTransitions

    shape = _shape("merchant")
    tables = SkeletonTables.get(shape, vocab)
    tt, g = TextTransitions(text, tables), TextGrammar(text, shape, vocab)
    for seed in seeds:
        rng = random.Random(seed)
        s, S, key = g.initial(), {tables.initial}, 0
        for _ in range(300):
            if s.mode == "done":
                assert S == {tables.DONE}
                break
            allowed = g.allowed(s)
            assert tt.allowed(S, key) == allowed, (text, s)
            content = [t for t in allowed if b'"' not in vocab.token_bytes[t]]
            t = rng.choice(content if content and rng.random() < 0.8 else allowed)
            s = g.try_token(s, t)
            S, key = tt.step(S, key, t)


@pytest.mark.parametrize("text", ODD_TEXTS[:-1] + ['PAYPAL *"ACME" 12\\34 CITY', "POS PURCHASE TARGET 00000794 TX"])
def test_position_automaton_allows_exactly_the_grammar_tokens(vocab, text):
    """The device path's tables give the same allowed set as TextGrammar at every step of random walks."""
    _compare_walks(vocab, text)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40), seed=st.integers(0, 99))
def test_position_automaton_property(vocab, text, seed):
    _compare_walks(vocab, text, seeds=[seed])


def test_position_automaton_worker_arrays_round_trip(vocab):
    from finextract.backends.causal_lm.constrained import SkeletonTables, TextTransitions

    tables = SkeletonTables.get(_shape("merchant"), vocab)
    tt = TextTransitions('SQ *CAFE "LA"', tables)
    back = TextTransitions.from_arrays(tables, tt.n_positions, tt.arrays())
    assert back.allowed({tables.initial}, 0) == tt.allowed({tables.initial}, 0)
    assert (back.arrays() == tt.arrays()).all()
