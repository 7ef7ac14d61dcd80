"""A finextract run as an MLflow **pyfunc** model.

``package_run(run_dir, out)`` copies what inference needs -- ``config.yaml``, ``best.json``
and the chosen checkpoint folder with all its files (CRF model, encoder weights +
tokenizer, adapter + rendered prompt template) -- into the model's artifacts, so the
packaged model does not depend on the run directory still existing. ``predict`` accepts
a DataFrame with a ``text`` column, a list of strings or a single string and returns a
DataFrame with one row per text: the task's record field (a dict) and ``valid``.

Serve with ``mlflow models serve -m DIR --env-manager local`` and call ``/invocations``,
or load with ``mlflow.pyfunc.load_model`` / ``spark_udf``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import mlflow.pyfunc

from finextract.errors import InputError
from finextract.rundir import RunDir


def _texts_from_input(model_input: Any) -> list[str]:
    import pandas as pd

    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, pd.DataFrame):
        if "text" in model_input.columns:
            col = model_input["text"]
        elif model_input.shape[1] == 1:
            col = model_input.iloc[:, 0]
        else:
            raise InputError(f"input DataFrame needs a 'text' column (columns: {list(model_input.columns)})")
        return ["" if v is None else str(v) for v in col.tolist()]
    if isinstance(model_input, pd.Series):
        return ["" if v is None else str(v) for v in model_input.tolist()]
    if isinstance(model_input, dict) and "text" in model_input:
        v = model_input["text"]
        return [v] if isinstance(v, str) else [str(x) for x in v]
    if isinstance(model_input, (list, tuple)):
        return [x["text"] if isinstance(x, dict) else str(x) for x in model_input]
    raise InputError(f"unsupported input type {type(model_input).__name__}; send a 'text' column or strings")


class FinextractModel(mlflow.pyfunc.PythonModel):
    """Loads the packaged run once per process; predicts in chunks."""

    def load_context(self, context) -> None:
        from finextract.extractor import load_extractor

        self.extractor = load_extractor(context.artifacts["run"], "best")

    def predict(self, context, model_input, params: dict[str, Any] | None = None):
        import pandas as pd

        task = self.extractor.task
        texts = _texts_from_input(model_input)
        preds = self.extractor.predict(texts) if texts else []
        return pd.DataFrame({
            task.record_field: [p if p is not None else task.empty_output() for p in preds],
            "valid": [p is not None for p in preds],
        })


def stage_run(run_dir: str | Path, dest: Path, checkpoint: str | None = "best") -> Path:
    """Copy the minimal loadable run (config, one checkpoint marked best) to ``dest``."""
    run = RunDir(Path(run_dir))
    run.read_config()  # raises a clear error when it is not a run directory
    ckpt = run.resolve_checkpoint(checkpoint)
    if not (ckpt / "COMPLETE").exists():
        raise InputError(f"{ckpt}: not a complete checkpoint")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(run.config_path, dest / "config.yaml")
    for name in ("versions.json",):
        if (run.root / name).exists():
            shutil.copy2(run.root / name, dest / name)
    shutil.copytree(ckpt, dest / "checkpoints" / ckpt.name, dirs_exist_ok=True)
    best = run.best() or {}
    staged = RunDir(dest)
    staged.set_best(ckpt.name, best.get("step", 0) if best.get("checkpoint") == ckpt.name else 0,
                    best.get("value", 0.0) if best.get("checkpoint") == ckpt.name else 0.0)
    return dest


def package_run(
    run_dir: str | Path,
    out: str | Path | None = None,
    checkpoint: str | None = "best",
    register: str | None = None,
    tracking_uri: str | None = None,
) -> dict[str, Any]:
    """Save the run as a pyfunc model at ``out``; with ``register``, also log it to the tracking
    server and register it under that name. Returns where it went."""
    import mlflow
    from finextract.extractor import load_extractor

    run = RunDir(Path(run_dir))
    cfg = run.read_config()
    out = Path(out) if out else run.root / "mlflow_model"
    if out.exists():
        raise InputError(f"{out} already exists; choose another --out or remove it")
    # No input signature on purpose: a named-column signature would make MLflow reject a
    # plain list of strings; _texts_from_input validates the input instead.
    result: dict[str, Any] = {"run_dir": str(run.root), "backend": cfg.get("backend"), "task": cfg.get("task")}
    with tempfile.TemporaryDirectory() as tmp:
        staged = stage_run(run.root, Path(tmp) / "run", checkpoint)
        load_extractor(staged).predict(["smoke test"])  # fail here, not in the serving process
        common = dict(python_model=FinextractModel(), artifacts={"run": str(staged)},
                      pip_requirements=["finextract", "mlflow", "pandas"],
                      metadata={"finextract_task": cfg.get("task"), "finextract_backend": cfg.get("backend")})
        mlflow.pyfunc.save_model(path=str(out), **common)
        result["path"] = str(out)
        if register:
            if tracking_uri:
                mlflow.set_tracking_uri(tracking_uri)
            with mlflow.start_run(run_name=f"package-{run.root.name}") as mrun:
                mlflow.set_tags({"finextract.run_dir": str(run.root.resolve()),
                                 "finextract.backend": str(cfg.get("backend"))})
                info = mlflow.pyfunc.log_model(name="model", registered_model_name=register, **common)
            result.update({"registered_name": register, "model_uri": info.model_uri,
                           "registered_version": getattr(info, "registered_model_version", None),
                           "mlflow_run_id": mrun.info.run_id, "tracking_uri": mlflow.get_tracking_uri()})
    (out / "finextract.json").write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return result
