"""Generation throughput: HF ``generate`` vs the ExtractionEngine, batch 4 and large, on one GPU.

One run reports, per model: descriptors/s and p50/p99 latency of ``generate`` and of the
engine at batch 4 and at a large batch (256; the engine also at 512); the engine's host
constraint time (per text and per generated token, p50/p99: the only host-side mask work,
done once per text and overlapped with the device), the device step split into the model
forward and the constraint ops (a separate, synchronised pass), and the FLOP floor.

Models: random-init shapes (Qwen3-0.6B, SmolLM2-135M; configs written by hand, no hub) with
the prompts module's ``json-only`` prompt cut to ~800 tokens (the study's 724-924), and
optionally a trained model folder (``--trained DIR``: a merged HF model + tokenizer +
``texts.json`` with its prompt style and texts). A random model emits garbage, so
``generate`` runs exactly ``--new-tokens``; the engine's output is valid constrained JSON
(values are substrings of the input) and its tokens per descriptor are reported.

Run (GPU machine): ``PYTHONPATH=src python3 benchmarks/generation_throughput.py``.
Writes ``generation_throughput.json`` to ``$OUT`` (or ``benchmarks/results/``).
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
from finextract.prompts import build_messages, render_prompt
from finextract.tasks import load_task
from finextract.testing.tiny import build_tiny_tokenizer

STUDY_GEMMA_270M_S_PER_DESC_B4 = 0.24  # the study's measured latency per descriptor, batch 4

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
    "tiny-smoke": ("llama", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                 head_dim=16, intermediate_size=128, vocab_size=2048, tie_word_embeddings=True)),
    "smollm2-135m": ("llama", dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9,
                                   num_key_value_heads=3, head_dim=64, intermediate_size=1536,
                                   vocab_size=49152, tie_word_embeddings=True, rope_theta=1e5)),
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
    with torch.device(DEVICE):
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


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


DEVICE = "cuda"


def _sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def time_generate(model, tok, render, texts, batch: int, new_tokens: int) -> dict:
    tok.padding_side = "left"
    enc = [tok(render(t), add_special_tokens=False)["input_ids"] for t in texts]

    def run(chunk):
        width = max(len(e) for e in chunk)
        ids = torch.full((len(chunk), width), tok.pad_token_id, dtype=torch.long)
        att = torch.zeros_like(ids)
        for i, e in enumerate(chunk):
            ids[i, width - len(e):] = torch.tensor(e)
            att[i, width - len(e):] = 1
        _sync()
        t0 = time.perf_counter()
        model.generate(input_ids=ids.to(DEVICE), attention_mask=att.to(DEVICE), do_sample=False,
                       max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=tok.pad_token_id)
        _sync()
        return time.perf_counter() - t0

    run(enc[:min(batch, 4)])  # warm-up
    lat = [run(enc[i:i + batch]) for i in range(0, len(enc), batch)]
    return {"batch": batch, "n": len(enc), "desc_per_s": len(enc) / sum(lat),
            "p50_latency_ms": 1000 * statistics.median(lat), "p99_latency_ms": 1000 * _pct(lat, 0.99),
            "new_tokens": new_tokens, "prompt_tokens_mean": statistics.mean(len(e) for e in enc)}


def _values_ok(results, texts) -> bool:
    return all(all(v in t for vals in r.parsed.values() for v in (vals if isinstance(vals, list) else [vals]))
               for r, t in zip(results, texts) if r.parsed)


PREP_WORKERS = 0


def time_engine(model, tok, task, render, texts, batch: int, max_new: int, warm: list[str]) -> dict:
    """Calls of ``batch`` texts each; latency = one call's wall time (that batch's descriptors)."""
    eng = ExtractionEngine(model, tok, task, render, constrained=True, max_new_tokens=max_new, batch_size=batch,
                           prep_workers=PREP_WORKERS, cache_texts=0)
    eng.extract(warm[:batch])  # warm-up: vocabulary tables, prefix K/V, allocator
    eng.reset_stats()
    lat, results = [], []
    _sync()
    t_all = time.perf_counter()
    for i in range(0, len(texts), batch):
        t0 = time.perf_counter()
        results += eng.extract(texts[i:i + batch])
        _sync()
        lat.append(time.perf_counter() - t0)
    t_all = time.perf_counter() - t_all
    toks = [r.n_new_tokens for r in results]
    st = eng.stats
    prep = list(eng.prep_times.values())
    per_tok = [eng.prep_times[t] / max(1, n) for t, n in zip(texts, toks) if t in eng.prep_times]
    return {"batch": batch, "n": len(texts), "desc_per_s": len(texts) / t_all,
            "s_per_desc": t_all / len(texts),
            "p50_latency_ms": 1000 * statistics.median(lat), "p99_latency_ms": 1000 * _pct(lat, 0.99),
            "new_tokens_mean": statistics.mean(toks), "steps": st["steps"], "forwards": st["forwards"],
            "rows_stepped_per_step": st["rows_stepped"] / max(1, st["steps"]),
            "step_wall_ms": 1000 * t_all / max(1, st["forwards"]),
            "host_prep_ms_per_text_p50": 1000 * _pct(prep, 0.5) if prep else None,
            "host_prep_ms_per_text_p99": 1000 * _pct(prep, 0.99) if prep else None,
            "host_mask_us_per_token_p50": 1e6 * _pct(per_tok, 0.5) if per_tok else None,
            "host_mask_us_per_token_p99": 1e6 * _pct(per_tok, 0.99) if per_tok else None,
            "host_prep_share_of_wall": st["t_prep"] / t_all, "prep_workers": PREP_WORKERS,
            "prep_wall_share": st["t_prep_wall"] / t_all,
            "valid_rate": sum(r.parsed is not None for r in results) / len(results),
            "all_values_substrings": _values_ok(results, texts), "prefix_tokens": len(eng._shared_prefix()),
            "prefix_computes": st["prefix_computes"],
            "suffix_tokens_mean": statistics.mean(len(tok.encode(render(t), add_special_tokens=False))
                                                   - len(eng._shared_prefix()) for t in texts[:64]),
            "example": results[0].raw[:300], "_results": results}


def profile_engine(model, tok, task, render, texts, batch: int, max_new: int) -> dict:
    """Synchronised pass: device time of the forward vs the constraint ops, per decode step."""
    eng = ExtractionEngine(model, tok, task, render, constrained=True, max_new_tokens=max_new, batch_size=batch,
                           profile=True, cache_texts=0)
    eng.extract(texts[:batch])
    eng.reset_stats()
    eng.extract(texts[batch:2 * batch])
    st = eng.stats
    steps = max(1, st["steps"])
    fwd = st["t_forward"] / max(1, st["forwards"])
    mask = st["t_mask"] / steps
    host = st["t_prep"] / steps
    return {"batch": batch, "forward_ms_per_step": 1000 * fwd, "constraint_ops_ms_per_step": 1000 * mask,
            "host_prep_ms_per_step": 1000 * host, "steps": st["steps"],
            "constraint_ops_share_of_step": mask / (fwd + mask),
            "host_mask_share_of_step": host / (fwd + mask)}


def bench_model(name, model, tok, task, render, texts, args, rate, body, head, gen_texts=None) -> dict:
    gen_texts = gen_texts or texts
    row: dict = {"params_body": body / 2, "params_head": head / 2}
    row["generate_b4"] = time_generate(model, tok, render, gen_texts[:args.gen_b4_n], 4, args.new_tokens)
    print(name, "generate b4", row["generate_b4"], flush=True)
    row["generate_big"] = time_generate(model, tok, render, gen_texts[:args.big_batch], args.big_batch,
                                        args.new_tokens)
    print(name, "generate big", row["generate_big"], flush=True)
    for b, n in ((4, args.engine_b4_n), (args.big_batch, args.engine_n), (2 * args.big_batch, args.engine_n)):
        r = time_engine(model, tok, task, render, texts[:n], b, args.max_new, texts[-b:])
        results = r.pop("_results")
        row[f"engine_b{b}"] = r
        print(name, f"engine b{b}", {k: v for k, v in r.items() if k != "example"}, flush=True)
    row["profile_big"] = profile_engine(model, tok, task, render, texts, args.big_batch, args.max_new)
    print(name, "profile", row["profile_big"], flush=True)
    big = row[f"engine_b{2 * args.big_batch}"]
    out_tok = big["new_tokens_mean"]
    prompt = row["generate_b4"]["prompt_tokens_mean"]
    f_full = body * (prompt + out_tok) + head * (1 + out_tok)
    f_cached = body * (big["suffix_tokens_mean"] + out_tok) + head * (1 + out_tok)
    row["floor_desc_per_s_no_prefix_cache"] = rate / f_full
    row["floor_desc_per_s_prefix_cached"] = rate / f_cached
    row["engine_b4_vs_generate_b4"] = row["engine_b4"]["desc_per_s"] / row["generate_b4"]["desc_per_s"]
    best = max(row[f"engine_b{args.big_batch}"]["desc_per_s"], big["desc_per_s"])
    row["engine_best_desc_per_s"] = best
    row["engine_best_vs_generate_b4"] = best / row["generate_b4"]["desc_per_s"]
    row["engine_best_vs_generate_big"] = best / row["generate_big"]["desc_per_s"]
    row["engine_of_floor"] = best / row["floor_desc_per_s_prefix_cached"]
    row["study_ratio_b4"] = STUDY_GEMMA_270M_S_PER_DESC_B4 / row["engine_b4"]["s_per_desc"]
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="qwen3-0.6b,smollm2-135m")
    ap.add_argument("--engine-n", type=int, default=2048, help="texts for the large-batch engine runs")
    ap.add_argument("--engine-b4-n", type=int, default=32)
    ap.add_argument("--gen-b4-n", type=int, default=8)
    ap.add_argument("--big-batch", type=int, default=256)
    ap.add_argument("--new-tokens", type=int, default=80)
    ap.add_argument("--max-new", type=int, default=160)
    ap.add_argument("--prompt-tokens", type=int, default=800)
    ap.add_argument("--trained", default=None, help="folder: merged HF model + tokenizer + texts.json")
    ap.add_argument("--prep-workers", type=int, default=0, help="worker processes for per-text tables")
    ap.add_argument("--cpu-smoke", action="store_true", help="run on CPU (code-path check, not a measurement)")
    args = ap.parse_args()
    global DEVICE, PREP_WORKERS
    PREP_WORKERS = args.prep_workers
    if args.cpu_smoke:
        DEVICE = "cpu"
    elif not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU (or --cpu-smoke)")
    out_dir = Path(os.environ.get("OUT") or Path(__file__).parent / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = build_tiny_tokenizer(Path(tempfile.mkdtemp()) / "tok", vocab_size=2048)
    task = load_task("merchant")
    rate = matmul_rate() if DEVICE == "cuda" else 1e11
    report = {"device": torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu (smoke)", "torch": torch.__version__,
              "matmul_tflops": rate / 1e12, "args": vars(args), "models": {}}
    print(f"device {report['device']}, bf16 matmul {rate / 1e12:.0f} TFLOP/s", flush=True)
    texts = synth_texts(args.engine_n + 2 * args.big_batch)
    for name in [m for m in args.models.split(",") if m]:
        model = build_model(name, tok)
        render = make_render(tok, task, "json-only", args.prompt_tokens)
        body, head = flops_per_token(model)
        report["models"][name] = bench_model(name, model, tok, task, render, texts, args, rate, body, head)
        del model
        torch.cuda.empty_cache()
        (out_dir / "generation_throughput.json").write_text(json.dumps(report, indent=2))
    if args.trained:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        d = Path(args.trained)
        meta = json.loads((d / "texts.json").read_text())
        ttok = AutoTokenizer.from_pretrained(d)
        model = AutoModelForCausalLM.from_pretrained(
            d, dtype=torch.bfloat16 if DEVICE == "cuda" else torch.float32).to(DEVICE).eval()
        style = meta["style"]

        def trender(text: str) -> str:
            return render_prompt(ttok, task, style, text)

        reps = -(-(args.engine_n + 2 * args.big_batch) // len(meta["texts"]))
        ttexts = (meta["texts"] * reps)[:args.engine_n + 2 * args.big_batch]
        body, head = flops_per_token(model)
        row = bench_model("trained", model, ttok, task, trender, ttexts, args, rate, body, head)
        eng = ExtractionEngine(model, ttok, task, trender, max_new_tokens=args.max_new, batch_size=64, cache_texts=0)
        got = eng.extract(meta["texts"])
        row["trained_exact_match"] = sum(r.parsed == g for r, g in zip(got, meta["gold"])) / len(meta["gold"])
        row["prompt_style"] = style
        report["models"]["trained:" + d.name] = row
        (out_dir / "generation_throughput.json").write_text(json.dumps(report, indent=2))
    B, B2 = args.big_batch, 2 * args.big_batch
    lines = [f"| model | generate b4 desc/s | p50/p99 ms | generate b{B} desc/s | engine b4 desc/s | p50/p99 ms | "
             f"engine b{B} | engine b{B2} | tok/desc | best/gen-b4 | best/gen-b{B} | fwd ms/step b{B} | "
             f"constraint ms/step | host mask us/tok p50/p99 | host share of step | floor cached | of floor | "
             f"study/ours b4 |", "|" + "---|" * 18]
    for name, r in report["models"].items():
        g4, gb, e4, eb, e2, pf = (r["generate_b4"], r["generate_big"], r["engine_b4"], r[f"engine_b{B}"],
                                  r[f"engine_b{B2}"], r["profile_big"])
        lines.append(
            f"| {name} | {g4['desc_per_s']:.2f} | {g4['p50_latency_ms']:.0f}/{g4['p99_latency_ms']:.0f} | "
            f"{gb['desc_per_s']:.1f} | {e4['desc_per_s']:.1f} | {e4['p50_latency_ms']:.0f}/{e4['p99_latency_ms']:.0f} | "
            f"{eb['desc_per_s']:.0f} | {e2['desc_per_s']:.0f} | {e2['new_tokens_mean']:.1f} | "
            f"{r['engine_best_vs_generate_b4']:.0f}x | {r['engine_best_vs_generate_big']:.1f}x | "
            f"{pf['forward_ms_per_step']:.2f} | {pf['constraint_ops_ms_per_step']:.2f} | "
            f"{e2['host_mask_us_per_token_p50']:.1f}/{e2['host_mask_us_per_token_p99']:.1f} | "
            f"{100 * pf['host_mask_share_of_step']:.1f}% | {r['floor_desc_per_s_prefix_cached']:.0f} | "
            f"{100 * r['engine_of_floor']:.1f}% | {r['study_ratio_b4']:.0f}x |")
    table = "\n".join(lines)
    print("\n" + table)
    (out_dir / "generation_throughput.md").write_text(
        f"# Generation throughput ({report['device']}, bf16 matmul {rate / 1e12:.0f} TFLOP/s)\n\n{table}\n")


if __name__ == "__main__":
    main()
