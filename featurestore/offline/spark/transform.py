"""Views with a batch transform on Spark: the source rows through the one executor, ``mapInArrow``.

The transform's input is the source as :class:`~featurestore.offline.transformed_source.
TransformedSources` builds it for DuckDB: join keys cast to their types, the event and created
timestamps normalized to UTC, the other columns under their ``field_mapping`` names, rows
with a null key or event timestamp dropped. Each Arrow batch of a partition goes through
:func:`~featurestore.transformations.run.run_transformation` on the executor, which returns the
rows in the shape of a source scan (keys, ``__fs_event_ts``, ``__fs_created_ts``, the row's
position in the *original* files, the declared features), so the join and materialization read
it like any other view and ties break on the original position.

The function never travels as a pickle: each executor's Python worker imports it from the
feature repo (:class:`~featurestore.repo.functions.AppliedFunctions`, checked against the
applied fingerprint), so the repo must be at the same path on every machine. Raw nanosecond
timestamp columns reach the function as microsecond UTC timestamps (Spark has no nanoseconds).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from featurestore._quiet import quiet_pyspark
from featurestore.offline.spark.scan import rank_column, read_files, spark_type, utc_timestamp
from featurestore.offline.sql import (
    CREATED_TS,
    EVENT_TS,
    FILE_INDEX_COL,
    FILE_ROW_COL,
    is_timestamp_type,
)
from featurestore.types import to_arrow

if TYPE_CHECKING:
    from collections.abc import Collection, Iterator

    from pyspark.sql import Column, DataFrame, SparkSession

    from featurestore.offline.sources import SourceFiles
    from featurestore.repo.registry import ViewRecord
    from featurestore.transformations.batch import BatchTransform

__all__ = ["transformed_scan"]

_POSITION = (FILE_INDEX_COL, FILE_ROW_COL)
_UTC = pa.timestamp("us", tz="UTC")
_LOADED: dict[tuple[str, str, str], BatchTransform] = {}
"""Per executor Python worker: each view's transform, imported once from the repo."""


def transformed_scan(
    spark: SparkSession,
    record: ViewRecord,
    source: SourceFiles,
    *,
    repo_root: Path,
    pushed: Collection[str],
    features: list[str] | None = None,
) -> DataFrame:
    """The rows of a view with a batch transform, transformed on the executors.

    Columns: those of :func:`~featurestore.offline.spark.scan.spark_scan`.
    """
    from pyspark.sql import functions as F

    view = record.view
    types = source.columns.types
    mapped = {view.source.field_mapping.get(n, n): n for n in types}

    def col(name: str) -> Column:
        return F.col("`" + mapped.get(name, name).replace("`", "``") + "`")

    select: list[Column] = [
        col(k).cast(spark_type(record.key_dtypes[k])).alias(k) for k in view.join_keys
    ]
    names = list(view.join_keys)
    for ts in (view.source.timestamp_field, view.source.created_timestamp_field):
        if ts is None:
            continue
        typ = types[mapped.get(ts, ts)]
        expr = utc_timestamp(mapped.get(ts, ts), typ) if is_timestamp_type(typ) else F.lit(None)
        select.append(expr.cast("TIMESTAMP").alias(ts))
        names.append(ts)
    for name in mapped:
        if name not in names:
            typ = types[mapped[name]]
            raw = utc_timestamp(mapped[name], typ) if "NS" in typ else col(name)
            select.append(raw.alias(name))
            names.append(name)
    not_null = col(view.source.timestamp_field).isNotNull()
    for key in view.join_keys:
        not_null = not_null & col(key).isNotNull()
    parts = []
    for raw_df, ranks in read_files(spark, view, source, pushed):
        position = [
            rank_column(ranks).alias(FILE_INDEX_COL),
            F.col("_metadata.row_index").alias(FILE_ROW_COL),
        ]
        parts.append(raw_df.where(not_null).select(*select, *position))
    inputs = parts[0]
    for part in parts[1:]:
        inputs = inputs.unionByName(part)
    fields = [pa.field(k, to_arrow(record.key_dtypes[k])) for k in view.join_keys]
    fields += [pa.field(EVENT_TS, _UTC), pa.field(CREATED_TS, _UTC)]
    fields += [pa.field(FILE_INDEX_COL, pa.int32()), pa.field(FILE_ROW_COL, pa.int64())]
    fields += [pa.field(f.name, to_arrow(f.dtype)) for f in view.schema]
    schema = pa.schema(fields)
    ddl = ", ".join(
        [f"`{k}` {spark_type(record.key_dtypes[k])}" for k in view.join_keys]
        + [f"{EVENT_TS} TIMESTAMP", f"{CREATED_TS} TIMESTAMP"]
        + [f"{FILE_INDEX_COL} INT", f"{FILE_ROW_COL} BIGINT"]
        + [f"`{f.name}` {spark_type(f.dtype)}" for f in view.schema]
    )
    root = str(repo_root)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # On the executor: the one executor over each batch (never a pickled function).
        transform = _transform(root, record, names)
        for batch in batches:
            if batch.num_rows:
                yield _run_batch(transform, record, batch, schema)

    with quiet_pyspark():
        out = inputs.mapInArrow(run, ddl)
    wanted = list(view.feature_names) if features is None else features
    keep = [*view.join_keys, EVENT_TS, CREATED_TS, *_POSITION, *wanted]
    return out.select(*[F.col(f"`{c}`") for c in keep])


def _transform(root: str, record: ViewRecord, names: list[str]) -> BatchTransform:
    """The view's transform, imported from the repo on this worker (once), checked."""
    from featurestore.repo.functions import AppliedFunctions
    from featurestore.transformations.batch import batch_transform

    key = (root, record.view.name, record.fingerprint)
    found = _LOADED.get(key)
    if found is None:
        applied = AppliedFunctions(Path(root)).with_transform(record)
        found = _LOADED[key] = batch_transform(applied.view, names)
    return found


def _run_batch(
    transform: BatchTransform, record: ViewRecord, batch: pa.RecordBatch, schema: pa.Schema
) -> pa.RecordBatch:
    import polars as pl

    from featurestore.transformations.run import run_transformation

    view = record.view
    frame = pl.from_arrow(batch.drop_columns(list(_POSITION)))
    assert isinstance(frame, pl.DataFrame)
    out = run_transformation(transform, frame)
    created = view.source.created_timestamp_field
    arrays = [batch.column(k) for k in view.join_keys]
    arrays.append(batch.column(view.source.timestamp_field))
    arrays.append(batch.column(created) if created is not None else pa.nulls(batch.num_rows, _UTC))
    arrays += [batch.column(c) for c in _POSITION]
    arrays += [out.get_column(f.name).to_arrow() for f in view.schema]
    table = pa.Table.from_arrays(arrays, names=schema.names).cast(schema)
    return table.combine_chunks().to_batches()[0]
