"""MLflow for real: pyfunc packaging, the model registry (sqlite), ``mlflow models serve``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from test_serve_toy import train_crf_run

from finextract.extractor import load_extractor
from finextract.serve.server import free_port

pytestmark = pytest.mark.slow
TEXTS = ["SQ *TURTLE TOWER SAN FRANCISCO CA", "AMZN Mktp US*2Y2LX2NF2 Amzn.com/bill WA",
         "POS PURCHASE TARGET 00000794 MINNEAPOLIS MN", "CHECKCARD 0412 SHELL OIL 57444 HOUSTON TX"]


@pytest.fixture(scope="module")
def crf_run(tmp_path_factory):
    return train_crf_run(tmp_path_factory.mktemp("mlflow") / "crf")


@pytest.fixture(scope="module")
def packaged(crf_run, tmp_path_factory):
    from finextract.mlflow_model import package_run

    out = tmp_path_factory.mktemp("pkg") / "model"
    package_run(crf_run, out)
    return out


def test_pyfunc_predict_equals_offline(crf_run, packaged):
    import mlflow.pyfunc
    import pandas as pd

    offline = load_extractor(crf_run).predict(TEXTS)
    model = mlflow.pyfunc.load_model(str(packaged))
    by_df = model.predict(pd.DataFrame({"text": TEXTS}))
    assert by_df["fields"].tolist() == offline and by_df["valid"].all()
    assert model.predict(TEXTS)["fields"].tolist() == offline
    # self-contained: the staged checkpoint lives inside the model folder
    assert list(packaged.rglob("model.crfsuite"))


def test_register_in_sqlite_registry(crf_run, tmp_path):
    import mlflow
    import mlflow.pyfunc

    from finextract.mlflow_model import package_run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    res = package_run(crf_run, tmp_path / "m", register="crf-merchant", tracking_uri=uri)
    assert res["registered_version"] == 1
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/crf-merchant/1")
    assert model.predict(TEXTS)["fields"].tolist() == load_extractor(crf_run).predict(TEXTS)


def test_package_refuses_existing_out_and_non_run(crf_run, packaged, tmp_path):
    from finextract.mlflow_model import package_run

    with pytest.raises(ValueError, match="already exists"):
        package_run(crf_run, packaged)
    with pytest.raises(FileNotFoundError, match="not a finextract run directory"):
        package_run(tmp_path, tmp_path / "x")


def test_mlflow_models_serve_matches_offline_and_validates(crf_run, packaged, tmp_path):
    port = free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    # mlflow execs `uvicorn` by name: the venv's bin must be on PATH (as when the venv is activated)
    env = {**os.environ, "PATH": f"{mlflow_bin.parent}{os.pathsep}{os.environ.get('PATH', '')}", "OMP_NUM_THREADS": "1", "MLFLOW_TRACKING_URI": (tmp_path / "mlruns").as_uri()}
    proc = subprocess.Popen([str(mlflow_bin), "models", "serve", "-m", str(packaged), "--env-manager", "local",
                             "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            try:
                if httpx.get(f"{url}/ping", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "mlflow models serve did not come up in 90 s"
            time.sleep(0.5)
        r = httpx.post(f"{url}/invocations", json={"dataframe_split": {"columns": ["text"],
                                                                        "data": [[t] for t in TEXTS]}})
        assert r.status_code == 200, r.text
        rows = r.json()["predictions"]
        assert [row["fields"] for row in rows] == load_extractor(crf_run).predict(TEXTS)

        from finextract.serve.validation import validate_endpoint

        data = Path(__file__).parent / "data" / "merchant_sample.jsonl"
        res = validate_endpoint(url, data, crf_run)
        assert res.kind == "mlflow" and res.passed and res.delta_points == 0 and res.agreement == 1.0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: uvicorn workers go too
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def test_training_logs_to_mlflow(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from finextract.backends import get_backend
    from finextract.config import load_run_config

    sample = Path(__file__).parent / "data" / "merchant_sample.jsonl"
    uri = f"sqlite:///{tmp_path / 'track.db'}"
    cfg = load_run_config(None, ["backend=crf", f"output_dir={tmp_path / 'run'}", f"data.train={sample}",
                                 f"data.validation={sample}", "train.max_iterations=20",
                                 "train.checkpoint_every=10", "tracking.mlflow=true",
                                 f"tracking.tracking_uri={uri}", "tracking.experiment=fx-test"])
    get_backend("crf").train(cfg)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("fx-test")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["backend"] == "crf" and run.data.params["train.max_iterations"] == "20"
    hist = client.get_metric_history(run.info.run_id, "val_micro_f1")
    assert sorted(m.step for m in hist) == [10, 20]
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "best.json", "metrics.jsonl"} <= arts
    assert mlflow.active_run() is None
