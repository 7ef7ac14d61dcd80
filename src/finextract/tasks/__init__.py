"""Tasks are data: a task is its keys, their descriptions, value semantics and rules text.

Every backend, the scorer, the validator and the prompts read a :class:`Task`; nothing
branches on a task's *name*. Built-in tasks live as YAML files next to this module; a user
task is the same YAML anywhere on disk (``load_task("my_task.yaml")``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from finextract.errors import InputError

_BUILTIN_DIR = Path(__file__).parent

MAX_YAML_BYTES = 1 << 20  # a task or run config is a few kB; 1 MiB leaves room for long rules text
MAX_YAML_ALIASES = 100  # anchors/aliases (``<<: *defaults``) are allowed, in small numbers
MAX_YAML_NODES = 100_000  # nodes after expanding every alias


class YamlLimitError(InputError):
    """A YAML document over the size, alias or expansion limits (e.g. a "billion laughs" file)."""


class _LimitedLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses alias bombs while *composing*, before anything is expanded.

    PyYAML builds aliases as shared references, so a 362-byte file of nested aliases loads
    instantly but is a graph of 10^9 nodes once anything walks it (pydantic, ``json.dumps``):
    that is where 179 s and 5.5 GB went, in C code that does not see Ctrl-C. Counting aliases
    and the expanded node count on the composed graph (memoised per node, so linear in the
    file) refuses such a file in milliseconds.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise YamlLimitError(f"more than {MAX_YAML_ALIASES} aliases (*name); refusing a possible alias bomb")
        return super().compose_node(parent, index)

    def compose_document(self):  # type: ignore[no-untyped-def]
        node = super().compose_document()
        _expanded_size(node, {})
        return node


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    key = id(node)
    if key in memo:
        if memo[key] < 0:
            raise YamlLimitError("a recursive alias (a node that contains itself)")
        return memo[key]
    memo[key] = -1
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    if size > MAX_YAML_NODES:
        raise YamlLimitError(f"expands to more than {MAX_YAML_NODES} nodes through aliases; refusing an alias bomb")
    memo[key] = size
    return size


def safe_load_yaml(text: str, where: str = "YAML") -> Any:
    """``yaml.safe_load`` with size, alias and expansion limits; every failure is an ``InputError``
    naming ``where`` (a NUL byte or other unreadable character included)."""
    if len(text) > MAX_YAML_BYTES:
        raise YamlLimitError(f"{where}: {len(text)} characters, over the {MAX_YAML_BYTES}-character limit for YAML")
    try:
        loader = _LimitedLoader(text)  # the reader refuses NUL and other control characters here
    except yaml.YAMLError as exc:
        raise InputError(f"{where}: not valid YAML: {exc}") from None
    try:
        return loader.get_single_data()
    except YamlLimitError as exc:
        raise YamlLimitError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{where}: not valid YAML: {exc}") from None
    except RecursionError:
        raise YamlLimitError(f"{where}: nested too deeply") from None
    finally:
        loader.dispose()


def read_yaml_file(path: str | Path) -> Any:
    """Read and parse a YAML file with :func:`safe_load_yaml`; unreadable or non-UTF-8 files included."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not valid UTF-8 (byte {exc.start})") from None
    return safe_load_yaml(text, str(path))


