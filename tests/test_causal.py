"""Causal-LM backend on CPU with the tiny random-init model and the test-trained tokenizer.

Fast tests check masking, the end-of-turn guarantee, template refusal/hash and the loss
paths (naive vs answer-only vs chunked vs packed: same loss, same gradients). Slow tests
run the whole path (train -> score every checkpoint -> best -> predict -> export) and an
interrupted run resumed to the same result as an uninterrupted one.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch

from finextract.backends.causal_lm.config import CausalRunConfig
from finextract.backends.causal_lm.data import (IGNORE, Example, check_batch, collate_packed, collate_padded,
                                                encode_records)
from finextract.backends.causal_lm.loss import compute_loss
from finextract.backends.causal_lm.template import TemplateError, find_end_token, template_info
from finextract.records import Record, write_records
from finextract.tasks import load_task
from finextract.testing import build_tiny_causal_lm, build_tiny_tokenizer
from finextract.testing.tiny import CHAT_TEMPLATE

TASK = load_task("merchant")


def _records() -> list[Record]:
    names = ["CAFE", "PIZZA", "BOOKS", "DELI", "BAKERY", "HOTEL", "TAXI", "GROCERY"]
    places = [("AUSTIN", "TX"), ("MIAMI", "FL"), ("DENVER", "CO"), ("SEATTLE", "WA")]
    return [Record(f"{n} {c} {s}", TASK.normalize_output({"MERCHANT_NAME": n, "CITY": c, "STATE": s}))
            for n, (c, s) in itertools.product(names, places)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def tok(tiny):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny)


# ------------------------------------------------------------------ template + masking
def test_end_token_is_the_turn_end_and_not_pad(tok):
    name, idx = find_end_token(tok)
    assert name == "<|im_end|>" and idx != tok.pad_token_id


def test_template_without_end_token_is_refused(tmp_path):
    no_end = CHAT_TEMPLATE.replace("'<|im_end|>' + ", "")
    bad = build_tiny_tokenizer(tmp_path, chat_template=no_end)
    with pytest.raises(TemplateError, match="never learn to stop"):
        find_end_token(bad)
    bad.chat_template = None
    with pytest.raises(TemplateError, match="no chat template"):
        find_end_token(bad)


def test_answer_only_labels_end_with_end_token(tok):
    info = template_info(tok, TASK, "minimal", None)
    examples = encode_records(tok, TASK, _records()[:4], "minimal", None, info.end_token_id, False, 512)
    for ex in examples:
        sup = [i for i, lab in enumerate(ex.labels) if lab != IGNORE]
        assert sup == list(range(sup[0], len(ex)))  # one contiguous answer span at the end
        assert ex.labels[-1] == info.end_token_id
        answer = tok.decode(ex.input_ids[sup[0]:-1])
        assert json.loads(answer)["MERCHANT_NAME"]
    batch = collate_padded(examples, tok.pad_token_id)
    check_batch(batch, info.end_token_id)
    check_batch(collate_packed(examples, 512, tok.pad_token_id), info.end_token_id)
    broken = dict(batch, labels=batch["labels"].clone())
    last = (broken["labels"][0] != IGNORE).nonzero().max()
    broken["labels"][0, last] = IGNORE  # as if truncation or pad==eos masking had dropped it
    with pytest.raises(AssertionError, match="never learn to stop"):
        check_batch(broken, info.end_token_id)


def test_truncation_that_would_cut_the_answer_is_refused(tok):
    info = template_info(tok, TASK, "json-only", None)
    with pytest.raises(ValueError, match="longer than train.max_length"):
        encode_records(tok, TASK, _records()[:2], "json-only", None, info.end_token_id, False, 64)


def test_template_hash_changes_with_template(tmp_path, tok):
    a = template_info(tok, TASK, "minimal", None)
    other = build_tiny_tokenizer(tmp_path, chat_template=CHAT_TEMPLATE.replace("'\n' + message", "'\n\n' + message"))
    assert template_info(other, TASK, "minimal", None).hash != a.hash
    assert template_info(tok, TASK, "json-only", None).hash != a.hash


# ------------------------------------------------------------------ loss paths
def _examples(seed: int = 0) -> list[Example]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for n, a in [(20, 5), (33, 7), (12, 4), (27, 9)]:
        ids = torch.randint(10, 1000, (n,), generator=g).tolist()
        out.append(Example(ids, [IGNORE] * (n - a) + ids[n - a:]))
    return out


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_optimised_loss_paths_match_naive(tmp_path, arch):
    from transformers import AutoModelForCausalLM

    from finextract.backends.causal_lm.modeling import add_lora

    path = build_tiny_causal_lm(tmp_path / arch, arch=arch)
    model = add_lora(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa"),
                     CausalRunConfig(model={"name_or_path": "x"}).lora)
    for p in model.parameters():  # non-zero LoRA B so gradients reach both A and B
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.05)
    exs = _examples()
    results = []
    for mode, chunk, packed in [("naive", None, False), ("answer-only", None, False),
                                ("answer-only", 3, False), ("answer-only", None, True), ("naive", None, True)]:
        model.zero_grad()
        batch = collate_packed(exs, 64, 0) if packed else collate_padded(exs, 0)
        loss, n = compute_loss(model, batch, mode, chunk)
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad])
        results.append((float(loss.detach()), n, grads))
    ref_loss, ref_n, ref_grad = results[0]
    assert ref_n == sum(sum(1 for x in e.labels[1:] if x != IGNORE) for e in exs)
    for loss, n, grads in results[1:]:
        assert n == ref_n
        assert loss == pytest.approx(ref_loss, rel=1e-5)
        assert float((grads - ref_grad).norm() / ref_grad.norm()) < 1e-5


# ------------------------------------------------------------------ full path
def _config(tiny: Path, tmp: Path, **train) -> CausalRunConfig:
    data = tmp / "train.jsonl"
    if not data.exists():
        write_records(data, _records(), TASK)
    return CausalRunConfig.model_validate({
        "task": "merchant", "output_dir": str(tmp / "run"), "seed": 3,
        "data": {"train": str(data), "validation": str(data)},
        "model": {"name_or_path": str(tiny), "precision": "fp32"},
        "prompt": {"style": "minimal"}, "lora": {"rank": 16, "alpha": 32},
        "train": {"learning_rate": 3e-3, "epochs": 60, "per_device_batch": 8, "gradient_accumulation": 1,
                  "save_steps": 80, "logging_steps": 20, "warmup_ratio": 0.0, "scheduler": "constant", **train},
        "decoding": {"batch_size": 32}})


@pytest.mark.slow
def test_full_path_memorises_32_records(tiny, tmp_path):
    from finextract.backends.causal_lm import load
    from finextract.backends.causal_lm.train import train
    from finextract.backends.causal_lm.export import export_merged
    from finextract.rundir import RunDir

    torch.set_num_threads(1)
    cfg = _config(tiny, tmp_path)
    summary = train(cfg)
    run = RunDir(cfg.output_dir)
    steps = [m["step"] for m in run.metrics()]
    assert steps == [80, 160, 240]  # every checkpoint scored by generation
    assert all("invalid_rate" in m["val"] for m in run.metrics())
    best = run.best()
    assert best["value"] == max(m["val"]["micro"]["f1"] for m in run.metrics())
    assert summary["best"]["value"] == pytest.approx(1.0)
    assert (run.root / "DONE").exists() and (run.root / "curve.png").exists()
    assert json.loads((run.resolve_checkpoint() / "template.json").read_text())["end_token"] == "<|im_end|>"

    ext = load(str(run.root))
    recs = _records()
    assert ext.predict([r.text for r in recs]) == [r.values for r in recs]
    assert all(raw.startswith("{") and raw.endswith("}") for raw in ext.last_raw)  # stopped at end of turn

    engine = load(str(run.root), engine="engine", constrained=False)  # the decoding engine's path
    assert engine.predict([r.text for r in recs[:8]]) == [r.values for r in recs[:8]]

    report = export_merged(run.root, checkpoint=None)
    assert report["delta_micro_f1"] == pytest.approx(0.0, abs=1e-9)
    merged = load(str(run.root), "merged")
    assert merged.predict([recs[0].text]) == [recs[0].values]


@pytest.mark.slow
def test_template_mismatch_refused_on_load(tiny, tmp_path):
    from finextract.backends.causal_lm import load
    from finextract.backends.causal_lm.train import train

    cfg = _config(tiny, tmp_path, max_steps=2, save_steps=2)
    cfg.data.validation = None
    train(cfg)
    other = tmp_path / "other_tok"
    build_tiny_tokenizer(other, chat_template=CHAT_TEMPLATE.replace("'\n' + message", "'\n\n' + message"))
    with pytest.raises(TemplateError, match="differs from the one trained with"):
        load(str(cfg.output_dir), tokenizer_path=str(other))
    assert load(str(cfg.output_dir), tokenizer_path=str(other), allow_template_mismatch=True) is not None


class _Kill(Exception):
    pass


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted(tiny, tmp_path):
    from safetensors.torch import load_file

    from finextract.backends.causal_lm.train import train
    from finextract.rundir import RunDir

    torch.set_num_threads(1)
    kw = dict(max_steps=7, save_steps=3, logging_steps=1, per_device_batch=4, gradient_accumulation=2,
              warmup_ratio=0.3, scheduler="cosine")
    full = _config(tiny, tmp_path / "a", **kw)
    full.data.max_eval_records = 2
    train(full)

    cut = _config(tiny, tmp_path / "b", **kw)
    cut.data.max_eval_records = 2

    def kill(step: int) -> None:
        if step == 5:  # after checkpoint 3, before checkpoint 6
            raise _Kill()

    with pytest.raises(_Kill):
        train(cut, on_step=kill)
    assert [s for s, _ in RunDir(cut.output_dir).checkpoints()] == [3]
    train(cut)  # resumes from step-3

    a, b = RunDir(full.output_dir), RunDir(cut.output_dir)
    assert [r["loss"] for r in b.train_log()] == pytest.approx([r["loss"] for r in a.train_log()], rel=1e-6)
    assert [r["step"] for r in b.metrics()] == [r["step"] for r in a.metrics()] == [3, 6, 7]
    wa = load_file(str(a.checkpoint_path(7) / "adapter_model.safetensors"))
    wb = load_file(str(b.checkpoint_path(7) / "adapter_model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6), k


def test_shipped_recipes_validate():
    from finextract.config import load_run_config

    repo = Path(__file__).resolve().parents[1]
    s2 = load_run_config(repo / "configs/causal-merchant-study2.yaml")
    s1 = load_run_config(repo / "configs/causal-fire-study1.yaml")
    assert (s2.lora.rank, s2.lora.alpha, s2.train.learning_rate, s2.train.scheduler, s2.train.warmup_ratio,
            s2.train.epochs, s2.train.per_device_batch * s2.train.gradient_accumulation, s2.train.save_steps) == \
        (8, 16, 1e-4, "cosine", 0.1, 6, 16, 200)
    assert (s1.lora.rank, s1.lora.alpha, s1.lora.dropout, s1.train.learning_rate, s1.train.epochs,
            s1.model.precision) == (8, 16, 0.0, 5e-5, 3, "bf16")
    defaults = CausalRunConfig(model={"name_or_path": "x"})
    assert (defaults.train.learning_rate, defaults.train.epochs, defaults.train.scheduler) == (1e-4, 6, "cosine")


@pytest.mark.slow
def test_compiled_layers_give_the_same_loss(tiny):
    from transformers import AutoModelForCausalLM

    from finextract.backends.causal_lm.modeling import add_lora
    from finextract.backends.causal_lm.train import compile_layers

    torch.set_num_threads(1)
    model = add_lora(AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32),
                     CausalRunConfig(model={"name_or_path": "x"}).lora)
    batch = collate_padded(_examples(1), 0, multiple=16)
    eager = float(compute_loss(model, batch, "answer-only")[0].detach())
    assert compile_layers(model) == 2
    compiled = float(compute_loss(model, batch, "answer-only")[0].detach())
    assert compiled == pytest.approx(eager, rel=1e-4)
