"""Chat-template facts the trainer depends on: the end-of-turn token and a template hash.

Why: the commonest failure of SFT'd extractors is a model that never stops, because the
end-of-turn token was never supervised (template without one, truncation, pad == eos
masking). We find the token by rendering a probe conversation and refuse templates that
do not end an assistant turn with a special token. The hash of the template (plus a
rendered probe) is stored with every adapter; a model served under a different template
sees prompts it was never trained on, so loading refuses on mismatch.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finextract.errors import InputError
from finextract.prompts import render_prompt
from finextract.tasks import Task

log = logging.getLogger("finextract")
_PROBE_ANSWER = "PROBE_ANSWER_{}"
TEMPLATE_FILE = "template.json"


class TemplateError(InputError):
    """The tokenizer's chat template cannot be trained on safely."""


@dataclass(frozen=True)
class TemplateInfo:
    end_token: str
    end_token_id: int
    prompt_has_think: bool
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {"end_token": self.end_token, "end_token_id": self.end_token_id,
                "prompt_has_think": self.prompt_has_think, "hash": self.hash}


def _special_ids(tokenizer: Any) -> set[int]:
    ids = set(tokenizer.all_special_ids)
    for idx, added in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(added, "special", False):
            ids.add(int(idx))
    return ids


def find_end_token(tokenizer: Any) -> tuple[str, int]:
    """The special token the template writes right after an assistant message."""
    if not getattr(tokenizer, "chat_template", None):
        raise TemplateError("the tokenizer has no chat template")
    answer = _PROBE_ANSWER.format("x7q")
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
            {"role": "assistant", "content": answer}]
    rendered = tokenizer.apply_chat_template(msgs, tokenize=False)
    if answer not in rendered:
        raise TemplateError("the chat template drops the assistant message; cannot supervise answers")
    suffix = rendered.split(answer, 1)[1]
    ids = tokenizer(suffix, add_special_tokens=False)["input_ids"] if suffix else []
    if not ids or ids[0] not in _special_ids(tokenizer):
        raise TemplateError(
            f"the chat template ends an assistant turn with {suffix!r}, not with a special end token "
            "(like <|im_end|>, <|eot_id|> or <end_of_turn>); a model trained on it would never learn to stop. "
            "Use an instruction-tuned tokenizer or set a template whose assistant turns end in a special token.")
    return tokenizer.convert_ids_to_tokens(ids[0]), int(ids[0])


def template_info(tokenizer: Any, task: Task, style: str, enable_thinking: bool | None) -> TemplateInfo:
    end_token, end_id = find_end_token(tokenizer)
    probe = render_prompt(tokenizer, task, style, "PROBE TEXT 123", enable_thinking)
    h = hashlib.sha256()
    h.update((tokenizer.chat_template or "").encode())
    h.update(b"\0" + probe.encode() + b"\0" + end_token.encode())
    return TemplateInfo(end_token, end_id, probe.rstrip().endswith("</think>"), h.hexdigest()[:16])


def ensure_pad_token(tokenizer: Any, end_token_id: int) -> None:
    """Give the tokenizer a pad token that is not the end token (left padding for generation)."""
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == end_token_id:
        for cand in (tokenizer.eos_token, tokenizer.unk_token, tokenizer.bos_token):
            if cand is not None and tokenizer.convert_tokens_to_ids(cand) != end_token_id:
                tokenizer.pad_token = cand
                break
        else:
            raise TemplateError("no pad token distinct from the end-of-turn token; add one to the tokenizer")
    tokenizer.padding_side = "left"


def save_template_info(info: TemplateInfo, folder: Path, style: str, enable_thinking: bool | None) -> None:
    data = {**info.to_json(), "style": style, "enable_thinking": enable_thinking}
    (Path(folder) / TEMPLATE_FILE).write_text(json.dumps(data, indent=2), encoding="utf-8")


def check_template(saved_folder: Path, current: TemplateInfo, allow_mismatch: bool = False) -> None:
    """Refuse (or warn) when the current template renders differently from the trained one."""
    path = Path(saved_folder) / TEMPLATE_FILE
    if not path.exists():
        log.warning("%s: no %s; cannot verify the chat template", saved_folder, TEMPLATE_FILE)
        return
    saved = json.loads(path.read_text(encoding="utf-8"))
    if saved.get("hash") != current.hash:
        msg = (f"{saved_folder}: chat template hash {current.hash} differs from the one trained with "
               f"({saved.get('hash')}); predictions would use prompts the model never saw. "
               "Use the training tokenizer, or pass allow_template_mismatch=True "
               "(FINEXTRACT_ALLOW_TEMPLATE_MISMATCH=1 / --allow-template-mismatch) to proceed anyway.")
        if not allow_mismatch:
            raise TemplateError(msg)
        log.warning(msg)
