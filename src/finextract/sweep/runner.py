"""Run a sweep: every grid point trained, timed and tabulated; resumable; failures recorded.

For each run directory under ``output_dir``:

* ``DONE`` present -> training is skipped (a finished run is never redone);
* otherwise ``python -m finextract.sweep.worker train`` (the backend itself resumes from
  its newest complete checkpoint);
* then, if ``speed.json`` is missing, ``... worker measure`` times the best checkpoint;
* the outcome goes to ``RUN_DIR/sweep.json`` (status, training time, error) and a crash's
  traceback to ``RUN_DIR/error.txt``; the sweep carries on with the next run.

After every run the results table (CSV + JSON) is rewritten, so a killed sweep still
leaves the table of everything finished so far.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from finextract.errors import InputError
from finextract.report.rows import collect_row, rich_table, write_table
from finextract.sweep.config import SweepConfig
from finextract.sweep.grid import RunSpec, build_models, expand

log = logging.getLogger("finextract")


def _child_env(threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(threads)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def _kill_group(proc: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _run_phase(phase: str, spec_path: Path, run_dir: Path, env: dict[str, str], timeout: float | None) -> str | None:
    """Run one worker phase; return ``None`` on success or a one-line error."""
    cmd = [sys.executable, "-m", "finextract.sweep.worker", phase, str(spec_path)]
    # own process group: a timeout or Ctrl-C kills the run and anything it started (data
    # loader workers, tokenizer pools), never other processes
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except BaseException as exc:
        _kill_group(proc)
        if not isinstance(exc, subprocess.TimeoutExpired):
            raise
        msg = f"{phase} timed out after {timeout:g} s"
        (run_dir / "error.txt").write_text(f"TimeoutError: {msg}\n", encoding="utf-8")
        return f"{phase}: TimeoutError: {msg}"
    proc = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    (run_dir / f"{phase}.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    if proc.returncode == 0:
        return None
    err = run_dir / "error.txt"
    if not err.exists():  # killed without a Python traceback (signal, OOM): keep what it printed
        err.write_text(f"ProcessExit: exit status {proc.returncode} without a Python error (killed?)\n"
                       f"phase: {phase}\n{proc.stderr[-4000:]}", encoding="utf-8")
    lines = [ln for ln in err.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return f"{phase}: {lines[0] if lines else f'exit status {proc.returncode}'}"


def run_one(spec: RunSpec, sweep: SweepConfig) -> dict[str, Any]:
    """Train (unless DONE) and time (unless timed) one run; never raises for a run's failure."""
    run_dir = Path(spec.config["output_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    spec_path = run_dir / "sweep_spec.json"
    spec_path.write_text(json.dumps({"name": spec.name, "backend": spec.backend, "config": spec.config,
                                     "axes": spec.axes, "overrides": spec.overrides,
                                     "throughput": sweep.throughput.model_dump(mode="json")},
                                    indent=2, default=str), encoding="utf-8")
    state = json.loads((run_dir / "sweep.json").read_text()) if (run_dir / "sweep.json").exists() else {}
    env = _child_env(sweep.throughput.threads)
    skipped = (run_dir / "DONE").exists()
    error = None
    if not skipped:
        (run_dir / "error.txt").unlink(missing_ok=True)
        (run_dir / ".sweep_train.json").unlink(missing_ok=True)
        (run_dir / "speed.json").unlink(missing_ok=True)
        state = {"started": time.time()}
        error = _run_phase("train", spec_path, run_dir, env, sweep.run_timeout_s)
        if error is None:
            state["train_seconds"] = json.loads((run_dir / ".sweep_train.json").read_text())["train_seconds"]
    if error is None and not (run_dir / "speed.json").exists():
        error = _run_phase("measure", spec_path, run_dir, env, sweep.run_timeout_s)
    state.update({"name": spec.name, "axes": spec.axes, "status": "failed" if error else "ok",
                  "error": error, "finished": time.time()})
    (run_dir / "sweep.json").write_text(json.dumps(state, indent=2, default=str), encoding="utf-8")
    row = collect_row(run_dir, sweep.output_dir)
    row["skipped"] = skipped
    return row


def _table_rows(specs: list[RunSpec], fresh: dict[str, dict[str, Any]], out: Path) -> list[dict[str, Any]]:
    """Rows of every run of the sweep that has a run directory (not only this invocation's)."""
    table = []
    for s in specs:
        if s.name in fresh:
            table.append(fresh[s.name])
        elif (Path(s.config["output_dir"]) / "sweep.json").exists():
            table.append(collect_row(Path(s.config["output_dir"]), out))
    return table


def run_sweep(sweep: SweepConfig, sweep_dir: Path | None = None, only: list[str] | None = None,
              console: Any = None) -> list[dict[str, Any]]:
    """Run (or resume) every run of the sweep; return the results rows in sweep order."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    all_specs = specs = expand(sweep, sweep_dir)
    if only:
        specs = [s for s in specs if any(fnmatch.fnmatch(s.name, pat) for pat in only)]
        if not specs:
            raise InputError(f"--only {only}: no run of this sweep matches")
    out = Path(sweep.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.resolved.json").write_text(sweep.model_dump_json(indent=2), encoding="utf-8")
    if sweep.models:
        log.info("building %d model folder(s) under %s", len(sweep.models), out / "_models")
        build_models(sweep)
    rows: dict[str, dict[str, Any]] = {}
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        bar = progress.add_task("sweep", total=len(specs))
        for spec in specs:
            progress.update(bar, description=f"{spec.name}")
            row = run_one(spec, sweep)
            rows[spec.name] = row
            write_table(_table_rows(all_specs, rows, out), out)
            verdict = ("skipped (DONE)" if row.get("skipped") else row["status"])
            f1 = "-" if row["f1"] is None else f"{row['f1']:.4f}"
            progress.console.print(f"{spec.name}: {verdict}, F1 {f1}" + (f" - {row['error']}" if row["error"] else ""))
            progress.advance(bar)
    ordered = [rows[s.name] for s in specs]
    if console is not None:
        console.print(rich_table(ordered, title=f"sweep {sweep.name}: {len(ordered)} runs"))
    return ordered
