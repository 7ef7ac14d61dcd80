"""The endpoint backend and ``validate-endpoint`` against a real server."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from test_serve_toy import TEXTS, TRAIN, gold_jsonl, make_toy_run

from finextract.extractor import load_extractor
from finextract.serve.config import ServeConfig
from finextract.serve.server import BackgroundServer
from finextract.serve.validation import validate_endpoint

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("endpoint")
    full = make_toy_run(tmp / "full")
    degraded = make_toy_run(tmp / "degraded", records=TRAIN[:2])  # "served" copy that lost knowledge
    base = make_toy_run(tmp / "base", records=[])  # the base model without fine-tuning
    return {"full": full, "degraded": degraded, "base": base, "gold": gold_jsonl(tmp / "gold.jsonl")}


def _serve(run):
    return BackgroundServer(ServeConfig(run_dir=str(run), port=0))


def test_endpoint_extractor_equals_offline(runs):
    with _serve(runs["full"]) as url:
        ex = load_extractor(url + "/v1/extract")  # users paste either form
        assert ex.kind == "finextract" and ex.task.name == "merchant"
        assert ex.predict(TEXTS) == load_extractor(runs["full"]).predict(TEXTS)
        assert ex.predict(["x __INVALID__", "y __FAIL__"]) == [None, None]


def test_validation_passes_and_is_recorded(runs):
    with _serve(runs["full"]) as url:
        res = validate_endpoint(url, runs["gold"], runs["full"])
    assert res.passed and res.delta_points == 0 and res.agreement == 1.0 and res.n == len(TEXTS)
    assert 0 < res.offline_micro_f1 < 1
    files = sorted((runs["full"] / "validations").glob("*.json"))
    saved = json.loads(files[-1].read_text())
    for key in ("url", "offline_micro_f1", "endpoint_micro_f1", "delta_points", "n", "passed"):
        assert key in saved
    assert saved["passed"] is True


def test_cli_flags_a_drop_and_an_unapplied_adapter(runs):
    from finextract.cli import _discover, app

    _discover()
    with _serve(runs["degraded"]) as url:
        r = CliRunner().invoke(app, ["validate-endpoint", url, "--data", str(runs["gold"]),
                                     "--reference", str(runs["full"])])
    assert r.exit_code == 1, r.output
    assert "points below offline" in r.output
    with _serve(runs["base"]) as url, _serve(runs["base"]) as base_url:
        res = validate_endpoint(url, runs["gold"], runs["full"], base=base_url)
    assert not res.passed
    assert any("not applied" in p for p in res.problems)


def test_unreachable_endpoint_is_a_clear_error(runs):
    with pytest.raises(ValueError, match="cannot reach"):
        load_extractor("http://127.0.0.1:9/")
