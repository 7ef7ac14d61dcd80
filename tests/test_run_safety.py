"""Run directories are data, not code, and survive kills: the run-lifecycle half of issue 14.

Every state file the project reads refuses a malicious pickle (nothing executes, the error
names the file); checkpoints carry checksums; ``best.json`` is checked; one ``train`` per run
directory; a SIGKILL during a checkpoint write leaves a run that a rerun completes exactly.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from finextract.backends.encoder import EncoderRunConfig, load, train
from finextract.backends.encoder.testing import build_tiny_encoder
from finextract.backends.encoder.train import _Interrupt
from finextract.errors import RunDirError
from finextract.locking import LockedError, RunLock
from finextract.rundir import MANIFEST_FILE, RunDir, write_manifest
from finextract.training import load_state

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "tests" / "data" / "merchant_sample.jsonl"
KW = dict(epochs=6, batch_size=2, checkpoint_every=4, keep_last=3)  # 2 steps/epoch, 12 steps: step-4, 8, 12


class Evil:
    """Unpickling this writes a marker file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


def plant(path: Path, marker: Path, keep_manifest_valid: bool = True) -> None:
    """Replace ``path`` with a malicious pickle; re-sign the manifest as an attacker could."""
    torch.save({"optimizer": Evil(marker)}, path)
    if keep_manifest_valid and (path.parent / MANIFEST_FILE).exists():
        write_manifest(path.parent)


@pytest.fixture(scope="module")
def tiny_random(tmp_path_factory) -> Path:
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny") / "bert", layers=2, pretrained=False, hidden=64)


def make_cfg(out: Path, model: Path, **train_kw) -> EncoderRunConfig:
    train_cfg = {"learning_rate": 3e-3, "warmup_ratio": 0.0, "progress": False, "num_threads": 1, **KW, **train_kw}
    return EncoderRunConfig.model_validate({
        "backend": "encoder", "task": "merchant", "output_dir": str(out), "seed": 0,
        "data": {"train": str(SAMPLE), "validation": str(SAMPLE)},
        "model": {"name_or_path": str(model), "max_length": 32}, "train": train_cfg})


def strip(rows):
    return [{k: v for k, v in r.items() if k != "time"} for r in rows]


@pytest.fixture(scope="module")
def full_run(tiny_random, tmp_path_factory) -> RunDir:
    """The uninterrupted run every interrupted one must end equal to."""
    cfg = make_cfg(tmp_path_factory.mktemp("full") / "run", tiny_random)
    train(cfg)
    return RunDir(cfg.output_dir)


def assert_same_run(a: RunDir, b: RunDir) -> None:
    assert strip(a.metrics()) == strip(b.metrics())
    assert strip(a.train_log()) == strip(b.train_log())
    wa = load_file(a.checkpoint_path(12) / "model" / "model.safetensors")
    wb = load_file(b.checkpoint_path(12) / "model" / "model.safetensors")
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)


# ------------------------------------------------------------------ no unpickling of run data
@pytest.mark.parametrize("name", ["state.pt", "optimizer.pt", "scheduler.pt", "rng.pt"])
def test_load_state_refuses_a_malicious_pickle(tmp_path, name):
    marker = tmp_path / "marker"
    path = tmp_path / name
    plant(path, marker)
    with pytest.raises(RunDirError, match=name) as err:
        load_state(path)
    assert "weights_only" in str(err.value)
    assert not marker.exists()


def test_load_state_refuses_truncated_and_missing_files(tmp_path):
    path = tmp_path / "state.pt"
    torch.save({"step": 3, "t": torch.ones(1000)}, path)
    assert load_state(path)["step"] == 3
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(RunDirError, match="state.pt"):
        load_state(path)
    with pytest.raises(RunDirError, match="nope.pt"):
        load_state(tmp_path / "nope.pt")


@pytest.mark.slow
def test_encoder_resume_never_unpickles_state_pt(tmp_path, tiny_random, full_run, caplog):
    cfg = make_cfg(tmp_path / "run", tiny_random)
    with pytest.raises(_Interrupt):
        train(cfg, stop_after_step=9)
    run = RunDir(cfg.output_dir)
    assert [s for s, _ in run.checkpoints()] == [4, 8]
    marker = tmp_path / "marker"
    plant(run.checkpoint_path(8) / "state.pt", marker)
    with caplog.at_level("WARNING", logger="finextract"):
        train(cfg)  # falls back to step-4 and finishes
    assert not marker.exists()
    assert any("state.pt" in r.getMessage() and "refused to load" in r.getMessage() for r in caplog.records)
    assert list((run.checkpoints_dir / ".damaged").iterdir())  # set aside, not deleted
    assert_same_run(full_run, run)


