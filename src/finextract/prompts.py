"""Instruction prompts for causal LMs: build, render, format targets, parse outputs.

Styles are registered :class:`PromptStyle` objects (system text, target format, answer
marker); three are built in, all generated from the :class:`~finextract.tasks.Task` (keys,
descriptions, rules), so a new task needs no new prompt code:

* ``json-only`` - describe the keys and rules, ask for one JSON object and nothing else.
* ``two-step``  - let the model write a short analysis first, then the JSON after the fixed
  :data:`ANSWER_MARKER` line (the parser only reads what follows the marker).
* ``minimal``   - only the key list and the output shape; no descriptions, no rules. Short
  prompts train and decode faster once the model has learned the task.

Parsing is forgiving about *form* (code fences, chatter around the object, think blocks,
trailing commas, single quotes) and strict about *shape*: anything that does not become a
task-shaped dict is ``None`` and counted as invalid by the scorer.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from finextract.errors import InputError
from finextract.tasks import Task

ANSWER_MARKER = "### ANSWER"
THINK_BLOCK = "<think>\n\n</think>\n\n"


@dataclass(frozen=True)
class PromptStyle:
    """One way of asking for the answer: what the system prompt says, what the target looks like.

    ``system(task)`` is the instruction text; ``target(task, values)`` the supervised answer
    (before any think block); ``answer_marker``, when set, is the line after which the
    answer starts (the parser and the decoding engine read only what follows it). A new
    style is one :func:`register_style` call; configs accept every registered name.
    """

    name: str
    description: str
    system: Callable[[Task], str]
    target: Callable[[Task, dict[str, Any]], str]
    answer_marker: str | None = None


_STYLES: dict[str, PromptStyle] = {}


def register_style(style: PromptStyle) -> PromptStyle:
    _STYLES[style.name] = style
    return style


def style_names() -> tuple[str, ...]:
    """Names of the registered prompt styles, in registration order."""
    return tuple(_STYLES)


def get_style(name: str) -> PromptStyle:
    if name not in _STYLES:
        raise InputError(f"unknown prompt style {name!r}; use one of {list(_STYLES)}")
    return _STYLES[name]


def _check_style(style: str) -> None:
    get_style(style)


def _value_shape(task: Task) -> str:
    if task.multi_valued:
        return "a list of strings (an empty list [] when there is nothing of that kind)"
    return 'a string (the empty string "" when the text does not contain it)'


def _described(task: Task, closing: str) -> str:
    """Task description, keys with their descriptions, rules, then the style's closing instruction."""
    parts = [task.description.strip() or f"Extract the {task.name} fields from the text."]
    key_lines = [f"- {k.name}: {k.description}".rstrip(": ") for k in task.keys]
    parts.append(f"Fill every one of these keys; each value is {_value_shape(task)}:\n" + "\n".join(key_lines))
    if task.rules.strip():
        parts.append("Follow these rules:\n" + task.rules.strip())
    parts.append(closing)
    return "\n\n".join(parts)


def _two_step_target(task: Task, values: dict[str, Any]) -> str:
    """A short analysis derived from the gold values (which piece went to which key), the marker, the JSON."""
    found = []
    for k in task.key_names:
        v = values.get(k, task.empty_value())
        vals = v if isinstance(v, list) else ([v] if v else [])
        found += [f'"{x}" is {k}' for x in vals]
    analysis = ("; ".join(found) + ".") if found else "Nothing in the text matches any key."
    return f"{analysis}\n{ANSWER_MARKER}\n{compact_json(task, values)}"


register_style(PromptStyle(
    name="json-only",
    description="describe the keys and rules, ask for one JSON object and nothing else",
    system=lambda task: _described(task, "Answer with a single JSON object with exactly these keys, in this "
                                         f"order, and no other text: {task.schema_json()}"),
    target=lambda task, values: compact_json(task, values),
))
register_style(PromptStyle(
    name="two-step",
    description="a short analysis first, then the JSON after the answer marker line",
    system=lambda task: _described(
        task, "First think briefly: name the pieces of the text and which key each belongs to, "
              "checking them against the rules. Then write a line containing only "
              f"{ANSWER_MARKER} and, below it, a single JSON object with exactly these keys in this "
              f"order: {task.schema_json()}"),
    target=_two_step_target,
    answer_marker=ANSWER_MARKER,
))
register_style(PromptStyle(
    name="minimal",
    description="only the key list and the output shape: short prompts train and decode faster",
    system=lambda task: (f"Extract {', '.join(task.key_names)} from the text. "
                         f"Reply with JSON only, shaped like {task.schema_json()}"),
    target=lambda task, values: compact_json(task, values),
))
STYLES: tuple[str, ...] = style_names()  # the built-in styles (style_names() also sees later registrations)


