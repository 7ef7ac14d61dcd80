"""Record the ``decoder: auto`` choice in a run brought back from the GPU machine.

Why: the accuracy jobs (``encoder_accuracy_issue11.py``) train with the config's default decoder
and score every decoder on the *generated validation* split; the shipped recipe says
``decoder: auto``, which picks the higher of bio@1 / pointer@1 there. This writes that choice
(from the job's own validation scores, never the pilot) into the checkpoint's
``calibration.json`` and sets ``model.decoder: auto``, so the run loads as the recipe would::

    python benchmarks/apply_auto_decoder.py runs/d_kd /work/s4_device/kd/s4kd.json d_kd
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from finextract.hashing import file_sha256
from finextract.rundir import MANIFEST_FILE, RunDir


def main(run_dir: str, result_file: str, job: str) -> None:
    scores = json.loads(Path(result_file).read_text())[job]["scores"]["validation"]
    cands = {m: scores[f"{m}@1"]["micro_f1"] for m in ("bio", "pointer") if f"{m}@1" in scores}
    best = max(cands, key=lambda m: cands[m])  # ties keep bio, like choose_decoder
    run = RunDir(Path(run_dir))
    ckpt = run.resolve_checkpoint("best", verify=False)
    cal_path = ckpt / "calibration.json"
    cal = json.loads(cal_path.read_text()) if cal_path.exists() else {}
    cal.update(decoder=best, decoder_scores=cands, decoder_chosen_on="generated validation (GPU job scores)")
    cal_path.write_text(json.dumps(cal, indent=2))
    manifest = json.loads((ckpt / MANIFEST_FILE).read_text())  # the checkpoint's integrity record: this file changed
    manifest["files"]["calibration.json"] = {"bytes": cal_path.stat().st_size, "sha256": file_sha256(cal_path)}
    (ckpt / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
    cfg = yaml.safe_load(run.config_path.read_text())
    cfg["model"]["decoder"] = "auto"
    run.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    print(f"{run_dir}: decoder auto -> {best} {cands}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
