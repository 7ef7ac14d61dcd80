"""GGUF files as causal-LM bases: convert once into a plain Hugging Face folder, then load that.

Why a conversion step instead of ``from_pretrained(..., gguf_file=...)`` at every load:

* transformers dequantises a GGUF on every load (slow) and, in 5.x, refuses to
  ``save_pretrained`` or merge a model loaded that way ("quantized with gguf"). We copy the
  dequantised state dict into a plain model built from the same config and save that.
* The tokenizers it builds from GGUF metadata need fixing: SmolLM2's comes out with
  ``<|im_start|>`` as EOS and a BOS it should not add (the end of a turn is ``<|im_end|>``);
  ``save_pretrained`` also writes the whole GGUF again as ``tokenizer.model`` (we drop it).
* Its Gemma conversion is wrong: it turns the GGUF's SentencePiece-BPE scores into a
  Unigram model, so words fall into tiny pieces and the model reads garbage (perplexity
  ~240 instead of ~10). :func:`gemma_tokenizer` rebuilds it as what it is.
* Gemma 3 270M is a base model without a chat template; we add one in the Gemma turn format.

The folder lands in ``<cache>/bases/<stem>-<sha256[:16]>-v<CONVERTER_VERSION>`` (see
:func:`finextract.model_catalog.cache_root`), so a changed file or a changed converter gets
a new folder, and later loads take seconds. A ``conversion.json`` written last marks a
complete folder.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from finextract.hashing import file_sha256

log = logging.getLogger("finextract")
CONVERTER_VERSION = 1
DONE_FILE = "conversion.json"

# Gemma's turn format, written for this project: system text has no role of its own in Gemma,
# so it opens the first user turn; assistant turns are "model" turns; every turn ends with
# <end_of_turn> (the token a trained model must emit to stop).
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- set state = namespace(system='') -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}"
    "{%- set state.system = state.system + message['content'] + '\n\n' -%}"
    "{%- else -%}"
    "{%- set speaker = 'model' if message['role'] == 'assistant' else 'user' -%}"
    "{{ '<start_of_turn>' + speaker + '\n' }}"
    "{%- if speaker == 'user' and state.system -%}{{ state.system }}{%- set state.system = '' -%}{%- endif -%}"
    "{{ message['content'] }}{{ '<end_of_turn>\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)

# GGUF token types (llama.cpp's llama_token_type)
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def is_gguf(path: str | Path) -> bool:
    return str(path).lower().endswith(".gguf") and Path(path).is_file()


def converted_dir(gguf_path: Path, sha256: str, cache: Path | None = None) -> Path:
    from finextract.model_catalog import cache_root

    root = cache or cache_root()
    return root / "bases" / f"{gguf_path.stem}-{sha256[:16]}-v{CONVERTER_VERSION}"


def ensure_converted(gguf_path: str | Path, cache: Path | None = None) -> Path:
    """The plain folder for ``gguf_path``, converting it first if no complete one exists."""
    gguf_path = Path(gguf_path).resolve()
    if not gguf_path.is_file():
        raise FileNotFoundError(f"{gguf_path}: no such GGUF file")
    sha = file_sha256(gguf_path)
    out = converted_dir(gguf_path, sha, cache)
    if (out / DONE_FILE).exists():
        return out
    log.info("converting %s into %s (once; later loads use the folder)", gguf_path.name, out)
    tmp = out.with_name(f"{out.name}.partial-{os.getpid()}")  # concurrent converters never share a folder
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    t0 = time.perf_counter()
    info = convert_gguf(gguf_path, tmp)
    info.update({"source": str(gguf_path), "sha256": sha, "converter_version": CONVERTER_VERSION,
                 "seconds": round(time.perf_counter() - t0, 1)})
    (tmp / DONE_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
    if (out / DONE_FILE).exists():  # another process finished first: keep its folder
        shutil.rmtree(tmp, ignore_errors=True)
        return out
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


# ------------------------------------------------------------------------ reading metadata
def read_metadata(gguf_path: Path) -> dict[str, Any]:
    """Scalar metadata plus the token arrays of a GGUF file (via the ``gguf`` package's reader)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf_path))
    meta: dict[str, Any] = {}
    for key, fld in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        try:
            meta[key] = fld.contents()
        except Exception:  # noqa: BLE001 - unreadable exotic field: not needed here
            continue
    return meta


# ------------------------------------------------------------------------ tokenizers
def gemma_tokenizer(meta: dict[str, Any]) -> Any:
    """Gemma's SentencePiece-BPE vocabulary rebuilt as a ``tokenizers`` BPE model.

    Built with the ``tokenizers`` library (not a hand-written tokenizer) so the result is
    the ordinary fast tokenizer every transformers code path, the engine's token tables
    included, already understands. SentencePiece BPE repeatedly merges the adjacent pair
    whose concatenation is the highest-scoring vocabulary piece; a BPE model whose merges
    are all ``(left, right)`` splits of each normal piece, ranked by that piece's score,
    does the same. Characters missing from the vocabulary fall back to ``<0xNN>`` byte
    pieces; control tokens (``<bos>``, ``<start_of_turn>``, ...) are special added tokens;
    user-defined pieces (runs of newlines, spaces, tabs) are matched on the raw text before
    BPE, as llama.cpp and SentencePiece do. Spaces become ``▁``; no space is prepended.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers
    from tokenizers.models import BPE

    tokens: list[str] = list(meta["tokenizer.ggml.tokens"])
    scores: list[float] = [float(s) for s in meta["tokenizer.ggml.scores"]]
    types: list[int] = [int(t) for t in meta["tokenizer.ggml.token_type"]]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    normal = {tok: scores[i] for i, tok in enumerate(tokens) if types[i] == NORMAL}
    merges = _score_ranked_merges(vocab, normal)
    unk = tokens[int(meta.get("tokenizer.ggml.unknown_token_id", 3))]
    tok = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token=unk, fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    added = [AddedToken(tokens[i], special=types[i] == CONTROL, normalized=False)
             for i in range(len(tokens)) if types[i] in (CONTROL, USER_DEFINED)]
    tok.add_tokens([a for a in added if not a.special])
    tok.add_special_tokens([a for a in added if a.special])
    return tok


def _score_ranked_merges(vocab: dict[str, int], normal_scores: dict[str, float]) -> list[tuple[str, str]]:
    """Every (left, right) split of every normal piece, ordered by the piece's score (best first)."""
    try:  # transformers >= 5 keeps the SentencePiece merge builder here
        from transformers.tokenization_utils_base import generate_merges
    except ImportError:  # older releases
        from transformers.convert_slow_tokenizer import generate_merges  # type: ignore[no-redef]
    return generate_merges(vocab, normal_scores)


def _fast_tokenizer(tokenizer_object: Any, **special: Any) -> Any:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tokenizer_object, **special)


