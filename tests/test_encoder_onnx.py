"""ONNX fast path: same outputs as PyTorch fp32 except where export-onnx documented a difference,
inputs/outputs taken from the featurizer/model, and unmeasured int8 refused by serve."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from finextract.backends.encoder import EncoderRunConfig, load, train  # noqa: E402
from finextract.backends.encoder.onnx import (META_NAME, length_buckets, onnx_dir, read_meta,  # noqa: E402
                                              write_meta)
from finextract.backends.encoder.onnx_select import BASE_KEEP, OUTER, EvalSet, Int8Spec, export_fast_path  # noqa: E402
from finextract.backends.encoder.quantize import nodes_to_keep_fp32  # noqa: E402
from finextract.backends.encoder.testing import build_tiny_encoder, train_tiny_run  # noqa: E402
from finextract.records import Record, read_records  # noqa: E402
from finextract.rundir import RunDir  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "tests" / "data" / "merchant_sample.jsonl"
STATIC = Int8Spec("static", BASE_KEEP + OUTER)  # named int8-static-outer-fp32
DYNAMIC = Int8Spec("dynamic", BASE_KEEP)  # named int8-dynamic
N_FIXED = 120  # generated records, seed 11: the fixed set both paths are compared on


def fixed_records(task) -> list[Record]:
    from finextract.synth import generate

    return list(read_records(SAMPLE, task)) + list(generate(N_FIXED, seed=11))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A 4-layer random-init BERT trained on generated descriptors (seconds on one core)."""
    return train_tiny_run(tmp_path_factory.mktemp("onnx"), layers=4, hidden=64, n=400, data_seed=5)


@pytest.fixture(scope="module")
def exported(trained_run) -> dict:
    """export-onnx's own pipeline on the run, the fixed records as its only eval set."""
    cfg = EncoderRunConfig.model_validate(RunDir(trained_run).read_config())
    task = cfg.load_task()
    calib = [r.text for r in read_records(cfg.data.train, task)][:64]
    sets = [EvalSet("fixed", "fixed", fixed_records(task))]
    meta = export_fast_path(trained_run, "best", cfg, sets, calib, [STATIC, DYNAMIC], tolerance=100.0, threads=1,
                            speed_texts=64, log=lambda m: None)
    return meta


def test_length_buckets_partition_rows_and_split_outliers():
    lengths = np.array([10, 11, 10, 64, 12, 63, 10, 11])
    groups = length_buckets(lengths, call_cost=48)
    assert sorted(np.concatenate(groups).tolist()) == list(range(len(lengths)))
    long_rows = {3, 5}
    assert any(set(g.tolist()) == long_rows for g in groups)  # the two long memos run on their own
    assert len(length_buckets(np.array([20] * 64))) == 1
    assert len(length_buckets(np.array([5, 6]), call_cost=10**6)) == 1  # calls so dear that padding wins


@pytest.mark.slow
def test_export_takes_the_featurizers_inputs_and_the_models_heads(trained_run, exported):
    import onnx

    ex = load(str(trained_run))
    batch, _ = ex._encode(["SQ *A B", "x"])
    assert exported["inputs"] == list(batch)  # names and order from the featurizer's dict
    assert exported["outputs"] == ["logits"]
    graph = onnx.load(str(onnx_dir(Path(exported["checkpoint"])) / "model.onnx")).graph
    for inp in graph.input:
        dims = [d.dim_param for d in inp.type.tensor_type.shape.dim]
        assert dims == ["batch", "seq"], (inp.name, dims)


