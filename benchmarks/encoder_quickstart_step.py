"""CPU seconds per training step: the old quickstart recipe vs the issue-11 one, measured in one run.

Old: max_length 64, random batches, case features only. New: max_length 48, length-bucketed batches,
case + lexical features + pointer head. Same generated records, batch 32, 2 threads, steps alternated
so machine load hits both alike. Prints and writes the median seconds per step and their ratio.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--train", required=True)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "encoder_quickstart_step.json")
    args = ap.parse_args()

    import torch

    from finextract.backends.encoder import EncoderRunConfig
    from finextract.backends.encoder.batching import bucket_by_length
    from finextract.backends.encoder.model import build_model, load_tokenizer, make_tagger
    from finextract.backends.encoder.train import collate, encode_records
    from finextract.records import read_records

    torch.set_num_threads(args.threads)
    recipes = {"old (len 64, random, case)": dict(max_length=64, lex=False, pointer=False, buckets=False),
               "new (len 48, buckets, case+lex+pointer)": dict(max_length=48, lex=True, pointer=True, buckets=True)}
    setups = {}
    for name, r in recipes.items():
        cfg = EncoderRunConfig.model_validate({"backend": "encoder", "task": "merchant", "output_dir": "/tmp/x",
                                               "data": {"train": args.train},
                                               "model": {"max_length": r["max_length"], "lexical_features": r["lex"],
                                                         "pointer_head": r["pointer"]}})
        task = cfg.load_task()
        tok = load_tokenizer(cfg.model.name_or_path)
        recs = read_records(args.train, task)
        feats, _ = encode_records(recs, tok, task, r["max_length"], True, r["lex"])
        perm = list(range(len(feats)))
        random.Random(0).shuffle(perm)
        if r["buckets"]:
            perm = bucket_by_length(perm, [len(f["input_ids"]) for f in feats], 32, seed=0)
        model = make_tagger(build_model(cfg, task), True, r["lex"], len(task.key_names) if r["pointer"] else 0)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        setups[name] = (model, opt, feats, perm, tok.pad_token_id or 0)
    times = {n: [] for n in recipes}
    pads = {n: [] for n in recipes}
    for step in range(args.steps + 1):
        for name, (model, opt, feats, perm, pad) in setups.items():
            batch = collate([feats[i] for i in perm[step * 32:(step + 1) * 32]], pad)
            t = time.perf_counter()
            model(**batch).loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if step:  # step 0 warms up
                times[name].append(time.perf_counter() - t)
                pads[name].append(int(batch["input_ids"].shape[1]))
    rows = {n: {"median_s_per_step": round(statistics.median(v), 3), "median_padded_len": statistics.median(pads[n])}
            for n, v in times.items()}
    old, new = (rows[n]["median_s_per_step"] for n in recipes)
    out = {"threads": args.threads, "steps": args.steps, "rows": rows, "new_over_old": round(new / old, 3),
           "note": "shared 2-core machine under load; the ratio is the figure to read"}
    args.out.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
