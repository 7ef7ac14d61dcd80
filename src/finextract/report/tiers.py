"""Deployment tiers and the pure decision functions behind the report's recommendations.

A tier is a set of constraints (an F1 floor, absolute or relative to the best run; a
latency or throughput limit; a memory ceiling; an invalid-output ceiling) plus an
objective to optimise among the runs that meet them. Nothing here is hand-written per
sweep: give it rows, get the pick, the runner-up and the margin between them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Objective = Literal["f1", "latency", "throughput", "memory"]


class Tier(BaseModel):
    """Constraints + objective. Unset constraints do not apply."""

    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    objective: Objective = Field("f1", description="what to optimise among runs meeting the constraints")
    min_f1: float | None = Field(None, ge=0, le=1, description="absolute micro-F1 floor")
    max_f1_drop: float | None = Field(None, ge=0, le=1, description="F1 floor relative to the best run (0.02 = within 2 points)")
    max_p50_ms: float | None = Field(None, gt=0, description="single-text p50 latency ceiling (ms)")
    min_samples_per_s: float | None = Field(None, gt=0, description="batched throughput floor (texts/s)")
    max_memory_mb: float | None = Field(None, gt=0, description="peak inference memory ceiling (MB)")
    max_invalid_rate: float | None = Field(None, ge=0, le=1, description="invalid-output rate ceiling")


DEFAULT_TIERS: list[Tier] = [
    Tier(name="maximum accuracy", objective="f1",
         description="the most accurate run, whatever it costs"),
    Tier(name="balanced", objective="throughput", max_f1_drop=0.02,
         description="the fastest run within 2 F1 points of the best"),
    Tier(name="latency-critical", objective="f1", max_p50_ms=20.0,
         description="the most accurate run answering one text in under 20 ms (p50)"),
]


def _num(row: dict[str, Any], key: str) -> float | None:
    v = row.get(key)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return float(v)


def pareto_frontier(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points, cheapest first. A point is ``(cost, value)``.

    Point *i* is dominated when some *j* costs no more and is worth no less, and is strictly
    better in one of the two. Identical points do not dominate each other.
    """
    keep = []
    for i, (ci, vi) in enumerate(points):
        dominated = any(
            cj <= ci and vj >= vi and (cj < ci or vj > vi)
            for j, (cj, vj) in enumerate(points) if j != i
        )
        if not dominated:
            keep.append(i)
    return sorted(keep, key=lambda i: (points[i][0], -points[i][1]))


def _violations(row: dict[str, Any], tier: Tier, best_f1: float) -> list[str]:
    out = []
    f1 = _num(row, "f1")
    if f1 is None:
        return ["no F1"]
    if tier.min_f1 is not None and f1 < tier.min_f1:
        out.append(f"F1 {f1:.4f} < {tier.min_f1}")
    if tier.max_f1_drop is not None and f1 < best_f1 - tier.max_f1_drop - 1e-12:
        out.append(f"F1 {f1:.4f} more than {tier.max_f1_drop} below best {best_f1:.4f}")
    checks = (("p50_ms", tier.max_p50_ms, "max"), ("samples_per_s", tier.min_samples_per_s, "min"),
              ("peak_mem_mb", tier.max_memory_mb, "max"), ("invalid_rate", tier.max_invalid_rate, "max"))
    for key, limit, kind in checks:
        if limit is None:
            continue
        v = _num(row, key)
        if v is None:
            out.append(f"{key} not measured")
        elif (kind == "max" and v > limit) or (kind == "min" and v < limit):
            out.append(f"{key} {v:.4g} {'>' if kind == 'max' else '<'} {limit}")
    return out


def _sort_key(row: dict[str, Any], objective: Objective) -> tuple:
    """Smaller is better. Ties fall back to F1, then latency, then name (deterministic)."""
    f1 = _num(row, "f1") or 0.0
    lat = _num(row, "p50_ms")
    thr = _num(row, "samples_per_s")
    mem = _num(row, "peak_mem_mb")
    inf = float("inf")
    primary = {
        "f1": -f1,
        "latency": lat if lat is not None else inf,
        "throughput": -thr if thr is not None else inf,
        "memory": mem if mem is not None else inf,
    }[objective]
    return (primary, -f1, lat if lat is not None else inf, str(row.get("name", "")))


@dataclass
class Recommendation:
    tier: Tier
    pick: dict[str, Any] | None
    runner_up: dict[str, Any] | None
    n_eligible: int
    margin: dict[str, float] = field(default_factory=dict)
    rejected: dict[str, list[str]] = field(default_factory=dict)

    def summary(self) -> str:
        """One sentence for the report, built only from the numbers."""
        if self.pick is None:
            return f"{self.tier.name}: no run meets the constraints ({len(self.rejected)} rejected)."
        p = self.pick
        s = (f"{self.tier.name}: **{p['name']}** (F1 {p['f1']:.4f}, p50 {_fmt(p.get('p50_ms'))} ms, "
             f"{_fmt(p.get('samples_per_s'), 0)} texts/s)")
        if self.runner_up is None:
            return s + f"; the only eligible run of {self.n_eligible + len(self.rejected)}."
        m = self.margin
        return (s + f"; next: {self.runner_up['name']} (ΔF1 {m.get('f1', 0):+.4f}, Δp50 {_fmt(m.get('p50_ms'), 2, True)} ms, "
                f"Δthroughput {_fmt(m.get('samples_per_s'), 0, True)} texts/s).")


def _fmt(v: Any, digits: int = 2, signed: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def recommend(rows: Sequence[dict[str, Any]], tiers: Sequence[Tier] = DEFAULT_TIERS) -> list[Recommendation]:
    """For each tier: the best run meeting its constraints, the runner-up, and the margin.

    Rows are result-table rows (``name``, ``f1``, ``p50_ms``, ``samples_per_s``,
    ``peak_mem_mb``, ``invalid_rate``, ``status``); failed or unscored rows never qualify.
    The margin is pick minus runner-up for F1, p50 latency and throughput.
    """
    ok = [r for r in rows if r.get("status", "ok") == "ok" and _num(r, "f1") is not None]
    best_f1 = max((_num(r, "f1") or 0.0 for r in ok), default=0.0)
    out = []
    for tier in tiers:
        eligible, rejected = [], {}
        for r in ok:
            why = _violations(r, tier, best_f1)
            if why:
                rejected[str(r.get("name"))] = why
            else:
                eligible.append(r)
        eligible.sort(key=lambda r: _sort_key(r, tier.objective))
        pick = eligible[0] if eligible else None
        nxt = eligible[1] if len(eligible) > 1 else None
        margin = {}
        if pick and nxt:
            for key in ("f1", "p50_ms", "samples_per_s", "peak_mem_mb"):
                a, b = _num(pick, key), _num(nxt, key)
                if a is not None and b is not None:
                    margin[key] = a - b
        out.append(Recommendation(tier, pick, nxt, len(eligible), margin, rejected))
    return out
