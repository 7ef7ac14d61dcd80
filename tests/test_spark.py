"""Spark ``local[2]`` extraction equals offline predictions (a real CRF run)."""

from __future__ import annotations

import json
import os

import pytest

from test_serve_toy import train_crf_run

from finextract.extractor import load_extractor

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spark():
    pyspark = pytest.importorskip("pyspark")
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", os.sys.executable)
    session = (SparkSession.builder.master("local[2]").appName("finextract-test")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
               .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
               .getOrCreate())
    assert pyspark
    yield session
    session.stop()


@pytest.fixture(scope="module")
def crf_run(tmp_path_factory):
    return train_crf_run(tmp_path_factory.mktemp("spark") / "crf")


def test_extract_column_equals_offline(spark, crf_run):
    from finextract.spark import extract_column

    path = os.path.join(os.path.dirname(__file__), "data", "merchant_sample.jsonl")
    texts = [json.loads(line)["text"] for line in open(path, encoding="utf-8")]
    texts = (texts * 3)[:90] + [None]
    df = spark.createDataFrame([(i, t) for i, t in enumerate(texts)], "id long, memo string").repartition(4)
    out = extract_column(df, str(crf_run), text_col="memo", batch_size=16)
    assert out.columns == ["id", "memo", "extraction"]
    rows = sorted(out.collect(), key=lambda r: r.id)
    offline = load_extractor(crf_run).predict(["" if t is None else t for t in texts])
    assert len(rows) == len(texts)
    assert [r.extraction.fields.asDict() for r in rows] == offline
    assert all(r.extraction.valid for r in rows)
    js = extract_column(df.limit(3), str(crf_run), text_col="memo", as_json=True).collect()
    assert "fields" in json.loads(js[0].extraction)


def test_missing_column_is_a_clear_error(spark, crf_run):
    from finextract.spark import extract_column

    df = spark.createDataFrame([("a",)], "body string")
    with pytest.raises(ValueError, match="no column 'text'"):
        extract_column(df, str(crf_run))
