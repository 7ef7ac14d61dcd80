"""The engine as a long-lived object: it keeps its prefix cache, and never changes the caller's model.

Also: the device-side constraint (position automaton) makes exactly the choices of the
per-sequence path, and nothing about attention lives in module-global state.
"""

from __future__ import annotations

import pytest
import torch

from finextract.backends.causal_lm import engine as engine_mod
from finextract.backends.causal_lm.engine import ExtractionEngine
from finextract.backends.causal_lm.extractor import CausalLMExtractor
from finextract.tasks import load_task
from finextract.testing.tiny import build_tiny_causal_lm

TEXTS = ["SQ *CAFE NY 10001", 'AMZN Mktp US*2Y2 "q" \\ é', "X", "POS PURCHASE TARGET 00000794 AUSTIN TX",
         "", "PAYPAL *ACME 12\\34 SEATTLE WA 98101 800-555-0199", "é€😀 東京 café\tTAB"]


from tests.test_engine import _render, lm  # noqa: E402,F401  (the same tiny model fixture and prompt)


def _snapshot(model):
    return ({n: p.detach().clone() for n, p in model.named_parameters()},
            {n: p.dtype for n, p in model.named_parameters()},
            {n: p.device for n, p in model.named_parameters()},
            {n: m.training for n, m in model.named_modules()},
            model.config._attn_implementation)


def _assert_unchanged(model, snap):
    values, dtypes, devices, modes, attn = snap
    now = dict(model.named_parameters())
    assert set(now) == set(values)
    for n, p in now.items():
        assert p.dtype == dtypes[n] and p.device == devices[n], n
        assert torch.equal(p.detach(), values[n]), n
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert model.config._attn_implementation == attn


def test_device_constraint_equals_per_sequence_path(lm):
    """Same argmax-over-allowed rule, two implementations: identical raw output."""
    model, tok = lm
    kw = dict(max_new_tokens=70, batch_size=3)
    dev = ExtractionEngine(model, tok, "merchant", _render(tok), **kw)
    seq = ExtractionEngine(model, tok, "merchant", _render(tok), device_constraint=False, **kw)
    a, b = dev.extract(TEXTS), seq.extract(TEXTS)
    assert [r.raw for r in a] == [r.raw for r in b]
    assert [r.n_new_tokens for r in a] == [r.n_new_tokens for r in b]
    assert dev.stats["texts_prepared"] == len(set(TEXTS)) and seq.stats["texts_prepared"] == 0
    for text, r in zip(TEXTS, a):
        assert r.parsed is not None and all(v in text for v in r.parsed.values())


def test_device_constraint_budget_cut_stays_valid(lm):
    model, tok = lm
    for n in (1, 3, 9):
        a = ExtractionEngine(model, tok, "merchant", _render(tok), max_new_tokens=n, batch_size=4).extract(TEXTS)
        b = ExtractionEngine(model, tok, "merchant", _render(tok), max_new_tokens=n, batch_size=4,
                             device_constraint=False).extract(TEXTS)
        assert [r.raw for r in a] == [r.raw for r in b]
        assert all(r.parsed is not None for r in a)


def test_finished_rows_leave_the_batch(lm):
    """Rows that end early leave: later steps run on fewer rows (and output is unchanged). The empty text
    forces the all-empty object, so its row ends at the skeleton's length; the budget is far above it (a
    tight budget would cut every row at once, whatever the tiny tokenizer's merges)."""
    model, tok = lm
    texts = TEXTS * 3
    eng = ExtractionEngine(model, tok, "merchant", _render(tok), max_new_tokens=400, batch_size=len(texts),
                           sync_every=1)
    out = eng.extract(texts)
    assert min(r.n_new_tokens for r in out) < eng.stats["steps"]
    assert eng.stats["rows_stepped"] < eng.stats["steps"] * len(texts)
    ref = ExtractionEngine(model, tok, "merchant", _render(tok), max_new_tokens=400, batch_size=1).extract(texts)
    assert [r.raw for r in out] == [r.raw for r in ref]


def test_second_extract_reuses_the_prefix(lm):
    model, tok = lm
    eng = ExtractionEngine(model, tok, "merchant", _render(tok), max_new_tokens=20, batch_size=2)
    first = eng.extract(TEXTS[:3])
    assert eng.stats["prefix_computes"] == 1
    assert [r.raw for r in eng.extract(TEXTS[:3])] == [r.raw for r in first]
    eng.extract(TEXTS[3:])
    assert eng.stats["prefix_computes"] == 1  # three calls, one prefix forward


def test_changed_weights_recompute_the_prefix(lm, tmp_path):
    from transformers import AutoModelForCausalLM

    _, tok = lm
    model = AutoModelForCausalLM.from_pretrained(build_tiny_causal_lm(tmp_path / "m", arch="qwen3")).eval()
    eng = ExtractionEngine(model, tok, "merchant", _render(tok), max_new_tokens=20, batch_size=4)
    eng.extract(TEXTS)
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight.mul_(-3.0)  # what an optimizer step does: in place
    after = eng.extract(TEXTS)
    assert eng.stats["prefix_computes"] == 2
    fresh = ExtractionEngine(model, tok, "merchant", _render(tok), max_new_tokens=20, batch_size=4).extract(TEXTS)
    assert [r.raw for r in after] == [r.raw for r in fresh]


