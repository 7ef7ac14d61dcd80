"""train.ema_decay: the weight average is the textbook one, is what checkpoints save, and survives a kill."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from finextract.backends.encoder import train
from finextract.backends.encoder.averaging import WeightEMA, raw_state
from finextract.backends.encoder.testing import build_tiny_encoder
from finextract.backends.encoder.train import STATE_FILE, _Interrupt
from finextract.rundir import RunDir
from finextract.training import load_state

from test_encoder_train import make_cfg


@pytest.fixture(scope="module")
def tiny_random(tmp_path_factory) -> Path:
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny") / "bert", layers=2, pretrained=False, hidden=64)


def test_average_follows_the_warmed_up_recursion_and_skips_frozen_weights():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    net[1].weight.requires_grad_(False)
    ema = WeightEMA(net, decay=0.9)
    assert "1.weight" not in ema.names
    expected = net[0].weight.detach().clone()
    for n in range(30):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        d = min(0.9, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * net[0].weight.detach()
        ema.update()
    raw = net[0].weight.detach().clone()
    frozen = net[1].weight.detach().clone()
    with ema.swapped():
        assert torch.allclose(net[0].weight, expected, atol=1e-6)
        assert not torch.allclose(net[0].weight, raw)
        assert torch.equal(net[1].weight, frozen)
    assert torch.equal(net[0].weight, raw)  # the raw weights come back after the block


def test_decay_out_of_range_is_refused():
    with pytest.raises(ValueError, match="ema_decay"):
        WeightEMA(torch.nn.Linear(2, 2), decay=1.0)


@pytest.mark.slow
def test_checkpoints_hold_the_average_and_a_resumed_run_ends_identical(tmp_path, tiny_random):
    kw = dict(epochs=6, batch_size=2, eval_every=4, keep_last=2, ema_decay=0.8)
    full = make_cfg(tmp_path / "full", tiny_random, **kw)
    train(full)
    part = make_cfg(tmp_path / "part", tiny_random, **kw)
    with pytest.raises(_Interrupt):
        train(part, stop_after_step=6)
    train(part)
    a, b = RunDir(full.output_dir), RunDir(part.output_dir)
    wa = load_file(a.checkpoint_path(12) / "model" / "model.safetensors")
    wb = load_file(b.checkpoint_path(12) / "model" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # the saved model is the average, not the raw weights the optimizer continues from
    raw = raw_state(load_state(a.checkpoint_path(12) / STATE_FILE))
    assert raw is not None
    layer = next(k for k in raw if "encoder.layer.0.attention.self.query.weight" in k)
    saved = next(v for k, v in wa.items() if k.endswith("encoder.layer.0.attention.self.query.weight"))
    assert not torch.equal(saved, raw[layer])
    # and the run without an average saves different weights from the same seed
    plain = make_cfg(tmp_path / "plain", tiny_random, **{**kw, "ema_decay": None})
    train(plain)
    wp = load_file(RunDir(plain.output_dir).checkpoint_path(12) / "model" / "model.safetensors")
    assert any(not torch.equal(wa[k], wp[k]) for k in wa)
