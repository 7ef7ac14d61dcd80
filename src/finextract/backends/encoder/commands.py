"""Encoder-only commands: ``finextract export-onnx``."""

from __future__ import annotations

from pathlib import Path

import typer

KEEP_HELP = ("comma-separated: embeddings, head, first, last (transformer layers), ffn_out (each layer's FFN "
             "down-projection), attention_products "
             "(the two activation x activation MatMuls of attention); default embeddings,head,attention_products")


def register(app: typer.Typer) -> None:
    @app.command("export-onnx")
    def export_onnx_cmd(
        run_dir: Path = typer.Argument(..., help="encoder run directory"),
        checkpoint: str = typer.Option("best", help="'best', 'last', 'step-N' or a checkpoint path"),
        int8: list[str] = typer.Option([], "--int8", help="int8 candidate METHOD[:PARTS] (repeatable): method static "
                                       "(QDQ, calibrated) or dynamic; PARTS kept fp32 (" + KEEP_HELP + "); "
                                       "default: dynamic, dynamic:embeddings,head,attention_products,first,last, "
                                       "static:(same); 'none' for fp32 only"),
        heldout: Path | None = typer.Option(None, help="labeled held-out generated JSONL to measure the F1 delta on "
                                            "(default: the run's data.test, else data.validation)"),
        pilot: Path | None = typer.Option(None, help="real labeled memos (default: the run's eval_sets.pilot, else "
                                          "$FINEXTRACT_SHARED/data/merchant/pilot_memos.jsonl when present)"),
        check: list[Path] = typer.Option([], "--check", help="more labeled JSONL sets to score on (repeatable)"),
        calib: Path | None = typer.Option(None, help="texts (JSONL) to calibrate int8 on (default: the run's data.train)"),
        calib_n: int = typer.Option(512, min=16, help="calibration texts"),
        tolerance: float = typer.Option(0.5, min=0, help="largest |micro-F1 change| in points a variant may have "
                                        "on every set to be chosen"),
        threads: int = typer.Option(2, min=1, help="ORT / torch threads while measuring"),
    ) -> None:
        """Export an encoder checkpoint to ONNX Runtime variants and keep the fastest accurate one.

        Writes CHECKPOINT/onnx/: model.opt.onnx (fp32, graph-optimised), model.int8-*.onnx (int8
        candidates with the sensitive parts in fp32), meta.json. Every variant is scored against the
        PyTorch fp32 model on held-out generated data and on the pilot memos when present, and
        timed here; meta.json records each F1 delta, the differing records and which variant
        `--runtime onnx` (predict, serve, batch) uses: the fastest within --tolerance points.
        """
        from rich.table import Table

        from finextract.backends.encoder import EncoderRunConfig
        from finextract.backends.encoder.onnx_select import (EvalSet, Int8Spec, calibration_texts,
                                                             export_fast_path, summary_rows)
        from finextract.console import console
        from finextract.errors import UserError
        from finextract.records import read_records, read_texts
        from finextract.rundir import RunDir

        run = RunDir(run_dir)
        cfg = run.read_config()
        if cfg.get("backend") != "encoder":
            raise UserError(f"{run_dir}: export-onnx needs an encoder run (this one is {cfg.get('backend')!r})")
        ecfg = EncoderRunConfig.model_validate(cfg)
        task = ecfg.load_task()
        sets = []
        held = heldout or ecfg.data.test or ecfg.data.validation
        if held:
            sets.append(EvalSet("generated", str(held), read_records(held, task, skip_invalid=True)))
        pilot_path = pilot or (ecfg.data.eval_sets or {}).get("pilot")
        if pilot_path is None:
            from finextract.backends.encoder.quickstart import default_pilot_path

            pilot_path = default_pilot_path()
        if Path(pilot_path).exists():
            sets.append(EvalSet("pilot", str(pilot_path), read_records(pilot_path, task, skip_invalid=True)))
        elif pilot is not None:
            raise UserError(f"--pilot {pilot}: no such file")
        for c in check:
            sets.append(EvalSet(c.stem, str(c), read_records(c, task, skip_invalid=True)))
        if not sets:
            raise UserError("no labeled set to measure the F1 delta on: the run has no data.test/validation; "
                            "pass --heldout FILE")
        from finextract.backends.encoder.onnx_select import DEFAULT_INT8

        try:
            specs = [] if int8 == ["none"] else ([Int8Spec.parse(x) for x in int8] if int8 else list(DEFAULT_INT8))
        except ValueError as exc:
            raise UserError(str(exc)) from exc
        if len({s.name for s in specs}) != len(specs):
            raise UserError(f"--int8: two candidates with the same name {[s.name for s in specs]}")
        exclude = {r.text for s in sets for r in s.records}
        texts = None
        if any(s.method == "static" for s in specs):
            texts = (read_texts(calib)[:calib_n] if calib else calibration_texts(ecfg, calib_n, exclude))
        meta = export_fast_path(run_dir, checkpoint, ecfg, sets, texts, specs,
                                tolerance=tolerance, threads=threads, log=lambda m: console.print(m))
        table = Table(title=f"ONNX variants of {meta['checkpoint']} (vs PyTorch fp32; tolerance {tolerance} points)")
        for col in ("variant", "desc/s", "p50 ms", "micro-F1 change (points)", ""):
            table.add_column(col)
        for row in summary_rows(meta):
            table.add_row(*row)
        console.print(table)
        console.print(f"`--runtime onnx` will use [bold]{meta['chosen']}[/] "
                      f"({Path(meta['checkpoint']) / 'onnx' / meta['variants'][meta['chosen']]['file']})")
