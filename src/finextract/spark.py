"""Extraction over a Spark DataFrame column.

``extract_column(df, run_dir)`` adds one struct column ``{fields|entities: {...}, valid}``
computed with ``mapInPandas``: each Python worker loads the extractor **once** (cached in a
module global keyed by run dir + checkpoint) and then streams Arrow batches through it, so
the model load is paid per executor process, not per row or per batch.

``run_dir`` must be readable from every executor at the same path (a shared filesystem,
``/dbfs/...`` on Databricks, or a path copied onto each node); see ``docs/serving.md``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from finextract.errors import InputError

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

_EXTRACTORS: dict[tuple[str, str], Any] = {}
_JSON_COL = "__finextract_json"


def get_extractor(run_dir: str, checkpoint: str = "best"):
    """The process-wide extractor for (run_dir, checkpoint), loaded on first use."""
    key = (str(run_dir), str(checkpoint))
    if key not in _EXTRACTORS:
        from finextract.extractor import load_extractor

        _EXTRACTORS[key] = load_extractor(run_dir, checkpoint)
    return _EXTRACTORS[key]


def output_schema_ddl(task) -> str:
    """Spark DDL of the struct: values per key (string or array<string>) plus ``valid``."""
    vtype = "array<string>" if task.multi_valued else "string"
    keys = ", ".join(f"`{k}`: {vtype}" for k in task.key_names)
    return f"struct<`{task.record_field}`: struct<{keys}>, `valid`: boolean>"


def _make_mapper(run_dir: str, checkpoint: str, text_col: str, batch_size: int):
    def mapper(frames: Iterator["pd.DataFrame"]) -> Iterator["pd.DataFrame"]:
        ex = get_extractor(run_dir, checkpoint)
        task = ex.task
        for frame in frames:
            texts = ["" if t is None else str(t) for t in frame[text_col].tolist()]
            preds: list[Any] = []
            for i in range(0, len(texts), batch_size):
                chunk = texts[i:i + batch_size]
                preds.extend(ex.predict(chunk))
            frame = frame.copy()
            frame[_JSON_COL] = [json.dumps({task.record_field: p if p is not None else task.empty_output(),
                                            "valid": p is not None}, ensure_ascii=False) for p in preds]
            yield frame
    return mapper


def extract_column(
    df: "DataFrame",
    run_dir: str,
    text_col: str = "text",
    output_col: str = "extraction",
    checkpoint: str = "best",
    batch_size: int = 64,
    as_json: bool = False,
) -> "DataFrame":
    """Return ``df`` plus ``output_col``: a struct (or, with ``as_json``, a JSON string) per row.

    Rows keep all their columns; a null text is treated as "". Predictions equal
    ``load_extractor(run_dir).predict`` on the same texts.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    if text_col not in df.columns:
        raise InputError(f"no column {text_col!r} in the DataFrame (columns: {df.columns})")
    if output_col in df.columns:
        raise InputError(f"column {output_col!r} already exists; pass another output_col")
    task = get_extractor(run_dir, checkpoint).task  # fail fast on the driver, and learn the schema
    schema = StructType(df.schema.fields + [StructField(_JSON_COL, StringType(), False)])
    out = df.mapInPandas(_make_mapper(str(run_dir), checkpoint, text_col, batch_size), schema=schema)
    if as_json:
        return out.withColumnRenamed(_JSON_COL, output_col)
    return out.withColumn(output_col, F.from_json(F.col(_JSON_COL), output_schema_ddl(task))).drop(_JSON_COL)
