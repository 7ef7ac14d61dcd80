"""Study 1 and study 2 recipes on real pretrained weights (SmolLM2-135M-Instruct, Gemma 3 270M).

Runs on the lent GPU machine, which receives at most 64 MiB per call: the two GGUF files
(340 MB) travel as chunks of one byte stream over successive calls and are joined and
checked against their sha256 there (``stage`` / ``join``). ``plan`` then trains several runs
at once on the one GPU (small models leave most of an H200 idle, so concurrent processes
use it better than one after another), each with our own trainer (``finextract train``
path: every checkpoint scored by constrained generation, best by validation micro-F1), stops
any run still training at a wall-clock deadline, scores every run's best checkpoint on the
full dev set, the test set and the pilot memos, and packs the small result files.

Usage on the device (see docs/causal-lm.md, "Measured on real weights")::

    python benchmarks/llm_real.py stage CHUNK...            # copy chunks into /tmp/llm/chunks
    python benchmarks/llm_real.py join MANIFEST.json         # rebuild the GGUFs, check sha256
    python benchmarks/llm_real.py smoke --steps 15           # step time per style, engine desc/s
    python benchmarks/llm_real.py plan PLAN.json --out $OUT  # the runs; results.tar.gz under --out

Locally: ``split GGUF... --chunk-mib 58 --out DIR`` writes the chunks and the manifest;
``plan PLAN.json --smoke`` runs every planned run for a few steps on CPU to check the script.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

WORK = Path(os.environ.get("LLM_REAL_WORK", "/tmp/llm"))
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
from finextract.hashing import file_sha256  # noqa: E402  (a leaf module: no third-party imports)


# ------------------------------------------------------------------ moving big files in chunks
def split_files(files: list[Path], chunk_mib: list[int], out: Path) -> None:
    """One byte stream of all files, cut into chunks; the manifest says how to rebuild each file.

    ``chunk_mib`` gives the chunk sizes in order (the last one repeats), so a call that also
    carries code and data can take a smaller chunk.
    """
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"files": [{"name": f.name, "size": f.stat().st_size, "sha256": file_sha256(f)} for f in files],
                "chunks": []}
    idx, buf = 0, bytearray()
    size = chunk_mib[0] << 20

    def flush() -> None:
        nonlocal idx, buf, size
        name = f"chunk{idx:02d}.bin"
        (out / name).write_bytes(buf)
        manifest["chunks"].append({"name": name, "size": len(buf), "sha256": hashlib.sha256(buf).hexdigest()})
        idx, buf = idx + 1, bytearray()
        size = chunk_mib[min(idx, len(chunk_mib) - 1)] << 20

    for f in files:
        with open(f, "rb") as fh:
            while True:
                block = fh.read(size - len(buf))
                if not block:
                    break
                buf += block
                if len(buf) >= size:
                    flush()
    if buf:
        flush()
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    print(json.dumps(manifest, indent=2))


def stage(chunks: list[Path]) -> None:
    dest = WORK / "chunks"
    dest.mkdir(parents=True, exist_ok=True)
    for c in chunks:
        shutil.copy(c, dest / c.name)
        print(f"staged {c.name} ({c.stat().st_size >> 20} MiB)")
    print("have:", sorted(p.name for p in dest.iterdir()))


def join(manifest_path: Path) -> None:
    """Rebuild every file whose chunks are all present; check chunk and file sha256."""
    manifest = json.loads(manifest_path.read_text())
    src, out = WORK / "chunks", WORK / "gguf"
    out.mkdir(parents=True, exist_ok=True)
    offsets, pos = [], 0
    for ch in manifest["chunks"]:
        offsets.append((pos, pos + ch["size"], ch))
        pos += ch["size"]
    start = 0
    for f in manifest["files"]:
        end = start + f["size"]
        target = out / f["name"]
        needed = [(a, b, ch) for a, b, ch in offsets if a < end and b > start]
        if target.exists() and file_sha256(target) == f["sha256"]:
            print(f"{f['name']}: already joined, sha256 ok")
        elif all((src / ch["name"]).exists() for _, _, ch in needed):
            with open(target, "wb") as fh:
                for a, b, ch in needed:
                    data = (src / ch["name"]).read_bytes()
                    if hashlib.sha256(data).hexdigest() != ch["sha256"]:
                        raise SystemExit(f"{ch['name']}: sha256 mismatch (transfer broke?)")
                    fh.write(data[max(start - a, 0):min(end, b) - a])
            got = file_sha256(target)
            if got != f["sha256"]:
                target.unlink()
                raise SystemExit(f"{f['name']}: sha256 {got} != {f['sha256']}")
            print(f"{f['name']}: joined, sha256 {got} ok")
        else:
            print(f"{f['name']}: waiting for {[ch['name'] for _, _, ch in needed if not (src / ch['name']).exists()]}")
        start = end


# ------------------------------------------------------------------ run configs
MERCHANT = {"train": "data/merchant/train.jsonl", "validation": "data/merchant/validation.jsonl",
            "test": "data/merchant/test.jsonl", "pilot": "data/merchant/pilot_memos.jsonl"}
FIRE = {"train": "data/fire/train.jsonl", "validation": "data/fire/dev.jsonl"}


def run_config(run: dict[str, Any], base: Path, smoke: bool) -> dict[str, Any]:
    """A CausalRunConfig dict for one planned run (study 1 or study 2 recipe + plan overrides)."""
    study = run["study"]
    data_root = Path(run.get("data_root", base))
    if study == 2:
        d = {k: str(data_root / v) for k, v in MERCHANT.items()}
        data = {"train": d["train"], "validation": d["validation"], "test": d["test"],
                "eval_sets": {"dev_full": d["validation"], "pilot": d["pilot"]},
                "max_eval_records": run.get("dev_subset", 200)}
        train = {"learning_rate": 1e-4, "scheduler": "cosine", "warmup_ratio": 0.1, "epochs": run.get("epochs", 6),
                 "batch_size": 16, "gradient_accumulation": 1, "checkpoint_every": 200, "max_length": 1536}
        task, max_new = "merchant", 256
    else:
        d = {k: str(data_root / v) for k, v in FIRE.items()}
        data = {"train": d["train"], "validation": d["validation"], "eval_sets": {"dev_full": d["validation"]},
                "max_eval_records": run.get("dev_subset", None),
                "skip_invalid": True}  # FIRE train has one record whose label is not a substring
        train = {"learning_rate": 5e-5, "scheduler": "linear", "warmup_ratio": 0.0, "epochs": run.get("epochs", 3),
                 "batch_size": 4, "gradient_accumulation": 6, "checkpoint_every": 100, "max_length": 1536}
        task, max_new = "fin-ner", 384
    train.update({"log_every": 10, "loss": "answer-only"})
    train.update(run.get("train", {}))
    if smoke:  # CPU check of this script: two steps, tiny eval, short answers
        train.update({"max_steps": 2, "checkpoint_every": 2, "batch_size": 2, "gradient_accumulation": 1,
                      "max_length": 4096})
        data["max_train_records"] = 8
        data["max_eval_records"] = 4
        max_new = 24
    cfg = {"backend": "causal_lm", "task": task, "output_dir": str(WORK / "runs" / run["name"]), "seed": 0,
           "data": data,
           "model": {"name_or_path": run["model"], "precision": "fp32" if smoke else "bf16", "attn_implementation": "sdpa"},
           "prompt": {"style": run["style"]},
           "lora": {"rank": 8, "alpha": 16, "dropout": 0.0},
           "train": train,
           "decoding": {"engine": run.get("engine", "engine"), "max_new_tokens": max_new,
                        "batch_size": run.get("decode_batch", 64)}}
    return cfg


def _eval_limit_env(smoke: bool) -> dict[str, str]:
    return {"LLM_REAL_SMOKE": "1"} if smoke else {}


# ------------------------------------------------------------------ one run (child process)
def child_train(cfg_path: Path) -> None:
    from finextract.backends.causal_lm.config import CausalRunConfig
    from finextract.backends.causal_lm.train import train

    cfg = CausalRunConfig.model_validate(json.loads(cfg_path.read_text()))
    t0 = time.perf_counter()
    out = train(cfg)
    out["wall_seconds_train_and_finish"] = round(time.perf_counter() - t0, 1)
    (Path(cfg.output_dir) / "summary.json").write_text(json.dumps(out, indent=2, default=str))


def child_finish(cfg_path: Path) -> None:
    """Score the best checkpoint of a run stopped at the deadline (what the trainer does at its end)."""
    from finextract.backends.causal_lm import load
    from finextract.backends.causal_lm.config import CausalRunConfig
    from finextract.rundir import RunDir
    from finextract.training import finish_run

    cfg = CausalRunConfig.model_validate(json.loads(cfg_path.read_text()))
    run = RunDir(cfg.output_dir)
    if run.best() is None:
        print(f"{run.root}: no scored checkpoint; nothing to finish")
        return
    t0 = time.perf_counter()
    steps = [m["step"] for m in run.metrics()]
    out = finish_run(run, lambda: load(str(run.root), "best"), cfg,
                     {"stopped_at_deadline": True, "last_scored_step": max(steps)})
    out["finish_seconds"] = round(time.perf_counter() - t0, 1)
    (run.root / "summary.json").write_text(json.dumps(out, indent=2, default=str))


# ------------------------------------------------------------------ the plan
def plan(plan_path: Path, out: Path, smoke: bool, s2_epochs: float | None = None,
         minimal_epochs: float | None = None, only: list[str] | None = None) -> None:
    spec = json.loads(plan_path.read_text())
    for r in spec["runs"]:  # command-line sizing (chosen from the smoke call's step times)
        if r["study"] == 2 and r["style"] != "minimal" and s2_epochs and "epochs_pinned" not in r:
            r["epochs"] = s2_epochs
        if r["study"] == 2 and r["style"] == "minimal" and minimal_epochs and "epochs_pinned" not in r:
            r["epochs"] = minimal_epochs
    if only:
        spec["runs"] = [r for r in spec["runs"] if r["name"] in only]
    base = plan_path.parent
    t_start = time.time()
    train_deadline = t_start + spec.get("train_seconds", 360)
    finish_deadline = t_start + spec.get("finish_seconds", 520)
    cfg_dir = WORK / "configs"
    cfg_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "2",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "FINEXTRACT_LOG": "INFO",
           **_eval_limit_env(smoke)}
    runs = spec["runs"]
    print("plan:", json.dumps([{k: r.get(k) for k in ("name", "model", "style", "epochs", "engine")} for r in runs]))

    # convert each GGUF base once, before the runs start (they would race otherwise)
    from finextract.backends.causal_lm.gguf import resolve_base_path

    conv = {}
    for model in sorted({r["model"] for r in runs}):
        t0 = time.perf_counter()
        conv[model] = {"folder": resolve_base_path(model), "seconds": round(time.perf_counter() - t0, 1)}
        print(f"base {model}: {conv[model]}", flush=True)

    procs: dict[str, dict[str, Any]] = {}
    for r in runs:
        cfg = run_config(r, base, smoke)
        shutil.rmtree(cfg["output_dir"], ignore_errors=True)
        path = cfg_dir / f"{r['name']}.json"
        path.write_text(json.dumps(cfg, indent=2))
        log = open(WORK / f"{r['name']}.log", "w")
        p = subprocess.Popen([sys.executable, __file__, "child-train", str(path)], stdout=log, stderr=subprocess.STDOUT,
                             env=env, start_new_session=True)
        procs[r["name"]] = {"proc": p, "cfg": path, "start": time.time(), "log": log, "run": r}
        print(f"started {r['name']} (pid {p.pid})", flush=True)

    def status_line() -> str:
        parts = []
        for name, st in procs.items():
            rc = st["proc"].poll()
            parts.append(f"{name}:{'run' if rc is None else rc}")
        return " ".join(parts)

    last = 0.0
    while any(st["proc"].poll() is None for st in procs.values()) and time.time() < train_deadline:
        time.sleep(2)
        if time.time() - last > 30:
            print(f"[{time.time() - t_start:5.0f}s] {status_line()}", flush=True)
            last = time.time()
    finishing: dict[str, subprocess.Popen] = {}
    for name, st in procs.items():
        if st["proc"].poll() is None:
            os.killpg(st["proc"].pid, signal.SIGTERM)
            try:
                st["proc"].wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(st["proc"].pid, signal.SIGKILL)
            st["stopped"] = time.time()
            st["killed"] = True
            flog = open(WORK / f"{name}.finish.log", "w")
            finishing[name] = subprocess.Popen([sys.executable, __file__, "child-finish", str(st["cfg"])],
                                               stdout=flog, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            print(f"[{time.time() - t_start:5.0f}s] {name}: stopped at the training deadline, finishing", flush=True)
        else:
            st["stopped"] = time.time()
            st["killed"] = False
    while any(p.poll() is None for p in finishing.values()) and time.time() < finish_deadline:
        time.sleep(2)
    for name, p in finishing.items():
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            print(f"{name}: finishing ran past the deadline and was stopped", flush=True)
    pack(procs, conv, out, t_start, spec)


def pack(procs: dict[str, dict[str, Any]], conv: dict[str, Any], out: Path, t_start: float, spec: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    table = []
    tar_path = out / "results.tar.gz"
    adapters_left = spec.get("bring_adapters", [])
    with tarfile.open(tar_path, "w:gz") as tar:
        for name, st in procs.items():
            root = WORK / "runs" / name
            row: dict[str, Any] = {"name": name, **{k: st["run"][k] for k in ("model", "style", "study")},
                                   "killed_at_deadline": st.get("killed"),
                                   "process_seconds": round(st["stopped"] - st["start"], 1)}
            for fname in ("summary.json", "DONE", "best.json"):
                f = root / fname
                if f.exists():
                    try:
                        row[fname] = json.loads(f.read_text())
                    except json.JSONDecodeError:
                        pass
            metrics = [json.loads(line) for line in (root / "metrics.jsonl").read_text().splitlines()] \
                if (root / "metrics.jsonl").exists() else []
            states = sorted((root / "checkpoints").glob("step-*/trainer_state.json"),
                            key=lambda f: int(f.parent.name.split("-")[1])) if (root / "checkpoints").exists() else []
            if states:
                last_state = json.loads(states[-1].read_text())
                row["train_seconds_excl_scoring"] = round(last_state.get("train_seconds", 0.0), 1)
                row["last_checkpoint_step"] = last_state.get("global_step")
            row["checkpoints_scored"] = [(m["step"], round(m["val"]["micro"]["f1"], 4), m["val"].get("invalid_rate"))
                                         for m in metrics]
            table.append(row)
            for sub in ("config.yaml", "metrics.jsonl", "train_log.jsonl", "best.json", "DONE", "summary.json",
                        "curve.png"):
                if (root / sub).exists():
                    tar.add(root / sub, arcname=f"{name}/{sub}")
            for f in sorted((root / "predictions").glob("*.score.json")) if (root / "predictions").exists() else []:
                tar.add(f, arcname=f"{name}/predictions/{f.name}")
            for f in sorted((root / "predictions").glob("*.jsonl")) if (root / "predictions").exists() else []:
                tar.add(f, arcname=f"{name}/predictions/{f.name}")
            for log in (WORK / f"{name}.log", WORK / f"{name}.finish.log"):
                if log.exists():
                    tar.add(log, arcname=f"{name}/{log.name}")
    # adapters travel one run per file (the device returns at most 8 files of 16 MiB each)
    for name in adapters_left[:6]:
        root = WORK / "runs" / name
        best = json.loads((root / "best.json").read_text()) if (root / "best.json").exists() else None
        if not best:
            continue
        ck = root / "checkpoints" / best["checkpoint"]
        with tarfile.open(out / f"adapter-{name}.tar.gz", "w:gz") as tar:
            for f in ("adapter_model.safetensors", "adapter_config.json", "template.json", "trainer_state.json"):
                if (ck / f).exists():
                    tar.add(ck / f, arcname=f"{name}/checkpoints/{best['checkpoint']}/{f}")
            tok_dir = root / "tokenizer"
            if tok_dir.exists() and sum(f.stat().st_size for f in tok_dir.iterdir()) < 8 << 20:
                for f in tok_dir.iterdir():
                    tar.add(f, arcname=f"{name}/tokenizer/{f.name}")
    summary = {"wall_seconds": round(time.time() - t_start, 1), "bases": conv, "runs": table}
    try:
        import torch

        summary["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        summary["versions"] = {"torch": torch.__version__}
        import transformers, peft

        summary["versions"].update({"transformers": transformers.__version__, "peft": peft.__version__})
    except Exception:  # noqa: BLE001
        pass
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    for row in table:
        done = row.get("DONE") or row.get("summary.json") or {}
        pilot = (done.get("pilot") or {}).get("micro_f1")
        dev = (done.get("dev_full") or {}).get("micro_f1")
        test = (done.get("test") or {}).get("micro_f1")
        print(f"{row['name']:28s} killed={row['killed_at_deadline']} s={row['process_seconds']} "
              f"best={row.get('best.json')} dev={dev} test={test} pilot={pilot}")


# ------------------------------------------------------------------ smoke: speed per style
def smoke(steps: int, out: Path, models: list[str]) -> None:
    """Step time per (model, style) at batch 16 and engine desc/s, to size the plan."""
    import torch

    from finextract.backends.causal_lm.data import collate_padded, encode_records
    from finextract.backends.causal_lm.extractor import CausalLMExtractor
    from finextract.backends.causal_lm.loss import compute_loss
    from finextract.backends.causal_lm.modeling import add_lora, load_base_model, load_tokenizer, pick_device
    from finextract.backends.causal_lm.config import LoraSection
    from finextract.backends.causal_lm.template import ensure_pad_token, template_info
    from finextract.records import read_records
    from finextract.tasks import load_task

    dev = pick_device()
    task = load_task("merchant")
    recs = read_records(HERE / "data/merchant/train.jsonl", task)[: 16 * steps]
    val = read_records(HERE / "data/merchant/validation.jsonl", task)[:128]
    res = []
    for model_name in models:
        tok = load_tokenizer(model_name)
        model = add_lora(load_base_model(model_name, "bf16", "sdpa", dev), LoraSection())
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        for style in ("json-only", "two-step", "minimal"):
            info = template_info(tok, task, style, None)
            ensure_pad_token(tok, info.end_token_id)
            ex = encode_records(tok, task, recs, style, None, info.end_token_id, False, 1536)
            times, toks = [], 0
            model.train()
            for i in range(steps):
                b = {k: v.to(dev) for k, v in collate_padded(ex[i * 16:(i + 1) * 16], tok.pad_token_id).items()}
                torch.cuda.synchronize() if dev.type == "cuda" else None
                t0 = time.perf_counter()
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                    loss_sum, n = compute_loss(model, b, "answer-only", None)
                (loss_sum / n).backward()
                opt.step()
                opt.zero_grad()
                torch.cuda.synchronize() if dev.type == "cuda" else None
                times.append(time.perf_counter() - t0)
                toks += int(b["attention_mask"].sum())
            med = sorted(times[2:])[len(times[2:]) // 2] if len(times) > 3 else times[-1]
            ext = CausalLMExtractor(model, tok, task, style, None, info.end_token_id, engine="engine",
                                    max_new_tokens=256, batch_size=64)
            t0 = time.perf_counter()
            report, _ = ext.evaluate(val)
            dt = time.perf_counter() - t0
            row = {"model": model_name, "style": style, "step_s_median": round(med, 4),
                   "tokens_per_step": toks // steps, "decode_desc_per_s": round(len(val) / dt, 1),
                   "untrained_dev_micro_f1": round(report.micro.f1, 4), "invalid": report.invalid_rate}
            print(json.dumps(row), flush=True)
            res.append(row)
        del model, opt
        torch.cuda.empty_cache() if dev.type == "cuda" else None
    out.mkdir(parents=True, exist_ok=True)
    (out / "smoke.json").write_text(json.dumps(res, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("split"); s.add_argument("files", nargs="+", type=Path)
    s.add_argument("--chunk-mib", type=int, nargs="+", default=[58]); s.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("stage"); s.add_argument("chunks", nargs="+", type=Path)
    s = sub.add_parser("join"); s.add_argument("manifest", type=Path)
    s = sub.add_parser("smoke"); s.add_argument("--steps", type=int, default=15)
    s.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/llm/out")))
    s.add_argument("--models", nargs="+", default=[])
    s = sub.add_parser("plan"); s.add_argument("plan", type=Path); s.add_argument("--smoke", action="store_true")
    s.add_argument("--s2-epochs", type=float); s.add_argument("--minimal-epochs", type=float)
    s.add_argument("--only", nargs="+")
    s.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/llm/out")))
    s = sub.add_parser("child-train"); s.add_argument("cfg", type=Path)
    s = sub.add_parser("child-finish"); s.add_argument("cfg", type=Path)
    a = ap.parse_args()
    if a.cmd == "split":
        split_files(a.files, a.chunk_mib, a.out)
    elif a.cmd == "stage":
        stage(a.chunks)
    elif a.cmd == "join":
        join(a.manifest)
    elif a.cmd == "smoke":
        smoke(a.steps, a.out, a.models)
    elif a.cmd == "plan":
        plan(a.plan, a.out, a.smoke, a.s2_epochs, a.minimal_epochs, a.only)
    elif a.cmd == "child-train":
        child_train(a.cfg)
    elif a.cmd == "child-finish":
        child_finish(a.cfg)


if __name__ == "__main__":
    main()
