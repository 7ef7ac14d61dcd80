"""ExtractionEngine on tiny local models: equals plain greedy, always valid when constrained."""

from __future__ import annotations

import pytest
import torch

from finextract.backends.causal_lm.engine import ExtractionEngine
from finextract.tasks import load_task
from finextract.testing.tiny import build_tiny_causal_lm

TEXTS = ["SQ *CAFE NY 10001", 'AMZN Mktp US*2Y2 "q" \\ é', "X", "POS PURCHASE TARGET 00000794 AUSTIN TX"]


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    d = build_tiny_causal_lm(tmp_path_factory.mktemp("lm"), arch="qwen3")
    return AutoModelForCausalLM.from_pretrained(d).eval(), AutoTokenizer.from_pretrained(d)


def _render(tok):
    def render(text: str) -> str:
        msgs = [{"role": "system", "content": "Extract the fields as JSON; copy values from the text."},
                {"role": "user", "content": text}]
        return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    return render


def _greedy(model, tok, prompt: str, n: int) -> list[int]:
    ids = torch.tensor([tok.encode(prompt, add_special_tokens=False)])
    out = []
    with torch.no_grad():
        for _ in range(n):
            t = int(model(ids).logits[0, -1].argmax())
            out.append(t)
            ids = torch.cat([ids, torch.tensor([[t]])], 1)
    return out


@pytest.mark.parametrize("prefix_cache", [True, False])
def test_unconstrained_equals_plain_greedy(lm, prefix_cache):
    model, tok = lm
    render = _render(tok)
    eng = ExtractionEngine(model, tok, "merchant", render, constrained=False, max_new_tokens=10,
                           batch_size=3, prefix_cache=prefix_cache)
    eng.eos_ids = set()  # compare a fixed number of steps
    for text, res in zip(TEXTS, eng.extract(TEXTS)):
        assert res.raw == tok.decode(_greedy(model, tok, render(text), 10), skip_special_tokens=True)


@pytest.mark.parametrize("task_name", ["merchant", "fin-ner"])
def test_random_model_constrained_is_always_valid(lm, task_name):
    model, tok = lm
    task = load_task(task_name)
    eng = ExtractionEngine(model, tok, task, _render(tok), max_new_tokens=80, batch_size=3)
    for text, res in zip(TEXTS, eng.extract(TEXTS)):
        assert res.parsed is not None and list(res.parsed) == task.key_names
        for v in res.parsed.values():
            for s in (v if isinstance(v, list) else [v]):
                assert s in text
        assert task.normalize_output(__import__("json").loads(res.raw)) == res.parsed


def test_prefix_cache_matches_no_cache(lm):
    model, tok = lm
    a = ExtractionEngine(model, tok, "merchant", _render(tok), max_new_tokens=60, batch_size=4).extract(TEXTS)
    b = ExtractionEngine(model, tok, "merchant", _render(tok), max_new_tokens=60, batch_size=4,
                         prefix_cache=False).extract(TEXTS)
    assert [r.raw for r in a] == [r.raw for r in b]


def test_tiny_budget_and_two_step_stay_valid(lm):
    model, tok = lm
    eng = ExtractionEngine(model, tok, "merchant", _render(tok), max_new_tokens=4, batch_size=2)
    assert all(r.parsed is not None for r in eng.extract(TEXTS))
    eng = ExtractionEngine(model, tok, "fin-ner", _render(tok), max_new_tokens=60, batch_size=2,
                           answer_marker="### ANSWER", analysis_max_tokens=6)
    for res in eng.extract(TEXTS):
        assert "### ANSWER" in res.raw and res.parsed is not None


@pytest.mark.parametrize("task_name", ["merchant", "fin-ner"])
def test_jump_forward_never_changes_output(lm, task_name):
    """Jump-forward only skips steps with a single allowed token: same output, fewer forwards."""
    model, tok = lm
    runs = {}
    for jump in (False, True):
        eng = ExtractionEngine(model, tok, task_name, _render(tok), max_new_tokens=60, batch_size=4,
                               jump_forward=jump)
        runs[jump] = ([r.raw for r in eng.extract(TEXTS)], eng.stats["forwards"])
    assert runs[True][0] == runs[False][0]
    assert runs[True][1] <= runs[False][1]


def test_constrained_allows_merged_skeleton_tokens(lm):
    """With a token that spells ``":"","`` the grammar must accept it (an empty value in one token)."""
    from finextract.backends.causal_lm.constrained import JsonShape, TextGrammar, TokenVocab

    _, tok = lm
    vocab = TokenVocab.for_tokenizer(tok)
    g = TextGrammar("CAFE AUSTIN TX", JsonShape(("A", "B"), False), vocab)
    s = g.feed(g.initial(), b'{"A')
    merged = [t for t in g.allowed(s) if vocab.token_bytes[t].count(b'"') >= 2]
    spelled = {vocab.token_bytes[t] for t in merged}
    assert all(b'":"'.startswith(b) or b.startswith(b'":"') for b in spelled)
    if b'":"' in vocab.by_bytes:  # the merged separator must never be forbidden
        assert vocab.by_bytes[b'":"'][0] in g.allowed(s)


def test_two_step_marker_written_by_the_model_keeps_suffix_in_grammar(lm):
    """When the model writes the marker itself, the ``\\n`` after it is part of the constrained JSON."""
    model, tok = lm
    render = _render(tok)
    marker = tok.decode(_greedy(model, tok, render(TEXTS[0]), 3), skip_special_tokens=True)
    assert marker.strip()
    eng = ExtractionEngine(model, tok, "merchant", render, max_new_tokens=60, batch_size=1,
                           answer_marker=marker, analysis_max_tokens=8)
    res = eng.extract(TEXTS[:1])[0]
    assert res.parsed is not None
    head, body = res.raw.split(marker, 1)
    assert body.startswith("\n{") and body.endswith("}")
    assert load_task("merchant").normalize_output(__import__("json").loads(body)) == res.parsed
