"""``finextract report``: one self-contained HTML page and a Markdown file from run directories.

The HTML embeds every figure as inline SVG (no external files, opens offline and can be
mailed); the Markdown links PNG copies next to it. Both contain the same tables, built from
:func:`finextract.report.rows.collect_rows`, and recommendations computed by
:func:`finextract.report.tiers.recommend` from those rows and the configured tiers.
"""

from __future__ import annotations

import html
import io
import json
import time
from pathlib import Path
from typing import Any

from finextract.errors import InputError
from finextract.report.figures import FIGURES
from finextract.report.rows import collect_rows, fmt, write_table
from finextract.report.tiers import Recommendation, Tier, pareto_frontier, recommend
from finextract.report.config import ReportConfig

TABLE_COLS = [("name", "run"), ("status", "status"), ("model", "model"), ("params", "params"),
              ("prompt_style", "prompt"), ("template", "template"), ("lora_rank", "LoRA r"),
              ("best_step", "best step"), ("f1", "F1"), ("precision", "P"), ("recall", "R"),
              ("macro_f1", "macro F1"), ("invalid_rate", "invalid"), ("samples_per_s", "texts/s"),
              ("p50_ms", "p50 ms"), ("peak_mem_mb", "peak MB"), ("train_seconds", "train s"), ("pareto", "Pareto")]


def mark_pareto(rows: list[dict[str, Any]]) -> None:
    """Set ``row['pareto']`` to 'frontier' / 'dominated' (rows with F1 and latency only)."""
    pts = [r for r in rows if r["status"] == "ok" and r.get("f1") is not None and r.get("p50_ms")]
    front = set(pareto_frontier([(r["p50_ms"], r["f1"]) for r in pts]))
    for r in rows:
        r["pareto"] = None
    for i, r in enumerate(pts):
        r["pareto"] = "frontier" if i in front else "dominated"


def _tier_rule(t: Tier) -> str:
    parts = []
    if t.min_f1 is not None:
        parts.append(f"F1 ≥ {t.min_f1}")
    if t.max_f1_drop is not None:
        parts.append(f"F1 ≥ best − {t.max_f1_drop}")
    if t.max_p50_ms is not None:
        parts.append(f"p50 ≤ {t.max_p50_ms} ms")
    if t.min_samples_per_s is not None:
        parts.append(f"≥ {t.min_samples_per_s} texts/s")
    if t.max_memory_mb is not None:
        parts.append(f"peak memory ≤ {t.max_memory_mb} MB")
    if t.max_invalid_rate is not None:
        parts.append(f"invalid ≤ {t.max_invalid_rate:.1%}")
    best = {"f1": "highest F1", "latency": "lowest p50", "throughput": "highest texts/s", "memory": "least memory"}
    return (", ".join(parts) or "no constraint") + f"; pick {best[t.objective]}"


def _rec_rows(recs: list[Recommendation]) -> list[list[str]]:
    out = []
    for r in recs:
        p, n, m = r.pick, r.runner_up, r.margin
        out.append([
            r.tier.name, _tier_rule(r.tier),
            p["name"] if p else "— none —",
            fmt(p.get("f1"), "f1") if p else "-", fmt(p.get("p50_ms"), "p50_ms") if p else "-",
            fmt(p.get("samples_per_s"), "samples_per_s") if p else "-",
            n["name"] if n else "-",
            (f"ΔF1 {m['f1']:+.4f}" if "f1" in m else "") +
            (f", Δp50 {m['p50_ms']:+.2f} ms" if "p50_ms" in m else "") +
            (f", Δtexts/s {m['samples_per_s']:+.0f}" if "samples_per_s" in m else "") or "-",
            f"{r.n_eligible}/{r.n_eligible + len(r.rejected)}",
        ])
    return out


REC_HEAD = ["tier", "constraints", "recommended run", "F1", "p50 ms", "texts/s", "runner-up", "margin (pick − runner-up)",
            "eligible"]


def _md_table(head: list[str], body: list[list[str]]) -> str:
    esc = [[c.replace("|", "\\|") for c in row] for row in body]
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in esc])


