"""Encoder-only commands: ``finextract export-onnx``."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("export-onnx")
    def export_onnx_cmd(
        run_dir: Path = typer.Argument(..., help="encoder run directory"),
        checkpoint: str = typer.Option("best", help="'best', 'last', 'step-N' or a checkpoint path"),
        quantize: bool = typer.Option(True, "--quantize/--no-quantize", help="also write a dynamic int8 model.int8.onnx"),
        check: Path | None = typer.Option(None, "--check", help="labeled JSONL: score PyTorch and ONNX on it and show the F1 change"),
    ) -> None:
        """Export an encoder checkpoint to ONNX (fp32 + dynamic int8) for ONNX Runtime on CPU.

        Afterwards `load(RUN_DIR, runtime="onnx")` (or the serve/benchmark tools) use the
        int8 model; --check shows what quantisation costs in F1 before you switch.
        """
        from finextract.backends.encoder import EncoderRunConfig, load
        from finextract.backends.encoder.onnx import export_checkpoint
        from finextract.errors import UserError
        from finextract.console import console
        from finextract.rundir import RunDir

        run = RunDir(run_dir)
        cfg = run.read_config()
        if cfg.get("backend") != "encoder":
            raise UserError(f"{run_dir}: export-onnx needs an encoder run (this one is {cfg.get('backend')!r})")
        ecfg = EncoderRunConfig.model_validate(cfg)
        ckpt = run.resolve_checkpoint(checkpoint)
        with console.status(f"exporting {ckpt}"):
            paths = export_checkpoint(ckpt, ecfg, ecfg.load_task(), quantize=quantize)
        for kind, path in paths.items():
            console.print(f"{kind}: {path} ({path.stat().st_size / 2**20:.1f} MB)")
        if check is not None:
            from finextract.records import read_records

            records = read_records(check, ecfg.load_task(), skip_invalid=True)
            variants = [("pytorch", {}), ("onnx fp32", {"runtime": "onnx", "quantized": False})]
            if quantize:
                variants.append(("onnx int8", {"runtime": "onnx", "quantized": True}))
            for name, kw in variants:
                report, _ = load(str(run_dir), checkpoint, **kw).evaluate(records)
                console.print(f"{name:10s} micro-F1 {report.micro.f1:.4f}  macro-F1 {report.macro_f1:.4f}")
