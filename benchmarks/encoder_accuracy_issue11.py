"""Issue 11 accuracy benchmark: span decoders x lexical features x encoders, merchant and FIRE.

One command trains every variant (in parallel processes when ``--parallel``; made for one
GPU call) and scores each trained model with every decoder it supports on the generated
test split, the real pilot memos (evaluation only, never trained on) and FIRE dev::

    python benchmarks/encoder_accuracy_issue11.py --stage STAGE --out OUT [--parallel] [--jobs a,b]

``STAGE`` holds ``minilm/`` and ``mpnet/`` model folders and ``data/`` (generated splits
``m20k/``, ``q3k/``, ``q6k/``, ``fire/{train,dev}.jsonl``, ``pilot_memos.jsonl``).
Writes ``OUT/jobs/NAME.json`` per job and ``OUT/encoder_accuracy_issue11.json`` for all.
The word-snapping penalty is chosen on the *generated validation* split, never the pilot.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

MERCHANT = {"task": "merchant", "data": "m20k", "max_length": 64, "bs": 32, "lr": 1e-4, "head_lr": 1e-3}
FIRE = {"task": "fin-ner", "data": "fire", "max_length": 128, "bs": 16, "lr": 1e-4, "head_lr": 1e-3}

JOBS: dict[str, dict] = {
    # merchant, MiniLM: feature and head ablations, all trained on the same generated data
    "m_base": {**MERCHANT, "model": "minilm", "lex": False, "pointer": False, "epochs": 3},
    "m_lex": {**MERCHANT, "model": "minilm", "lex": True, "pointer": False, "epochs": 3},
    "m_full": {**MERCHANT, "model": "minilm", "lex": True, "pointer": True, "epochs": 3, "export": True},
    "m_mpnet": {**MERCHANT, "model": "mpnet", "lex": True, "pointer": True, "epochs": 2, "lr": 5e-5},
    # quickstart recipes (F1 only here; CPU time is measured separately on 2 cores)
    "q_a": {**MERCHANT, "data": "q3k", "model": "minilm", "lex": True, "pointer": True, "epochs": 1, "bs": 16,
            "lr": 2e-4, "head_lr": 2e-3, "max_length": 48},
    "q_b": {**MERCHANT, "data": "q6k", "model": "minilm", "lex": True, "pointer": True, "epochs": 1,
            "lr": 2e-4, "head_lr": 2e-3, "max_length": 48},
    "q_c": {**MERCHANT, "data": "q6k", "model": "minilm", "lex": True, "pointer": True, "epochs": 1,
            "lr": 3e-4, "head_lr": 3e-3, "max_length": 48, "freeze": 2},
    "q_d": {**MERCHANT, "data": "q6k", "model": "minilm", "lex": True, "pointer": True, "epochs": 2, "max_length": 48},
    # FIRE: longer training than the old 8 epochs, MiniLM and mpnet
    "f_minilm": {**FIRE, "model": "minilm", "lex": False, "pointer": False, "epochs": 20},
    "f_mpnet": {**FIRE, "model": "mpnet", "lex": False, "pointer": False, "epochs": 12, "lr": 5e-5},
}
# Session 3: the default MiniLM on the `card` generator profile against the `study` one, more data,
# longer training, mpnet, and 3-layer students for the CPU path (issue 16). Data folders: m20k =
# study profile (seed 1, the data behind m_full), c20k / c40k = card profile (seeds 1 / 2), mix =
# half of each, qc6k = the quickstart's own card data (n 6000, seed 0).
CARD = {**MERCHANT, "data": "c20k", "model": "minilm", "lex": True, "pointer": True, "epochs": 3}
JOBS.update({
    "s_study": {**CARD, "data": "m20k"},                       # control: m_full again, same code as the rest
    "s_card": {**CARD},
    "s_card6": {**CARD, "epochs": 6},
    "s_mix": {**CARD, "data": "mix"},
    "s_card40": {**CARD, "data": "c40k", "test_data": "c20k"},
    "s_mpnet": {**CARD, "model": "mpnet", "epochs": 2, "lr": 5e-5},
    "s_l3": {**CARD, "epochs": 6, "num_layers": 3},            # shallow, labels only
    "s_l3kd": {**CARD, "epochs": 6, "num_layers": 3, "distill": "s_card", "export": True},
    "s_qc": {**MERCHANT, "data": "qc6k", "model": "minilm", "lex": True, "pointer": True, "epochs": 2, "max_length": 48},
    "s_qc3": {**MERCHANT, "data": "qc6k", "model": "minilm", "lex": True, "pointer": True, "epochs": 4, "max_length": 48,
              "num_layers": 3},                              # the same CPU time as s_qc: half the layers, twice the steps
})
# Round 2: layout features (character column, repeated-copy marks; features.py) on the card profile.
LAYOUT = {**CARD, "layout": True}
JOBS.update({
    "l_card": {**LAYOUT},
    "l_card6": {**LAYOUT, "epochs": 6},
    "l_card40_6": {**LAYOUT, "data": "c40k", "test_data": "c20k", "epochs": 6},
    "l_mpnet": {**LAYOUT, "model": "mpnet", "epochs": 3, "lr": 5e-5},
    "l_l3kd": {**LAYOUT, "epochs": 6, "num_layers": 3, "distill": "l_card6", "export": True},
    "l_l2kd": {**LAYOUT, "epochs": 6, "num_layers": 2, "distill": "l_card6"},
    "l_l3kd40": {**LAYOUT, "data": "c40k", "test_data": "c20k", "epochs": 6, "num_layers": 3, "distill": "l_card40_6",
                 "export": True},
    "l_mpnet40": {**LAYOUT, "model": "mpnet", "data": "c40k", "test_data": "c20k", "epochs": 3, "lr": 5e-5},
    "l_card_s1": {**LAYOUT, "seed": 1},                        # seed repeat of l_card: run-to-run noise
    "l_card6_s1": {**LAYOUT, "epochs": 6, "seed": 1},
    "l_qc": {**MERCHANT, "data": "qc6k", "model": "minilm", "lex": True, "pointer": True, "layout": True, "epochs": 2,
             "max_length": 48},
})
# Session 4: the default recipe again (its checkpoints were not kept) with two more seeds, so that
# comparisons are seed-averaged and the three can be scored as an ensemble; longer texts (wires cut
# at 64 tokens lose 7 of 876 pilot values); twice the distinct data for the same number of steps;
# the distilled student again (issue 16's benchmark model). c80k = card profile, n 80000, seed 3.
DEFAULT = {**LAYOUT, "data": "c40k", "test_data": "c20k", "epochs": 6}
JOBS.update({
    "d_s0": {**DEFAULT, "export": True},
    "d_s1": {**DEFAULT, "seed": 1},
    "d_s2": {**DEFAULT, "seed": 2},
    "d_len128": {**DEFAULT, "max_length": 128},
    "d_c80": {**DEFAULT, "data": "c80k", "epochs": 3},
    "d_kd": {**DEFAULT, "num_layers": 3, "distill": "d_s0", "export": True},
})
# Round 2 of session 4: the two changes that helped (max_length 128: +1.0 pilot / +0.9 generated over
# the seed mean; twice the distinct data: +0.8 / +0.4) together, three seeds.
NEW = {**DEFAULT, "max_length": 128, "data": "c80k", "epochs": 3}
JOBS.update({
    "n_s0": {**NEW, "export": True},
    "n_s1": {**NEW, "seed": 1},
    "n_s2": {**NEW, "seed": 2},
})
# Session 5: the generator's acceptor lines now print a full name field against the city (no
# space; width 20 added), data g20k/g40k/g80k = card profile with that change (seeds 1/2/3, as
# c20k/c40k/c80k). Jobs at max_length 128 (the shipped default): three seeds on the new data and
# two more seeds on the old (d_len128 is seed 0), one with the word-embedding table frozen.
# Quickstart recipes (q = the quickstart's own data: qc6k old generator, qg6k new), trained
# exactly as `finextract quickstart` does (max_length 48, bf16, one checkpoint at the end).
L128 = {**DEFAULT, "max_length": 128}
GEN2 = {**L128, "data": "g40k", "test_data": "g20k", "extra_tests": ["c20k"]}
QS = {**MERCHANT, "data": "qg6k", "model": "minilm", "lex": True, "pointer": True, "layout": True, "epochs": 2.5,
      "max_length": 48, "precision": "bf16", "ckpt_end": True, "extra_tests": ["c20k"]}
JOBS.update({
    "g_s0": {**GEN2, "export": True},
    "g_s1": {**GEN2, "seed": 1},
    "g_s2": {**GEN2, "seed": 2},
    "c_s1": {**L128, "seed": 1, "extra_tests": ["g20k"]},
    "c_s2": {**L128, "seed": 2, "extra_tests": ["g20k"]},
    "g_fe": {**GEN2, "freeze_emb": True},
    "qs_old": {**QS, "data": "qc6k"},
    "qs_base": {**QS},
    "qs_lr2": {**QS, "lr": 2e-4, "head_lr": 2e-3},
    "qs_bs16": {**QS, "bs": 16},
    "qs_fe": {**QS, "freeze_emb": True},
    "qs_fe35": {**QS, "freeze_emb": True, "epochs": 3.5},
    "qs_fe35_lr2": {**QS, "freeze_emb": True, "epochs": 3.5, "lr": 2e-4, "head_lr": 2e-3},
})
# Round 2 of session 5: quickstart recipes with the word-embedding table frozen (a CPU step ~30%
# cheaper, and batch 16 then costs what batch 32 does per record), three seeds of the candidate;
# learning rate 2e-4 on the full recipe; the old-data max_length-128 recipe again, exported.
QFE = {**QS, "freeze_emb": True, "bs": 16, "lr": 2e-4, "head_lr": 2e-3, "epochs": 3}
JOBS.update({
    "qa_g": {**QFE},
    "qa_g_s1": {**QFE, "seed": 1},
    "qa_g_s2": {**QFE, "seed": 2},
    "qa_c": {**QFE, "data": "qc6k"},
    "qb_g": {**QFE, "lr": 1e-4, "head_lr": 1e-3},
    "qd_g": {**QFE, "lr": 3e-4, "head_lr": 3e-3},
    "qc_g_s1": {**QS, "freeze_emb": True, "epochs": 3.5, "lr": 2e-4, "head_lr": 2e-3, "seed": 1},
    "c_s0": {**L128, "export": True, "extra_tests": ["g20k"]},
    "c_lr2": {**L128, "lr": 2e-4, "head_lr": 2e-3, "extra_tests": ["g20k"]},
    "g_lr2": {**GEN2, "lr": 2e-4, "head_lr": 2e-3},
})
# Round 3 of session 5: the 3-layer student (issue 16's CPU model) distilled from g_s0, the
# default recipe at max_length 128 on the new generator data; g_s0 is unpacked from its export.
JOBS.update({
    "k_g": {**GEN2, "num_layers": 3, "distill": "g_s0", "export": True},
    "k_g_s1": {**GEN2, "num_layers": 3, "distill": "g_s0", "seed": 1},
})
# Session 6: learning rate 2e-4 (g_lr2, seed 0, was the best new-data MiniLM on the pilot) with two
# more seeds and seed 0 again exported (the teacher of issue 16's student); twice the distinct data
# (g80k, 3 epochs); all-mpnet-base-v2 at max_length 128 on the new data (40k and 80k records).
H = {**GEN2, "lr": 2e-4, "head_lr": 2e-3, "extra_tests": []}
P = {**H, "lr": 5e-5, "head_lr": 1e-3, "model": "mpnet"}   # all-mpnet-base-v2 at its own learning rate
JOBS.update({
    "h_s0": {**H, "export": True},
    "h_s1": {**H, "seed": 1},
    "h_s2": {**H, "seed": 2},
    "h_g80": {**H, "data": "g80k", "epochs": 3},
    "p_g": {**P, "epochs": 3},
    "p_g80": {**P, "data": "g80k", "epochs": 2},
})
# Round 2 of session 6: issue 16's student distilled from h_s0; mpnet on g80k for 3 epochs and a
# seed repeat of p_g80 (the best pilot model of round 1).
JOBS.update({
    "k_h": {**H, "num_layers": 3, "distill": "h_s0", "export": True},
    "p_g80_e3": {**P, "data": "g80k", "epochs": 3},
    "p_g80_s1": {**P, "data": "g80k", "epochs": 2, "seed": 1},
})
# Round 3 of session 6: two more mpnet seeds on g80k and mpnet on four times the distinct data
# (g160k = `data synth --n 160000 --seed 4`, 1 epoch: the same steps), averaged as an ensemble;
# the MiniLM default learning rate (1e-4) on g80k and on g160k at the same number of steps.
JOBS.update({
    "p_g80_s2": {**P, "data": "g80k", "epochs": 2, "seed": 2},
    "p_g80_s3": {**P, "data": "g80k", "epochs": 2, "seed": 3},
    "p_g160": {**P, "data": "g160k", "epochs": 1},
    "g_g80": {**GEN2, "extra_tests": [], "data": "g80k", "epochs": 3},
    "g_g160": {**GEN2, "extra_tests": [], "data": "g160k", "epochs": 1.5},
})
# Session 7, issue 16: narrower and shallower students for the CPU path, all distilled from t_h (the
# h_s0 recipe again: the devices of session 6 are gone): 3 layers as k_h (the control), 3 layers with
# each FFN cut to 768 / 512 / 384 of its 1536 neurons (model.ffn_size), 2 layers. Issue 11: two more seeds
# of the mpnet recipe (both finished this time: two mpnet jobs per call) and their ensemble; the
# MiniLM default learning rate on g80k (killed unfinished in session 6).
KD = {**H, "num_layers": 3, "distill": "t_h", "export": True}
JOBS.update({
    "t_h": {**H},
    "k7_3": {**KD},
    "k7_3f768": {**KD, "ffn_size": 768},
    "k7_3f512": {**KD, "ffn_size": 512},
    "k7_3f384": {**KD, "ffn_size": 384},
    "k7_2": {**KD, "num_layers": 2},
    # round 2: g_g80 (lr 1e-4, g80k, 3 epochs) was the best MiniLM on the pilot in round 1: two more
    # seeds, and the FFN-512 student distilled from it
    "g_g80_s1": {**GEN2, "extra_tests": [], "data": "g80k", "epochs": 3, "seed": 1},
    "g_g80_s2": {**GEN2, "extra_tests": [], "data": "g80k", "epochs": 3, "seed": 2},
    "k7_g80f512": {**KD, "distill": "g_g80", "data": "g80k", "epochs": 3, "lr": 1e-4, "head_lr": 1e-3, "ffn_size": 512},
})
# Session 8, issue 11: the generator's Fedwire memos cut at the memo column and ACH/name-only payees
# with state-like department tags (n80k = `data synth --n 80000 --seed 3`, n20k its seed-1 test set,
# as g80k/g20k before the change). MiniLM at g_g80's recipe, three seeds, scored on both test sets,
# g_g80 itself again as the control; all-mpnet-base-v2 at p_g80's recipe on the new data, two seeds.
NEW8 = {**GEN2, "data": "n80k", "test_data": "n20k", "extra_tests": ["g20k"], "epochs": 3}
JOBS.update({
    "e_s0": {**NEW8},
    "e_s1": {**NEW8, "seed": 1},
    "e_s2": {**NEW8, "seed": 2},
    "e_p0": {**P, "data": "n80k", "test_data": "n20k", "extra_tests": ["g20k"], "epochs": 2},
    "e_p1": {**P, "data": "n80k", "test_data": "n20k", "extra_tests": ["g20k"], "epochs": 2, "seed": 1},
})
# Session 9, issue 11: Fedwire memos in the wire's own party order (originator block, then beneficiary
# block, the holder's block in the counterparty's shape) and wires 2% -> 3% of card records
# (f80k = `data synth --n 80000 --seed 3`, f20k its seed-1 test set; n20k is session 8's test set, so
# both generators' models meet on one generated set). MiniLM at e_s*'s recipe, four seeds; mpnet at
# e_p*'s recipe, two seeds (one call of their own, so that both finish).
NEW9 = {**NEW8, "data": "f80k", "test_data": "f20k", "extra_tests": ["n20k"]}
JOBS.update({
    "f_s0": {**NEW9},
    "f_s1": {**NEW9, "seed": 1},
    "f_s2": {**NEW9, "seed": 2},
    "f_s3": {**NEW9, "seed": 3},
    "f_p0": {**P, "data": "f80k", "test_data": "f20k", "extra_tests": ["n20k"], "epochs": 2},
    "f_p1": {**P, "data": "f80k", "test_data": "f20k", "extra_tests": ["n20k"], "epochs": 2, "seed": 1},
    "f_p2": {**P, "data": "f80k", "test_data": "f20k", "extra_tests": ["n20k"], "epochs": 2, "seed": 2},
    "f_p3": {**P, "data": "f80k", "test_data": "f20k", "extra_tests": ["n20k"], "epochs": 2, "seed": 3},
})
# Session 10, issue 11: a moving average of the weights (train.ema_decay 0.999; every job also scores its
# last step's raw weights beside the average, so the pair shares data, seed and trajectory), on f80k at
# the f_s* recipe (two seeds), on twice the distinct data for the same steps (f160k = `data synth --n
# 160000 --seed 4`, 1.5 epochs) and with hidden dropout 0.2; the quickstart recipe with an average
# (decay 0.995 over its ~740 steps) on the quickstart's own data for seeds 0-2 (qs0..qs2 =
# `data synth --n 6000 --seed S`, trained with seed S, as `finextract quickstart --seed S` does).
NEW10 = {**NEW9, "extra_tests": [], "ema": 0.999}
Q10 = {**QFE, "epochs": 2.6, "extra_tests": ["f20k"], "ema": 0.995}
JOBS.update({
    "x_e0": {**NEW10},
    "x_e1": {**NEW10, "seed": 1},
    "x_e160": {**NEW10, "data": "f160k", "epochs": 1.5},
    "x_ed2": {**NEW10, "dropout": 0.2},
    "xq_s0": {**Q10, "data": "qs0"},
    "xq_s1": {**Q10, "data": "qs1", "seed": 1},
    "xq_s2": {**Q10, "data": "qs2", "seed": 2},
})
# Session 11, issue 11: the generator with Australian suburbs (two-word, compass and place words, the
# network's two-letter state), labels that never end on a glued separator and zero-padded 11-digit phones
# in bank-wrapped lines (profile padded_phone), and the task's new
# ``strip`` rule (MERCHANT_NAME, STREET, CITY drop a glued ``-;,:"``; every job also scores the shipped
# decoder without it, paired). h80k / h20k = `data synth --n 80000 --seed 3` / `--n 20000 --seed 1` after
# the change; f20k (session 9's test set, before it) is scored too, so the generators meet on one set.
NEW11 = {**NEW9, "data": "h80k", "test_data": "h20k", "extra_tests": ["f20k"]}
JOBS.update({f"y_s{i}": {**NEW11, "seed": i} for i in range(5)})
ENSEMBLES = {"ens_y5": [f"y_s{i}" for i in range(5)], "ens_y4": [f"y_s{i}" for i in range(4)], "ens_d3": ["d_s0", "d_s1", "d_s2"], "ens_n3": ["n_s0", "n_s1", "n_s2"], "ens_g3": ["g_s0", "g_s1", "g_s2"],
             "ens_h3": ["h_s0", "h_s1", "h_s2"],
             "ens_p3": ["p_g80_s2", "p_g80_s3", "p_g160"], "ens_p2": ["p_g80_s2", "p_g80_s3"],
             "ens_g80": ["g_g80", "g_g80_s1", "g_g80_s2"],
             "ens_e3": ["e_s0", "e_s1", "e_s2"], "ens_ep2": ["e_p0", "e_p1"],
             "ens_f3": ["f_s0", "f_s1", "f_s2"], "ens_f4": ["f_s0", "f_s1", "f_s2", "f_s3"], "ens_fp2": ["f_p0", "f_p1"],
             "ens_fp3": ["f_p0", "f_p1", "f_p2"], "ens_fp4": ["f_p0", "f_p1", "f_p2", "f_p3"]}
PENALTIES = (0.0, 1.0, 2.0, 4.0)


def config(name: str, job: dict, stage: Path, out: Path) -> dict:
    d = stage / "data" / job["data"]
    data = {"train": str(d / "train.jsonl"), "validation": str(d / ("dev.jsonl" if job["task"] == "fin-ner" else "validation.jsonl"))}
    if job["task"] == "merchant":
        data.update(test=str(stage / "data" / job.get("test_data", job["data"]) / "test.jsonl"), max_eval_records=500)
    else:
        data.update(skip_invalid=True)
    steps_per_epoch = 133 if job["task"] == "fin-ner" else 200
    return {"backend": "encoder", "task": job["task"], "output_dir": str(out / "runs" / name), "seed": job.get("seed", 0), "data": data,
            "model": {"name_or_path": str(stage / job["model"]), "max_length": job["max_length"],
                      "precision": job.get("precision", "fp32"),
                      "lexical_features": job["lex"], "pointer_head": job["pointer"],
                      "layout_features": job.get("layout", False),
                      # jobs before round 3 of session 6 left the decoder at the dataclass default (bio);
                      # every decoder is scored either way, this only sets what a loaded run uses
                      **({"decoder": "pointer"} if job["pointer"] and job["task"] == "merchant" else {}),
                      **({"num_layers": job["num_layers"]} if job.get("num_layers") else {}),
                      **({"dropout": job["dropout"]} if job.get("dropout") is not None else {}),
                      **({"ffn_size": job["ffn_size"]} if job.get("ffn_size") else {})},
            "train": {"learning_rate": job["lr"], "head_learning_rate": job["head_lr"], "epochs": job["epochs"],
                      "batch_size": job["bs"], "num_threads": 2, "progress": False,
                      "checkpoint_every": 1_000_000 if job.get("ckpt_end") else steps_per_epoch,
                      "freeze_layers": job.get("freeze", 0), "freeze_embeddings": job.get("freeze_emb", False),
                      "length_buckets": True,
                      **({"ema_decay": job["ema"]} if job.get("ema") else {}),
                      **({"distill_from": str(out / "runs" / job["distill"])} if job.get("distill") else {}),
                      **({"max_steps": 3, "checkpoint_every": 3} if os.environ.get("BENCH_SMOKE") else {})}}


def per_key(report) -> dict:
    return {k: {"f1": round(c.f1, 4), "p": round(c.precision, 4), "r": round(c.recall, 4), "support": c.support}
            for k, c in report.per_key.items()}


def run_job(name: str, stage: Path, out: Path) -> dict:
    import numpy as np

    from finextract.backends.encoder import EncoderRunConfig, load, train
    from finextract.backends.encoder.calibration import field_outcomes, reliability
    from finextract.records import read_records
    from finextract.scoring import coverage_table, score

    job = JOBS[name]
    cfg = EncoderRunConfig.model_validate(config(name, job, stage, out))
    if job.get("distill"):  # a student waits for its teacher's run to finish
        teacher_done = out / "runs" / job["distill"] / "DONE"
        while not teacher_done.exists():
            time.sleep(3)
    t0 = time.time()
    summary = train(cfg)
    result = {"job": name, "spec": job, "train_seconds": round(time.time() - t0, 1), "summary": summary}
    ex = load(cfg.output_dir, "best", device="cuda" if _cuda() else "cpu")
    task = ex.task
    sets = {"validation": cfg.data.validation}
    if task.name == "merchant":
        sets.update(test=cfg.data.test, pilot=stage / "data" / "pilot_memos.jsonl")
        sets.update({f"test_{d}": stage / "data" / d / "test.jsonl" for d in job.get("extra_tests", [])})
    decoders = ["argmax", "bio"] + (["pointer"] if job["pointer"] else [])
    bare = task.without_strip() if any(k.strip for k in task.keys) else None
    scores: dict = {}
    for set_name, path in sets.items():
        recs = read_records(path, task, skip_invalid=True)
        texts, golds = [r.text for r in recs], [r.values for r in recs]
        logits = ex.logits(texts)
        from finextract.backends.encoder.tagging import decode_with_confidence

        for dec in decoders:
            for pen in (PENALTIES if dec != "argmax" else (0.0,)):
                opts = replace(ex.decode_options, method=dec, inword_penalty=pen)
                pairs = [decode_with_confidence(t, o, lg, task, opts) for t, (o, lg) in zip(texts, logits)]
                rep = score(golds, [p for p, _ in pairs], task)
                entry = {"micro_f1": round(rep.micro.f1, 4), "macro_f1": round(rep.macro_f1, 4), "n": rep.n_records,
                         "per_key": per_key(rep)}
                if not task.multi_valued and dec != "argmax" and pen == ex.decode_options.inword_penalty:
                    conf, correct, _ = field_outcomes(pairs, golds, task)
                    entry["reliability"] = reliability(conf, correct)
                    entry["coverage"] = coverage_table(golds, pairs, task)
                scores.setdefault(set_name, {})[f"{dec}@{pen:g}"] = entry
            if dec != "argmax" and ex.decode_options.glued_fields:
                opts = replace(ex.decode_options, method=dec, glued_fields=False)
                rep = score(golds, [decode_with_confidence(t, o, lg, task, opts)[0] for t, (o, lg) in zip(texts, logits)],
                            task)
                scores[set_name][f"{dec}@{ex.decode_options.inword_penalty:g}-noglue"] = {
                    "micro_f1": round(rep.micro.f1, 4), "n": rep.n_records, "per_key": per_key(rep)}
            if dec != "argmax" and bare is not None:   # the shipped decoder without the task's strip rule (paired)
                pen = ex.decode_options.inword_penalty
                opts = replace(ex.decode_options, method=dec)
                rep = score(golds, [decode_with_confidence(t, o, lg, bare, opts)[0] for t, (o, lg) in zip(texts, logits)],
                            task)
                scores[set_name][f"{dec}@{pen:g}-nostrip"] = {"micro_f1": round(rep.micro.f1, 4), "n": rep.n_records,
                                                              "per_key": per_key(rep)}
    result["scores"] = scores
    result["temperature"] = ex.decode_options.temperature
    if task.name == "merchant":  # the shipped decoder's pilot outputs, for error analysis by kind
        recs = read_records(sets["pilot"], task, skip_invalid=True)
        result["pilot_predictions"] = ex.predict([r.text for r in recs])
    if job.get("ema"):  # the last step's average against its raw weights: one trajectory, two models
        result["ema_vs_raw"] = ema_vs_raw(cfg, task, {k: v for k, v in sets.items() if k != "validation"})
    if job.get("export"):
        result["export"] = export_checkpoint(cfg.output_dir, out / "export", name)
    (out / "jobs").mkdir(parents=True, exist_ok=True)
    (out / "jobs" / f"{name}.json").write_text(json.dumps(result, indent=1, default=str))
    return result


def ema_vs_raw(cfg, task, sets: dict) -> dict:
    """Score the last checkpoint twice with the shipped decoder: as saved (the weight average) and
    with the raw weights from its resume state put back."""
    from finextract.backends.encoder.averaging import raw_state
    from finextract.backends.encoder.model import (EncoderExtractor, decode_options, load_model_from_checkpoint,
                                                   torch_forward)
    from finextract.backends.encoder.train import STATE_FILE
    from finextract.records import read_records
    from finextract.rundir import RunDir
    from finextract.scoring import score
    from finextract.training import load_state

    device = "cuda" if _cuda() else "cpu"
    last = RunDir(Path(cfg.output_dir)).checkpoints()[-1][1]
    raw = raw_state(load_state(last / STATE_FILE))
    result: dict = {"checkpoint": last.name}
    for variant in ("averaged", "raw"):
        tagger, tok = load_model_from_checkpoint(last, cfg, task)
        if variant == "raw":
            params = dict(tagger.named_parameters())
            for n, v in raw.items():
                params[n].data.copy_(v)
        tagger.to(device).eval()
        ex = EncoderExtractor(torch_forward(tagger, device), tok, task, cfg.model.max_length, 64,
                              case_features=tagger.case is not None, lexical_features=tagger.lex is not None,
                              layout_features=tagger.layout is not None, decode_options=decode_options(cfg, last))
        for set_name, path in sets.items():
            recs = read_records(path, task, skip_invalid=True)
            rep = score([r.values for r in recs], ex.predict([r.text for r in recs]), task)
            result.setdefault(variant, {})[set_name] = {"micro_f1": round(rep.micro.f1, 4),
                                                        "merchant_name_f1": round(rep.per_key["MERCHANT_NAME"].f1, 4)}
    return result


def score_ensemble(name: str, members: list[str], stage: Path, out: Path) -> dict:
    """Average the members' raw logits token by token (same tokenizer, so the same offsets) and
    decode once: what a user would get from ``finextract``'s models averaged at inference."""
    from finextract.backends.encoder import load
    from finextract.backends.encoder.tagging import decode_with_confidence
    from finextract.records import read_records
    from finextract.scoring import score

    exs = [load(str(out / "runs" / m), "best", device="cuda" if _cuda() else "cpu") for m in members]
    task = exs[0].task
    first = JOBS[members[0]]
    sets = {"validation": stage / "data" / first["data"] / "validation.jsonl",
            "test": stage / "data" / first.get("test_data", first["data"]) / "test.jsonl",
            "pilot": stage / "data" / "pilot_memos.jsonl"}
    scores: dict = {}
    for set_name, path in sets.items():
        recs = read_records(path, task, skip_invalid=True)
        texts, golds = [r.text for r in recs], [r.values for r in recs]
        per_model = [ex.logits(texts) for ex in exs]
        mean = [(per_model[0][i][0], sum(pm[i][1] for pm in per_model) / len(exs)) for i in range(len(texts))]
        for dec in ("bio", "pointer"):
            opts = replace(exs[0].decode_options, method=dec, inword_penalty=1.0)
            preds = [decode_with_confidence(t, o, lg, task, opts)[0] for t, (o, lg) in zip(texts, mean)]
            rep = score(golds, preds, task)
            scores.setdefault(set_name, {})[f"{dec}@1"] = {"micro_f1": round(rep.micro.f1, 4), "n": rep.n_records,
                                                            "per_key": per_key(rep)}
    result = {"job": name, "members": members, "scores": scores}
    (out / "jobs").mkdir(parents=True, exist_ok=True)
    (out / "jobs" / f"{name}.json").write_text(json.dumps(result, indent=1, default=str))
    return result


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def export_checkpoint(run_dir: str, out: Path, name: str = "model") -> list[str]:
    """Best checkpoint with fp16 encoder weights, tarred and split into <= 15 MiB parts (for the trip back)."""
    import tarfile

    import torch
    from safetensors.torch import load_file, save_file

    from finextract.rundir import RunDir

    import shutil
    import tempfile

    run = RunDir(Path(run_dir))
    ckpt = run.resolve_checkpoint("best")
    out.mkdir(parents=True, exist_ok=True)
    tar = out / f"{name}.tar"
    with tempfile.TemporaryDirectory() as tmp:  # a copy: the run itself stays fp32 (a student may be reading it)
        copy = Path(tmp) / "best"
        shutil.copytree(ckpt, copy, ignore=shutil.ignore_patterns("state.pt", "*.onnx"))
        st = copy / "model" / "model.safetensors"
        save_file({k: v.half().contiguous() if v.is_floating_point() else v for k, v in load_file(str(st)).items()},
                  str(st))
        with tarfile.open(tar, "w") as t:
            t.add(copy, arcname="best")
            t.add(run.config_path, arcname="config.yaml")
    data = tar.read_bytes()
    tar.unlink()
    parts = []
    for i in range(0, len(data), 15 * 2**20):
        p = out / f"{name}.tar.{i // (15 * 2**20):02d}"
        p.write_bytes(data[i:i + 15 * 2**20])
        parts.append(p.name)
    del torch
    return parts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--jobs", default=",".join(JOBS))
    ap.add_argument("--job", help="run one job in this process (used by --parallel)")
    ap.add_argument("--parallel", action="store_true", help="one process per job, all at once")
    ap.add_argument("--export", help="only export these finished jobs' best checkpoints (comma-separated) to OUT/export")
    ap.add_argument("--deadline-s", type=float, default=0, help="with --parallel: kill jobs still running after this")
    ap.add_argument("--ensembles", default="", help="after the jobs, score these ENSEMBLES (comma-separated)")
    ap.add_argument("--result", default="encoder_accuracy_issue11.json", help="name of the merged result file in OUT")
    args = ap.parse_args()
    if args.job:
        run_job(args.job, args.stage, args.out)
        return
    if args.export:
        for n in args.export.split(","):
            print(n, export_checkpoint(str(args.out / "runs" / n), args.out / "export", n))
        return
    names = [n for n in args.jobs.split(",") if n]
    t0 = time.time()

    def merge() -> dict:
        results = {}
        for n in names:
            f = args.out / "jobs" / f"{n}.json"
            results[n] = json.loads(f.read_text()) if f.exists() else {"job": n, "error": "no result (see logs)"}
        (args.out / args.result).write_text(json.dumps(results, indent=1, default=str))
        return results

    if args.parallel:
        procs = {}
        (args.out / "logs").mkdir(parents=True, exist_ok=True)
        for n in names:
            log = open(args.out / "logs" / f"{n}.log", "w")
            procs[n] = subprocess.Popen([sys.executable, __file__, "--stage", str(args.stage), "--out", str(args.out),
                                         "--job", n], stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
        while procs:
            time.sleep(2)
            for n, p in list(procs.items()):
                if p.poll() is not None:
                    print(f"{n}: rc={p.returncode} at {time.time() - t0:.0f}s", flush=True)
                    del procs[n]
                    merge()
                elif args.deadline_s and time.time() - t0 > args.deadline_s:
                    p.kill()
                    print(f"{n}: killed at the {args.deadline_s}s deadline", flush=True)
                    del procs[n]
    else:
        for n in names:
            run_job(n, args.stage, args.out)
    for e in [e for e in args.ensembles.split(",") if e]:
        try:
            score_ensemble(e, ENSEMBLES[e], args.stage, args.out)
        except Exception as err:  # a missing member: say so in the result, keep the rest
            print(f"{e}: {err!r}", flush=True)
        names.append(e)
    results = merge()
    for n, r in results.items():
        s = r.get("scores", {})
        line = {k: {d: v["micro_f1"] for d, v in s[k].items()} for k in s}
        print(n, r.get("train_seconds"), json.dumps(line))


if __name__ == "__main__":
    main()