@pytest.mark.slow
def test_fp32_onnx_equals_torch_on_fixed_records(trained_run, exported):
    fp32 = exported["variants"]["fp32"]["f1"]["fixed"]
    assert fp32["n_differing_records"] == 0 and fp32["delta_points"] == 0
    task = load(str(trained_run)).task
    texts = [r.text for r in fixed_records(task)]
    torch_preds = load(str(trained_run)).predict(texts)
    assert load(str(trained_run), runtime="onnx", variant="fp32").predict(texts) == torch_preds
    # length bucketing (trimming each group to its longest row) changes nothing either
    from finextract.backends.encoder.onnx import onnx_extractor

    cfg = EncoderRunConfig.model_validate(RunDir(trained_run).read_config())
    ckpt = RunDir(trained_run).resolve_checkpoint("best")
    plain = onnx_extractor(ckpt, cfg, task, variant="fp32", bucket=False)
    assert plain.predict(texts) == torch_preds


@pytest.mark.slow
def test_int8_differs_from_fp32_only_on_the_documented_records(trained_run, exported):
    assert exported["variants"][STATIC.name]["quantization"]["matmuls_quantized"] == 12  # layers 1-2: 6 linear each
    assert exported["variants"][DYNAMIC.name]["quantization"]["matmuls_quantized"] == 24  # layers 0-3
    task = load(str(trained_run)).task
    records = fixed_records(task)
    texts = [r.text for r in records]
    ref = load(str(trained_run)).predict(texts)
    for spec in (STATIC, DYNAMIC):
        v = exported["variants"][spec.name]
        assert v["quantization"]["method"] == spec.method and v["quantization"]["per_channel"]
        documented = v["f1"]["fixed"]
        fast = load(str(trained_run), runtime="onnx", variant=spec.name).predict(texts)
        differing = [i for i, (a, b) in enumerate(zip(ref, fast)) if a != b]
        assert differing == [d["index"] for d in documented["differing_records"]], spec.name
        assert documented["n_differing_records"] == len(differing)
        for d in documented["differing_records"]:
            assert d["fp32"] == ref[d["index"]] and d["variant"] == fast[d["index"]]
        assert len(differing) <= len(records) // 4, spec.name  # int8 with fp32 islands stays close to fp32


@pytest.mark.slow
def test_fixed_scale_variants_do_not_depend_on_batch_mates(trained_run, exported):
    """fp32 and static int8 give a text the same output alone or in a batch. Dynamic int8 does
    not promise this (its activation scales come from the whole batch): documented in docs/encoder.md."""
    task = load(str(trained_run)).task
    texts = [r.text for r in fixed_records(task)][:40]
    for name in ("fp32", STATIC.name):
        ex = load(str(trained_run), runtime="onnx", variant=name)
        assert [ex.predict([t])[0] for t in texts] == ex.predict(texts), name


@pytest.mark.slow
def test_quantized_export_without_f1_delta_is_refused_by_serve(trained_run, exported):
    from finextract.serve.app import create_app
    from finextract.serve.config import ServeConfig

    ckpt = Path(exported["checkpoint"])
    meta = read_meta(ckpt)
    try:
        unmeasured = json.loads(json.dumps(meta))
        unmeasured["chosen"] = STATIC.name
        del unmeasured["variants"][STATIC.name]["f1"]
        write_meta(ckpt, unmeasured)
        with pytest.raises(ValueError, match="no recorded F1 delta"):
            create_app(ServeConfig(run_dir=str(trained_run), runtime="onnx"))
        from finextract.cli import main

        with pytest.raises(SystemExit) as exit_info:
            main(["serve", str(trained_run), "--runtime", "onnx", "--port", "0"])
        assert exit_info.value.code == 2
        # measured, the same variant is served
        measured = json.loads(json.dumps(meta))
        measured["chosen"] = STATIC.name
        write_meta(ckpt, measured)
        app = create_app(ServeConfig(run_dir=str(trained_run), runtime="onnx"))
        assert app is not None
    finally:
        write_meta(ckpt, meta)


