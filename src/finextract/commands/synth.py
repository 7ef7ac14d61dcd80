"""``finextract data synth``: write synthetic, labeled merchant descriptors as train/validation/test."""

from __future__ import annotations

from pathlib import Path

import typer

from finextract.errors import InputError


def _parse_presence(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        key, sep, rate = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--presence {item!r}: expected KEY=RATE, e.g. PHONE=0.3")
        try:
            out[key.strip().upper()] = float(rate)
        except ValueError:
            raise InputError(f"--presence {item!r}: rate {rate!r} is not a number") from None
    return out


def register(app: typer.Typer) -> None:
    from finextract.commands import data_app

    @data_app.command("synth")
    def synth(
        out: Path = typer.Option(..., "--out", "-o", help="output folder for train/validation/test .jsonl"),
        task: str = typer.Option("merchant", "--task", "-t", help="only 'merchant' has a generator"),
        n: int = typer.Option(8000, "--n", min=1, help="number of distinct records over all three splits"),
        seed: int = typer.Option(0, "--seed", help="same seed, byte-identical files"),
        profile: str = typer.Option(
            "card", "--profile",
            help="family mix and key rates: 'card' (default: US/Canadian card statements, plain acceptor lines "
                 "with 22/25-character name fields, STREET 5%) or 'study' (the study's synthetic set, STREET 31%)"),
        presence: list[str] = typer.Option(
            [], "--presence", "-p",
            help="KEY=RATE: share of records where KEY is non-empty (repeatable), e.g. -p PHONE=0.3; "
                 "defaults come from --profile (card: STATE 0.80, CITY 0.62, STREET 0.05 ...)"),
    ) -> None:
        """Generate synthetic bank/card transaction descriptors, labeled by construction.

        The descriptors imitate card-network, bank-wrapped, ACH, wire and e-commerce formats
        (see docs/generator.md). Texts are distinct across splits. Prints counts, the format
        mix and the measured presence rate of every key.
        """
        from collections import Counter

        from rich.progress import Progress
        from rich.table import Table

        from finextract.errors import UserError
        from finextract.console import console
        from finextract.records import read_records
        from finextract.synth import DEFAULT_PRESENCE, PROFILES, resolve_presence, write_splits
        from finextract.tasks import load_task

        if task != "merchant":
            raise UserError(f"--task {task!r}: the synthetic generator only exists for the 'merchant' task "
                            "(descriptor extraction); use real labeled data for other tasks")
        if profile not in PROFILES:
            raise UserError(f"--profile {profile!r}: unknown generator profile; choose one of {sorted(PROFILES)}")
        rates = resolve_presence(_parse_presence(presence), profile)
        with Progress(console=console, transient=True) as progress:
            progress.add_task(f"generating {n} descriptors", total=None)
            paths = write_splits(out, n=n, seed=seed, presence=rates, profile=profile)
        t = load_task("merchant")
        table = Table(title=f"synthetic merchant data (profile {profile}, seed {seed})")
        table.add_column("split")
        table.add_column("records", justify="right")
        table.add_column("file")
        all_recs = []
        for name, path in paths.items():
            recs = read_records(path, t)
            all_recs += recs
            table.add_row(name, str(len(recs)), str(path))
        console.print(table)
        pres = Table(title="key presence (share of records with a value)")
        for col in ("key", "target", "measured"):
            pres.add_column(col, justify="right" if col != "key" else "left")
        for key in DEFAULT_PRESENCE:
            got = sum(1 for r in all_recs if r.values[key]) / max(1, len(all_recs))
            pres.add_row(key, f"{rates[key]:.3f}", f"{got:.3f}")
        console.print(pres)
        fam = Counter(r.meta.get("family", "?") for r in all_recs)
        console.print("format mix: " + ", ".join(f"{k} {v / len(all_recs):.1%}" for k, v in fam.most_common()))
