"""Data-parallel LoRA SFT: one process vs N processes at the same effective batch.

What it measures, in one run, for each model given:
- the loss curves of 1 and N ranks (same seed, same data order: N ranks with accumulation
  ``A/N`` see exactly the micro-batches one rank sees with accumulation ``A``), as the
  largest relative difference per logged step;
- training tokens/s of each (real tokens, from the run's own ``DONE`` summary) and the ratio;
- that only rank 0 scored (one ``metrics.jsonl`` row per checkpoint);
- resume after a kill of all N ranks: the rerun's final adapter against the uninterrupted one.

It drives the real CLI (``python -m torch.distributed.run ... -m finextract train``), so it
checks the launch path users take. On GPUs it uses NCCL (one process per GPU); without GPUs
it falls back to gloo on CPU, which is how ``--smoke`` checks the script itself::

    PYTHONPATH=src python benchmarks/ddp_scaling.py --smoke                       # CPU, tiny model
    PYTHONPATH=src python benchmarks/ddp_scaling.py --model /tmp/smollm2 --nproc 2 \\
        --data train.jsonl --steps 200 --out benchmarks/results/ddp_scaling.json   # 2 GPUs

NVLink multicast stays off (NCCL_NVLS_ENABLE=0): it is not needed for two GPUs and can take
shared hosts' GPUs out of service.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml


def _env() -> dict[str, str]:
    env = dict(os.environ, NCCL_NVLS_ENABLE="0", TORCH_SYMM_MEM_DISABLE_MULTICAST="1", NVSHMEM_DISABLE_NVLS="1",
               TOKENIZERS_PARALLELISM="false")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _config(model: str, data: Path, out: Path, steps: int, per_device: int, accumulation: int, precision: str,
            eval_records: int, save_steps: int, style: str) -> Path:
    cfg = {
        "backend": "causal_lm", "task": "merchant", "output_dir": str(out / "run"), "seed": 11,
        "data": {"train": str(data), "validation": str(data), "max_eval_records": eval_records},
        "model": {"name_or_path": model, "precision": precision},
        "prompt": {"style": style}, "lora": {"rank": 8, "alpha": 16},
        "train": {"learning_rate": 1e-4, "max_steps": steps, "batch_size": per_device,
                  "gradient_accumulation": accumulation, "checkpoint_every": save_steps, "log_every": 1,
                  "warmup_ratio": 0.1, "scheduler": "cosine"},
        "decoding": {"batch_size": 64},
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def _launch(nproc: int, config: Path) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            "-m", "finextract", "train", str(config)]


def _run(nproc: int, config: Path, log: Path) -> float:
    t0 = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.run(_launch(nproc, config), env=_env(), stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise SystemExit(f"training with {nproc} process(es) failed; see {log}")
    return time.perf_counter() - t0


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def _adapter_diff(a: Path, b: Path) -> float:
    from safetensors.torch import load_file

    x, y = load_file(str(a / "adapter_model.safetensors")), load_file(str(b / "adapter_model.safetensors"))
    return max(float((x[k].float() - y[k].float()).norm() / max(float(y[k].float().norm()), 1e-12)) for k in y)


def _last_checkpoint(run: Path) -> Path:
    steps = sorted((int(p.name.split("-")[1]), p) for p in (run / "checkpoints").glob("step-*")
                   if (p / "COMPLETE").exists())
    return steps[-1][1]


def measure(model: str, data: Path, work: Path, nproc: int, steps: int, per_device: int, accumulation: int,
            precision: str, eval_records: int, style: str) -> dict:
    save = max(steps // 3, 1)
    runs = {}
    for n in (1, nproc):
        cfg = _config(model, data, work / f"ranks{n}", steps, per_device, accumulation // n, precision,
                      eval_records, save, style)
        wall = _run(n, cfg, work / f"ranks{n}.log")
        done = json.loads((work / f"ranks{n}" / "run" / "DONE").read_text())
        runs[n] = {"wall_s": round(wall, 1), "train_seconds": done.get("train_seconds"),
                   "train_tokens": done.get("train_tokens"),
                   "tokens_per_s": round(done["train_tokens"] / done["train_seconds"], 1)
                   if done.get("train_seconds") else None,
                   "losses": [r["loss"] for r in _rows(work / f"ranks{n}" / "run" / "train_log.jsonl")],
                   "scored_steps": [r["step"] for r in _rows(work / f"ranks{n}" / "run" / "metrics.jsonl")]}
    l1, ln = runs[1]["losses"], runs[nproc]["losses"]
    curve = max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(l1, ln)) if l1 and len(l1) == len(ln) else None

    # kill all ranks after the first checkpoint, rerun, compare with the uninterrupted N-rank run
    cut = _config(model, data, work / "killed", steps, per_device, accumulation // nproc, precision, eval_records,
                  save, style)
    proc = subprocess.Popen(_launch(nproc, cut), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    ck = work / "killed" / "run" / "checkpoints"
    while proc.poll() is None and not any((p / "COMPLETE").exists() for p in ck.glob("step-*")):
        time.sleep(0.05)
    killed_mid_run = proc.poll() is None
    if killed_mid_run:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _run(nproc, cut, work / "killed.log")
    resume_diff = _adapter_diff(_last_checkpoint(work / "killed" / "run"),
                                _last_checkpoint(work / f"ranks{nproc}" / "run"))
    t1, tn = runs[1]["tokens_per_s"], runs[nproc]["tokens_per_s"]
    return {"model": model, "nproc": nproc, "steps": steps, "effective_batch": per_device * accumulation,
            "runs": {str(k): v for k, v in runs.items()}, "loss_curve_max_rel_diff": curve,
            "tokens_per_s_ratio": round(tn / t1, 3) if t1 and tn else None,
            "rank0_only_scoring": runs[nproc]["scored_steps"] == runs[1]["scored_steps"],
            "killed_mid_run": killed_mid_run, "resume_adapter_max_rel_diff": resume_diff}


def _smoke_inputs(work: Path) -> tuple[str, Path]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from finextract.records import write_records
    from finextract.testing import build_tiny_causal_lm
    from tests.test_causal import TASK, _records

    data = work / "train.jsonl"
    write_records(data, _records(), TASK)
    return str(build_tiny_causal_lm(work / "tiny")), data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", default=[], help="model folder (repeatable)")
    ap.add_argument("--data", type=Path, help="merchant training JSONL")
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--per-device", type=int, default=8)
    ap.add_argument("--accumulation", type=int, default=2, help="of the 1-rank run; N ranks use accumulation/N")
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--eval-records", type=int, default=64)
    ap.add_argument("--style", default="json-only")
    ap.add_argument("--work", type=Path, default=Path("/tmp/ddp_scaling"))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--smoke", action="store_true", help="tiny model on CPU with gloo (checks the script)")
    a = ap.parse_args()
    if a.smoke:
        model, data = _smoke_inputs(a.work)
        a.model, a.data, a.steps, a.per_device, a.precision, a.eval_records, a.style = \
            [model], data, 6, 4, "fp32", 2, "minimal"
    if not a.model or a.data is None:
        ap.error("--model and --data are required (or --smoke)")
    results = [measure(m, a.data, a.work / Path(m).name, a.nproc, a.steps, a.per_device, a.accumulation,
                       a.precision, a.eval_records, a.style) for m in a.model]
    print(f"{'model':<24}{'ranks':>6}{'tok/s 1':>10}{'tok/s N':>10}{'ratio':>7}{'curve Δ':>10}{'resume Δ':>10}")
    for r in results:
        print(f"{Path(r['model']).name:<24}{r['nproc']:>6}{r['runs']['1']['tokens_per_s'] or 0:>10.0f}"
              f"{r['runs'][str(r['nproc'])]['tokens_per_s'] or 0:>10.0f}{r['tokens_per_s_ratio'] or 0:>7.2f}"
              f"{r['loss_curve_max_rel_diff'] or 0:>10.1e}{r['resume_adapter_max_rel_diff']:>10.1e}")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps({"smoke": a.smoke, "results": results}, indent=2))


if __name__ == "__main__":
    main()