@pytest.mark.slow
def test_predict_cli_runtime_onnx_matches_torch(trained_run, exported, capsys):
    from finextract.cli import main

    def cli(args):
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        assert exit_info.value.code in (0, None)

    text = "SQ *TURTLE TOWER SAN FRANCISCO CA"
    cli(["predict", str(trained_run), text, "--runtime", "onnx"])
    onnx_line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    cli(["predict", str(trained_run), text])
    torch_line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    chosen = exported["chosen"]
    if chosen == "fp32":
        assert onnx_line == torch_line
    assert onnx_line["text"] == text and onnx_line["valid"]


def test_keep_fp32_picks_embeddings_head_and_outer_layers(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    def mm(name, a, w):
        return helper.make_node("MatMul", [a, w], [name + "_out"], name=name)

    nodes = [helper.make_node("Gather", ["E", "ids"], ["emb"], name="/inner/model/bert/embeddings/Gather"),
             mm("/inner/model/bert/encoder/layer.0/dense/MatMul", "emb", "W0"),
             mm("/inner/model/bert/encoder/layer.1/dense/MatMul", "/inner/model/bert/encoder/layer.0/dense/MatMul_out", "W1"),
             mm("/inner/model/bert/encoder/layer.1/attention/self/MatMul",
                "/inner/model/bert/encoder/layer.1/dense/MatMul_out", "/inner/model/bert/encoder/layer.1/dense/MatMul_out"),
             mm("/inner/model/bert/encoder/layer.2/dense/MatMul", "/inner/model/bert/encoder/layer.1/dense/MatMul_out", "W2"),
             mm("/inner/model/classifier/MatMul", "/inner/model/bert/encoder/layer.2/dense/MatMul_out", "WC")]
    inits = [helper.make_tensor(n, TensorProto.FLOAT, [2, 2], [0.0] * 4) for n in ("E", "W0", "W1", "W2", "WC")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, [1])],
                              [helper.make_tensor_value_info("/inner/model/classifier/MatMul_out", TensorProto.FLOAT, None)],
                              initializer=inits)
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph), str(path))
    kept = set(nodes_to_keep_fp32(path))
    assert kept == {n.name for n in nodes} - {"/inner/model/bert/encoder/layer.1/dense/MatMul"}
    assert set(nodes_to_keep_fp32(path, ["head"])) == {"/inner/model/classifier/MatMul"}
    with pytest.raises(ValueError, match="unknown part"):
        nodes_to_keep_fp32(path, ["tail"])


def test_runtime_onnx_without_export_names_the_command(tmp_path):
    from finextract.runtime import load_with_runtime

    run = tmp_path / "run"
    (run / "checkpoints" / "step-1").mkdir(parents=True)
    (run / "config.yaml").write_text("backend: crf\ntask: merchant\n", encoding="utf-8")
    with pytest.raises(ValueError, match="only encoder runs"):
        load_with_runtime(run, None, "onnx")
    with pytest.raises(ValueError, match="choose one of"):
        load_with_runtime(run, None, "tensorrt")


def test_meta_name_is_stable():
    assert META_NAME == "meta.json"  # documented path (docs/encoder.md, serve's refusal message)


@pytest.mark.slow
def test_lexical_features_and_pointer_head_export_unchanged(tmp_path):
    """Per-token lexical and layout ids ([B, T, C]) and pointer logits export with no special case,
    and a distilled shallow student of that model exports the same way."""
    from finextract.backends.encoder.onnx import export_checkpoint

    model = build_tiny_encoder(tmp_path / "bert", layers=2, pretrained=False, hidden=64)
    cfg = EncoderRunConfig.model_validate({
        "backend": "encoder", "task": "merchant", "output_dir": str(tmp_path / "run"), "seed": 0,
        "data": {"train": str(SAMPLE), "validation": str(SAMPLE)},
        "model": {"name_or_path": str(model), "max_length": 32, "lexical_features": True, "pointer_head": True,
                  "layout_features": True, "decoder": "bio"},
        "train": {"learning_rate": 3e-3, "max_steps": 10, "batch_size": 4, "checkpoint_every": 10,
                  "warmup_ratio": 0.0, "progress": False, "num_threads": 1}})
    train(cfg)
    student = cfg.model_copy(update={
        "output_dir": tmp_path / "student", "model": cfg.model.model_copy(update={"num_layers": 1}),
        "train": cfg.train.model_copy(update={"distill_from": str(tmp_path / "run"), "max_steps": 4,
                                              "checkpoint_every": 4})})
    train(student)
    texts = [r.text for r in fixed_records(cfg.load_task())][:40]
    for out in (cfg.output_dir, student.output_dir):
        run = RunDir(out)
        export_checkpoint(run.resolve_checkpoint(), cfg, cfg.load_task(), quantize=False)
        meta = read_meta(run.resolve_checkpoint())
        assert {"lex_ids", "layout_ids"} <= set(meta["inputs"]) and meta["outputs"] == ["logits"]
        assert load(str(run.root), runtime="onnx").predict(texts) == load(str(run.root)).predict(texts)