@pytest.mark.slow
def test_causal_resume_state_files_refuse_malicious_pickles(tmp_path):
    from finextract.backends.causal_lm.config import CausalRunConfig
    from finextract.backends.causal_lm.train import STATE_FILES, read_resume_state
    from finextract.backends.causal_lm.train import train as causal_train
    from finextract.testing import build_tiny_causal_lm

    tiny = build_tiny_causal_lm(tmp_path / "model")
    cfg = CausalRunConfig.model_validate({
        "task": "merchant", "output_dir": str(tmp_path / "run"),
        "data": {"train": str(SAMPLE)}, "model": {"name_or_path": str(tiny), "precision": "fp32"},
        "prompt": {"style": "minimal"}, "train": {"max_steps": 1, "batch_size": 2, "gradient_accumulation": 1,
                                                 "progress": False}})
    causal_train(cfg)
    ckpt = RunDir(cfg.output_dir).checkpoint_path(1)
    assert read_resume_state(ckpt, "cpu")["state"]["global_step"] == 1
    for name in STATE_FILES:
        victim = tmp_path / f"copy-{name}"
        import shutil

        shutil.copytree(ckpt, victim)
        marker = tmp_path / f"marker-{name}"
        plant(victim / name, marker)
        with pytest.raises(RunDirError, match=name):
            read_resume_state(victim, "cpu")
        assert not marker.exists()


def test_every_torch_load_in_the_project_uses_weights_only_true():
    calls = []
    for path in (REPO / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                kw = {k.arg: k.value for k in node.keywords}
                ok = isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
                calls.append((f"{path.name}:{node.lineno}", ok))
    assert calls, "expected at least the state loader"
    assert all(ok for _, ok in calls), [c for c, ok in calls if not ok]


# ------------------------------------------------------------------ manifest, best.json
@pytest.mark.slow
def test_checksums_missing_files_and_best_json(tmp_path, tiny_random):
    cfg = make_cfg(tmp_path / "run", tiny_random, epochs=2, checkpoint_every=100)
    train(cfg)
    run = RunDir(cfg.output_dir)
    ckpt = run.resolve_checkpoint()
    manifest = json.loads((ckpt / MANIFEST_FILE).read_text())["files"]
    assert "case.safetensors" in manifest and "model/model.safetensors" in manifest and "state.pt" in manifest
    assert load(str(run.root)) is not None

    case = ckpt / "case.safetensors"
    saved = case.read_bytes()
    case.unlink()
    with pytest.raises(RunDirError, match="case.safetensors: missing"):
        load(str(run.root))
    case.write_bytes(saved)

    weights = ckpt / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100:-90] = b"\x00" * 10
    weights.write_bytes(bytes(data))
    with pytest.raises(RunDirError, match="model.safetensors: checksum mismatch"):
        load(str(run.root))

    run.best_path.write_text(json.dumps({"checkpoint": "../../elsewhere", "step": 1, "value": 1.0}))
    with pytest.raises(RunDirError, match="best.json"):
        load(str(run.root))
    run.best_path.write_text("{not json")
    with pytest.raises(RunDirError, match="best.json: not valid JSON"):
        load(str(run.root))
    run.best_path.write_text(json.dumps({"checkpoint": "step-999", "step": 999, "value": 1.0}))
    with pytest.raises(RunDirError, match="step-999"):
        load(str(run.root))


def test_a_truncated_config_that_still_parses_is_refused(tmp_path):
    from finextract.backends.crf.config import CrfRunConfig

    run = RunDir(tmp_path / "run").create(CrfRunConfig(output_dir=tmp_path / "run"))
    assert run.read_config()["backend"] == "crf"
    lines = run.config_path.read_text().splitlines(keepends=True)
    run.config_path.write_text("".join(lines[:4]))  # still a valid YAML mapping with a backend
    with pytest.raises(RunDirError, match="config.yaml: does not match the checksum"):
        run.read_config()


