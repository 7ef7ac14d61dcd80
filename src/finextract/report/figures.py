"""The report's matplotlib figures. Each function takes result rows and returns a Figure
(or ``None`` when the rows hold nothing to draw, e.g. no run has a prompt style)."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from finextract.report.tiers import pareto_frontier  # noqa: E402

_COLORS = {"crf": "tab:green", "encoder": "tab:blue", "causal_lm": "tab:red", "endpoint": "tab:purple"}


def _ok(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["status"] == "ok" and r.get("f1") is not None]


def _color(r: dict[str, Any]) -> str:
    return _COLORS.get(str(r.get("backend")), "tab:gray")


def _legend_backends(ax, rows) -> None:
    for b in sorted({str(r.get("backend")) for r in rows}):
        ax.scatter([], [], color=_COLORS.get(b, "tab:gray"), label=b)
    ax.legend(loc="lower right", fontsize=8)


def f1_vs_params(rows: list[dict[str, Any]]) -> Figure | None:
    pts = [r for r in _ok(rows) if r.get("params")]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    labelled: set[tuple[str, float]] = set()
    for r in pts:
        ax.scatter(r["params"], r["f1"], color=_color(r), s=40, alpha=0.8)
        key = (str(r.get("model")), round(r["f1"], 2))
        if key not in labelled:  # one label per model and F1 level: grids share a model many times
            labelled.add(key)
            ax.annotate(str(r.get("model")), (r["params"], r["f1"]), fontsize=7, xytext=(4, 3),
                        textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("parameters (log; CRF: feature weights)")
    ax.set_ylabel("validation micro-F1")
    ax.set_ylim(-0.03, 1.05)
    ax.set_title("F1 vs model size")
    _legend_backends(ax, pts)
    fig.tight_layout()
    return fig


def f1_vs_step(rows: list[dict[str, Any]]) -> Figure | None:
    curves = [r for r in rows if r.get("curve")]
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in curves:
        xs, ys = zip(*r["curve"])
        ax.plot(xs, ys, "o-", ms=3, label=r["name"], color=None)
    ax.set_xlabel("training step (CRF: L-BFGS iteration)")
    ax.set_ylabel("validation micro-F1")
    ax.set_ylim(0, 1.02)
    ax.set_title("F1 per checkpoint")
    ax.legend(fontsize=7, loc="center right", ncol=2 if len(curves) > 6 else 1)
    fig.tight_layout()
    return fig


def prompt_styles(rows: list[dict[str, Any]]) -> Figure | None:
    pts = [r for r in _ok(rows) if r.get("prompt_style")]
    if not pts:
        return None
    groups: dict[tuple[str, str], list[float]] = {}
    for r in pts:
        groups.setdefault((r["prompt_style"], r.get("template") or "default"), []).append(r["f1"])
    styles = sorted({s for s, _ in groups})
    templates = sorted({t for _, t in groups})
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / len(templates)
    for j, t in enumerate(templates):
        xs, best, mean = [], [], []
        for i, s in enumerate(styles):
            vals = groups.get((s, t))
            if vals:
                xs.append(i + j * width)
                best.append(max(vals))
                mean.append(sum(vals) / len(vals))
        ax.bar(xs, best, width=width, label=f"{t} (best)", alpha=0.85)
        ax.scatter(xs, mean, color="black", marker="_", s=200, zorder=3)
    ax.set_xticks([i + width * (len(templates) - 1) / 2 for i in range(len(styles))], styles)
    ax.set_ylabel("validation micro-F1")
    ax.set_ylim(0, 1.02)
    ax.set_title("prompt style x chat template (bar: best run, tick: mean)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def per_key_heatmap(rows: list[dict[str, Any]]) -> Figure | None:
    pts = [r for r in _ok(rows) if r.get("per_key_f1")]
    if not pts:
        return None
    keys: list[str] = []
    for r in pts:
        keys += [k for k in r["per_key_f1"] if k not in keys]
    data = [[r["per_key_f1"].get(k, float("nan")) for k in keys] for r in pts]
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(keys) + 3), 0.45 * len(pts) + 1.8))
    im = ax.imshow(data, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(keys)), keys, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(pts)), [r["name"] for r in pts], fontsize=8)
    for i, row in enumerate(data):
        for j, v in enumerate(row):
            if v == v:
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if v < 0.6 else "black")
    fig.colorbar(im, ax=ax, fraction=0.03, label="F1")
    ax.set_title("per-key F1 (keys absent from gold and predictions left blank)")
    fig.tight_layout()
    return fig


def pareto(rows: list[dict[str, Any]]) -> Figure | None:
    pts = [r for r in _ok(rows) if r.get("p50_ms")]
    if not pts:
        return None
    front = set(pareto_frontier([(r["p50_ms"], r["f1"]) for r in pts]))
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, r in enumerate(pts):
        on = i in front
        ax.scatter(r["p50_ms"], r["f1"], color=_color(r), marker="o" if on else "x", s=50 if on else 35,
                   alpha=1.0 if on else 0.5)
        if on:  # dominated runs are named in the table; labelling them too clutters the plot
            ax.annotate(r["name"], (r["p50_ms"], r["f1"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    fr = sorted((pts[i]["p50_ms"], pts[i]["f1"]) for i in front)
    ax.step([x for x, _ in fr], [y for _, y in fr], where="post", color="black", lw=1, ls="--", label="frontier")
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency per text, ms (log)")
    ax.set_ylabel("validation micro-F1")
    ax.set_ylim(-0.03, 1.05)
    ax.set_title("accuracy-latency Pareto frontier (x = dominated)")
    _legend_backends(ax, pts)
    fig.tight_layout()
    return fig


def endpoint_vs_offline(rows: list[dict[str, Any]]) -> Figure | None:
    vals = [(r["name"], v) for r in rows for v in r.get("validations") or []]
    if not vals:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(vals) + 1.8))
    labels = [f"{n} @ {v.get('url', '?')}" for n, v in vals]
    ys = range(len(vals))
    ax.barh([y + 0.2 for y in ys], [v["offline_micro_f1"] for _, v in vals], height=0.4, label="offline")
    ax.barh([y - 0.2 for y in ys], [v["endpoint_micro_f1"] for _, v in vals], height=0.4, label="endpoint")
    ax.set_yticks(list(ys), labels, fontsize=7)
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("micro-F1")
    ax.set_title("offline vs served endpoint")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


FIGURES = [
    ("pareto", "Accuracy-latency Pareto frontier", pareto),
    ("f1_vs_params", "F1 vs parameter count", f1_vs_params),
    ("f1_vs_step", "F1 vs training step", f1_vs_step),
    ("prompt_styles", "Prompt-style comparison", prompt_styles),
    ("per_key", "Per-key F1", per_key_heatmap),
    ("endpoint", "Offline vs endpoint F1", endpoint_vs_offline),
]
