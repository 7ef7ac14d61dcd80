"""``finextract quickstart``: generate merchant data, train the default encoder, score it, report.

The one command a new user runs on a fresh machine: no GPU, no hub, no data of their own.
Every flag maps to a field of the encoder run config written to the run directory, so the
quickstart run can be re-run, resumed or changed with ``finextract train RUN/config.yaml``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import typer


def repo_root() -> Path:
    """The checkout holding ``src/finextract`` (editable installs), else the working directory."""
    here = Path(__file__).resolve().parents[4]
    return here if (here / "src" / "finextract").is_dir() else Path.cwd()


def default_pilot_path() -> Path:
    """``$FINEXTRACT_SHARED/data/merchant/pilot_memos.jsonl``, default ``../shared`` beside the repo."""
    shared = Path(os.environ.get("FINEXTRACT_SHARED", repo_root().parent / "shared"))
    return shared / "data" / "merchant" / "pilot_memos.jsonl"


def fast_bf16() -> bool:
    """True when bf16 autocast is fast here: a CUDA GPU, or a CPU with ``avx512_bf16`` / AMX.
    Elsewhere bf16 matrix products are emulated and slower than fp32, so the quickstart keeps fp32."""
    import torch

    if torch.cuda.is_available():
        return True
    checks = [getattr(torch.cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if any(c is not None for c in checks):  # torch's own CPU feature probes (private, so looked up)
        return any(c() for c in checks if c is not None)
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


# Measured on 2 cores (AMD EPYC, avx512_bf16; docs/encoder.md): bf16 autocast trains ~1.5x more steps
# in the same time, and a frozen word-embedding table makes each step cheaper again; 2.6 epochs of batch 16
# fit the 3-minute budget in bf16 (session 5: 165 s end to end), 2.1 in fp32 (scaled, not measured).
EPOCHS = {"bf16": 2.6, "fp32": 2.1}


def write_report(path: Path, cfg: Any, reports: dict[str, Any], timings: dict[str, float], extractor: Any) -> None:
    parts = [
        "# finextract quickstart",
        "",
        f"Encoder `{cfg.model.name_or_path}` fine-tuned on generated merchant descriptors "
        f"({timings.get('train_records', 0)} training records, {cfg.train.epochs:g} epochs, "
        f"max_length {cfg.model.max_length}).",
        "",
        "| stage | seconds |",
        "|---|---:|",
        *[f"| {k} | {v:.1f} |" for k, v in timings.items() if k != "train_records"],
        "",
    ]
    for name, rep in reports.items():
        weak = ", ".join(f"{k} ({f:.3f})" for k, f in rep.weakest_keys())
        parts += [f"## {name} ({rep.n_records} records)", "", rep.markdown_table(), "",
                  f"Weakest keys: {weak or '-'}. Invalid outputs: {rep.n_invalid}.", ""]
    parts += ["## Next", "", f"- `finextract predict {cfg.output_dir} \"SQ *SOME CAFE AUSTIN TX\"`",
              f"- `finextract eval {cfg.output_dir} --data YOUR_LABELED.jsonl`",
              f"- `finextract export-onnx {cfg.output_dir}` for the int8 ONNX Runtime path", ""]
    path.write_text("\n".join(parts), encoding="utf-8")


def register(app: typer.Typer) -> None:
    @app.command("quickstart")
    def quickstart_cmd(
        out: Path = typer.Option(Path("runs/quickstart"), "--out", "-o", help="run directory (config: output_dir)"),
        n: int = typer.Option(6000, "--n", min=20, help="generated descriptors (split 76/8/15 into train/validation/test, "
                              "the study's proportions)"),
        epochs: float | None = typer.Option(None, "--epochs", min=0.01, help="training epochs (config: train.epochs; "
                                            "default 2.6 with bf16, 2.1 with fp32)"),
        precision: str | None = typer.Option(None, "--precision", help="fp32 or bf16 training compute (config: "
                                             "model.precision; default bf16 where this CPU runs it fast: "
                                             "avx512_bf16 or AMX, else fp32)"),
        max_length: int = typer.Option(48, "--max-length", min=8, help="sub-word tokens per descriptor (config: model.max_length)"),
        batch_size: int = typer.Option(16, "--batch-size", min=1, help="config: train.batch_size"),
        lr: float = typer.Option(2e-4, "--lr", help="encoder learning rate (config: train.learning_rate; the new "
                                 "heads and feature embeddings get 10x this)"),
        model: str | None = typer.Option(None, "--model", help="encoder folder or hub id (default: bundled MiniLM-L6)"),
        seed: int = typer.Option(0, "--seed", help="seed for data generation and training"),
        threads: int | None = typer.Option(None, "--threads", help="CPU threads (config: train.num_threads)"),
        data: Path | None = typer.Option(None, "--data", help="use train/validation/test.jsonl from this folder instead of generating"),
        pilot: Path | None = typer.Option(None, "--pilot", help="real labeled memos to score on "
                                          "(default: $FINEXTRACT_SHARED/data/merchant/pilot_memos.jsonl, skipped if absent)"),
        set_: list[str] = typer.Option([], "--set", "-s", help="override any config field, e.g. --set train.checkpoint_every=100"),
    ) -> None:
        """Generate merchant data, train the default encoder on CPU, score it and write a report.

        Scores the generated test split and, when present, the real pilot memos (never trained
        on), prints the per-key tables and writes RUN/quickstart.md. Re-running on an unfinished
        run directory resumes it.
        """
        from rich.console import Console

        from finextract.backends.encoder import EncoderRunConfig, load, train
        from finextract.errors import UserError
        from finextract.config import apply_overrides
        from finextract.records import read_records

        console = Console()
        if precision not in (None, "fp32", "bf16"):
            raise UserError(f"--precision {precision!r}: choose fp32 or bf16")
        precision = precision or ("bf16" if fast_bf16() else "fp32")
        epochs = epochs if epochs is not None else EPOCHS[precision]
        timings: dict[str, Any] = {}
        t0 = time.time()
        if data is not None:
            paths = {s: data / f"{s}.jsonl" for s in ("train", "validation", "test")}
            missing = [str(p) for p in paths.values() if not p.exists()]
            if missing:
                raise UserError(f"--data {data}: missing {', '.join(missing)}")
        else:
            try:
                from finextract.synth import write_splits
            except ImportError as exc:
                raise UserError("the data generator (finextract.synth) is not available in this build; "
                                "pass --data DIR with train/validation/test.jsonl") from exc
            with console.status(f"generating {n} merchant descriptors"):
                paths = write_splits(out / "data", n=n, seed=seed)
            timings["generate data"] = time.time() - t0
            console.print(f"[green]data[/] {n} generated descriptors -> {out / 'data'}")

        pilot_path = pilot or default_pilot_path()
        if pilot is not None and not pilot.exists():
            raise UserError(f"--pilot {pilot}: no such file")
        raw: dict[str, Any] = {
            "backend": "encoder", "task": "merchant", "output_dir": str(out), "seed": seed,
            "data": {"train": str(paths["train"]), "validation": str(paths["validation"]), "test": str(paths["test"]),
                     "eval_sets": {"pilot": str(pilot_path)} if pilot_path.exists() else {}},
            # issue 11: lexical features + pointer heads, decoder chosen on validation, length-bucketed
            # batches; max_length 48 covers generated descriptors (the rest are cut, and counted)
            "model": {"max_length": max_length, "lexical_features": True, "pointer_head": True, "layout_features": True,
                      "decoder": "pointer", "glued_fields": True, "precision": precision,
                      **({"name_or_path": model} if model else {})},
            # one checkpoint, at the end: each scoring pass costs ~3 s of a 3-minute budget. The word-embedding
            # table stays fixed (half of MiniLM's weights; steps ~25% cheaper, and batch 16 then costs per record
            # what batch 32 does): session 5 measured batch 16, lr 2e-4 and frozen embeddings best of 13 recipes
            "train": {"epochs": epochs, "batch_size": batch_size, "learning_rate": lr, "head_learning_rate": 10 * lr,
                      "freeze_embeddings": True, "checkpoint_every": 1_000_000, "num_threads": threads,
                      "length_buckets": True},
        }
        apply_overrides(raw, list(set_))
        try:
            cfg = EncoderRunConfig.model_validate(raw)
        except Exception as exc:  # pydantic ValidationError -> one readable message
            raise UserError(f"invalid quickstart settings:\n{exc}") from exc
        if not pilot_path.exists():
            console.print(f"[yellow]pilot memos not found at {pilot_path}: scoring on generated test data only[/]")

        t1 = time.time()
        summary = train(cfg)
        timings["train"] = time.time() - t1
        timings["train_records"] = summary.get("train_records", 0)

        t2 = time.time()
        extractor = load(str(out), "best")
        reports = {}
        sets = {"generated test": cfg.data.test, **({"real pilot memos": pilot_path} if pilot_path.exists() else {})}
        for name, path in sets.items():
            records = read_records(path, extractor.task, skip_invalid=True)
            report, _ = extractor.evaluate(records)
            reports[name] = report
            console.print(report.rich_table(title=f"{name}: {path}"))
        timings["score"] = time.time() - t2
        timings["total"] = time.time() - t0
        report_path = out / "quickstart.md"
        write_report(report_path, cfg, reports, timings, extractor)
        console.print(f"[bold green]done[/] in {timings['total']:.0f}s: model {out}, report {report_path}")
