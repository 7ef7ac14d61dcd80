"""Generation throughput: plain ``generate`` (batch 4 and large) vs the ExtractionEngine, on GPU.

Models are random-init, shaped like Qwen3-0.6B, Llama-3.2-1B and Qwen3-4B (configs written
by hand: no hub here), in bf16. Prompts are the prompts module's ``json-only`` (and
``two-step`` for the smallest model) with the instruction cut so prompts are ~800 tokens
(the study's 724-924), descriptors are synthetic, 20-120 characters. A random model emits
garbage, so ``generate`` is run with a fixed 80 new tokens; the engine's constrained JSON
has a realistic length (values are substrings of the input) and its tokens per
descriptor are reported. The physical floor (FLOPs per descriptor with and without the
prefix cached, over the bf16 matmul rate measured in the same run) is printed next to
the measurements.

Run (GPU machine): ``PYTHONPATH=src python3 benchmarks/generation_throughput.py``.
Writes ``benchmarks/results/generation_throughput.json`` (or ``$OUT`` when set).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

from finextract.backends.causal_lm.engine import ExtractionEngine
from finextract.prompts import build_messages
from finextract.tasks import load_task
from finextract.testing.tiny import build_tiny_tokenizer

SHAPES = {
    "qwen3-0.6b": ("qwen3", dict(hidden_size=1024, num_hidden_layers=28, num_attention_heads=16,
                                 num_key_value_heads=8, head_dim=128, intermediate_size=3072,
                                 vocab_size=151936, tie_word_embeddings=True, rope_theta=1e6)),
    "llama-3.2-1b": ("llama", dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32,
                                   num_key_value_heads=8, head_dim=64, intermediate_size=8192,
                                   vocab_size=128256, tie_word_embeddings=True, rope_theta=5e5)),
    "qwen3-4b": ("qwen3", dict(hidden_size=2560, num_hidden_layers=36, num_attention_heads=32,
                               num_key_value_heads=8, head_dim=128, intermediate_size=9728,
                               vocab_size=151936, tie_word_embeddings=True, rope_theta=1e6)),
}
WORDS = ["POS", "PURCHASE", "DEBIT", "CARD", "CHECKCARD", "SQ *", "TST*", "PAYPAL *", "AMZN Mktp US",
         "STARBUCKS", "SHELL OIL", "UBER", "TRIP", "HELP.UBER.COM", "WALGREENS", "#", "STORE", "COFFEE",
         "PIZZA", "MARKET", "SAN FRANCISCO", "NEW YORK", "AUSTIN", "SEATTLE", "CA", "NY", "TX", "WA",
         "800-555-0199", "*2Y2LX2NF2", "US", "11/02", "CAFE", "LLC"]


def synth_texts(n: int, seed: int = 0) -> list[str]:
    """Descriptor-like strings of 20-120 characters (nothing from pilot data)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        target = rng.randint(20, 120)
        parts: list[str] = []
        while len(" ".join(parts)) < target:
            w = rng.choice(WORDS) if rng.random() < 0.8 else str(rng.randint(10, 999999))
            parts.append(w)
        out.append(" ".join(parts)[:target].strip())
    return out


def make_render(tok, task, style: str, target_tokens: int):
    """``render`` whose instruction is cut so a mid-length prompt has ~target_tokens tokens."""
    msgs = build_messages(task, style, "X" * 60)
    system = msgs[0]["content"] if msgs[0]["role"] == "system" else ""

    def render_with(cut: int):
        def render(text: str) -> str:
            m = build_messages(task, style, text)
            if m[0]["role"] == "system":
                m[0] = {"role": "system", "content": system[:cut]}
            return tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
        return render

    lo, hi = 0, len(system)
    probe = "POS PURCHASE STARBUCKS 800-555-0199 SEATTLE WA"
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(tok.encode(render_with(mid)(probe), add_special_tokens=False)) <= target_tokens:
            lo = mid
        else:
            hi = mid - 1
    if lo == len(system):  # instruction too short: repeat it (still one shared prefix)
        system = (system + "\n") * (1 + target_tokens // max(1, len(tok.encode(system))))
        return make_render_fixed(tok, task, style, system, target_tokens)
    return render_with(lo)


def make_render_fixed(tok, task, style, system, target_tokens):
    def render(text: str) -> str:
        m = build_messages(task, style, text)
        m[0] = {"role": "system", "content": system}
        return tok.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
    return render


def build_model(name: str, tok):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

    arch, kw = SHAPES[name]
    cfg_cls, cls = (Qwen3Config, Qwen3ForCausalLM) if arch == "qwen3" else (LlamaConfig, LlamaForCausalLM)
    cfg = cfg_cls(max_position_embeddings=4096, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                  pad_token_id=tok.pad_token_id, **kw)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = cls(cfg).to(torch.bfloat16).eval()
    model.generation_config.pad_token_id = tok.pad_token_id
    return model


def matmul_rate() -> float:
    """Measured dense bf16 matmul FLOP/s (8192^3, random data, median of 20)."""
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(20):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        a @ b
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e) / 1000)
    return 2 * 8192 ** 3 / statistics.median(times)