def test_extractor_keeps_one_engine_across_predicts(lm):
    model, tok = lm
    ext = CausalLMExtractor(model, tok, load_task("merchant"), style="json-only", engine="engine",
                            max_new_tokens=24, batch_size=4)
    ext.predict(TEXTS[:2])
    eng = ext.engine
    ext.predict(TEXTS[2:])
    ext.predict(TEXTS[:2])
    assert ext.engine is eng and eng.stats["prefix_computes"] == 1


def test_live_peft_model_in_training_is_not_touched(lm):
    """Training-time checkpoint scoring: fp32 adapters, train mode, attention choice all stay."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    _, tok = lm
    base = AutoModelForCausalLM.from_pretrained(build_tiny_causal_lm(
        __import__("tempfile").mkdtemp(), arch="qwen3"))
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                            lora_dropout=0.1))
    with torch.no_grad():  # non-zero adapters, so the view must really use them
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    model.train()
    snap = _snapshot(model)
    ext = CausalLMExtractor(model, tok, load_task("merchant"), style="json-only", engine="engine",
                            max_new_tokens=24, batch_size=4)
    got = ext.predict(TEXTS)
    _assert_unchanged(model, snap)
    assert model.training and any(m.training for m in model.modules() if "Dropout" in type(m).__name__)
    # the view computed with the live adapters: a merged eval copy gives the same answers
    import copy

    merged = copy.deepcopy(model).eval().merge_and_unload()
    ref = ExtractionEngine(merged, tok, "merchant", ext.render, max_new_tokens=24, batch_size=4).extract(TEXTS)
    assert got == [r.parsed for r in ref]
    # and a training step on the live model after scoring is unaffected by it
    loss = model(input_ids=torch.tensor([[1, 2, 3, 4]]), labels=torch.tensor([[1, 2, 3, 4]])).loss
    loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if "lora_" in n)


def test_other_dtype_is_a_copy_and_the_caller_keeps_fp32(lm):
    model, tok = lm
    snap = _snapshot(model)
    eng = ExtractionEngine(model, tok, "merchant", _render(tok), max_new_tokens=16, batch_size=4,
                           dtype=torch.bfloat16)
    assert all(r.parsed is not None for r in eng.extract(TEXTS))
    assert eng.dtype == torch.bfloat16 and next(eng.model.parameters()).data_ptr() != next(model.parameters()).data_ptr()
    _assert_unchanged(model, snap)


def test_same_dtype_view_shares_parameters(lm):
    model, tok = lm
    eng = ExtractionEngine(model, tok, "merchant", _render(tok), max_new_tokens=8)
    shared = {p.data_ptr() for p in model.parameters()}
    assert all(p.data_ptr() in shared for p in eng.model.parameters())
    assert eng.model.config is not model.config and eng.model.config._attn_implementation == engine_mod.ATTN_NAME


def test_no_module_global_attention_state(lm):
    """Attention state is a forward kwarg: two engines interleaved on one model do not interfere."""
    model, tok = lm
    assert not any(k.startswith("_CTX") for k in vars(engine_mod))
    a = ExtractionEngine(model, tok, "merchant", _render(tok), max_new_tokens=30, batch_size=2)
    b = ExtractionEngine(model, tok, "merchant", _render(tok), max_new_tokens=30, batch_size=2, prefix_cache=False)
    ra, rb = a.extract(TEXTS[:2]), b.extract(TEXTS[:2])
    assert [r.raw for r in ra] == [r.raw for r in a.extract(TEXTS[:2])] == [r.raw for r in rb]
    # the view run without an engine context is ordinary attention (same logits as the model)
    ids = torch.tensor([tok.encode("SQ *CAFE NY", add_special_tokens=False)])
    with torch.no_grad():
        assert torch.allclose(a.model(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-5)


def test_tables_built_by_worker_processes_are_the_same(lm):
    """prep_workers builds the per-text tables in forked processes: same output; tables kept across calls."""
    model, tok = lm
    texts = [f"{t} {i}" for i in range(6) for t in TEXTS]  # >= 16 new texts, so the pool is used
    inline = ExtractionEngine(model, tok, "merchant", _render(tok), max_new_tokens=30, batch_size=16)
    pooled = ExtractionEngine(model, tok, "merchant", _render(tok), max_new_tokens=30, batch_size=16,
                              prep_workers=2)
    try:
        assert [r.raw for r in pooled.extract(texts)] == [r.raw for r in inline.extract(texts)]
        assert pooled.stats["t_prep_wall"] > 0 and pooled.stats["texts_prepared"] == len(set(texts))
        pooled.extract(texts[:5])
        assert pooled.stats["texts_prepared"] == len(set(texts))  # cached: nothing rebuilt
    finally:
        pooled.close()
