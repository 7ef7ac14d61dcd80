"""ExtractionEngine on a tiny causal LM that has memorised its 32 training records.

A random-init model rarely writes valid JSON, so it cannot show that constraints leave a
*good* model alone. This one does: trained on ``compact_json`` targets tokenized as one
string, it writes the skeleton with merged tokens (``":"","`` for an empty value, ``"}``).
Constrained decoding must reproduce its unconstrained greedy output exactly; feeding the
skeleton's own tokenization (the old jump-forward) broke that (0/32 correct vs 32/32).
"""

from __future__ import annotations

import pytest
import torch

from finextract.backends.causal_lm.engine import ExtractionEngine
from finextract.testing import build_tiny_causal_lm
from test_causal import _config, _records


@pytest.fixture(scope="module")
def memorised(tmp_path_factory):
    from finextract.backends.causal_lm import load
    from finextract.backends.causal_lm.train import train

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("memorised")
    cfg = _config(build_tiny_causal_lm(tmp / "model"), tmp, save_steps=10**6)
    cfg.data.validation = None  # no per-checkpoint scoring: only the final model is needed
    train(cfg)
    return str(cfg.output_dir), load(str(cfg.output_dir), engine="engine")


def _engine(ext, **kw) -> ExtractionEngine:
    return ExtractionEngine(ext.model, ext.tokenizer, ext.task, ext.render, max_new_tokens=256,
                            batch_size=32, **kw)


@pytest.mark.slow
def test_constrained_equals_unconstrained_on_memorised_model(memorised):
    memorised = memorised[1]
    recs = _records()
    texts = [r.text for r in recs]
    free = _engine(memorised, constrained=False).extract(texts)
    assert [r.parsed for r in free] == [r.values for r in recs]  # the model knows every record
    for jump in (False, True):
        eng = _engine(memorised, constrained=True, jump_forward=jump)
        out = eng.extract(texts)
        assert [r.raw for r in out] == [r.raw for r in free], f"jump_forward={jump}"
        assert [r.parsed for r in out] == [r.values for r in recs]
        assert eng.stats["fallbacks"] == 0  # greedy's own token was allowed at every step
    # the skeleton really is written with merged tokens, which a canonical-literal feed would forbid
    tok = memorised.tokenizer
    pieces = [tok.decode([t]) for t in tok.encode(free[0].raw, add_special_tokens=False)]
    assert any(p.count('"') >= 3 for p in pieces), pieces


@pytest.mark.slow
def test_extractor_engine_path_matches_generate(memorised):
    """The served path (``decoding.engine: engine``, constrained) == ``model.generate``."""
    from finextract.backends.causal_lm import load

    run_dir, engine = memorised
    texts = [r.text for r in _records()]
    generate = load(run_dir)
    assert engine.predict(texts) == generate.predict(texts)
    assert engine.last_raw == generate.last_raw