def flops_per_token(model) -> tuple[float, float]:
    """(body FLOPs per token, LM-head FLOPs per token): 2 x weights touched (attention scores aside)."""
    body = sum(m.weight.numel() for n, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and not n.endswith("lm_head"))
    head = model.get_output_embeddings().weight.numel()
    return 2.0 * body, 2.0 * head


def time_generate(model, tok, render, texts, batch: int, new_tokens: int) -> dict:
    tok.padding_side = "left"
    lat, n_done = [], 0
    enc = [tok(render(t), add_special_tokens=False, return_tensors=None)["input_ids"] for t in texts]

    def run(chunk):
        width = max(len(e) for e in chunk)
        ids = torch.full((len(chunk), width), tok.pad_token_id, dtype=torch.long)
        att = torch.zeros_like(ids)
        for i, e in enumerate(chunk):
            ids[i, width - len(e):] = torch.tensor(e)
            att[i, width - len(e):] = 1
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        model.generate(input_ids=ids.cuda(), attention_mask=att.cuda(), do_sample=False,
                       max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=tok.pad_token_id)
        torch.cuda.synchronize()
        return time.perf_counter() - t0

    run(enc[:batch])  # warm-up
    t_all = 0.0
    for i in range(0, len(enc), batch):
        dt = run(enc[i:i + batch])
        lat.append(dt)
        t_all += dt
        n_done += len(enc[i:i + batch])
    return {"batch": batch, "n": n_done, "desc_per_s": n_done / t_all, "p50_latency_ms": 1000 * statistics.median(lat),
            "new_tokens": new_tokens, "prompt_tokens_mean": statistics.mean(len(e) for e in enc)}


