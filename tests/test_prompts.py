"""Prompt styles, rendering through a real chat template, targets and the lenient parser."""

from __future__ import annotations

import json

import pytest

from finextract.prompts import (ANSWER_MARKER, STYLES, THINK_BLOCK, build_messages, format_target,
                                parse_output, render_prompt, system_prompt)
from finextract.tasks import load_task

MERCHANT = load_task("merchant")
NER = load_task("fin-ner")


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    from finextract.testing import build_tiny_tokenizer

    return build_tiny_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.mark.parametrize("style", STYLES)
def test_every_style_names_every_key(style):
    text = system_prompt(MERCHANT, style)
    assert all(k in text for k in MERCHANT.key_names)
    msgs = build_messages(MERCHANT, style, "SQ *CAFE SEATTLE WA")
    assert [m["role"] for m in msgs] == ["system", "user"] and msgs[1]["content"] == "SQ *CAFE SEATTLE WA"


def test_rules_and_descriptions_only_where_promised():
    assert "Store numbers belong to MERCHANT_NAME" in system_prompt(MERCHANT, "json-only")
    assert MERCHANT.keys[1].description in system_prompt(MERCHANT, "json-only")
    assert "Store numbers" not in system_prompt(MERCHANT, "minimal")
    assert ANSWER_MARKER in system_prompt(MERCHANT, "two-step")
    assert ANSWER_MARKER not in system_prompt(MERCHANT, "json-only")
    with pytest.raises(ValueError, match="unknown prompt style"):
        system_prompt(MERCHANT, "verbose")


def test_render_passes_enable_thinking_only_when_set(tok):
    plain = render_prompt(tok, MERCHANT, "json-only", "ABC")
    on = render_prompt(tok, MERCHANT, "json-only", "ABC", enable_thinking=True)
    off = render_prompt(tok, MERCHANT, "json-only", "ABC", enable_thinking=False)
    assert plain.endswith("<|im_start|>assistant\n") and plain == off
    assert on.endswith("<|im_start|>assistant\n" + THINK_BLOCK)


def test_target_is_compact_json_in_task_order():
    target = format_target(MERCHANT, {"CITY": "AUSTIN", "MERCHANT_NAME": "HEB"})
    assert list(json.loads(target)) == MERCHANT.key_names
    assert " " not in target.replace("AUSTIN", "")
    assert format_target(NER, {"Company": ["A"]}, enable_thinking=True).startswith(THINK_BLOCK)
    assert not format_target(NER, {}, enable_thinking=True, prompt_has_think=True).startswith("<think>")


@pytest.mark.parametrize("style", STYLES)
def test_parse_inverts_format(style):
    values = {"Company": ["Essilor", "Luxottica"], "Location": ["EU"]}
    for thinking in (None, True):
        out = parse_output(NER, format_target(NER, values, style, thinking))
        assert out == NER.normalize_output(values)


@pytest.mark.parametrize("raw,expected", [
    ('```json\n{"CITY": "AUSTIN",}\n```', {"CITY": "AUSTIN"}),
    ("Here you go: {'CITY': 'AUSTIN'} hope it helps", {"CITY": "AUSTIN"}),
    ('<think>maybe {"CITY": "X"}</think>\n{"CITY": "AUSTIN"}', {"CITY": "AUSTIN"}),
    ('draft {"CITY": "X"}\n' + ANSWER_MARKER + '\n{"CITY": "AUSTIN"}', {"CITY": "AUSTIN"}),
    ('{"CITY": "A}B", "STATE": "TX"}', {"CITY": "A}B", "STATE": "TX"}),
])
def test_parse_repairs_form(raw, expected):
    assert parse_output(MERCHANT, raw) == MERCHANT.normalize_output(expected)


@pytest.mark.parametrize("raw", ["", "no json here", '{"CITY": 3}', '["AUSTIN"]', '{"CITY": {"a": 1}}'])
def test_parse_refuses_wrong_shape(raw):
    assert parse_output(MERCHANT, raw) is None


def test_a_registered_style_is_accepted_by_the_config_and_used_everywhere():
    from finextract.backends.causal_lm.config import CausalRunConfig
    from finextract.config import ConfigError, load_run_config
    from finextract.prompts import _STYLES, PromptStyle, compact_json, get_style, register_style, style_names

    assert style_names()[:3] == ("json-only", "two-step", "minimal")
    with pytest.raises(ConfigError, match="unknown prompt style 'terse'"):
        load_run_config(None, ["backend=causal_lm", "model.name_or_path=x", "prompt.style=terse"])
    register_style(PromptStyle(name="terse", description="test style", system=lambda task: "KEYS " + task.schema_json(),
                               target=lambda task, values: "RESULT " + compact_json(task, values),
                               answer_marker="RESULT"))
    try:
        cfg = CausalRunConfig.model_validate({"model": {"name_or_path": "x"}, "prompt": {"style": "terse"}})
        assert cfg.prompt.style == "terse" and get_style("terse").answer_marker == "RESULT"
        assert system_prompt(MERCHANT, "terse").startswith("KEYS ")
        values = {k: "" for k in MERCHANT.key_names}
        target = format_target(MERCHANT, values, "terse")
        assert target.startswith("RESULT {") and parse_output(MERCHANT, "chatter " + target) == values
    finally:
        _STYLES.pop("terse")