class KeySpec(BaseModel):
    """One output key (merchant field or entity type)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    description: str = ""
    strip: str = Field(default="", description=(
        "separator characters a value never starts or ends with: a span decoder that lands on a word with "
        "a glued separator (`OFFICE-`, `\"NAME`) drops them. Empty: values are taken as decoded."))

    @field_validator("strip")
    @classmethod
    def _strip_is_separators(cls, chars: str) -> str:
        bad = sorted({c for c in chars if c.isalnum() or c.isspace()})
        if bad:
            raise ValueError(f"strip holds separator characters only, not letters, digits or spaces: {bad}")
        return chars


class Task(BaseModel):
    """An extraction task: what keys to output and how values behave.

    ``multi_valued=False``: each key holds one string ("" when absent).
    ``multi_valued=True``: each key holds a list of distinct strings ([] when absent).
    In both cases every value must be a verbatim substring of the input text.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    description: str = ""
    keys: tuple[KeySpec, ...]
    multi_valued: bool = False
    rules: str = ""
    record_field: Literal["fields", "entities"] | None = None
    max_text_chars: int = Field(default=2000, gt=0)
    allow_non_substring: bool = False

    @field_validator("keys")
    @classmethod
    def _unique_keys(cls, keys: tuple[KeySpec, ...]) -> tuple[KeySpec, ...]:
        if not keys:
            raise ValueError("a task needs at least one key")
        names = [k.name for k in keys]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate key names: {dupes}")
        return keys

    @model_validator(mode="after")
    def _default_record_field(self) -> "Task":
        if self.record_field is None:
            object.__setattr__(self, "record_field", "entities" if self.multi_valued else "fields")
        return self

    # ----------------------------------------------------------------- helpers
    @property
    def key_names(self) -> list[str]:
        return [k.name for k in self.keys]

    def strip_span(self, key: str, text: str, start: int, end: int) -> tuple[int, int]:
        """``text[start:end]`` without the key's ``strip`` characters (and the spaces they exposed) at
        either end; unchanged when nothing would be left, so a decoded value is never lost to the rule."""
        chars = next((k.strip for k in self.keys if k.name == key), "")
        if not chars:
            return start, end
        a, b = start, end
        while a < b and (text[a] in chars or text[a].isspace()):
            a += 1
        while b > a and (text[b - 1] in chars or text[b - 1].isspace()):
            b -= 1
        return (a, b) if a < b else (start, end)

    def without_strip(self) -> "Task":
        """This task with every key's ``strip`` emptied: values exactly as decoded (paired comparisons)."""
        return self.model_copy(update={"keys": tuple(k.model_copy(update={"strip": ""}) for k in self.keys)})

    def empty_value(self) -> str | list[str]:
        return [] if self.multi_valued else ""

    def empty_output(self) -> dict[str, Any]:
        return {k: self.empty_value() for k in self.key_names}

    def normalize_output(self, obj: Any) -> dict[str, Any] | None:
        """Coerce a parsed model output to exactly this task's keys, or ``None`` if its shape is wrong.

        Missing keys become empty; unknown keys are dropped; values of the wrong type
        (a dict, a number, a list for a single-valued task) make the whole output invalid,
        because silently repairing them would hide model errors from the scorer.
        Multi-valued lists keep first occurrences only (set semantics, order kept).
        """
        if not isinstance(obj, dict):
            return None
        out: dict[str, Any] = {}
        for key in self.key_names:
            value = obj.get(key, self.empty_value())
            if value is None:
                value = self.empty_value()
            if self.multi_valued:
                if isinstance(value, str):
                    value = [value] if value.strip() else []
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    return None
                seen: dict[str, None] = {}
                for v in value:
                    if v.strip():
                        seen.setdefault(v, None)
                out[key] = list(seen)
            else:
                if not isinstance(value, str):
                    return None
                out[key] = value
        return out

    def schema_json(self) -> str:
        """A compact JSON example of the output shape (used in prompts and docs)."""
        return json.dumps(self.empty_output(), ensure_ascii=False, separators=(",", ":"))


def builtin_task_names() -> list[str]:
    return sorted(p.stem for p in _BUILTIN_DIR.glob("*.yaml"))


def task_from_yaml(path: str | Path) -> Task:
    path = Path(path)
    try:
        data = read_yaml_file(path)
    except InputError as exc:
        raise InputError(f"cannot read task definition: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a task file must be a YAML mapping")
    try:
        return Task.model_validate(data)
    except Exception as exc:  # pydantic.ValidationError
        raise InputError(f"{path}: invalid task definition:\n{exc}") from exc


@lru_cache(maxsize=None)
def _load_builtin(name: str) -> Task:
    return task_from_yaml(_BUILTIN_DIR / f"{name}.yaml")


def load_task(task: "str | Path | Task") -> Task:
    """A built-in task by name (``merchant``, ``fin-ner``), a YAML path, or a Task as is."""
    if isinstance(task, Task):
        return task
    name = str(task)
    if name in builtin_task_names():
        return _load_builtin(name)
    path = Path(name)
    if path.suffix in {".yaml", ".yml"} and path.exists():
        return task_from_yaml(path)
    raise InputError(
        f"unknown task {name!r}: use one of {builtin_task_names()} or a path to a task YAML file"
    )


__all__ = ["KeySpec", "Task", "load_task", "task_from_yaml", "builtin_task_names", "read_yaml_file",
           "safe_load_yaml", "YamlLimitError"]
