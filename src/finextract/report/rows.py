"""One results-table row per run directory, read only from the files the run wrote.

The sweep's table and the report both come from here, so they always agree with each
run's ``metrics.jsonl`` / ``best.json`` (scores), ``speed.json`` (timing, memory,
parameter count), ``sweep.json`` (status, training time) and ``validations/*.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from finextract.rundir import RunDir

COLUMNS = ["name", "status", "backend", "model", "params", "prompt_style", "template", "lora_rank",
           "best_step", "f1", "precision", "recall", "macro_f1", "invalid_rate", "samples_per_s", "p50_ms",
           "peak_mem_mb", "train_seconds", "error"]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def find_runs(root: Path) -> list[Path]:
    """Run directories under ``root`` (``root`` itself, or sub-folders up to two levels)."""
    root = Path(root)
    if (root / "config.yaml").exists() or (root / "sweep.json").exists():
        return [root]
    def runs_in(pattern: str) -> set[Path]:
        return {p.parent for name in ("config.yaml", "sweep.json") for p in root.glob(f"{pattern}/{name}")}

    first = runs_in("*")
    # one level deeper only inside folders that are not runs themselves (a folder of sweeps)
    second = {p for p in runs_in("*/*") if p.parent not in first}
    return sorted(first | second)


def _model_name(cfg: dict[str, Any]) -> str:
    model = cfg.get("model") or {}
    name = model.get("name_or_path") if isinstance(model, dict) else None
    if not name:
        return str(cfg.get("backend"))
    return str(name).rstrip("/").rsplit("/", 1)[-1]


def _params(describe: dict[str, Any]) -> int | None:
    for key in ("params", "n_params", "parameters", "num_parameters", "total_params"):
        if isinstance(describe.get(key), (int, float)):
            return int(describe[key])
    return None


def collect_row(run_dir: Path, root: Path | None = None) -> dict[str, Any]:
    """The results row of one run directory (missing facts are ``None``)."""
    run = RunDir(Path(run_dir))
    spec = _read_json(run.root / "sweep_spec.json")
    # a run that failed before its backend wrote config.yaml still has the sweep's spec
    cfg = run.read_config() if run.config_path.exists() or not spec else spec["config"]
    name = str(run.root.relative_to(root)) if root and run.root != Path(root) else run.root.name
    sweep = _read_json(run.root / "sweep.json") or {}
    speed = _read_json(run.root / "speed.json") or {}
    done = _read_json(run.done_path) if run.done_path.exists() else None
    best = run.best()
    metrics = run.metrics()
    best_row = None
    if best:
        matches = [m for m in metrics if m.get("checkpoint") == best.get("checkpoint")]
        best_row = matches[-1] if matches else None
    val = (best_row or {}).get("val") or {}
    prompt = cfg.get("prompt") or {}
    thinking = prompt.get("enable_thinking") if isinstance(prompt, dict) else None
    lora = cfg.get("lora") or {}
    model = cfg.get("model") or {}
    lora_on = isinstance(lora, dict) and bool(lora) and lora.get("enabled", True)  # encoder: lora.enabled
    lora_rank = lora.get("rank") if lora_on else (  # runs written before the shared lora section:
        model.get("lora_rank") if isinstance(model, dict) and model.get("lora") else None)
    status = sweep.get("status") or ("ok" if done is not None else "incomplete")
    if status == "ok" and done is None:
        status = "incomplete"
    error = sweep.get("error")
    if error is None and (run.root / "error.txt").exists() and status != "ok":
        lines = [ln for ln in (run.root / "error.txt").read_text(encoding="utf-8").splitlines() if ln.strip()]
        error = lines[0] if lines else "failed"
    train_seconds = sweep.get("train_seconds")
    if train_seconds is None and isinstance(done, dict):
        train_seconds = done.get("train_seconds")
    validations = []
    for p in sorted((run.root / "validations").glob("*.json")):
        v = _read_json(p)
        if isinstance(v, dict) and {"offline_micro_f1", "endpoint_micro_f1"} <= set(v):
            validations.append({"file": p.name, **v})
    return {
        "name": name,
        "status": status,
        "backend": cfg.get("backend"),
        "model": _model_name(cfg),
        "params": _params(speed.get("describe") or {}),
        "prompt_style": prompt.get("style") if isinstance(prompt, dict) else None,
        "template": None if thinking is None and not prompt else
        ("think" if thinking else "no-think" if thinking is False else "default"),
        "lora_rank": lora_rank,
        "best_step": best.get("step") if best else None,
        "f1": (val.get("micro") or {}).get("f1"),
        "precision": (val.get("micro") or {}).get("precision"),
        "recall": (val.get("micro") or {}).get("recall"),
        "macro_f1": (val.get("macro") or {}).get("f1"),
        "invalid_rate": val.get("invalid_rate"),
        "samples_per_s": speed.get("samples_per_s"),
        "p50_ms": speed.get("p50_ms"),
        "peak_mem_mb": speed.get("peak_mem_mb"),
        "train_seconds": train_seconds,
        "error": error,
        "per_key_f1": {k: c.get("f1") for k, c in (val.get("per_key") or {}).items()
                       if c.get("tp", 0) + c.get("fp", 0) + c.get("fn", 0)},
        "curve": [(m["step"], m["val"]["micro"]["f1"]) for m in metrics if "val" in m],
        "validations": validations,
        "run_dir": str(run.root),
    }


def collect_rows(root: Path) -> list[dict[str, Any]]:
    return [collect_row(p, root) for p in find_runs(root)]


def write_table(rows: list[dict[str, Any]], out_dir: Path, stem: str = "results") -> tuple[Path, Path]:
    """``results.csv`` (the table columns) and ``results.json`` (full rows)."""
    import csv

    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.json"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in COLUMNS})
    json_path.write_text(json.dumps(rows, indent=2, default=str), encoding="utf-8")
    return csv_path, json_path


def rich_table(rows: list[dict[str, Any]], title: str = "sweep results"):
    from rich.table import Table

    t = Table(title=title)
    cols = [("name", "name"), ("status", "status"), ("model", "model"), ("params", "params"),
            ("prompt_style", "prompt"), ("template", "tmpl"), ("lora_rank", "rank"), ("best_step", "step"),
            ("f1", "F1"), ("precision", "P"), ("recall", "R"), ("invalid_rate", "invalid"),
            ("samples_per_s", "texts/s"), ("p50_ms", "p50 ms"), ("train_seconds", "train s")]
    cols = [(k, label) for k, label in cols if k in ("name", "status") or any(r.get(k) is not None for r in rows)]
    for _, label in cols:
        t.add_column(label, justify="left" if label in ("name", "status", "model", "prompt", "tmpl") else "right")
    for r in rows:
        t.add_row(*(fmt(r.get(k), k) for k, _ in cols),
                  style="red" if r["status"] == "failed" else "dim" if r["status"] != "ok" else None)
    return t


def fmt(v: Any, key: str = "") -> str:
    """Cell text: 4 decimals for scores, fewer for speeds, '-' for missing."""
    if v is None:
        return "-"
    if isinstance(v, float):
        if key in ("f1", "precision", "recall", "macro_f1"):
            return f"{v:.4f}"
        if key == "invalid_rate":
            return f"{v:.2%}"
        if key in ("samples_per_s", "peak_mem_mb"):
            return f"{v:.0f}"
        return f"{v:.2f}"
    if key == "params" and isinstance(v, int):
        return f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.1f}k" if v >= 1e3 else str(v)
    return str(v)
