"""Instruction prompts for causal LMs: build, render, format targets, parse outputs.

Three styles, all generated from the :class:`~finextract.tasks.Task` (keys, descriptions,
rules), so a new task needs no new prompt code:

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
from typing import Any, Literal

from finextract.tasks import Task

PromptStyle = Literal["json-only", "two-step", "minimal"]
STYLES: tuple[str, ...] = ("json-only", "two-step", "minimal")
ANSWER_MARKER = "### ANSWER"
THINK_BLOCK = "<think>\n\n</think>\n\n"


def _check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"unknown prompt style {style!r}; use one of {list(STYLES)}")


def _value_shape(task: Task) -> str:
    if task.multi_valued:
        return "a list of strings (an empty list [] when there is nothing of that kind)"
    return 'a string (the empty string "" when the text does not contain it)'


def system_prompt(task: Task, style: str) -> str:
    """The instruction text for ``style`` (keys, value shape, rules and answer format)."""
    _check_style(style)
    if style == "minimal":
        return (f"Extract {', '.join(task.key_names)} from the text. "
                f"Reply with JSON only, shaped like {task.schema_json()}")
    parts = [task.description.strip() or f"Extract the {task.name} fields from the text."]
    key_lines = [f"- {k.name}: {k.description}".rstrip(": ") for k in task.keys]
    parts.append(f"Fill every one of these keys; each value is {_value_shape(task)}:\n" + "\n".join(key_lines))
    if task.rules.strip():
        parts.append("Follow these rules:\n" + task.rules.strip())
    if style == "json-only":
        parts.append(f"Answer with a single JSON object with exactly these keys, in this order, and no other "
                     f"text: {task.schema_json()}")
    else:  # two-step
        parts.append("First think briefly: name the pieces of the text and which key each belongs to, "
                     "checking them against the rules. Then write a line containing only "
                     f"{ANSWER_MARKER} and, below it, a single JSON object with exactly these keys in this "
                     f"order: {task.schema_json()}")
    return "\n\n".join(parts)


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
        raise ValueError(f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no chat template; "
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

    ``two-step`` targets carry a short analysis derived from the gold values (which piece
    went to which key), then the marker, then the JSON. With ``enable_thinking`` on, the
    empty think block is part of the target unless the template already put it into the
    prompt (``prompt_has_think``).
    """
    _check_style(style)
    body = compact_json(task, values)
    if style == "two-step":
        found = []
        for k in task.key_names:
            v = values.get(k, task.empty_value())
            vals = v if isinstance(v, list) else ([v] if v else [])
            found += [f'"{x}" is {k}' for x in vals]
        analysis = ("; ".join(found) + ".") if found else "Nothing in the text matches any key."
        body = f"{analysis}\n{ANSWER_MARKER}\n{body}"
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

    Order of repairs: drop think blocks, keep what follows the last :data:`ANSWER_MARKER`,
    unwrap code fences, take the last balanced JSON object that parses (models that
    "correct themselves" put the final answer last), then remove trailing commas or read
    single-quoted literals.
    """
    if not isinstance(raw, str):
        return None
    text = _THINK_RE.sub("", raw)
    if ANSWER_MARKER in text:
        text = text.rsplit(ANSWER_MARKER, 1)[1]
    fences = [m.group(1) for m in _FENCE_RE.finditer(text)]
    candidates: list[str] = []
    for chunk in (fences or []) + [text]:
        candidates += _balanced_objects(chunk)
    for candidate in reversed(candidates):
        obj = _loads_lenient(candidate)
        if isinstance(obj, dict):
            return task.normalize_output(obj)
    return None


__all__ = ["ANSWER_MARKER", "STYLES", "PromptStyle", "THINK_BLOCK", "system_prompt", "build_messages",
           "render_prompt", "compact_json", "format_target", "parse_output"]
