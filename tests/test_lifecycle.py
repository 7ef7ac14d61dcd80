"""The shared run lifecycle: one config vocabulary, config checks on resume, progress without a TTY."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from finextract.config import ConfigError, load_run_config
from finextract.training import TrainProgress

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "tests" / "data" / "merchant_sample.jsonl"

OLD_TO_NEW = [
    ("encoder", "train.eval_every=7", "train.checkpoint_every", 7),
    ("encoder", "model.lora=true", "lora.enabled", True),
    ("encoder", "model.lora_rank=4", "lora.rank", 4),
    ("encoder", "model.lora_target_modules=[query]", "lora.target_modules", ["query"]),
    ("causal_lm", "train.save_steps=7", "train.checkpoint_every", 7),
    ("causal_lm", "train.logging_steps=3", "train.log_every", 3),
    ("causal_lm", "train.per_device_batch=2", "train.batch_size", 2),
]


def _get(cfg, dotted):
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


@pytest.mark.parametrize("backend,old,new,value", OLD_TO_NEW)
def test_old_config_names_still_work_with_a_deprecation_message(backend, old, new, value, caplog):
    base = [f"backend={backend}"] + (["model.name_or_path=x"] if backend == "causal_lm" else [])
    with caplog.at_level(logging.WARNING, logger="finextract"), pytest.warns(FutureWarning, match=new):
        via_old = load_run_config(None, base + [old])
    assert _get(via_old, new) == value
    assert any(old.split("=")[0] in r.getMessage() and new in r.getMessage() for r in caplog.records)
    via_new = load_run_config(None, base + [f"{new}={old.split('=', 1)[1]}"])
    assert via_old == via_new  # the same config, under the one new name


def test_old_and_new_name_together_in_one_file_is_an_error_naming_both(tmp_path):
    path = tmp_path / "both.yaml"
    path.write_text("backend: encoder\ntrain:\n  eval_every: 5\n  checkpoint_every: 6\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"train.eval_every \(deprecated\) and train.checkpoint_every"):
        load_run_config(path)
    # as overrides the later one wins, as any repeated --set does
    assert load_run_config(None, ["backend=encoder", "train.eval_every=5",
                                  "train.checkpoint_every=6"]).train.checkpoint_every == 6


def test_an_override_under_either_name_replaces_the_field_of_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("backend: encoder\ntrain:\n  checkpoint_every: 100\n", encoding="utf-8")
    with pytest.warns(FutureWarning, match="train.checkpoint_every"):
        assert load_run_config(path, ["train.eval_every=5"]).train.checkpoint_every == 5
    old = tmp_path / "old.yaml"
    old.write_text("backend: encoder\ntrain:\n  eval_every: 100\n", encoding="utf-8")
    assert load_run_config(old, ["train.checkpoint_every=7"]).train.checkpoint_every == 7


def test_every_backend_uses_the_shared_names():
    enc = load_run_config(None, ["backend=encoder"])
    lm = load_run_config(None, ["backend=causal_lm", "model.name_or_path=x"])
    crf = load_run_config(None, ["backend=crf"])
    for cfg in (enc, lm, crf):
        assert isinstance(cfg.train.checkpoint_every, int) and isinstance(cfg.train.progress, bool)
    for cfg in (enc, lm):
        assert cfg.train.batch_size >= 1 and cfg.train.log_every >= 1
        assert {"rank", "alpha", "dropout", "target_modules"} <= set(type(cfg.lora).model_fields)
    assert lm.train.per_device_batch == lm.train.batch_size  # read-only alias for older code


def test_shipped_configs_use_only_the_new_names():
    for path in list((REPO / "configs").glob("*.yaml")) + list((REPO / "src/finextract/configs").glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        for old in ("eval_every", "save_steps", "logging_steps", "per_device_batch", "lora_rank"):
            assert old not in text, f"{path.name} still uses {old}"


def test_progress_without_a_tty_logs_plain_lines(caplog):
    with caplog.at_level(logging.INFO, logger="finextract"):
        bar = TrainProgress(total=40, done=0, desc="train run", tty=False)
        for step in range(1, 41):
            bar.update(step, loss=1.0 / step)
        bar.close()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("train run: step")]
    assert 10 <= len(lines) <= 21 and lines[-1].startswith("train run: step 40/40 (100%)")
    assert "loss 0.025" in lines[-1] and "steps/s" in lines[-1]
    with caplog.at_level(logging.INFO, logger="finextract"):
        caplog.clear()
        quiet = TrainProgress(total=40, done=0, desc="quiet", enabled=False, tty=False)
        quiet.update(40)
    assert not caplog.records


def test_trust_remote_code_never_comes_from_the_run_config(monkeypatch, tmp_path, caplog):
    from finextract.backends.causal_lm.extractor import allowed_remote_code

    monkeypatch.delenv("FINEXTRACT_TRUST_REMOTE_CODE", raising=False)
    with caplog.at_level(logging.WARNING, logger="finextract"):
        assert allowed_remote_code(None, True, tmp_path / "config.yaml") is False
    assert any("ignored" in r.getMessage() for r in caplog.records)
    assert allowed_remote_code(True, False, tmp_path) is True
    monkeypatch.setenv("FINEXTRACT_TRUST_REMOTE_CODE", "1")
    assert allowed_remote_code(None, True, tmp_path) is True


def _resign_config(cfg_path: Path) -> None:
    import hashlib
    import json

    versions = cfg_path.parent / "versions.json"
    data = json.loads(versions.read_text())
    data["config_sha256"] = hashlib.sha256(cfg_path.read_bytes()).hexdigest()
    versions.write_text(json.dumps(data))


@pytest.mark.slow
def test_trust_remote_code_in_a_run_config_is_not_passed_to_transformers(tmp_path, monkeypatch):
    import yaml

    import finextract.backends.causal_lm.modeling as modeling
    from finextract.backends.causal_lm import load
    from finextract.backends.causal_lm.config import CausalRunConfig
    from finextract.backends.causal_lm.train import train
    from finextract.testing import build_tiny_causal_lm

    tiny = build_tiny_causal_lm(tmp_path / "model")
    cfg = CausalRunConfig.model_validate({
        "output_dir": str(tmp_path / "run"), "data": {"train": str(SAMPLE)},
        "model": {"name_or_path": str(tiny), "precision": "fp32"}, "prompt": {"style": "minimal"},
        "train": {"max_steps": 1, "batch_size": 2, "gradient_accumulation": 1, "progress": False}})
    train(cfg)
    cfg_path = Path(cfg.output_dir) / "config.yaml"
    data = yaml.safe_load(cfg_path.read_text())
    data["model"]["trust_remote_code"] = True  # someone else's run directory asks for code execution
    cfg_path.write_text(yaml.safe_dump(data))
    _resign_config(cfg_path)  # as its author could
    seen = []
    real_tok, real_model = modeling.load_tokenizer, modeling.load_base_model
    monkeypatch.setattr(modeling, "load_tokenizer", lambda p, trc=False: seen.append(trc) or real_tok(p, trc))
    monkeypatch.setattr(modeling, "load_base_model",
                        lambda *a, **k: seen.append(a[4] if len(a) > 4 else k.get("trust_remote_code", False))
                        or real_model(*a, **k))
    monkeypatch.delenv("FINEXTRACT_TRUST_REMOTE_CODE", raising=False)
    assert load(str(cfg.output_dir)) is not None
    assert seen == [False, False]

    # and the causal backend now refuses to resume with a changed recipe, like every backend
    changed = cfg.model_copy(update={"train": cfg.train.model_copy(update={"max_steps": 2, "learning_rate": 1e-3})})
    data["model"]["trust_remote_code"] = False
    cfg_path.write_text(yaml.safe_dump(data))
    _resign_config(cfg_path)
    (Path(cfg.output_dir) / "DONE").unlink()
    with pytest.raises(ConfigError, match="train.learning_rate"):
        train(changed)
