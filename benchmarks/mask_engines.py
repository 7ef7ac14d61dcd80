"""Host mask time per token (MaskBench form): our substring constraint vs llguidance vs xgrammar, on CPU.

For each generated descriptor, the gold answer (``compact_json``) is tokenized and walked
token by token; at every step each engine computes the set of allowed next tokens, and
we time that host work:

* ours, per-sequence (the engine's path for lists and two-step): ``TextGrammar.allowed``;
* ours, device path: the once-per-text ``TextTransitions`` build (the only host work;
  each step is then a few tensor ops for the whole batch, timed here on CPU at batch 1);
* llguidance 1.9.1: Lark grammar with ``%regex {"substring_chunks": ...}``;
  ``LLMatcher.compute_bitmask`` per step;
* xgrammar 0.2.8: EBNF with ``Substring(...)``; ``fill_next_token_bitmask`` per step.

Per-text setup (grammar compile / table build) is reported apart from per-step time, and
the allowed sets of the libraries are compared with ours at every step (same constraint).
Run: ``PYTHONPATH=src python benchmarks/mask_engines.py`` (writes
``benchmarks/results/mask_engines.json``). The CPU here is shared: read ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from finextract.backends.causal_lm.constrained import JsonShape, SkeletonTables, TextGrammar, TextTransitions, TokenVocab
from finextract.backends.causal_lm.grammar_export import ebnf_for_text, lark_for_text
from finextract.prompts import compact_json
from finextract.tasks import load_task

SMOLLM2 = Path.home() / ".cache/finextract/bases/SmolLM2-135M-Instruct.Q4_1-b179c9523d0e6a0f-v1"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else float("nan")


def summary(xs: list[float], unit: float = 1e6) -> dict:
    return {"p50": unit * pct(xs, 0.5), "p99": unit * pct(xs, 0.99), "mean": unit * statistics.mean(xs) if xs else None,
            "n": len(xs)}


def device_step_ops(tt: TextTransitions, S: set[int], key: int, logits: torch.Tensor) -> None:
    """The engine's per-step constraint ops for one row (same ops as the batched device step)."""
    tok, frm, to, tag, nk = (torch.from_numpy(x)[None] for x in (tt.tok, tt.frm, tt.to, tt.tag, tt.nk))
    spos = torch.zeros(1, tt.n_positions + 1, dtype=torch.bool)
    spos[0, list(S)] = True
    k = torch.tensor([key])
    on = spos.gather(1, frm) & ((tag < 0) | (tag == k[:, None]))
    sc = torch.where(on, logits.gather(1, tok), torch.tensor(float("-inf")))
    _, j = sc.max(1)
    ch = tok.gather(1, j[:, None])
    fire = (on & (tok == ch)).to(torch.int32)
    torch.zeros(spos.shape, dtype=torch.int32).scatter_add_(1, to, fire)


