"""The engine's output constraint as grammars that llguidance and xgrammar (and so vLLM, SGLang) run.

Why: at cluster scale a user serves the fine-tuned model with vLLM or SGLang, whose
structured-output backends are llguidance (Lark grammars) and xgrammar (EBNF). Both now
have a substring primitive, so our constraint -- the task's fixed JSON skeleton, every
value a verbatim piece of the input -- can be handed to them instead of re-implemented.

The constraint depends on each input text, so an export is a *template* plus a recipe:
the skeleton is fixed per run; the value rule is the substring primitive over the text's
JSON-escape units (``json.dumps(ch)[1:-1]`` per character), which is exactly our rule
"a value is a substring of the JSON-escaped text that starts and ends on unit
boundaries" (so ``\\"`` or half a character can never end a value):

* llguidance (Lark): ``%regex {"substring_chunks": [...units...]}``
* xgrammar (EBNF): ``Substring("u1", "u2", ...)``

What a grammar cannot say: multi-valued lists here hold *distinct, non-blank* items and
our engine refuses moves into dead ends; a context-free grammar only gets "a list of
substrings". Single-valued tasks (merchant) are expressed exactly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from finextract.errors import InputError
from finextract.tasks import Task

CHUNKS = "__FINEXTRACT_CHUNKS__"  # where the per-text unit list goes in a template


def value_units(text: str) -> list[str]:
    """The text's JSON-escape units, one per character (what a value may be a run of)."""
    return [json.dumps(ch, ensure_ascii=False)[1:-1] for ch in text]


def _lit(s: str) -> str:
    """A double-quoted literal in both grammar dialects (JSON string escaping)."""
    return json.dumps(s, ensure_ascii=False)


def _skeleton(task: Task, value: str, item_sep: str = ",", key_sep: str = ":") -> list[str]:
    """Grammar pieces of the whole output: literals and the value rule's name, in order."""
    parts: list[str] = []
    opener = "[" if task.multi_valued else '"'
    for i, key in enumerate(task.key_names):
        head = "{" if i == 0 else ('"' if not task.multi_valued else "") + item_sep
        parts.append(_lit(head + json.dumps(key, ensure_ascii=False) + key_sep + opener))
        parts.append(value)
    parts.append(_lit(('"' if not task.multi_valued else "") + "}"))
    return parts


def lark_template(task: Task, separators: tuple[str, str] = (",", ":")) -> str:
    """llguidance Lark grammar with :data:`CHUNKS` standing for the text's unit list (JSON)."""
    item_sep, key_sep = separators
    if task.multi_valued:
        rules = [f'list: "]" | item ({_lit(item_sep)} item)* "]"',
                 'item: "\\"" SUB "\\""']
        value = "list"
    else:
        rules = ['value: SUB | ""']
        value = "value"
    start = "start: " + " ".join(_skeleton(task, value, item_sep, key_sep))
    sub = 'SUB: %regex {"substring_chunks": ' + CHUNKS + "}"
    return "\n".join([start, *rules, sub]) + "\n"


def ebnf_template(task: Task, separators: tuple[str, str] = (",", ":")) -> str:
    """xgrammar EBNF with :data:`CHUNKS` standing for the comma-separated quoted units."""
    item_sep, key_sep = separators
    if task.multi_valued:
        rules = [f'list ::= "]" | item ({_lit(item_sep)} item)* "]"', 'item ::= "\\"" sub "\\""']
        value = "list"
    else:
        rules = ['value ::= "" | sub']
        value = "value"
    root = "root ::= " + " ".join(_skeleton(task, value, item_sep, key_sep))
    return "\n".join([root, *rules, "sub ::= Substring(" + CHUNKS + ")"]) + "\n"


def fill_lark(template: str, text: str) -> str:
    """The per-request llguidance grammar for ``text``."""
    return template.replace(CHUNKS, json.dumps(value_units(text), ensure_ascii=False))


def fill_ebnf(template: str, text: str) -> str:
    """The per-request xgrammar grammar for ``text`` (an empty text allows only empty values)."""
    units = value_units(text) or [""]
    return template.replace(CHUNKS, ", ".join(_lit(u) for u in units))


def lark_for_text(task: Task, text: str, separators: tuple[str, str] = (",", ":")) -> str:
    return fill_lark(lark_template(task, separators), text)


def ebnf_for_text(task: Task, text: str, separators: tuple[str, str] = (",", ":")) -> str:
    return fill_ebnf(ebnf_template(task, separators), text)


RECIPE = '''"""Build the per-request grammar for one input text (no finextract needed).

    python build_grammar.py lark "SQ *CAFE NY 10001"   # llguidance / vLLM guidance backend
    python build_grammar.py ebnf "SQ *CAFE NY 10001"   # xgrammar
"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
CHUNKS = "__FINEXTRACT_CHUNKS__"


def units(text):
    return [json.dumps(ch, ensure_ascii=False)[1:-1] for ch in text]


def grammar(kind, text):
    if kind == "lark":
        return (HERE / "grammar.lark").read_text().replace(CHUNKS, json.dumps(units(text), ensure_ascii=False))
    quoted = ", ".join(json.dumps(u, ensure_ascii=False) for u in (units(text) or [""]))
    return (HERE / "grammar.ebnf").read_text().replace(CHUNKS, quoted)


def prompt(text):
    p = json.loads((HERE / "prompt.json").read_text())
    return p["before"] + text + p["after"]


if __name__ == "__main__":
    print(grammar(sys.argv[1], sys.argv[2]))
'''


