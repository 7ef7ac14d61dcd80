"""RunDir: the one run-directory layout, and rewinding it for a resumed run."""

from __future__ import annotations

from pathlib import Path

from finextract.rundir import RunDir


def _val(f1: float) -> dict:
    return {"micro": {"f1": f1}}


def test_rewind_drops_later_rows_and_rebuilds_best(tmp_path: Path):
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    for step, f1 in [(10, 0.5), (20, 0.8), (30, 0.9), (40, 0.8)]:
        run.log_train({"step": step, "loss": 1.0 / step})
        run.log_metrics({"step": step, "checkpoint": f"step-{step}", "val": _val(f1)})
    run.set_best("step-30", 30, 0.9)

    run.rewind(25)

    assert [r["step"] for r in run.train_log()] == [10, 20]
    assert [r["step"] for r in run.metrics()] == [10, 20]
    assert run.best() == {"checkpoint": "step-20", "step": 20, "metric": "micro_f1", "value": 0.8}


def test_rewind_keeps_earliest_of_tied_best_and_handles_empty_run(tmp_path: Path):
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    run.rewind(5)  # nothing logged yet: no files, no best
    assert run.best() is None and run.metrics() == []
    for step in (10, 20):
        run.log_metrics({"step": step, "checkpoint": f"step-{step}", "val": _val(0.7)})
    run.rewind(20)
    assert run.best()["checkpoint"] == "step-10"
