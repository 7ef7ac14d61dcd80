"""Shallow students and distillation: layer choice, the soft-target loss, and a real tiny run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from finextract.backends.encoder import EncoderRunConfig, load, train
from finextract.backends.encoder.distill import (distill_loss, ffn_importance, ffn_pairs, keep_layers, layer_indices,
                                                 prune_ffn)
from finextract.backends.encoder.testing import build_tiny_encoder
from finextract.backends.encoder.train import _Interrupt as SimulatedKill
from finextract.errors import ConfigError, InputError
from finextract.records import read_records

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "tests" / "data" / "merchant_sample.jsonl"


def test_layer_indices_keep_first_and_last_evenly_spaced():
    assert layer_indices(6, 3) == [0, 2, 5]  # round(2.5) == 2: banker's rounding, stable
    assert layer_indices(6, 2) == [0, 5]
    assert layer_indices(6, 6) == list(range(6))
    assert layer_indices(12, 4) == [0, 4, 7, 11]
    assert layer_indices(6, 1) == [5]
    with pytest.raises(ConfigError, match="num_layers"):
        layer_indices(6, 7)


def test_keep_layers_cuts_the_model_and_its_config(tmp_path):
    from transformers import AutoModelForTokenClassification

    src = build_tiny_encoder(tmp_path / "enc", layers=4, pretrained=False, hidden=32)
    model = AutoModelForTokenClassification.from_pretrained(src, num_labels=3)
    layers = list(model.base_model.encoder.layer)
    assert keep_layers(model, 2) == [0, 3]
    assert list(model.base_model.encoder.layer) == [layers[0], layers[3]]
    model.save_pretrained(tmp_path / "cut")
    again = AutoModelForTokenClassification.from_pretrained(tmp_path / "cut")
    assert again.config.num_hidden_layers == 2 and len(again.base_model.encoder.layer) == 2
    ids = torch.tensor([[101, 2000, 102]])
    with torch.no_grad():
        assert torch.allclose(model.eval()(input_ids=ids).logits, again.eval()(input_ids=ids).logits)


def _tiny_tagger(tmp_path: Path, layers: int = 2):
    from transformers import AutoModelForTokenClassification

    from finextract.backends.encoder.model import make_tagger

    src = build_tiny_encoder(tmp_path / "enc", layers=layers, pretrained=False, hidden=32)
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(src, num_labels=3)
    return make_tagger(model, case_features=False).eval()


def _batch(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 2000, (3, 7), generator=g)
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[1, 5:] = 0  # a padded row: its padding must not count
    return {"input_ids": ids, "attention_mask": mask}


def test_prune_ffn_removes_exactly_the_neurons_it_drops(tmp_path):
    """A narrower model computes what the full one does with the dropped neurons' outputs zeroed."""
    import copy

    tagger = _tiny_tagger(tmp_path)
    reference = copy.deepcopy(tagger)
    width = ffn_pairs(tagger.model)[0][1].out_features
    scores = [torch.rand(width, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    kept = prune_ffn(tagger, 20, scores)
    assert [len(k) for k in kept] == [20, 20] and kept[0] != kept[1]
    for i, (_, up, down) in enumerate(ffn_pairs(reference.model)):
        assert kept[i] == sorted(torch.topk(scores[i], 20).indices.tolist())
        drop = [j for j in range(width) if j not in kept[i]]
        with torch.no_grad():
            down.weight[:, drop] = 0.0  # a dropped neuron only reaches the output through these
    assert all(up.out_features == 20 and down.in_features == 20 for _, up, down in ffn_pairs(tagger.model))
    assert tagger.model.config.intermediate_size == 20
    batch = _batch()
    with torch.no_grad():
        assert torch.allclose(tagger(**batch).logits, reference(**batch).logits, atol=1e-5)
        full = copy.deepcopy(tagger)
    # the narrow model saves and loads as a plain BERT with the smaller width
    tagger.model.save_pretrained(tmp_path / "narrow")
    from transformers import AutoModelForTokenClassification

    again = AutoModelForTokenClassification.from_pretrained(tmp_path / "narrow").eval()
    with torch.no_grad():
        assert torch.allclose(again(**batch).logits, full.model(**batch).logits, atol=1e-6)
    with pytest.raises(ConfigError, match="ffn_size"):
        prune_ffn(tagger, 21)


def test_ffn_importance_ranks_silent_and_unused_neurons_last(tmp_path):
    tagger = _tiny_tagger(tmp_path)
    pairs = ffn_pairs(tagger.model)
    with torch.no_grad():
        for _, up, down in pairs:
            down.weight[:, 3] = 0.0        # fires, but its output goes nowhere
            up.weight[5] = 0.0             # never fires: gelu(0) = 0
            up.bias[5] = 0.0
    scores = ffn_importance(tagger, [_batch(0), _batch(1)])
    assert tagger.training is False  # left in the mode it was in
    for s in scores:
        assert s[3] == 0 and s[5] == 0 and (s > 0).sum() == len(s) - 2
    kept = prune_ffn(tagger, len(scores[0]) - 2, scores)
    assert all(3 not in k and 5 not in k for k in kept)
    # padding does not count: the same batch with its padded tokens changed scores the same
    b = _batch(0)
    b2 = {**b, "input_ids": b["input_ids"].clone()}
    b2["input_ids"][1, 5:] = 42
    tagger2 = _tiny_tagger(tmp_path / "again")
    assert all(torch.allclose(x, y) for x, y in zip(ffn_importance(tagger2, [b]), ffn_importance(tagger2, [b2])))


def test_distill_loss_is_zero_for_equal_logits_and_ignores_padding():
    torch.manual_seed(0)
    n_labels, k = 5, 2
    logits = torch.randn(2, 6, n_labels + 2 * k)
    labels = torch.tensor([[-100, 0, 1, 2, -100, -100], [-100, 3, 4, 0, 0, -100]])
    assert distill_loss(logits, logits, labels, n_labels, 2.0).item() == pytest.approx(0, abs=1e-6)
    other = logits.clone()
    other[labels == -100] += 50.0  # differences only where labels are ignored (padding, [SEP])...
    other[:, 0, n_labels:] = logits[:, 0, n_labels:]  # ...except [CLS]'s pointer logits (the null option)
    assert distill_loss(other, logits, labels, n_labels, 2.0).item() == pytest.approx(0, abs=1e-5)
    moved = logits.clone()
    moved[0, 2, :n_labels] = torch.tensor([9.0, -9, 0, 0, 0])
    assert distill_loss(moved, logits, labels, n_labels, 2.0).item() > 0.1
    # the pointer part reads the null option ([CLS], position 0) too
    ptr = logits.clone()
    ptr[:, 0, n_labels:] += 5.0
    assert distill_loss(ptr, logits, labels, n_labels, 2.0).item() > 0.1


def _cfg(out: Path, encoder: Path, **extra) -> EncoderRunConfig:
    train_cfg = {"learning_rate": 3e-3, "epochs": 30, "batch_size": 4, "checkpoint_every": 15, "warmup_ratio": 0.0,
                 "progress": False, "num_threads": 1, **extra.pop("train", {})}
    return EncoderRunConfig.model_validate({
        "backend": "encoder", "task": "merchant", "output_dir": str(out), "seed": 0,
        "data": {"train": str(SAMPLE), "validation": str(SAMPLE), "test": str(SAMPLE)},
        "model": {"name_or_path": str(encoder), "max_length": 32, "pointer_head": True, **extra.pop("model", {})},
        "train": train_cfg})


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("distill")
    enc = build_tiny_encoder(root / "enc", layers=4, pretrained=True)
    train(_cfg(root / "teacher", enc))
    return enc, root / "teacher"


@pytest.mark.slow
def test_student_is_shallower_learns_the_teacher_and_loads(tmp_path, teacher):
    enc, teacher_run = teacher
    cfg = _cfg(tmp_path / "student", enc, model={"num_layers": 2},
               train={"distill_from": str(teacher_run), "epochs": 10, "checkpoint_every": 10})
    summary = train(cfg)
    student = load(str(tmp_path / "student"))
    assert summary["parameters"] < load(str(teacher_run)).info["parameters"]
    model_cfg = (Path(student.info["checkpoint"]) / "model" / "config.json").read_text()
    assert '"num_hidden_layers": 2' in model_cfg
    recs = read_records(SAMPLE, student.task)
    # started from the teacher's layers and heads and trained on its outputs: the sample is learned
    assert summary["test"]["micro_f1"] >= 0.9
    assert all(p is not None for p in student.predict([r.text for r in recs]))


@pytest.mark.slow
def test_narrow_student_trains_saves_resumes_and_loads(tmp_path, teacher):
    enc, teacher_run = teacher
    width = ffn_pairs(_load_hf(teacher_run))[0][1].out_features
    cfg = _cfg(tmp_path / "narrow", enc, model={"num_layers": 2, "ffn_size": width // 2},
               train={"distill_from": str(teacher_run), "epochs": 10, "checkpoint_every": 5})
    with pytest.raises(SimulatedKill):  # stopped mid-run: the resume must load the narrow checkpoint as it is
        train(cfg, stop_after_step=5)
    assert (tmp_path / "narrow" / "checkpoints" / "step-5").exists()
    summary = train(cfg)
    assert summary["steps"] == 10
    model_cfg = (Path(load(str(tmp_path / "narrow")).info["checkpoint"]) / "model" / "config.json").read_text()
    assert f'"intermediate_size": {width // 2}' in model_cfg
    student = load(str(tmp_path / "narrow"))
    recs = read_records(SAMPLE, student.task)
    assert summary["test"]["micro_f1"] >= 0.9
    assert all(p is not None for p in student.predict([r.text for r in recs]))


def _load_hf(run: Path):
    from transformers import AutoModelForTokenClassification

    ckpt = max((run / "checkpoints").iterdir())
    return AutoModelForTokenClassification.from_pretrained(ckpt / "model")


@pytest.mark.slow
def test_plain_shallow_model_trains_without_a_teacher(tmp_path, teacher):
    enc, _ = teacher
    summary = train(_cfg(tmp_path / "shallow", enc, model={"num_layers": 2}, train={"epochs": 4}))
    assert summary["parameters"] > 0
    cfg_json = (tmp_path / "shallow").rglob("config.json")
    assert any('"num_hidden_layers": 2' in p.read_text() for p in cfg_json)


def test_teacher_must_match_and_exist(tmp_path, teacher):
    enc, teacher_run = teacher
    with pytest.raises(ConfigError, match="max_length"):
        train(_cfg(tmp_path / "a", enc, model={"max_length": 24, "num_layers": 2},
                   train={"distill_from": str(teacher_run)}))
    with pytest.raises(InputError, match="not a run directory"):
        train(_cfg(tmp_path / "b", enc, train={"distill_from": str(tmp_path / "nowhere")}))


def test_shipped_student_config_matches_its_teacher_config():
    """configs/encoder-merchant-student.yaml distils runs/encoder-merchant: their settings must agree."""
    from finextract.backends.encoder.distill import check_compatible
    from finextract.config import load_run_config

    teacher = load_run_config(REPO / "configs" / "encoder-merchant.yaml")
    student = load_run_config(REPO / "configs" / "encoder-merchant-student.yaml")
    assert Path(student.train.distill_from) == Path(teacher.output_dir)
    assert student.model.num_layers == 3
    check_compatible(student, teacher)
    assert student.data.train == teacher.data.train  # distilled on the teacher's own training data