def bench(tok, name: str, records: list[tuple[str, dict]], task) -> dict:
    import llguidance
    import llguidance.hf
    import xgrammar as xgr

    shape = JsonShape(tuple(task.key_names), task.multi_valued)
    t0 = time.perf_counter()
    vocab = TokenVocab.for_tokenizer(tok)
    tables = SkeletonTables.get(shape, vocab)
    ours_init = time.perf_counter() - t0
    t0 = time.perf_counter()
    lltok = llguidance.hf.from_tokenizer(tok)
    llg_init = time.perf_counter() - t0
    t0 = time.perf_counter()
    info = xgr.TokenizerInfo.from_huggingface(tok, vocab_size=len(tok))
    compiler = xgr.GrammarCompiler(info, max_threads=1, cache_enabled=False)
    xgr_init = time.perf_counter() - t0
    V = len(tok)
    res = {k: [] for k in ("seq_allowed", "dev_ops", "llg_mask", "llg_consume", "xgr_mask", "xgr_consume")}
    setup = {k: [] for k in ("ours_tables", "llg_grammar", "xgr_compile")}
    agree = {"llg": 0, "xgr": 0, "steps": 0}
    bitmask = xgr.allocate_token_bitmask(1, info.vocab_size)
    logits = torch.randn(1, V)
    for text, fields in records:
        answer = compact_json(task, fields)
        ids = tok.encode(answer, add_special_tokens=False)
        t0 = time.perf_counter()
        tt = TextTransitions(text, tables)
        setup["ours_tables"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        m = llguidance.LLMatcher(lltok, llguidance.LLMatcher.grammar_from_lark(lark_for_text(task, text)))
        setup["llg_grammar"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        cg = compiler.compile_grammar(ebnf_for_text(task, text))
        xm = xgr.GrammarMatcher(cg)
        setup["xgr_compile"].append(time.perf_counter() - t0)
        g = TextGrammar(text, shape, vocab)
        st, S, key = g.initial(), {tables.initial}, 0
        for t in ids:
            t0 = time.perf_counter()
            allowed = g.allowed(st)
            res["seq_allowed"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            device_step_ops(tt, S, key, logits)
            res["dev_ops"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            mask = m.compute_bitmask()
            res["llg_mask"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            xm.fill_next_token_bitmask(bitmask)
            res["xgr_mask"].append(time.perf_counter() - t0)
            ours = set(allowed)
            bits = np.unpackbits(np.frombuffer(mask, dtype=np.uint8), bitorder="little")[:V]
            llg_set = set(np.nonzero(bits)[0].tolist())
            xbits = np.unpackbits(bitmask[0].numpy().view(np.uint8), bitorder="little")[:V]
            xgr_set = set(np.nonzero(xbits)[0].tolist())
            agree["llg"] += llg_set == ours
            agree["xgr"] += xgr_set == ours
            agree["steps"] += 1
            assert t in ours and t in llg_set and t in xgr_set, (text, answer, t)
            t0 = time.perf_counter()
            m.consume_token(t)
            res["llg_consume"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            xm.accept_token(t)
            res["xgr_consume"].append(time.perf_counter() - t0)
            st = g.try_token(st, t)
            S, key = tt.step(S, key, t)
        assert st.mode == "done" and m.is_accepting()
    tokens = agree["steps"]
    per_tok_tables = statistics.mean(setup["ours_tables"]) * len(records) / tokens
    return {"tokenizer": name, "vocab": V, "records": len(records), "tokens": tokens,
            "init_s": {"ours_tables": ours_init, "llguidance_tokenizer": llg_init, "xgrammar_tokenizer": xgr_init},
            "setup_per_text_ms": {k: summary(v, 1e3) for k, v in setup.items()},
            "mask_per_token_us": {"ours_per_sequence_allowed": summary(res["seq_allowed"]),
                                  "ours_device_ops_cpu_b1": summary(res["dev_ops"]),
                                  "ours_device_path_host_per_token_mean": 1e6 * per_tok_tables,
                                  "llguidance_compute_bitmask": summary(res["llg_mask"]),
                                  "xgrammar_fill_bitmask": summary(res["xgr_mask"])},
            "consume_per_token_us": {"llguidance": summary(res["llg_consume"]), "xgrammar": summary(res["xgr_consume"])},
            "same_allowed_set_as_ours": {"llguidance": agree["llg"] / tokens, "xgrammar": agree["xgr"] / tokens}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=120, help="generated records per tokenizer")
    args = ap.parse_args()
    from transformers import AutoTokenizer

    from finextract.synth import generate
    from finextract.testing.tiny import build_tiny_tokenizer

    torch.set_num_threads(1)
    task = load_task("merchant")
    records = [(r.text, r.values) for r in generate(args.n, seed=11)]
    toks = [("tiny-bpe-2048", build_tiny_tokenizer(Path(tempfile.mkdtemp()) / "t", vocab_size=2048))]
    if SMOLLM2.exists():
        toks.append(("smollm2-135m (49k)", AutoTokenizer.from_pretrained(SMOLLM2)))
    report = {"cpu": os.cpu_count(), "shared_cpu": True, "torch_threads": 1, "results": []}
    for name, tok in toks:
        r = bench(tok, name, records, task)
        report["results"].append(r)
        print(json.dumps(r, indent=1), flush=True)
    out = Path(os.environ.get("OUT") or Path(__file__).parent / "results")
    out.mkdir(parents=True, exist_ok=True)
    (out / "mask_engines.json").write_text(json.dumps(report, indent=2))
    lines = ["| tokenizer | ours per-seq p50/p99 us | ours device path: host us/token (mean) | "
             "ours tables ms/text p50 | llguidance mask p50/p99 us | llg grammar ms/text | "
             "xgrammar mask p50/p99 us | xgr compile ms/text | same set llg/xgr |", "|" + "---|" * 9]
    for r in report["results"]:
        m, s = r["mask_per_token_us"], r["setup_per_text_ms"]
        lines.append(f"| {r['tokenizer']} | {m['ours_per_sequence_allowed']['p50']:.0f}/{m['ours_per_sequence_allowed']['p99']:.0f} | "
                     f"{m['ours_device_path_host_per_token_mean']:.0f} | {s['ours_tables']['p50']:.2f} | "
                     f"{m['llguidance_compute_bitmask']['p50']:.0f}/{m['llguidance_compute_bitmask']['p99']:.0f} | "
                     f"{s['llg_grammar']['p50']:.2f} | {m['xgrammar_fill_bitmask']['p50']:.0f}/{m['xgrammar_fill_bitmask']['p99']:.0f} | "
                     f"{s['xgr_compile']['p50']:.2f} | {r['same_allowed_set_as_ours']['llguidance']:.3f}/"
                     f"{r['same_allowed_set_as_ours']['xgrammar']:.3f} |")
    table = "\n".join(lines)
    print(table)
    (out / "mask_engines.md").write_text("# Host mask time per token, CPU (shared 2-core machine)\n\n" + table + "\n")


if __name__ == "__main__":
    main()
