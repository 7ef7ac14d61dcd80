"""Tiny causal LMs and a test-trained tokenizer, built locally in seconds.

Why: no model hub is reachable in tests or CI, yet the causal-LM path (chat template,
answer-only masking, EOS handling, generation, LoRA) must run end to end on real
transformers classes. A byte-level BPE trained on descriptor-like text and JSON
punctuation keeps sequences short, so a 2-layer random-init model can memorise a
handful of records on CPU.

Both builders cache their result per process (keyed by their arguments) and copy the
cached folder to the requested directory, so many tests can ask for "a tiny model"
without paying for it twice.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path
from typing import Literal

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
SPECIAL_TOKENS = [PAD, BOS, EOS, IM_START, IM_END, THINK_OPEN, THINK_CLOSE]

# A ChatML-style template. ``enable_thinking`` (when the caller passes it and it is true)
# opens the assistant turn with an empty think block, so a test can tell whether the
# prompt or the target carries it. Every assistant turn ends with <|im_end|>.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}"
    "{% if enable_thinking is defined and enable_thinking %}{{ '<think>\n\n</think>\n\n' }}{% endif %}"
    "{% endif %}"
)

_CACHE: dict[tuple, Path] = {}
_CACHE_ROOT: Path | None = None

_WORDS = ["POS", "PURCHASE", "DEBIT", "CARD", "ACH", "CHECKCARD", "RECURRING", "PAYMENT", "ONLINE",
          "STORE", "MKTP", "MARKET", "COFFEE", "PIZZA", "GAS", "FUEL", "GROCERY", "PHARMACY", "HOTEL",
          "AIRLINES", "TAXI", "PARKING", "RESTAURANT", "BAKERY", "BOOKS", "DELI", "CAFE", "SHOP", "INC",
          "LLC", "CO", "CORP", "Bank", "Group", "shares", "percent", "billion", "million", "revenue",
          "quarter", "merger", "profit", "the", "of", "and", "in", "to", "a", "on", "for", "said"]
_CITIES = ["NEW YORK", "SAN FRANCISCO", "AUSTIN", "SEATTLE", "CHICAGO", "BOSTON", "DENVER", "MIAMI",
           "PORTLAND", "ATLANTA", "London", "Paris", "Tokyo", "Berlin"]
_STATES = ["NY", "CA", "TX", "WA", "IL", "MA", "CO", "FL", "OR", "GA", "ON", "BC"]
_PREFIXES = ["SQ *", "TST*", "PAYPAL *", "SP ", "PP*", "DD *"]


def _corpus(seed: int = 0, n: int = 1500) -> list[str]:
    """Descriptor-like lines, news-like sentences and JSON snippets for BPE training."""
    from finextract.tasks import builtin_task_names, load_task

    rng = random.Random(seed)
    lines: list[str] = []
    for name in builtin_task_names():
        task = load_task(name)
        lines += [task.description, task.rules, task.schema_json()]
        lines += [f"{k.name}: {k.description}" for k in task.keys]
    for _ in range(n):
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 4)))
        store = f"{rng.randint(0, 99999):05d}" if rng.random() < 0.5 else ""
        line = f"{rng.choice(_PREFIXES) if rng.random() < 0.3 else ''}{words} {store} " \
               f"{rng.choice(_CITIES)} {rng.choice(_STATES)} {rng.randint(10000, 99999)}"
        lines.append(line)
        lines.append('{"MERCHANT_NAME":"%s","CITY":"%s","STATE":"","ZIP":[],"Company":["%s"]}'
                     % (words, rng.choice(_CITIES), rng.choice(_WORDS)))
        lines.append(f"{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d} ${rng.randint(1, 999)}.{rng.randint(0, 99):02d} "
                     f"+1-{rng.randint(200, 999)}-{rng.randint(100, 999)}-{rng.randint(1000, 9999)} "
                     f"WWW.{rng.choice(_WORDS).upper()}.COM #{rng.randint(100, 99999)} *{rng.randint(0, 1 << 30):X}")
    return lines


def _cache_root() -> Path:
    global _CACHE_ROOT
    if _CACHE_ROOT is None:
        _CACHE_ROOT = Path(tempfile.mkdtemp(prefix="finextract-tiny-"))
    return _CACHE_ROOT


def _copy_cached(src: Path, dst: str | Path) -> Path:
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return dst


def _build_tokenizer_into(path: Path, vocab_size: int, chat_template: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   additional_special_tokens=[IM_START, IM_END, THINK_OPEN, THINK_CLOSE])
    fast.chat_template = chat_template
    fast.padding_side = "left"
    fast.save_pretrained(path)
    return fast


def build_tiny_tokenizer(dir: str | Path, vocab_size: int = 1024, chat_template: str | None = None):
    """Train (once per process) a byte-level BPE tokenizer and save it to ``dir``.

    Special tokens: bos ``<|bos|>``, eos ``<|eos|>``, pad ``<|pad|>`` (distinct from eos, so
    masking padding never masks the stop token), ChatML turn markers and think tags.
    ``chat_template`` replaces the default template (tests use it to build broken ones).
    Returns the loaded ``PreTrainedTokenizerFast``.
    """
    from transformers import AutoTokenizer

    template = chat_template if chat_template is not None else CHAT_TEMPLATE
    key = ("tok", vocab_size, template)
    if key not in _CACHE:
        path = _cache_root() / f"tok-{len(_CACHE)}"
        _build_tokenizer_into(path, vocab_size, template)
        _CACHE[key] = path
    out = _copy_cached(_CACHE[key], dir)
    return AutoTokenizer.from_pretrained(out)


def build_tiny_causal_lm(
    dir: str | Path,
    arch: Literal["llama", "qwen3"] = "llama",
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int | None = None,
    vocab_size: int = 1024,
    seed: int = 0,
    chat_template: str | None = None,
    head_scale: float = 5.0,
    init_range: float = 0.1,
) -> Path:
    """A random-init ``LlamaForCausalLM``/``Qwen3ForCausalLM`` plus tokenizer saved in ``dir``.

    Loadable with ``AutoModelForCausalLM.from_pretrained(dir)`` and
    ``AutoTokenizer.from_pretrained(dir)``, exactly like a hub model. Returns ``dir``.
    """
    key = ("lm", arch, hidden, layers, heads, kv_heads, intermediate, vocab_size, seed, chat_template, head_scale, init_range)
    if key not in _CACHE:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

        path = _cache_root() / f"lm-{len(_CACHE)}"
        tok = build_tiny_tokenizer(path, vocab_size=vocab_size, chat_template=chat_template)
        common = dict(
            vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
            num_key_value_heads=kv_heads, intermediate_size=intermediate or 2 * hidden,
            max_position_embeddings=2048, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id, tie_word_embeddings=False, initializer_range=init_range,
        )
        if arch == "llama":
            cfg, cls = LlamaConfig(**common), LlamaForCausalLM
        elif arch == "qwen3":
            cfg, cls = Qwen3Config(head_dim=hidden // heads, **common), Qwen3ForCausalLM
        else:
            raise ValueError(f"unknown tiny architecture {arch!r}; use 'llama' or 'qwen3'")
        torch.manual_seed(seed)
        model = cls(cfg)
        # Random init gives lm_head rows of norm ~0.02*sqrt(hidden): with a normalised hidden
        # state no logit can exceed ~1, so a LoRA-only fine-tune could never become confident.
        # Pretrained heads are far larger; scaling ours makes the tiny model trainable like one.
        with torch.no_grad():
            model.lm_head.weight.mul_(head_scale)
        model.generation_config.eos_token_id = [tok.eos_token_id, tok.convert_tokens_to_ids(IM_END)]
        model.generation_config.pad_token_id = tok.pad_token_id
        model.save_pretrained(path)
        _CACHE[key] = path
    return _copy_cached(_CACHE[key], dir)


__all__ = ["build_tiny_tokenizer", "build_tiny_causal_lm", "CHAT_TEMPLATE", "SPECIAL_TOKENS"]
