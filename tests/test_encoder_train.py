"""Encoder training: overfits a handful of records, resumes exactly after a kill, fails clearly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from finextract.backends.encoder import EncoderRunConfig, load, train
from finextract.backends.encoder.testing import build_tiny_encoder
from finextract.backends.encoder.train import _Interrupt
from finextract.config import ConfigError, load_run_config
from finextract.records import read_records
from finextract.rundir import RunDir
from finextract.validate import DataError

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "tests" / "data" / "merchant_sample.jsonl"

NER_ROWS = [
    {"text": "Apple bought Beats for $3 billion in May 2014 .",
     "entities": {"Company": ["Apple", "Beats"], "Money": ["$3 billion"], "Date": ["May 2014"]}},
    {"text": "Tim Cook said Apple shipped 10 million iPhones in China .",
     "entities": {"Person": ["Tim Cook"], "Company": ["Apple"], "Quantity": ["10 million"],
                  "Product": ["iPhones"], "Location": ["China"]}},
    {"text": "Shares of Tesla rose 5 percent on Monday in New York .",
     "entities": {"Company": ["Tesla"], "Quantity": ["5 percent"], "Date": ["Monday"], "Location": ["New York"]}},
]


@pytest.fixture(scope="module")
def tiny_random(tmp_path_factory) -> Path:
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny") / "bert", layers=2, pretrained=False, hidden=64)


def make_cfg(out: Path, model: Path, **train_kw) -> EncoderRunConfig:
    train_cfg = {"learning_rate": 3e-3, "epochs": 40, "batch_size": 4, "eval_every": 20, "warmup_ratio": 0.0,
                 "progress": False, "num_threads": 1, **train_kw}
    return EncoderRunConfig.model_validate({
        "backend": "encoder", "task": "merchant", "output_dir": str(out), "seed": 0,
        "data": {"train": str(SAMPLE), "validation": str(SAMPLE), "test": str(SAMPLE)},
        "model": {"name_or_path": str(model), "max_length": 32}, "train": train_cfg})


@pytest.mark.slow
def test_tiny_encoder_overfits_to_f1_one(tmp_path, tiny_random):
    summary = train(make_cfg(tmp_path / "run", tiny_random))
    assert summary["best"]["value"] == 1.0
    assert summary["test"]["micro_f1"] == 1.0
    run = RunDir(tmp_path / "run")
    assert run.done_path.exists() and (run.root / "curve.png").exists()
    assert (run.predictions_dir / "test.jsonl").exists()
    ex = load(str(run.root))
    recs = read_records(SAMPLE, ex.task)
    assert ex.predict([r.text for r in recs]) == [r.values for r in recs]
    # re-running a finished run does nothing and returns its summary
    assert train(make_cfg(tmp_path / "run", tiny_random))["best"] == summary["best"]


@pytest.mark.slow
def test_multi_valued_task_overfits(tmp_path, tiny_random):
    data = tmp_path / "ner.jsonl"
    keys = ["Company", "Date", "Location", "Money", "Person", "Product", "Quantity"]
    rows = [{"text": r["text"], "entities": {k: r["entities"].get(k, []) for k in keys}} for r in NER_ROWS]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = make_cfg(tmp_path / "run", tiny_random, epochs=60, eval_every=30)
    cfg = cfg.model_copy(update={"task": "fin-ner", "data": cfg.data.model_copy(
        update={"train": data, "validation": data, "test": None})})
    assert train(cfg)["best"]["value"] == 1.0


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted_run(tmp_path, tiny_random):
    kw = dict(epochs=6, batch_size=2, eval_every=4, keep_last=2)  # 2 steps/epoch, 12 steps, dropout on
    full = make_cfg(tmp_path / "full", tiny_random, **kw)
    train(full)

    part = make_cfg(tmp_path / "part", tiny_random, **kw)
    with pytest.raises(_Interrupt):
        train(part, stop_after_step=6)  # killed two steps after the step-4 checkpoint
    run = RunDir(part.output_dir)
    assert [s for s, _ in run.checkpoints()] == [4]
    assert not run.done_path.exists()
    train(part)  # same command again: resumes from step-4, redoes steps 5-6

    a, b = RunDir(full.output_dir), RunDir(part.output_dir)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "time"} for r in rows]  # noqa: E731
    assert strip(a.metrics()) == strip(b.metrics())
    assert strip(a.train_log()) == strip(b.train_log())
    wa = load_file(a.checkpoint_path(12) / "model" / "model.safetensors")
    wb = load_file(b.checkpoint_path(12) / "model" / "model.safetensors")
    assert wa.keys() == wb.keys()
    assert all((wa[k] == wb[k]).all() for k in wa)


@pytest.mark.slow
def test_resume_refuses_a_changed_recipe(tmp_path, tiny_random):
    cfg = make_cfg(tmp_path / "run", tiny_random, epochs=4, eval_every=2)
    with pytest.raises(_Interrupt):
        train(cfg, stop_after_step=2)
    with pytest.raises(ConfigError, match="train.learning_rate"):
        train(make_cfg(tmp_path / "run", tiny_random, epochs=4, eval_every=2, learning_rate=1e-4))


@pytest.mark.slow
def test_lora_trains_and_loads_merged(tmp_path, tiny_random):
    cfg = make_cfg(tmp_path / "run", tiny_random, epochs=2, eval_every=100)
    cfg = cfg.model_copy(update={"lora": cfg.lora.model_copy(update={"enabled": True, "rank": 4})})
    summary = train(cfg)
    assert summary["trainable_parameters"] < summary["parameters"] / 2
    assert (RunDir(cfg.output_dir).resolve_checkpoint() / "adapter").exists()
    ex = load(str(cfg.output_dir))
    assert len(ex.predict(["SQ *TURTLE TOWER SAN FRANCISCO CA"])) == 1


def test_bf16_precision_trains_under_autocast_and_keeps_fp32_weights(tmp_path, tiny_random):
    """model.precision: bf16 changes the arithmetic (weights differ from the fp32 run after the same
    steps) but not what is stored (fp32 tensors) nor what loads (a working extractor)."""
    weights = {}
    for precision in ("fp32", "bf16"):
        cfg = make_cfg(tmp_path / precision, tiny_random, max_steps=8, eval_every=8)
        cfg.model.precision = precision
        train(cfg)
        ckpt = RunDir(tmp_path / precision).resolve_checkpoint("best")
        weights[precision] = load_file(str(ckpt / "model" / "model.safetensors"))
        assert all(v.dtype.is_floating_point is False or str(v.dtype) == "torch.float32"
                   for v in weights[precision].values())
    assert any(not (weights["fp32"][k] == weights["bf16"][k]).all() for k in weights["fp32"])
    ex = load(str(tmp_path / "bf16"))
    assert len(ex.predict(["SQ *TURTLE TOWER SAN FRANCISCO CA"])) == 1


def test_missing_training_data_is_a_config_error(tmp_path):
    cfg = EncoderRunConfig.model_validate({"backend": "encoder", "output_dir": str(tmp_path / "r")})
    with pytest.raises(ConfigError, match="data.train"):
        train(cfg)


def test_unknown_config_field_names_the_field(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("backend: encoder\ntrain:\n  learning_rat: 1e-4\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="learning_rat"):
        load_run_config(path)
    with pytest.raises(ConfigError, match="batch_size"):
        load_run_config(None, ["backend=encoder", "train.batch_size=0"])


def test_invalid_training_record_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(SAMPLE.read_text(encoding="utf-8")
                   + '{"text": "ABC STORE", "fields": {"MERCHANT_NAME": "XYZ"}}\n', encoding="utf-8")
    cfg = EncoderRunConfig.model_validate({"backend": "encoder", "output_dir": str(tmp_path / "r"),
                                           "data": {"train": str(bad)}})
    with pytest.raises(DataError, match=r"bad.jsonl:5"):
        train(cfg)


def test_cli_bad_config_exits_2_without_traceback(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("backend: encoder\nmodel:\n  max_length: 2\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "finextract", "train", str(path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "max_length" in proc.stderr and "Traceback" not in proc.stderr


def test_freeze_embeddings_keeps_the_word_table_and_trains_the_rest(tmp_path, tiny_random):
    """train.freeze_embeddings: the sub-word table in the checkpoint equals the base model's,
    while the layers (and position embeddings) moved."""
    base = load_file(str(tiny_random / "model.safetensors"))
    cfg = make_cfg(tmp_path / "run", tiny_random, max_steps=6, eval_every=6, freeze_embeddings=True)
    summary = train(cfg)
    saved = load_file(str(RunDir(tmp_path / "run").resolve_checkpoint("best") / "model" / "model.safetensors"))

    def find(sd, suffix):
        (key,) = [k for k in sd if k.endswith(suffix)]
        return sd[key]

    word = "embeddings.word_embeddings.weight"
    assert (find(saved, word) == find(base, word)).all()
    layer = "encoder.layer.0.attention.self.query.weight"
    assert not (find(saved, layer) == find(base, layer)).all()
    assert summary["trainable_parameters"] == summary["parameters"] - find(base, word).numel()