@pytest.mark.slow
def test_dynamic_int8_delta_is_measured_per_call_size_and_chosen_on_the_worst(trained_run, exported):
    """Dynamic int8's output depends on its batch mates, so export-onnx scores it in calls of 64, 32
    and 1 text too (batch, two workers, serve); the choice reads the worst of these."""
    from finextract.backends.encoder.onnx_select import CALL_SIZES, choose, predict_in_calls, worst_delta

    v = exported["variants"][DYNAMIC.name]
    assert set(v["f1_calls"]) == {str(n) for n in CALL_SIZES}
    assert "f1_calls" not in exported["variants"][STATIC.name]        # fixed scales: one measurement
    task = load(str(trained_run)).task
    records = fixed_records(task)
    ref = load(str(trained_run)).predict([r.text for r in records])
    fast = load(str(trained_run), runtime="onnx", variant=DYNAMIC.name)
    ones = predict_in_calls(fast, [r.text for r in records], 1)
    assert v["f1_calls"]["1"]["fixed"]["n_differing_records"] == sum(a != b for a, b in zip(ref, ones))
    # a variant within tolerance on the whole set but not in calls of one text is not chosen
    fake = {"fp32": {"f1": {"s": {"delta_points": 0.0}}, "speed": {"samples_per_s": 1}},
            "fast": {"f1": {"s": {"delta_points": 0.1}}, "f1_calls": {"1": {"s": {"delta_points": -0.8}}},
                     "speed": {"samples_per_s": 9}}}
    assert worst_delta(fake["fast"], "s") == -0.8
    assert choose(fake, tolerance=0.5) == "fp32" and choose(fake, tolerance=1.0) == "fast"


def test_variant_speeds_are_measured_interleaved_and_reported_as_medians():
    """export-onnx's choice rests on these numbers: every round times every variant once, so a burst
    of load cannot fall on one variant's whole measurement."""
    import time

    from finextract.backends.encoder.onnx_select import interleaved_speed

    calls: list[str] = []

    class Fake:
        def __init__(self, name: str, seconds: float):
            self.name, self.seconds = name, seconds

        def predict(self, texts):
            if len(texts) > 1:  # throughput passes, not the single-text latency samples
                calls.append(self.name)
            time.sleep(self.seconds)
            return [None] * len(texts)

    out = interleaved_speed({"a": Fake("a", 0.0), "b": Fake("b", 0.004)}, ["x"] * 64, rounds=3)
    firsts = [i for i in range(1, len(calls)) if calls[i] != calls[i - 1]]
    assert len(firsts) == 5  # a b a b a b: the variant changes five times (each round: warm-up + one pass)
    assert out["a"]["rounds"] == 3 and len(out["b"]["samples_per_s_rounds"]) == 3
    assert out["a"]["samples_per_s"] > out["b"]["samples_per_s"]
    assert out["b"]["samples_per_s"] == sorted(out["b"]["samples_per_s_rounds"])[1]  # the median