def _html_table(head: list[str], body: list[list[str]], row_classes: list[str] | None = None) -> str:
    h = "".join(f"<th>{html.escape(c)}</th>" for c in head)
    trs = []
    for i, row in enumerate(body):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        trs.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{h}</tr></thead><tbody>{''.join(trs)}</tbody></table>"


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    text = buf.getvalue()
    return text[text.find("<svg"):]


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1240px;color:#222;padding:0 16px}
h1{margin-bottom:4px} h2{margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:12px;margin:8px 0} th,td{border:1px solid #ccc;padding:2px 5px;text-align:right}
td:first-child{word-break:break-all;max-width:260px} .scroll{overflow-x:auto}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
tr.failed td{color:#b00} tr.dominated td{color:#777} tr.frontier td:first-child{font-weight:bold}
.meta{color:#666;font-size:13px} .fig svg{width:100%;max-width:860px;height:auto} .rec{font-size:15px}
"""


def build_report(runs_dir: Path, out_dir: Path, config: ReportConfig | None = None) -> dict[str, Path]:
    """Collect every run under ``runs_dir`` and write report.html, report.md, PNGs, tables."""
    import matplotlib.pyplot as plt

    config = config or ReportConfig()
    runs_dir, out_dir = Path(runs_dir), Path(out_dir)
    rows = collect_rows(runs_dir)
    if not rows:
        raise InputError(f"{runs_dir}: no run directories found (folders with a config.yaml)")
    mark_pareto(rows)
    # best first: the table reads as a ranking; unfinished runs last
    rows.sort(key=lambda r: (r["status"] != "ok", -(r.get("f1") or 0.0), r["name"]))
    recs = recommend(rows, config.tiers)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(exist_ok=True)
    write_table(rows, out_dir)
    (out_dir / "recommendations.json").write_text(json.dumps([
        {"tier": r.tier.model_dump(), "pick": r.pick and r.pick["name"], "runner_up": r.runner_up and r.runner_up["name"],
         "margin": r.margin, "n_eligible": r.n_eligible, "rejected": r.rejected, "summary": r.summary()}
        for r in recs], indent=2), encoding="utf-8")

    cols = [(k, lab) for k, lab in TABLE_COLS if k in ("name", "status", "f1") or any(r.get(k) is not None for r in rows)]
    body = [[fmt(r.get(k), k) for k, _ in cols] for r in rows]
    classes = ["failed" if r["status"] == "failed" else (r.get("pareto") or "") for r in rows]
    head = [label for _, label in cols]
    n_ok = sum(r["status"] == "ok" for r in rows)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    meta = f"{len(rows)} runs ({n_ok} finished) under {runs_dir}; generated {stamp}"

    md = [f"# {config.title}", "", meta, "", "## Recommendations", "",
          _md_table(REC_HEAD, _rec_rows(recs)), ""]
    md += [f"- {r.summary()}" for r in recs]
    md += ["", "## Results", "", _md_table(head, body), ""]
    h = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(config.title)}</title>",
         f"<style>{CSS}</style></head><body>", f"<h1>{html.escape(config.title)}</h1>",
         f"<p class='meta'>{html.escape(meta)}</p>", "<h2>Recommendations</h2>",
         _html_table(REC_HEAD, _rec_rows(recs)), "<ul class='rec'>"]
    h += [f"<li>{html.escape(r.summary()).replace('**', '')}</li>" for r in recs]
    h += ["</ul>", "<h2>Results</h2>",
          "<p class='meta'>F1/P/R: micro, on the validation set, best checkpoint. texts/s: batched; p50: one text "
          "per call. Bold: on the accuracy-latency frontier; grey: dominated; red: failed.</p>",
          f"<div class='scroll'>{_html_table(head, body, classes)}</div>"]
    failed = [r for r in rows if r["status"] == "failed"]
    if failed:
        md += ["## Failed runs", ""] + [f"- `{r['name']}`: {r['error']} (see `{r['run_dir']}/error.txt`)" for r in failed] + [""]
        h += ["<h2>Failed runs</h2><ul>"] + [f"<li><code>{html.escape(r['name'])}</code>: {html.escape(str(r['error']))}</li>"
                                            for r in failed] + ["</ul>"]
    vals = [(r["name"], v) for r in rows for v in r.get("validations") or []]
    for key, title, fn in FIGURES:
        fig = fn(rows)
        md += [f"## {title}", ""]
        h += [f"<h2>{html.escape(title)}</h2>"]
        if key == "endpoint" and vals:
            vhead = ["run", "endpoint", "offline F1", "endpoint F1", "Δ points", "agreement", "passed", "n"]
            vbody = [[n, str(v.get("url")), fmt(v.get("offline_micro_f1"), "f1"), fmt(v.get("endpoint_micro_f1"), "f1"),
                      fmt(v.get("delta_points")), fmt(v.get("agreement"), "f1"),
                      "-" if v.get("passed") is None else ("yes" if v["passed"] else "NO"), str(v.get("n"))]
                     for n, v in vals]
            md += [_md_table(vhead, vbody), ""]
            h += [_html_table(vhead, vbody)]
        if fig is None:
            why = {"prompt_styles": "no run in this folder has a prompt style (no causal_lm runs)",
                   "endpoint": "no run has validations/*.json (finextract validate-endpoint)"}.get(key, "nothing to draw")
            md += [f"_{why}_", ""]
            h += [f"<p class='meta'>{html.escape(why)}</p>"]
            continue
        png = fig_dir / f"{key}.png"
        fig.savefig(png, dpi=100)
        h += [f"<div class='fig'>{_svg(fig)}</div>"]
        plt.close(fig)
        md += [f"![{title}](figures/{png.name})", ""]
    h += ["</body></html>"]
    html_path, md_path = out_dir / "report.html", out_dir / "report.md"
    html_path.write_text("\n".join(h), encoding="utf-8")
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")
    return {"html": html_path, "markdown": md_path, "csv": out_dir / "results.csv", "json": out_dir / "results.json"}