def prompt_pieces(tokenizer: Any, task: Task, style: str, enable_thinking: bool | None) -> dict[str, str]:
    """The rendered prompt around the text: ``before + text + after`` is the model's input."""
    from finextract.prompts import render_prompt

    marker = "\u2063FINEXTRACT_TEXT\u2063"
    full = render_prompt(tokenizer, task, style, marker, enable_thinking)
    if full.count(marker) != 1:
        raise InputError(f"the chat template does not show the user text verbatim (style {style!r})")
    before, after = full.split(marker)
    return {"before": before, "after": after}


def export_grammar(run_dir: str | Path, out_dir: str | Path | None = None) -> dict[str, Any]:
    """Write grammar.lark, grammar.ebnf, prompt.json, build_grammar.py and README.md for a run."""
    from finextract.backends.causal_lm.config import CausalRunConfig
    from finextract.backends.causal_lm.modeling import load_tokenizer
    from finextract.rundir import RunDir

    run = RunDir(Path(run_dir))
    cfg = CausalRunConfig.model_validate(run.read_config())
    task = cfg.load_task()
    from finextract.prompts import get_style

    if get_style(cfg.prompt.style).answer_marker:
        raise InputError(f"{run.root}: prompt style {cfg.prompt.style!r} writes free analysis before the JSON; "
                         "export a json-only or minimal run (the grammar covers the JSON answer only)")
    out = Path(out_dir) if out_dir else run.root / "grammar"
    out.mkdir(parents=True, exist_ok=True)
    tok_dir = run.root / "tokenizer" if (run.root / "tokenizer").exists() else cfg.model.name_or_path
    from finextract.backends.causal_lm.extractor import allowed_remote_code

    tok = load_tokenizer(tok_dir, allowed_remote_code(None, cfg.model.trust_remote_code, run.config_path))
    pieces = prompt_pieces(tok, task, cfg.prompt.style, cfg.prompt.enable_thinking)
    (out / "grammar.lark").write_text(lark_template(task))
    (out / "grammar.ebnf").write_text(ebnf_template(task))
    (out / "prompt.json").write_text(json.dumps(pieces, ensure_ascii=False, indent=2))
    (out / "build_grammar.py").write_text(RECIPE)
    example = "SQ *CAFE NY 10001"
    request = {"model": "<served model name>", "prompt": pieces["before"] + example + pieces["after"],
               "max_tokens": cfg.decoding.max_new_tokens, "temperature": 0,
               "structured_outputs": {"grammar": lark_for_text(task, example)}}
    (out / "request_example.json").write_text(json.dumps(request, ensure_ascii=False, indent=2))
    (out / "README.md").write_text(_readme(task, cfg.prompt.style))
    return {"out_dir": str(out), "task": task.name, "prompt_style": cfg.prompt.style,
            "exact": not task.multi_valued,
            "files": sorted(p.name for p in out.iterdir())}


def _readme(task: Task, style: str) -> str:
    exact = ("The grammar is exact for this task: the same outputs our engine allows."
             if not task.multi_valued else
             "This task has lists: the grammar allows any list of substrings; our engine also "
             "refuses repeated or blank items, which a context-free grammar cannot express.")
    return f"""# Constrained output for task `{task.name}` (prompt style `{style}`)

{exact}

- `grammar.lark`: llguidance (vLLM `guidance` backend, SGLang `llguidance`) template.
- `grammar.ebnf`: xgrammar template.
- `prompt.json`: `before + text + after` is the model input (chat template already applied).
- `build_grammar.py`: fills a template for one text (`__FINEXTRACT_CHUNKS__` = the text's JSON-escape units).
- `request_example.json`: a complete vLLM `/v1/completions` request body.

vLLM (OpenAI-compatible server, raw completions so the prompt is exactly ours):

```python
import requests
from build_grammar import grammar, prompt
text = "SQ *CAFE NY 10001"
body = {{"model": MODEL, "prompt": prompt(text), "temperature": 0, "max_tokens": 256,
        "structured_outputs": {{"grammar": grammar("lark", text)}}}}
print(requests.post("http://localhost:8000/v1/completions", json=body).json()["choices"][0]["text"])
```

Older vLLM (before 0.12) takes the same grammar as `"guided_grammar": ...` at the top level.
Serve with the guidance backend for the Lark grammar, or send `grammar("ebnf", text)` to
an xgrammar backend.
"""


def register(app: Any) -> None:
    """``finextract export-grammar`` (a causal_lm backend command)."""
    import typer

    @app.command("export-grammar")
    def export_grammar_cmd(
        run_dir: Path = typer.Argument(..., help="trained causal_lm run directory"),
        out: Path = typer.Option(None, "--out", "-o", help="output folder (default: RUN_DIR/grammar)"),
    ) -> None:
        """Write the run's constraint as grammars vLLM / SGLang can enforce, plus the prompt.

        The constraint (fixed JSON skeleton, every value a verbatim piece of the input)
        depends on each input text, so the export is a template and a recipe:
        grammar.lark (llguidance, `substring_chunks`), grammar.ebnf (xgrammar,
        `Substring`), prompt.json (the chat-templated prompt around the text),
        build_grammar.py (fills a template for one text, no finextract needed),
        request_example.json (a vLLM /v1/completions body with `structured_outputs`)
        and README.md. See docs/decoding.md.
        """
        from finextract.console import console

        console.print_json(json.dumps(export_grammar(run_dir, out)))


__all__ = ["register", "value_units", "lark_template", "ebnf_template", "fill_lark", "fill_ebnf", "lark_for_text",
           "ebnf_for_text", "prompt_pieces", "export_grammar", "CHUNKS"]
