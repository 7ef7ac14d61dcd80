"""Synthetic merchant descriptors, labeled by construction.

No public labeled descriptor data exists, so training data is generated: a merchant, a place
and a set of keys to show are drawn, a *format family* (card network line, fixed-width
acceptor field, bank-wrapped repeated memo, ACH entry, wire, e-commerce billing line ...)
lays them out as labeled pieces, and the labels are read off the pieces. See
``docs/generator.md`` for the conventions modelled and their sources.

Public API (others depend on these names): :func:`generate`, :func:`write_splits`,
:data:`DEFAULT_PRESENCE`. A *profile* (``synth/profiles.py``) picks the family mix, the
presence rates and the realism options: ``card`` (the default: US/Canadian card statements)
or ``study`` (the study's original synthetic set).
"""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path

from finextract.errors import InputError
from finextract.records import Record, write_records
from finextract.synth.formats import FAMILIES, OPTIONAL, RENDER, calibrate, draw_plan, make_ctx, plan_scales
from finextract.synth.pieces import KEYS, Piece, labels, verify
from finextract.synth.profiles import DEFAULT_PROFILE, PROFILES, STUDY_PRESENCE, Profile, get_profile, with_options

# Presence of each key (share of records with a non-empty value) in the default profile.
DEFAULT_PRESENCE: dict[str, float] = dict(PROFILES[DEFAULT_PROFILE].presence)

DEFAULT_SPLIT = (0.7642, 0.0834, 0.1524)


def resolve_presence(presence: dict[str, float] | None, profile: "str | Profile" = DEFAULT_PROFILE) -> dict[str, float]:
    """The profile's rates overridden by ``presence``; unknown keys or rates outside [0, 1] are errors."""
    out = dict(get_profile(profile).presence)
    for key, rate in (presence or {}).items():
        if key not in out:
            raise InputError(f"presence: unknown key {key!r}; keys are {list(KEYS)}")
        try:
            rate = float(rate)
        except (TypeError, ValueError):
            raise InputError(f"presence: {key} rate {rate!r} is not a number") from None
        if not 0.0 <= rate <= 1.0:
            raise InputError(f"presence: {key} rate {rate} must be between 0 and 1")
        out[key] = rate
    if out["MERCHANT_NAME"] != 1.0:
        raise InputError("presence: MERCHANT_NAME must be 1.0 (LABELING.md rule 3: every record names a merchant)")
    return out


def _case(pieces: list[Piece], rng: random.Random) -> list[Piece]:
    """Some banks print descriptors in title or lower case; apply it to the whole memo."""
    r = rng.random()
    keep = ("STATE", "COUNTRY", "INTERMEDIARY", "ZIP")
    if r < 0.06:
        return [Piece(p.text if p.key in keep else _title(p.text), p.key) for p in pieces]
    if r < 0.08:
        return [Piece(p.text if p.key in keep else p.text.lower(), p.key) for p in pieces]
    return pieces


def _title(text: str) -> str:
    """Title case that leaves ``'S`` alone (``McClain's``, not ``Mcclain'S``) and keeps spacing."""
    return re.sub(r"\b[A-Za-z]+(?:'[A-Za-z]+)?", lambda m: m.group(0).capitalize(), text)


def generate_one(rng: random.Random, scales: dict[str, float], prof: Profile | None = None) -> Record:
    """One labeled record (with ``family``, ``spans`` and, after a fixed-width cut, ``cut`` in its meta)."""
    prof = prof or PROFILES["study"]
    family, plan = draw_plan(rng, scales, prof.weights, prof.fixed_families, prof.foreign_slot)
    for _ in range(20):
        ctx = make_ctx(rng, family, plan, prof)
        pieces = _case(RENDER[family](ctx), rng)
        problems = verify(pieces)
        text, fields, spans = labels(pieces)
        if not problems and set(k for k, v in fields.items() if v) == plan | {"MERCHANT_NAME"} and text.strip():
            meta = {"family": family, "spans": spans}
            if ctx.cut:
                meta["cut"] = ctx.cut
            return Record(text=text, values=fields, meta=meta)
    raise RuntimeError(f"synth: could not render family {family!r} with keys {sorted(plan)}: {problems}")


def generate(n: int, seed: int = 0, presence: dict[str, float] | None = None,
             profile: "str | Profile" = DEFAULT_PROFILE) -> list[Record]:
    """``n`` merchant records with distinct texts, deterministic for a given ``seed``.

    Every value is an exact substring of its text and equals its first complete occurrence;
    all ten keys are present ("" when absent). ``presence`` overrides per-key rates of
    the profile's presence (fraction of records where the key is non-empty); ``profile``
    is ``card`` (default) or ``study`` (see ``synth/profiles.py``).
    """
    if n < 0:
        raise InputError(f"n must be >= 0, got {n}")
    prof = get_profile(profile)
    scales = plan_scales(resolve_presence(presence, profile), prof)
    rng = random.Random(seed)
    out: list[Record] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 20 * n + 1000:
            raise RuntimeError(f"synth: only {len(out)} distinct texts after {attempts} draws")
        rec = generate_one(rng, scales, prof)
        if rec.text in seen:
            continue
        seen.add(rec.text)
        out.append(rec)
    return out


def split_sizes(n: int, split: tuple[float, float, float]) -> tuple[int, int, int]:
    if len(split) != 3 or any(s < 0 for s in split) or sum(split) <= 0:
        raise InputError(f"split must be three non-negative fractions, got {split}")
    total = sum(split)
    n_train = round(n * split[0] / total)
    n_val = round(n * split[1] / total)
    return n_train, n_val, n - n_train - n_val


def write_splits(out_dir: str | Path, n: int = 8000, seed: int = 0, presence: dict[str, float] | None = None,
                 split: tuple[float, float, float] = DEFAULT_SPLIT,
                 profile: "str | Profile" = DEFAULT_PROFILE) -> dict[str, Path]:
    """Write ``train.jsonl``, ``validation.jsonl``, ``test.jsonl`` under ``out_dir``.

    Texts are distinct before splitting, so no text appears in two splits; the same seed
    gives byte-identical files. Returns ``{"train": path, "validation": path, "test": path}``.
    """
    from finextract.tasks import load_task

    task = load_task("merchant")
    records = generate(n, seed=seed, presence=presence, profile=profile)
    # Dedupe again (cheap, and a guarantee should generate() ever change), then shuffle by a
    # hash of the text so the split is independent of generation order but still seeded.
    uniq = list({r.text: r for r in records}.values())
    uniq.sort(key=lambda r: hashlib.sha256(f"{seed}:{r.text}".encode()).hexdigest())
    a, b, _ = split_sizes(len(uniq), split)
    parts = {"train": uniq[:a], "validation": uniq[a:a + b], "test": uniq[a + b:]}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, recs in parts.items():
        path = out / f"{name}.jsonl"
        write_records(path, recs, task)
        paths[name] = path
    return paths


__all__ = ["generate", "write_splits", "DEFAULT_PRESENCE", "DEFAULT_SPLIT", "DEFAULT_PROFILE", "PROFILES",
           "STUDY_PRESENCE", "resolve_presence", "KEYS", "FAMILIES", "OPTIONAL"]
