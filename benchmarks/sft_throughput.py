"""LoRA SFT throughput of the causal-LM trainer's own code paths, naive vs optimised.

Builds random-init models shaped like Qwen3-0.6B, Llama-3.2-1B and Qwen3-4B (configs written
by hand: no hub needed), bf16 weights + fp32 LoRA (rank 8, all attention and MLP
projections), and times optimizer steps on synthetic records whose lengths follow the
study (724-924 tokens, ~60 answer tokens). Each variant calls the trainer's functions:
``collate_padded``/``collate_packed`` and ``compute_loss`` (``naive`` or ``answer-only``).

Reported: real (non-pad) tokens/s, median over timed steps; peak GPU memory; minutes for
one 6-epoch run over 6,125 records at that rate. Usage (GPU)::

    PYTHONPATH=src python benchmarks/sft_throughput.py --out benchmarks/results/sft_throughput.json
    PYTHONPATH=src python benchmarks/sft_throughput.py --smoke     # tiny shapes on CPU, checks the script
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

import torch


def _load(name: str):
    """Load a trainer module by path: the GPU image has torch/transformers/peft but no pydantic."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "src/finextract/backends/causal_lm" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_sft_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up here
    spec.loader.exec_module(mod)
    return mod


_data, _loss = _load("data"), _load("loss")
IGNORE, Example, collate_packed, collate_padded = _data.IGNORE, _data.Example, _data.collate_packed, _data.collate_padded
compute_loss = _loss.compute_loss

SHAPES = {
    "qwen3-0.6b": dict(arch="qwen3", hidden_size=1024, num_hidden_layers=28, num_attention_heads=16,
                       num_key_value_heads=8, head_dim=128, intermediate_size=3072, vocab_size=151936,
                       tie_word_embeddings=True),
    "llama-3.2-1b": dict(arch="llama", hidden_size=2048, num_hidden_layers=16, num_attention_heads=32,
                         num_key_value_heads=8, head_dim=64, intermediate_size=8192, vocab_size=128256,
                         tie_word_embeddings=True, rope_theta=500000.0),
    "qwen3-4b": dict(arch="qwen3", hidden_size=2560, num_hidden_layers=36, num_attention_heads=32,
                     num_key_value_heads=8, head_dim=128, intermediate_size=9728, vocab_size=151936,
                     tie_word_embeddings=True),
    "tiny": dict(arch="llama", hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 head_dim=16, intermediate_size=128, vocab_size=4096, tie_word_embeddings=False),
}
# name -> (loss mode, packing, records per micro-batch, lm_head chunk, compile layers)
VARIANTS = {
    "naive-b4": ("naive", False, 4, None, False),
    "answer-only-b4": ("answer-only", False, 4, None, False),
    "answer-only-packed-b16": ("answer-only", True, 16, None, False),
    "answer-only-b8": ("answer-only", False, 8, None, False),
    "answer-only-b16": ("answer-only", False, 16, None, False),
    "answer-only-b8-compiled": ("answer-only", False, 8, None, True),
    "answer-only-b16-compiled": ("answer-only", False, 16, None, True),
}
DEFAULT_VARIANTS = {
    "qwen3-0.6b": "naive-b4,answer-only-b4,answer-only-packed-b16,answer-only-b16,answer-only-b16-compiled",
    "llama-3.2-1b": "naive-b4,answer-only-b4,answer-only-packed-b16,answer-only-b16,answer-only-b16-compiled",
    "qwen3-4b": "naive-b4,answer-only-b4,answer-only-b8,answer-only-b8-compiled",
    "tiny": "naive-b4,answer-only-b4,answer-only-packed-b16,answer-only-b8-compiled",
}
RECORDS, EPOCHS = 6125, 6
REFERENCE = {"qwen3-0.6b": (17.3e3, 33), "llama-3.2-1b": (29.1e3, 20), "qwen3-4b": (9.4e3, 60)}


def build(shape: dict, device: torch.device, dtype: torch.dtype):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

    shape = dict(shape)
    arch = shape.pop("arch")
    cfg_cls, cls = (Qwen3Config, Qwen3ForCausalLM) if arch == "qwen3" else (LlamaConfig, LlamaForCausalLM)
    cfg = cfg_cls(**shape, max_position_embeddings=4096, attn_implementation="sdpa")
    torch.set_default_dtype(dtype)
    with torch.device(device):
        model = cls(cfg)
    torch.set_default_dtype(torch.float32)
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    return get_peft_model(model, lora)


def make_examples(n: int, vocab: int, lo: int, hi: int, answer: int, seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = rng.randint(lo, hi)
        ids = [rng.randrange(100, vocab) for _ in range(length)]
        out.append(Example(ids, [IGNORE] * (length - answer) + ids[length - answer:]))
    return out


def run_variant(model, examples, variant, device, steps, warmup, max_length, amp_dtype) -> dict:
    mode, packing, per_batch, chunk, compiled = VARIANTS[variant]
    if compiled:
        for layer in _loss._causal_lm(model).get_decoder().layers:
            layer.compile()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    batches = []
    for i in range(0, (steps + warmup) * per_batch, per_batch):
        exs = [examples[(i + j) % len(examples)] for j in range(per_batch)]
        batches.append(collate_packed(exs, max_length, 0) if packing
                       else collate_padded(exs, 0, 128 if compiled else None))
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    times, tokens = [], []
    model.train()
    for k, b in enumerate(batches):
        real = int(b["attention_mask"].sum()) if "attention_mask" in b else sum(
            len(examples[(k * per_batch + j) % len(examples)]) for j in range(per_batch))
        b = {key: v.to(device, non_blocking=True) for key, v in b.items()}
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=amp_dtype, enabled=device.type == "cuda"):
            loss, n = compute_loss(model, b, mode, chunk)
        (loss / n).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if k >= warmup:
            times.append(time.perf_counter() - t0)
            tokens.append(real)
    rate = statistics.median(t / s for t, s in zip(tokens, times))
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return {"variant": variant, "loss": mode, "packing": packing, "records_per_micro_batch": per_batch,
            "compiled": compiled, "tokens_per_s": rate, "peak_gib": peak, "step_s_median": statistics.median(times)}


