"""Reports over run directories: results table, figures, Pareto frontier, tier recommendations."""

from finextract.report.tiers import DEFAULT_TIERS, Recommendation, Tier, pareto_frontier, recommend

__all__ = ["DEFAULT_TIERS", "Recommendation", "Tier", "pareto_frontier", "recommend", "build_report"]


def build_report(*args, **kwargs):
    """Lazy wrapper (matplotlib is imported only when a report is drawn)."""
    from finextract.report.render import build_report as _build

    return _build(*args, **kwargs)
