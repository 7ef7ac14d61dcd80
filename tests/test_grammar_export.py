"""The exported grammars, run by llguidance and xgrammar themselves on CPU.

Every gold answer of a generated file is accepted by both libraries (and by our own
automaton); a value that is not a substring of its text, or that ends inside an escape,
is rejected by all three. The command writes a template + recipe that rebuild the same
grammar without finextract.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from finextract.backends.causal_lm.constrained import JsonShape, TextGrammar, TokenVocab
from finextract.backends.causal_lm.grammar_export import (ebnf_for_text, export_grammar, lark_for_text,
                                                         value_units)
from finextract.prompts import compact_json
from finextract.tasks import load_task
from finextract.testing.tiny import build_tiny_causal_lm

llguidance = pytest.importorskip("llguidance", reason="llguidance not installed (pip install llguidance)")
xgr = pytest.importorskip("xgrammar", reason="xgrammar not installed (pip install --no-deps xgrammar)")
TASK = load_task("merchant")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoTokenizer

    d = build_tiny_causal_lm(tmp_path_factory.mktemp("lm"))
    return d, AutoTokenizer.from_pretrained(d)


@pytest.fixture(scope="module")
def gold(tmp_path_factory) -> list[tuple[str, dict]]:
    """A few hundred records from the generator (what `finextract data synth` writes)."""
    from finextract.synth import write_splits

    out = tmp_path_factory.mktemp("synth")
    write_splits(out, n=300, seed=7)
    rows = []
    for split in ("train", "validation", "test"):
        for line in (out / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            rows.append((r["text"], r["fields"]))
    assert len(rows) == 300
    return rows


class _Checkers:
    def __init__(self, tok):
        import llguidance.hf

        self.tok = tok
        self.lltok = llguidance.hf.from_tokenizer(tok)
        self.vocab = TokenVocab.for_tokenizer(tok)
        self.shape = JsonShape(tuple(TASK.key_names), False)

    def llg(self, text: str, answer: str) -> bool:
        g = llguidance.LLMatcher.grammar_from_lark(lark_for_text(TASK, text))
        m = llguidance.LLMatcher(self.lltok, g)
        assert not m.is_error(), m.get_error()
        ids = self.tok.encode(answer, add_special_tokens=False)
        return m.try_consume_tokens(ids) == len(ids) and m.is_accepting()

    def xgr(self, text: str, answer: str) -> bool:
        from xgrammar.testing import _is_grammar_accept_string

        return _is_grammar_accept_string(xgr.Grammar.from_ebnf(ebnf_for_text(TASK, text)), answer)

    def ours(self, text: str, answer: str) -> bool:
        g = TextGrammar(text, self.shape, self.vocab)
        s = g.feed(g.initial(), answer.encode("utf-8"))
        return s is not None and s.mode == "done"


def test_every_gold_answer_is_accepted(tiny, gold):
    check = _Checkers(tiny[1])
    for text, fields in gold:
        answer = compact_json(TASK, fields)
        assert check.ours(text, answer), (text, answer)
        assert check.llg(text, answer), ("llguidance", text, answer)
        assert check.xgr(text, answer), ("xgrammar", text, answer)


def test_non_substring_values_are_rejected(tiny, gold):
    check = _Checkers(tiny[1])
    n = 0
    for text, fields in gold[:80]:
        key = next((k for k, v in fields.items() if v), None)
        if key is None:
            continue
        for bad in (fields[key] + "\u00a7Q", "Zq#" + fields[key][1:]):
            if bad in text:
                continue
            answer = compact_json(TASK, {**fields, key: bad})
            assert not check.ours(text, answer)
            assert not check.llg(text, answer), ("llguidance accepted", text, answer)
            assert not check.xgr(text, answer), ("xgrammar accepted", text, answer)
            n += 1
    assert n > 50


@pytest.mark.parametrize("text", ['SQ *CAFE "LA" \\ NY', "é€😀 東京", "tab\tnl\nq\"", ""])
def test_escapes_and_odd_texts(tiny, text):
    """Values must start and end on escape-unit boundaries; odd characters survive the grammar."""
    check = _Checkers(tiny[1])
    units = value_units(text)
    whole = json.loads('"' + "".join(units) + '"')
    assert whole == text
    ok = compact_json(TASK, {"MERCHANT_NAME": text})
    assert check.ours(text, ok) and check.llg(text, ok) and check.xgr(text, ok)
    empty = compact_json(TASK, {})
    assert check.ours(text, empty) and check.llg(text, empty) and check.xgr(text, empty)
    if '"' in text:  # a value ending between the backslash and the quote of \" is not JSON-closed
        head = json.dumps(text[:text.index('"')], ensure_ascii=False)[1:-1]
        bad = '{"INTERMEDIARY":"' + head + "\\" + empty[len('{"INTERMEDIARY":"'):]  # ...CAFE \","MERCH...
        assert not check.ours(text, bad) and not check.llg(text, bad) and not check.xgr(text, bad)


def test_export_command_writes_template_and_recipe(tiny, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from finextract.cli import _discover, app

    _discover()
    model_dir, tok = tiny
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({
        "backend": "causal_lm", "task": "merchant", "output_dir": str(run),
        "data": {"train": str(tmp_path / "x.jsonl")}, "model": {"name_or_path": str(model_dir)},
        "prompt": {"style": "json-only"}}))
    res = CliRunner().invoke(app, ["export-grammar", str(run), "--out", str(tmp_path / "g")])
    assert res.exit_code == 0, res.output
    out = tmp_path / "g"
    for name in ("grammar.lark", "grammar.ebnf", "prompt.json", "build_grammar.py", "README.md",
                 "request_example.json"):
        assert (out / name).exists(), name
    text = 'AMZN Mktp US*2Y2 "q" SEATTLE WA'
    for kind, ref in (("lark", lark_for_text(TASK, text)), ("ebnf", ebnf_for_text(TASK, text))):
        built = subprocess.run([sys.executable, str(out / "build_grammar.py"), kind, text], capture_output=True,
                               text=True, check=True).stdout
        assert built.strip() == ref.strip()
    prompt = json.loads((out / "prompt.json").read_text())
    from finextract.prompts import render_prompt

    assert prompt["before"] + text + prompt["after"] == render_prompt(tok, TASK, "json-only", text)
    body = json.loads((out / "request_example.json").read_text())
    assert "grammar" in body["structured_outputs"]
    # the recipe's grammar really constrains: llguidance accepts a gold-shaped answer for it
    assert _Checkers(tok).llg(text, compact_json(TASK, {"MERCHANT_NAME": "AMZN Mktp", "STATE": "WA"}))
