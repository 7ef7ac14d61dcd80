"""``finextract export RUN_DIR --merged``: fold the LoRA adapter into the base weights.

A merged model loads without peft and serves faster, but merging in bf16 rounds weights,
so the command re-scores the merged model beside the adapter on the validation set and
reports the F1 delta instead of assuming it is zero.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import typer

from finextract.errors import InputError


def export_merged(run_dir: str | Path, checkpoint: str | None = None, output: str | Path | None = None,
                  rescore: bool = True, allow_template_mismatch: bool = False) -> dict[str, Any]:
    """Write ``RUN_DIR/merged`` (or ``output``): safetensors + tokenizer + template.json; return the report."""
    from finextract.backends.causal_lm.extractor import load
    from finextract.backends.causal_lm.config import CausalRunConfig
    from finextract.rundir import RunDir
    from finextract.training import load_split

    run = RunDir(Path(run_dir))
    cfg_data = run.read_config()
    if cfg_data.get("backend") != "causal_lm":
        raise InputError(f"{run_dir}: export --merged applies to causal_lm runs (this is {cfg_data.get('backend')!r})")
    cfg = CausalRunConfig.model_validate(cfg_data)
    ckpt = run.resolve_checkpoint(checkpoint)
    out = Path(output) if output else run.root / "merged"
    adapter = load(str(run.root), str(ckpt), allow_template_mismatch=allow_template_mismatch)
    val = load_split(cfg.data.validation, cfg.load_task(), cfg.data.skip_invalid, cfg.data.max_eval_records) \
        if rescore else []
    report: dict[str, Any] = {"checkpoint": ckpt.name, "output": str(out)}
    if val:
        report["adapter_micro_f1"] = adapter.evaluate(val)[0].micro.f1
    merged = adapter.model.merge_and_unload()
    if out.exists():
        shutil.rmtree(out)
    merged.save_pretrained(out, safe_serialization=True)
    adapter.tokenizer.save_pretrained(out)
    shutil.copy(ckpt / "template.json", out / "template.json")
    if val:
        merged_ext = load(str(run.root), str(out), allow_template_mismatch=allow_template_mismatch)
        report["merged_micro_f1"] = merged_ext.evaluate(val)[0].micro.f1
        report["delta_micro_f1"] = report["merged_micro_f1"] - report["adapter_micro_f1"]
        report["validation_records"] = len(val)
    (out / "export.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export_cmd(
        run_dir: Path = typer.Argument(..., help="a causal_lm run directory"),
        merged: bool = typer.Option(False, "--merged", help="merge the LoRA adapter into the base weights"),
        checkpoint: str = typer.Option("best", help="'best', 'last' or 'step-N'"),
        output: Path | None = typer.Option(None, "--output", "-o", help="folder to write (default RUN_DIR/merged)"),
        rescore: bool = typer.Option(True, help="score adapter and merged model on the validation set"),
        allow_template_mismatch: bool = typer.Option(False, help="warn instead of refusing a changed chat template"),
    ) -> None:
        """Export a trained causal-LM run; with --merged, write merged safetensors and report the F1 delta."""
        from finextract.errors import UserError
        from finextract.console import console

        if not merged:
            raise UserError("nothing to export: pass --merged (adapters are already in RUN_DIR/checkpoints)")
        report = export_merged(run_dir, checkpoint, output, rescore, allow_template_mismatch)
        console.print_json(json.dumps(report))
