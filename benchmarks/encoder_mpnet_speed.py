"""CPU speed of all-mpnet-base-v2 (110M) beside MiniLM-L6 (22M), same featurizer and decoder.

    python benchmarks/encoder_mpnet_speed.py --minilm RUN_DIR --mpnet MODEL_DIR --texts pilot_memos.jsonl

Speed does not depend on the weights' values, so the mpnet tagger gets a fresh (untrained)
head; both get case + lexical features and a pointer head, as the merchant default has.
Reports batched descriptors/s (batch 64, sorted by length) and single-text p50 latency,
measured in one process, alternating the two models, on ``--threads`` threads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minilm", required=True, help="a trained merchant run (MiniLM)")
    ap.add_argument("--mpnet", required=True, help="assembled all-mpnet-base-v2 folder")
    ap.add_argument("--texts", required=True)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--single", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "encoder_mpnet_speed.json")
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForTokenClassification

    from finextract.backends.encoder import load
    from finextract.backends.encoder.model import (EncoderExtractor, count_parameters, load_tokenizer, make_tagger,
                                                   quiet_transformers, torch_forward)
    from finextract.backends.encoder.tagging import label_names

    torch.set_num_threads(args.threads)
    texts = [json.loads(line)["text"] for line in Path(args.texts).read_text(encoding="utf-8").splitlines()]
    texts = (texts * (args.n // len(texts) + 1))[:args.n]
    mini = load(args.minilm)
    quiet_transformers()
    task = mini.task
    hf = AutoModelForTokenClassification.from_pretrained(args.mpnet, num_labels=len(label_names(task)))
    tagger = make_tagger(hf, True, True, len(task.key_names)).eval()
    mp = EncoderExtractor(torch_forward(tagger), load_tokenizer(args.mpnet), task, mini.max_length, 64,
                          case_features=True, lexical_features=True, decode_options=mini.decode_options)
    models = {"MiniLM-L6 (22M)": mini, "all-mpnet-base-v2 (110M)": mp}
    params = {"MiniLM-L6 (22M)": mini.describe().get("parameters"), "all-mpnet-base-v2 (110M)": count_parameters(tagger)}
    for m in models.values():
        m.predict(texts[:64])  # warm-up
    batched = {k: [] for k in models}
    single = {k: [] for k in models}
    for _ in range(2):  # alternate, so load changes hit both
        for name, m in models.items():
            t = time.perf_counter()
            m.predict(texts)
            batched[name].append(len(texts) / (time.perf_counter() - t))
    for text in texts[:args.single]:
        for name, m in models.items():
            t = time.perf_counter()
            m.predict([text])
            single[name].append((time.perf_counter() - t) * 1000)
    rows = {name: {"parameters": params[name], "desc_per_s": round(max(batched[name]), 1),
                   "p50_ms_one_text": round(statistics.median(single[name]), 2)} for name in models}
    a, b = rows["MiniLM-L6 (22M)"], rows["all-mpnet-base-v2 (110M)"]
    out = {"threads": args.threads, "n_texts": len(texts), "rows": rows,
           "mpnet_over_minilm": {"throughput": round(b["desc_per_s"] / a["desc_per_s"], 3),
                                 "p50_latency": round(b["p50_ms_one_text"] / a["p50_ms_one_text"], 3)},
           "note": "shared 2-core machine (load from other engineers' jobs); ratios from one run"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