def test_cli_refuses_a_damaged_run_in_one_line(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints" / "step-1").mkdir(parents=True)
    (run / "config.yaml").write_text("backend: crf\ntask: merchant\n")
    (run / "best.json").write_text("[1, 2")
    proc = subprocess.run([sys.executable, "-m", "finextract", "predict", str(run), "SQ *TURTLE"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "best.json" in proc.stderr.replace("\n", "") and "Traceback" not in proc.stderr


# ------------------------------------------------------------------ truncated state, lock, log rewind
@pytest.mark.slow
def test_truncated_state_with_complete_marker_falls_back(tmp_path, tiny_random, full_run):
    cfg = make_cfg(tmp_path / "run", tiny_random)
    with pytest.raises(_Interrupt):
        train(cfg, stop_after_step=9)
    run = RunDir(cfg.output_dir)
    state = run.checkpoint_path(8) / "state.pt"
    state.write_bytes(state.read_bytes()[:1000])  # COMPLETE and the (now stale) manifest remain
    assert (state.parent / "COMPLETE").exists()
    train(cfg)
    assert_same_run(full_run, run)


@pytest.mark.slow
def test_second_train_on_the_same_run_is_refused_and_stale_lock_taken_over(tmp_path, tiny_random):
    cfg = make_cfg(tmp_path / "run", tiny_random, epochs=1)
    code = textwrap.dedent(f"""
        import time, pathlib
        from finextract.locking import RunLock
        RunLock({str(cfg.output_dir)!r}).acquire()
        pathlib.Path({str(tmp_path / 'ready')!r}).write_text('ok')
        time.sleep(60)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code])
    try:
        for _ in range(400):
            if (tmp_path / "ready").exists():
                break
            import time

            time.sleep(0.05)
        with pytest.raises(LockedError, match=f"in use by process {holder.pid}"):
            train(cfg)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert not RunDir(cfg.output_dir).metrics()  # the refused train wrote nothing
    train(cfg)  # the dead holder's lock is taken over
    assert RunDir(cfg.output_dir).done_path.exists()
    with RunLock(cfg.output_dir):
        pass  # released after train returned


@pytest.mark.slow
def test_failure_before_first_checkpoint_does_not_duplicate_log_rows(tmp_path, tiny_random):
    cfg = make_cfg(tmp_path / "run", tiny_random, epochs=2, checkpoint_every=100, log_every=1)
    with pytest.raises(_Interrupt):
        train(cfg, stop_after_step=3)
    run = RunDir(cfg.output_dir)
    assert [r["step"] for r in run.train_log()] == [1, 2, 3] and not run.checkpoints()
    train(cfg)
    assert [r["step"] for r in run.train_log()] == [1, 2, 3, 4]


# ------------------------------------------------------------------ SIGKILL during a checkpoint write
KILLER = """
import json, os, signal, sys
from pathlib import Path
import finextract.training as training
from finextract.backends.encoder import EncoderRunConfig, train

cfg = EncoderRunConfig.model_validate(json.loads(sys.argv[1]))
where, at_step = sys.argv[2], int(sys.argv[3])
real_save, real_mark = training.save_state, training.mark_checkpoint_complete

def save_state(obj, path):
    if where == "state" and Path(path).parent.name == f"step-{at_step}":
        import torch
        torch.save(obj, path)
        Path(path).write_bytes(Path(path).read_bytes()[:4096])  # half a file on disk
        os.kill(os.getpid(), signal.SIGKILL)
    real_save(obj, path)

def mark(path):
    real_mark(path)
    if where == "complete" and Path(path).name == f"step-{at_step}":
        os.kill(os.getpid(), signal.SIGKILL)  # after COMPLETE, before scoring

training.save_state, training.mark_checkpoint_complete = save_state, mark
train(cfg)
"""


@pytest.mark.slow
@pytest.mark.parametrize("where", ["state", "complete"])
def test_sigkill_during_checkpoint_write_then_rerun_is_exact(tmp_path, tiny_random, full_run, where):
    cfg = make_cfg(tmp_path / "run", tiny_random)
    proc = subprocess.run([sys.executable, "-c", KILLER, cfg.model_dump_json(), where, "8"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    run = RunDir(cfg.output_dir)
    complete = [s for s, _ in run.checkpoints()]
    assert complete == ([4] if where == "state" else [4, 8])
    assert not run.done_path.exists()
    train(cfg)
    assert_same_run(full_run, run)