def time_engine(model, tok, task, render, texts, batch: int, style: str, max_new: int) -> dict:
    eng = ExtractionEngine(model, tok, task, render, constrained=True, max_new_tokens=max_new, batch_size=batch,
                           answer_marker="### ANSWER" if style == "two-step" else None,
                           analysis_max_tokens=48 if style == "two-step" else None)
    eng.extract(texts[:batch])  # warm-up (prefix K/V, allocator, vocab tables)
    eng.stats = {k: 0 for k in eng.stats}
    lat = []
    results = []
    torch.cuda.synchronize()
    t_all = time.perf_counter()
    for i in range(0, len(texts), batch):
        t0 = time.perf_counter()
        results += eng.extract(texts[i:i + batch])
        torch.cuda.synchronize()
        lat.append(time.perf_counter() - t0)
    t_all = time.perf_counter() - t_all
    valid = sum(r.parsed is not None for r in results)
    substr = all(all((v in t) for vals in r.parsed.values() for v in (vals if isinstance(vals, list) else [vals]))
                 for r, t in zip(results, texts) if r.parsed)
    single = []
    for t in texts[:5]:
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        eng.extract([t])
        torch.cuda.synchronize()
        single.append(time.perf_counter() - t0)
    P = len(eng._shared_prefix())
    return {"batch": batch, "n": len(texts), "desc_per_s": len(texts) / t_all,
            "p50_latency_ms": 1000 * statistics.median(lat), "p50_single_ms": 1000 * statistics.median(single),
            "new_tokens_mean": statistics.mean(r.n_new_tokens for r in results),
            "forwards_per_batch": eng.stats["forwards"] / len(lat), "slots_per_batch": eng.stats["slots"] / len(lat),
            "fallback_rate": eng.stats["fallbacks"] / max(1, sum(r.n_new_tokens for r in results)),
            "valid_rate": valid / len(results), "all_values_substrings": substr, "prefix_tokens": P,
            "suffix_tokens_mean": statistics.mean(len(tok.encode(render(t), add_special_tokens=False)) - P
                                                   for t in texts[:64]),
            "example": results[0].raw[:300]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="qwen3-0.6b,llama-3.2-1b,qwen3-4b")
    ap.add_argument("--engine-batch", type=int, default=512)
    ap.add_argument("--engine-n", type=int, default=2048)
    ap.add_argument("--big-batch", type=int, default=256)
    ap.add_argument("--new-tokens", type=int, default=80)
    ap.add_argument("--prompt-tokens", type=int, default=800)
    ap.add_argument("--two-step", action="store_true", help="also time the two-step prompt (smallest model)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU")
    out_dir = Path(os.environ.get("OUT") or Path(__file__).parent / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = build_tiny_tokenizer(Path(tempfile.mkdtemp()) / "tok", vocab_size=2048)
    task = load_task("merchant")
    rate = matmul_rate()
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "matmul_tflops": rate / 1e12, "models": {}}
    print(f"device {report['device']}, bf16 matmul {rate / 1e12:.0f} TFLOP/s", flush=True)
    texts = synth_texts(args.engine_n)
    for name in args.models.split(","):
        model = build_model(name, tok)
        render = make_render(tok, task, "json-only", args.prompt_tokens)
        body, head = flops_per_token(model)
        row: dict = {"params_body": body / 2, "params_head": head / 2}
        row["a_generate_b4"] = time_generate(model, tok, render, texts[:12], 4, args.new_tokens)
        print(name, "a", row["a_generate_b4"], flush=True)
        row["b_generate_big"] = time_generate(model, tok, render, texts[:2 * args.big_batch], args.big_batch,
                                              args.new_tokens)
        print(name, "b", row["b_generate_big"], flush=True)
        row["c_engine"] = time_engine(model, tok, task, render, texts, args.engine_batch, "json-only", 160)
        print(name, "c", {k: v for k, v in row["c_engine"].items() if k != "example"}, flush=True)
        if args.two_step and name == args.models.split(",")[0]:
            r2 = make_render(tok, task, "two-step", args.prompt_tokens + 100)
            row["c_engine_two_step"] = time_engine(model, tok, task, r2, texts[:args.engine_n // 2],
                                                   args.engine_batch, "two-step", 160)
            print(name, "c2", {k: v for k, v in row["c_engine_two_step"].items() if k != "example"}, flush=True)
        c = row["c_engine"]
        prompt = row["a_generate_b4"]["prompt_tokens_mean"]
        out_tok = c["new_tokens_mean"]
        f_full = body * (prompt + out_tok) + head * (1 + out_tok)
        f_cached = body * (c["suffix_tokens_mean"] + out_tok) + head * (1 + out_tok)
        row["floor_desc_per_s_no_prefix_cache"] = rate / f_full
        row["floor_desc_per_s_prefix_cached"] = rate / f_cached
        row["engine_vs_a"] = c["desc_per_s"] / row["a_generate_b4"]["desc_per_s"]
        row["engine_vs_b"] = c["desc_per_s"] / row["b_generate_big"]["desc_per_s"]
        row["engine_of_floor"] = c["desc_per_s"] / row["floor_desc_per_s_prefix_cached"]
        report["models"][name] = row
        del model
        torch.cuda.empty_cache()
        (out_dir / "generation_throughput.json").write_text(json.dumps(report, indent=2))
    print("\n| model | (a) generate b4 desc/s | p50 ms | (b) generate b%d desc/s | p50 ms | (c) engine desc/s | "
          "p50 ms (batch) | tok/desc | c/a | c/b | floor cached | floor uncached | c/floor |" % args.big_batch)
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in report["models"].items():
        a, b, c = r["a_generate_b4"], r["b_generate_big"], r["c_engine"]
        print(f"| {name} | {a['desc_per_s']:.2f} | {a['p50_latency_ms']:.0f} | {b['desc_per_s']:.1f} | "
              f"{b['p50_latency_ms']:.0f} | {c['desc_per_s']:.0f} | {c['p50_latency_ms']:.0f} | "
              f"{c['new_tokens_mean']:.1f} | {r['engine_vs_a']:.0f}x | {r['engine_vs_b']:.1f}x | "
              f"{r['floor_desc_per_s_prefix_cached']:.0f} | {r['floor_desc_per_s_no_prefix_cache']:.0f} | "
              f"{100 * r['engine_of_floor']:.1f}% |")


if __name__ == "__main__":
    main()
