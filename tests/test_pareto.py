"""Pareto frontier and tier recommendations on hand-made points (pure functions)."""

from __future__ import annotations

import pytest

from finextract.report.tiers import DEFAULT_TIERS, Tier, pareto_frontier, recommend


def test_frontier_hand_made_points():
    # (latency ms, F1): c is dominated by b (slower and worse), e by a (same cost, worse)
    pts = [(1.0, 0.70), (5.0, 0.85), (8.0, 0.80), (20.0, 0.90), (1.0, 0.60)]
    assert pareto_frontier(pts) == [0, 1, 3]


def test_frontier_ties_and_edge_cases():
    assert pareto_frontier([]) == []
    assert pareto_frontier([(3.0, 0.5)]) == [0]
    # identical points do not dominate each other
    assert pareto_frontier([(2.0, 0.8), (2.0, 0.8), (3.0, 0.7)]) == [0, 1]
    # a point strictly better on both axes dominates all others
    assert pareto_frontier([(5.0, 0.5), (1.0, 0.9), (3.0, 0.7)]) == [1]


def rows():
    return [
        {"name": "big-llm", "f1": 0.93, "p50_ms": 180.0, "samples_per_s": 12.0, "peak_mem_mb": 9000, "invalid_rate": 0.01},
        {"name": "small-llm", "f1": 0.92, "p50_ms": 60.0, "samples_per_s": 40.0, "peak_mem_mb": 3000, "invalid_rate": 0.0},
        {"name": "encoder", "f1": 0.90, "p50_ms": 8.0, "samples_per_s": 900.0, "peak_mem_mb": 600, "invalid_rate": 0.0},
        {"name": "crf", "f1": 0.84, "p50_ms": 0.4, "samples_per_s": 2300.0, "peak_mem_mb": 250, "invalid_rate": 0.0},
        {"name": "broken", "f1": None, "status": "failed"},
        {"name": "crashed-but-scored", "f1": 0.99, "status": "failed", "p50_ms": 1.0},
    ]


def test_default_tiers_pick_from_data():
    recs = {r.tier.name: r for r in recommend(rows(), DEFAULT_TIERS)}
    acc = recs["maximum accuracy"]
    assert acc.pick["name"] == "big-llm" and acc.runner_up["name"] == "small-llm"
    assert acc.margin["f1"] == pytest.approx(0.01) and acc.margin["p50_ms"] == pytest.approx(120.0)
    assert acc.n_eligible == 4  # failed runs never qualify
    bal = recs["balanced"]  # fastest within 2 points of 0.93 -> F1 >= 0.91
    assert bal.pick["name"] == "small-llm" and bal.runner_up["name"] == "big-llm"
    assert set(bal.rejected) == {"encoder", "crf"}
    lat = recs["latency-critical"]  # p50 <= 20 ms, most accurate
    assert lat.pick["name"] == "encoder" and lat.runner_up["name"] == "crf"
    assert lat.margin["f1"] == pytest.approx(0.06)
    assert "encoder" in lat.summary() and "crf" in lat.summary()


def test_custom_tiers_memory_throughput_and_nothing_eligible():
    tiers = [
        Tier(name="edge", objective="f1", max_memory_mb=1000, min_samples_per_s=1000),
        Tier(name="impossible", min_f1=0.99),
        Tier(name="cheapest", objective="memory", min_f1=0.85),
    ]
    edge, impossible, cheapest = recommend(rows(), tiers)
    assert edge.pick["name"] == "crf" and edge.runner_up is None and "only eligible" in edge.summary()
    assert impossible.pick is None and "no run meets" in impossible.summary()
    assert cheapest.pick["name"] == "encoder"


def test_unmeasured_latency_fails_a_latency_constraint():
    rs = [{"name": "a", "f1": 0.9}, {"name": "b", "f1": 0.5, "p50_ms": 1.0}]
    (rec,) = recommend(rs, [Tier(name="fast", max_p50_ms=10)])
    assert rec.pick["name"] == "b" and "p50_ms not measured" in rec.rejected["a"]