def prompt_tokens_estimate() -> dict:
    """Our json-only merchant prompt in characters, and tokens at ~4 chars/token."""
    try:
        from finextract.prompts import compact_json, system_prompt  # noqa: F401
    except ImportError:  # no pydantic on the GPU image: measured locally, see the .md
        return {"system_chars": 2546, "prompt_tokens_at_4cpt": 666, "answer_tokens_at_4cpt": 40}
    from finextract.prompts import compact_json, system_prompt
    from finextract.tasks import load_task

    task = load_task("merchant")
    sys_chars = len(system_prompt(task, "json-only"))
    text_chars = 60  # a typical descriptor with bank wrapping
    answer_chars = len(compact_json(task, {"MERCHANT_NAME": "TARGET 00000794", "CITY": "AUSTIN", "STATE": "TX"}))
    overhead = 60  # template markers
    return {"system_chars": sys_chars, "prompt_tokens_at_4cpt": (sys_chars + text_chars + overhead) // 4,
            "answer_tokens_at_4cpt": answer_chars // 4}


def to_markdown(result: dict) -> str:
    """The results table, with the study's naive reference (one H100) beside each shape."""
    lines = [f"# LoRA SFT throughput ({result['device']}, torch {result['torch']})", "",
             f"Records {result['mean_tokens_per_record']:.0f} tokens on average (study range 724-924), "
             f"6 epochs x {result['records']} records per run. Reference = the brief's naive peft loop.", "",
             "| shape | variant | tokens/s | peak GiB | min / run | vs reference |", "|---|---|---:|---:|---:|---:|"]
    for r in result["rows"]:
        ref = result["reference"].get(r["shape"])
        if "error" in r:
            lines.append(f"| {r['shape']} | {r['variant']} | {r['error']} | | | |")
            continue
        vs = f"{r['tokens_per_s'] / ref[0]:.2f}x" if ref else ""
        lines.append(f"| {r['shape']} | {r['variant']} | {r['tokens_per_s']:.0f} | {r['peak_gib']:.1f} | "
                     f"{r['minutes_per_run']:.1f} | {vs} |")
    lines += ["", "Reference (naive, padded 4 x 924, full-vocab logits): "
              + ", ".join(f"{k} {v[0] / 1e3:.1f}k tok/s ({v[1]} min)" for k, v in result["reference"].items()), ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", default="qwen3-0.6b,llama-3.2-1b,qwen3-4b")
    ap.add_argument("--variants", default=None, help=f"comma list of {list(VARIANTS)} (default: per shape)")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--min-len", type=int, default=724)
    ap.add_argument("--max-len", type=int, default=924)
    ap.add_argument("--answer", type=int, default=60)
    ap.add_argument("--max-length", type=int, default=4096, help="packed row length")
    ap.add_argument("--smoke", action="store_true", help="tiny shape on CPU, short sequences")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/sft_throughput.json"))
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.smoke:
        args.shapes, args.steps, args.warmup, args.min_len, args.max_len, args.answer = "tiny", 2, 1, 40, 60, 8
        args.max_length = 256
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    est = prompt_tokens_estimate()
    mean_len = (args.min_len + args.max_len) / 2
    rows = []
    for shape_name in args.shapes.split(","):
        shape = SHAPES[shape_name]
        model = build(shape, device, dtype)
        examples = make_examples(256, shape["vocab_size"], args.min_len, args.max_len, args.answer)
        for variant in (args.variants or DEFAULT_VARIANTS[shape_name]).split(","):
            try:
                r = run_variant(model, examples, variant, device, args.steps, args.warmup, args.max_length, dtype)
            except torch.OutOfMemoryError:
                r = {"variant": variant, "error": "out of memory"}
                torch.cuda.empty_cache()
            except Exception as exc:  # a failing variant (e.g. compile) must not lose the others
                r = {"variant": variant, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
            r["shape"] = shape_name
            if "tokens_per_s" in r:
                r["minutes_per_run"] = EPOCHS * RECORDS * mean_len / r["tokens_per_s"] / 60
            rows.append(r)
            print(json.dumps(r), flush=True)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    result = {"device": gpu, "torch": torch.__version__, "mean_tokens_per_record": mean_len,
              "records": RECORDS, "epochs": EPOCHS, "prompt_estimate": est, "reference": REFERENCE, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    args.out.with_suffix(".md").write_text(to_markdown(result))
    print(f"\n{gpu}; records {args.min_len}-{args.max_len} tokens ({args.answer} answer); "
          f"our json-only prompt ~{est['prompt_tokens_at_4cpt']} tokens at 4 chars/token")
    print(f"{'shape':14} {'variant':26} {'tok/s':>9} {'peak GiB':>9} {'min/run':>8}")
    for r in rows:
        if "error" in r:
            print(f"{r['shape']:14} {r['variant']:26} {r['error']}")
        else:
            print(f"{r['shape']:14} {r['variant']:26} {r['tokens_per_s']:9.0f} {r['peak_gib']:9.1f} "
                  f"{r['minutes_per_run']:8.1f}")


if __name__ == "__main__":
    main()
