"""A view's Parquet source as a Spark DataFrame: typed, normalized, each row's place in the order.

The twin of :func:`featurestore.offline.sql.source_scan`, with the same output columns: the
join keys (cast to their key types), ``__fs_event_ts`` and ``__fs_created_ts`` (UTC
timestamps, microseconds, nanoseconds truncated), ``__fs_file_index`` (the rank of the row's
file among the source's files, as DuckDB ranks them) and ``file_row_number`` (Spark's
``_metadata.row_index``), then the features cast to their declared types. Rows with a null
event timestamp or join key are dropped. The files and their column types come from the local
engine's :class:`~featurestore.offline.sources.Sources`, so both engines read the same files
in the same rank order.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from featurestore.errors import SourceError
from featurestore.offline.sql import (
    CREATED_TS,
    EVENT_TS,
    FILE_INDEX_COL,
    FILE_ROW_COL,
    is_timestamp_type,
)
from featurestore.types import Array

if TYPE_CHECKING:
    from collections.abc import Collection

    from pyspark.sql import Column, DataFrame, SparkSession

    from featurestore.definitions import FeatureView
    from featurestore.offline.sources import SourceFiles
    from featurestore.types import DType

__all__ = ["rank_column", "read_files", "spark_scan", "spark_type", "utc_timestamp"]

_SPARK_TYPES = {
    "Int32": "INT",
    "Int64": "BIGINT",
    "Float32": "FLOAT",
    "Float64": "DOUBLE",
    "String": "STRING",
    "Bool": "BOOLEAN",
    "Timestamp": "TIMESTAMP",
    "Bytes": "BINARY",
}


def spark_type(dtype: DType) -> str:
    """The Spark SQL type that carries values of ``dtype``.

    Example:
        >>> from featurestore.types import Array, Float32
        >>> spark_type(Array(Float32))
        'ARRAY<FLOAT>'
    """
    if isinstance(dtype, Array):
        return f"ARRAY<{_SPARK_TYPES[dtype.inner.name]}>"
    return _SPARK_TYPES[dtype.name]


def utc_timestamp(name: str, duckdb_type: str) -> Column:
    """Source column ``name`` as a Spark TIMESTAMP (UTC), as ``utc_timestamp_expr`` does."""
    from pyspark.sql import functions as F

    column = "`" + name.replace("`", "``") + "`"
    if duckdb_type.startswith("TIMESTAMP") and "NS" in duckdb_type:
        # nanosAsLong: the value is nanoseconds since the epoch; truncate to microseconds.
        return F.timestamp_micros(F.expr(f"CAST({column} AS BIGINT) div 1000"))
    return F.col(column).cast("TIMESTAMP")


def _local_path(uri: str) -> str:
    """A file URI as Spark lists it (``file:/a%20b``), as the local path ``/a b``."""
    parts = urlsplit(uri)
    return unquote(parts.path) if parts.scheme in ("", "file") else uri


def read_files(
    spark: SparkSession, view: FeatureView, source: SourceFiles, pushed: Collection[str]
) -> list[tuple[DataFrame, dict[str, int]]]:
    """The raw source files as DataFrames, with the rank of each file Spark lists.

    Source files share one schema and are read together; push files (``pushed``) are read
    apart, their schemas merged (a column may have been added since).

    Raises:
        SourceError: Spark cannot read a file, or lists files the local engine does not.
    """
    from pyspark.errors import PySparkException

    ranks = {str(Path(f)): rank for rank, f in enumerate(source.files, start=1)}
    groups = [
        [f for f in source.files if f not in pushed],
        [f for f in source.files if f in pushed],
    ]
    result: list[tuple[DataFrame, dict[str, int]]] = []
    try:
        for files in groups:
            if not files:
                continue
            reader = spark.read
            if files[0] in pushed:
                reader = reader.option("mergeSchema", "true")
            raw = reader.parquet(*files)
            rank_of: dict[str, int] = {}
            for uri in raw.inputFiles():
                rank = ranks.get(_local_path(uri), ranks.get(uri))
                if rank is None:
                    msg = (
                        f"Spark reads '{uri}' for feature view '{view.name}', which DuckDB "
                        "does not list. Use file paths that both see the same way."
                    )
                    raise SourceError(msg)
                rank_of[_without_file_scheme(uri)] = rank
            result.append((raw, rank_of))
    except PySparkException as exc:
        msg = f"Spark cannot read the source of feature view '{view.name}': {exc}"
        raise SourceError(msg) from exc
    return result


def rank_column(rank_of: dict[str, int]) -> Column:
    """Each row's file rank (``__fs_file_index``), looked up by Spark's ``_metadata.file_path``.

    ``rank_of`` is keyed by the paths of :func:`read_files` (without the ``file:`` scheme).
    """
    from pyspark.sql import functions as F

    rank_map = F.create_map(*(F.lit(x) for item in rank_of.items() for x in item))
    path = F.regexp_replace(F.col("_metadata.file_path"), _FILE_SCHEME, "")
    rank = F.element_at(rank_map, path).cast("INT")
    # A row whose file has no rank would sort arbitrarily among ties: fail instead.
    unranked = F.raise_error(F.concat(F.lit("featurestore: no file rank for "), path))
    return F.when(rank.isNull(), unranked).otherwise(rank).cast("INT")


_FILE_SCHEME = "^file:(//)?"
"""Spark spells one local file ``file:///a`` in ``inputFiles()`` and ``file:/a`` in
``_metadata.file_path``; both become ``/a`` (still URL-encoded) before they are compared."""


def _without_file_scheme(uri: str) -> str:
    return re.sub(_FILE_SCHEME, "", uri)


def spark_scan(
    spark: SparkSession,
    view: FeatureView,
    source: SourceFiles,
    *,
    key_dtypes: dict[str, DType],
    pushed: Collection[str],
    features: list[str] | None = None,
) -> DataFrame:
    """The typed rows of ``view``'s source files (``source.files``, in rank order).

    ``pushed`` are the push-log files among them (see :func:`read_files`).

    Raises:
        SourceError: Spark cannot read a file, or lists files the local engine does not.
    """
    from pyspark.sql import functions as F

    by_name = {dst: src for src, dst in view.source.field_mapping.items()}
    types = source.columns.types

    def col(name: str) -> Column:
        return F.col("`" + by_name.get(name, name).replace("`", "``") + "`")

    wanted = list(view.feature_names) if features is None else features
    dtypes = {f.name: f.dtype for f in view.schema}
    select = [col(k).cast(spark_type(key_dtypes[k])).alias(k) for k in view.join_keys]
    ts_field = view.source.timestamp_field
    ts_source = by_name.get(ts_field, ts_field)
    select.append(utc_timestamp(ts_source, types[ts_source]).alias(EVENT_TS))
    created = view.source.created_timestamp_field
    created_source = None if created is None else by_name.get(created, created)
    created_type = None if created_source is None else types.get(created_source)
    if created_source is not None and created_type is not None and is_timestamp_type(created_type):
        select.append(utc_timestamp(created_source, created_type).alias(CREATED_TS))
    else:
        select.append(F.lit(None).cast("TIMESTAMP").alias(CREATED_TS))
    for name in wanted:
        dtype = dtypes[name]
        source_type = types[by_name.get(name, name)]
        if str(dtype) == "Timestamp" and is_timestamp_type(source_type):
            expr = utc_timestamp(by_name.get(name, name), source_type)
        else:
            expr = col(name).cast(spark_type(dtype))
        select.append(expr.alias(name))
    not_null = col(ts_field).isNotNull()
    for key in view.join_keys:
        not_null = not_null & col(key).isNotNull()
    parts = [
        raw.where(not_null).select(
            *select[: len(view.join_keys) + 2],
            rank_column(rank_of).alias(FILE_INDEX_COL),
            F.col("_metadata.row_index").cast("BIGINT").alias(FILE_ROW_COL),
            *select[len(view.join_keys) + 2 :],
        )
        for raw, rank_of in read_files(spark, view, source, pushed)
    ]
    result = parts[0]
    for part in parts[1:]:
        result = result.unionByName(part)
    return result
