"""Records -> token ids with answer-only labels; padded or packed batches.

Prompt and answer are tokenised separately and concatenated, so training sees exactly the
prompt ids that inference feeds the model (joint tokenisation can merge across the
boundary). Labels are -100 on the prompt and on padding; the answer is followed by the
template's end-of-turn token, which is always the last supervised label. Every batch is
checked for that (:func:`check_batch`), so no code path can silently lose it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from finextract.errors import InputError

if TYPE_CHECKING:  # kept import-light: the GPU benchmark loads this file with torch alone
    from finextract.records import Record
    from finextract.tasks import Task

IGNORE = -100


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_example(tokenizer: Any, task: "Task", record: "Record", style: str, enable_thinking: bool | None,
                   end_token_id: int, prompt_has_think: bool) -> Example:
    from finextract.prompts import format_target, render_prompt

    prompt = render_prompt(tokenizer, task, style, record.text, enable_thinking)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    target = format_target(task, record.values, style, enable_thinking, prompt_has_think)
    answer_ids = tokenizer(target, add_special_tokens=False)["input_ids"] + [end_token_id]
    return Example(prompt_ids + answer_ids, [IGNORE] * len(prompt_ids) + answer_ids)


def encode_records(tokenizer: Any, task: "Task", records: Sequence["Record"], style: str,
                   enable_thinking: bool | None, end_token_id: int, prompt_has_think: bool,
                   max_length: int) -> list[Example]:
    """Encode all records; refuse (naming them) any that would be cut, which would drop the end token."""
    examples = [encode_example(tokenizer, task, r, style, enable_thinking, end_token_id, prompt_has_think)
                for r in records]
    too_long = [i for i, ex in enumerate(examples) if len(ex) > max_length]
    if too_long:
        longest = max(len(examples[i]) for i in too_long)
        raise InputError(
            f"{len(too_long)} training record(s) are longer than train.max_length={max_length} tokens "
            f"(longest {longest}; first record indexes {too_long[:5]}); truncating them would cut the answer "
            f"and its end-of-turn token. Raise train.max_length or shorten the texts.")
    return examples


def collate_padded(examples: Sequence[Example], pad_id: int, multiple: int | None = None) -> dict[str, torch.Tensor]:
    """Right-padded batch (training only; generation pads left).

    ``multiple`` rounds the width up (e.g. 128) so a compiled model sees few distinct shapes.
    """
    width = max(len(e) for e in examples)
    if multiple:
        width = -(-width // multiple) * multiple
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def collate_packed(examples: Sequence[Example], max_length: int, pad_id: int) -> dict[str, torch.Tensor]:
    """Pack examples into rows of at most ``max_length``; ``position_ids`` restart per sequence.

    No attention mask is passed: transformers derives a block-diagonal causal mask from the
    restarting position ids, so packed sequences never attend to each other.
    """
    rows: list[list[Example]] = []
    for e in examples:
        if rows and sum(len(x) for x in rows[-1]) + len(e) <= max_length:
            rows[-1].append(e)
        else:
            rows.append([e])
    width = max(sum(len(x) for x in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        at = 0
        for e in row:
            n = len(e)
            ids[i, at:at + n] = torch.tensor(e.input_ids)
            labels[i, at:at + n] = torch.tensor(e.labels)
            pos[i, at:at + n] = torch.arange(n)
            at += n
        if at < width:  # trailing padding: its own "sequence", never supervised
            pos[i, at:] = torch.arange(width - at)
    return {"input_ids": ids, "labels": labels, "position_ids": pos}


def check_batch(batch: dict[str, torch.Tensor], end_token_id: int) -> None:
    """Every sequence's last supervised label must be the end-of-turn token."""
    labels = batch["labels"]
    sup = labels != IGNORE
    # the last supervised position of each contiguous supervised run ends a sequence
    nxt = torch.zeros_like(sup)
    nxt[:, :-1] = sup[:, 1:]
    if "position_ids" in batch:  # packed: a run also ends where the next sequence starts
        nxt[:, :-1] &= batch["position_ids"][:, 1:] != 0
    ends = sup & ~nxt
    bad = (labels[ends] != end_token_id).sum().item()
    if bad or not sup.any(dim=1).all():
        raise AssertionError(
            f"{bad} sequence(s) in a training batch do not end their supervised answer with the end-of-turn "
            f"token id {end_token_id}; the model would never learn to stop")