def _fix_smollm_tokenizer(tok: Any) -> Any:
    """End of turn as EOS, no BOS added (the GGUF says add_bos_token false)."""
    from tokenizers import processors

    backend = tok.backend_tokenizer
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    filler = "<|endoftext|>" if "<|endoftext|>" in tok.get_vocab() else None  # never the end of a turn
    fixed = _fast_tokenizer(backend, eos_token="<|im_end|>", bos_token=None, unk_token=filler, pad_token=filler)
    fixed.chat_template = tok.chat_template
    return fixed


# ------------------------------------------------------------------------ conversion
def convert_gguf(gguf_path: Path, out: Path) -> dict[str, Any]:
    """Write a plain folder (config, fp32 safetensors, fixed tokenizer + template) for ``gguf_path``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    meta = read_metadata(gguf_path)
    arch = str(meta.get("general.architecture", ""))
    folder, name = str(gguf_path.parent), gguf_path.name

    if arch.startswith("gemma"):
        tok = _fast_tokenizer(gemma_tokenizer(meta), bos_token="<bos>", eos_token="<end_of_turn>",
                              unk_token="<unk>", pad_token="<pad>")
        tok.chat_template = GEMMA_CHAT_TEMPLATE
        turn_ends = [tok.convert_tokens_to_ids("<end_of_turn>"), tok.convert_tokens_to_ids("<eos>")]
    else:
        loaded = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        if "<|im_end|>" in loaded.get_vocab():
            tok = _fix_smollm_tokenizer(loaded)
        else:
            tok = loaded
        if not getattr(tok, "chat_template", None) and meta.get("tokenizer.chat_template"):
            tok.chat_template = str(meta["tokenizer.chat_template"])
        turn_ends = [tok.eos_token_id]
    tok.save_pretrained(str(out))
    (out / "tokenizer.model").unlink(missing_ok=True)  # transformers copies the whole GGUF here

    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = gguf_model.config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(gguf_model.state_dict(), strict=False)
    missing = [k for k in missing if not _is_tied(plain, k)]
    if missing or unexpected:
        raise ValueError(f"{gguf_path}: state dict does not fit the plain model "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    plain.tie_weights()
    gen = plain.generation_config
    gen.eos_token_id = [i for i in turn_ends if i is not None]
    gen.pad_token_id = tok.pad_token_id
    gen.bos_token_id = tok.bos_token_id
    plain.save_pretrained(str(out), safe_serialization=True)
    del gguf_model, plain
    return {"architecture": arch, "name": str(meta.get("general.name", "")), "vocab_size": len(tok),
            "eos_token": tok.eos_token, "bos_token": tok.bos_token, "chat_template_added": arch.startswith("gemma")}


def _is_tied(model: Any, key: str) -> bool:
    return key == "lm_head.weight" and bool(getattr(model.config, "tie_word_embeddings", False))


def resolve_base_path(name_or_path: str | Path) -> str:
    """What ``from_pretrained`` should load for a configured base.

    A catalog name (``smollm2-135m-instruct``, ``gemma3-270m``; see ``finextract models``) or a
    ``.gguf`` file becomes its converted folder; anything else (hub id, folder) is returned as is.
    """
    from finextract.model_catalog import resolve_catalog_path

    text = str(name_or_path)
    if not Path(text).exists():
        found = resolve_catalog_path(text)
        if found is not None:
            text = str(found)
    if is_gguf(text):
        return str(ensure_converted(Path(text)))
    return text
