"""A real trained model on CPU: the engine (constrained, device path) vs HF ``generate`` on generated records.

Loads the SmolLM2-135M-Instruct LoRA run that engineer ``llm`` left in
``.devcarry/shared-artifacts/smollm2-best`` (issue 12; ``minimal`` prompt, best checkpoint) on the base
weights converted by our loader, fp32 on CPU. Checks, on generated merchant descriptors: how often
``generate``'s output is valid, whether the constrained engine's raw output equals ``generate``'s
wherever ``generate``'s is valid (the engine's guarantee), exact-match accuracy of both, and
descriptors/s of both (CPU shared by several jobs: read the ratio).

Run: ``PYTHONPATH=src python benchmarks/engine_trained_check.py [RUN_DIR]``; writes
``benchmarks/results/engine_trained_check.json``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

RUN = Path("/work/main/.devcarry/shared-artifacts/smollm2-best")
BASE = Path.home() / ".cache/finextract/bases/SmolLM2-135M-Instruct.Q4_1-b179c9523d0e6a0f-v1"


def main() -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from finextract.backends.causal_lm.extractor import CausalLMExtractor
    from finextract.prompts import parse_output
    from finextract.synth import generate
    from finextract.tasks import load_task

    run = Path(sys.argv[1]) if len(sys.argv) > 1 else RUN
    torch.set_num_threads(2)
    task = load_task("merchant")
    best = json.loads((run / "best.json").read_text())
    ckpt = run / "checkpoints" / Path(best.get("checkpoint", best.get("path", "step-400"))).name
    tok = AutoTokenizer.from_pretrained(run / "tokenizer")
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(BASE), str(ckpt)).eval()
    end = tok.convert_tokens_to_ids("<|im_end|>")
    recs = generate(24, seed=424242)
    texts = [r.text for r in recs]
    out = {"run": str(run), "checkpoint": ckpt.name, "records": len(recs), "device": "cpu (shared)"}
    for name in ("generate", "engine"):
        ext = CausalLMExtractor(model, tok, task, "minimal", end_token_id=end, engine=name, constrained=True,
                                max_new_tokens=160, batch_size=8)
        t0 = time.perf_counter()
        preds = ext.predict(texts)
        dt = time.perf_counter() - t0
        out[name] = {"desc_per_s": len(texts) / dt, "valid": sum(p is not None for p in preds) / len(preds),
                     "exact": sum(p == r.values for p, r in zip(preds, recs)) / len(recs), "raw": ext.last_raw}
        print(name, {k: v for k, v in out[name].items() if k != "raw"}, flush=True)
    g, e = out["generate"]["raw"], out["engine"]["raw"]
    valid_g = [i for i, r in enumerate(g) if parse_output(task, r) is not None]
    out["generate_valid_idx"] = len(valid_g)
    out["engine_equals_generate_where_valid"] = sum(e[i].strip() == g[i].strip() for i in valid_g)
    out["engine_vs_generate_speed"] = out["engine"]["desc_per_s"] / out["generate"]["desc_per_s"]
    print({k: v for k, v in out.items() if k not in ("generate", "engine")})
    dest = Path(os.environ.get("OUT") or Path(__file__).parent / "results")
    (dest / "engine_trained_check.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