def system_prompt(task: Task, style: str) -> str:
    """The instruction text for ``style`` (keys, value shape, rules and answer format)."""
    return get_style(style).system(task)


def build_messages(task: Task, style: str, text: str) -> list[dict[str, str]]:
    """Chat messages (system + user) asking for ``task`` on ``text``."""
    return [{"role": "system", "content": system_prompt(task, style)},
            {"role": "user", "content": text}]


def render_prompt(tokenizer: Any, task: Task, style: str, text: str,
                  enable_thinking: bool | None = None) -> str:
    """The model's input string: the chat template applied with a generation prompt.

    ``enable_thinking`` is passed to the template only when set, because templates that do
    not know the variable should render exactly as their authors intended.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise InputError(f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no chat template; "
                         "causal-LM extraction needs an instruction-tuned tokenizer or a template")
    kwargs: dict[str, Any] = {}
    if enable_thinking is not None:
        kwargs["enable_thinking"] = enable_thinking
    return tokenizer.apply_chat_template(build_messages(task, style, text), tokenize=False,
                                         add_generation_prompt=True, **kwargs)


def compact_json(task: Task, values: dict[str, Any]) -> str:
    """Exactly the task's keys, in task order, no spaces (fewest tokens to learn and decode)."""
    obj = {k: values.get(k, task.empty_value()) for k in task.key_names}
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def format_target(task: Task, values: dict[str, Any], style: str = "json-only",
                  enable_thinking: bool | None = None, prompt_has_think: bool = False) -> str:
    """The supervised answer text (without the end-of-turn token, which the trainer appends).

    The style decides the body (``two-step``: a short analysis, the marker, then the JSON).
    With ``enable_thinking`` on, the empty think block is part of the target unless the
    template already put it into the prompt (``prompt_has_think``).
    """
    body = get_style(style).target(task, values)
    if enable_thinking and not prompt_has_think:
        body = THINK_BLOCK + body
    return body


# ------------------------------------------------------------------------------ parsing
_THINK_RE = re.compile(r"<think>.*?(</think>|$)", re.DOTALL)
_FENCE_RE = re.compile(r"```(?:json|JSON)?\s*(.*?)(```|$)", re.DOTALL)
_TRAILING_COMMA_RE = re.compile(r",\s*([}\]])")


def _balanced_objects(s: str) -> list[str]:
    """Every top-level ``{...}`` span in ``s``, honouring strings; an unclosed one is closed."""
    out, depth, start, in_str, quote, esc = [], 0, -1, False, "", False
    for i, ch in enumerate(s):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == quote:
                in_str = False
            continue
        if ch in "\"'" and depth > 0:
            in_str, quote = True, ch
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                out.append(s[start:i + 1])
    if depth > 0 and start >= 0 and not in_str:  # truncated output: close what is open
        out.append(s[start:] + "}" * depth)
    return out


def _loads_lenient(candidate: str) -> Any:
    for attempt in (candidate, _TRAILING_COMMA_RE.sub(r"\1", candidate)):
        try:
            return json.loads(attempt)
        except json.JSONDecodeError:
            pass
    fixed = _TRAILING_COMMA_RE.sub(r"\1", candidate)
    try:  # single quotes / Python literals: a safe literal parser, never eval
        return ast.literal_eval(fixed.replace("null", "None").replace("true", "True").replace("false", "False"))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def parse_output(task: Task, raw: str) -> dict[str, Any] | None:
    """Model text -> task-shaped dict, or ``None`` (invalid; the scorer counts it).

    Order of repairs: drop think blocks, keep what follows the last answer marker of any
    registered style (:data:`ANSWER_MARKER` for ``two-step``),
    unwrap code fences, take the last balanced JSON object that parses (models that
    "correct themselves" put the final answer last), then remove trailing commas or read
    single-quoted literals.
    """
    if not isinstance(raw, str):
        return None
    text = _THINK_RE.sub("", raw)
    for marker in {st.answer_marker for st in _STYLES.values() if st.answer_marker}:
        if marker in text:
            text = text.rsplit(marker, 1)[1]
    fences = [m.group(1) for m in _FENCE_RE.finditer(text)]
    candidates: list[str] = []
    for chunk in (fences or []) + [text]:
        candidates += _balanced_objects(chunk)
    for candidate in reversed(candidates):
        obj = _loads_lenient(candidate)
        if isinstance(obj, dict):
            return task.normalize_output(obj)
    return None


__all__ = ["ANSWER_MARKER", "STYLES", "PromptStyle", "register_style", "get_style", "style_names", "THINK_BLOCK",
           "system_prompt", "build_messages", "render_prompt", "compact_json", "format_target", "parse_output"]
