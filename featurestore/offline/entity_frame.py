"""Entity frames for training: loading every EntityInput kind into DuckDB, and validating it.

An entity frame becomes a query with the original columns (its timestamp column normalized to
UTC ``TIMESTAMPTZ``) plus ``__fs_row``, its input position. pandas/polars/Arrow frames (and
SQL results) are registered as Arrow tables on the frame's DuckDB session; Parquet paths stay
lazy in DuckDB.
"""

from __future__ import annotations

import glob
import itertools
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from featurestore._time import from_micros, to_utc_array
from featurestore.definitions import FeatureRef
from featurestore.errors import EntityFrameError, term
from featurestore.offline.join.spec import ROW_COL, EntityStats
from featurestore.offline.sql import (
    Query,
    is_integer_type,
    is_timestamp_type,
    quote_ident,
    utc_timestamp_expr,
)
from featurestore.types import Array, DType, to_arrow

if TYPE_CHECKING:
    from featurestore.repo.registry import ViewRecord

__all__ = ["EntityFrame", "EntityInput", "feature_types", "load_entity", "validate_entity"]

if TYPE_CHECKING:
    from typing import TypeAlias

    import pandas as pd
    import polars as pl

    EntityInput: TypeAlias = (
        "pd.DataFrame | pl.DataFrame | pl.LazyFrame | pa.Table | pa.RecordBatch | str | Path"
    )
else:
    EntityInput = object
"""An entity frame: pandas/polars DataFrame, Arrow table, Parquet path or DuckDB SQL.

A ``str`` that starts like a query (``SELECT``, ``WITH``, ``FROM``...) is a DuckDB SQL query run
on the engine's connection; any other ``str`` (or a ``Path``) is a Parquet file, directory or
glob. pandas is optional and polars is imported only when such a frame is passed, so a
Parquet or SQL entity frame needs DuckDB and Arrow only.
"""

_SQL_STARTS = ("select", "with", "from", "values", "table", "(", "pivot", "unpivot")
_counter = itertools.count()


class EntityFrame:
    """An entity frame as a query with a UTC timestamp column and the ``__fs_row`` column."""

    def __init__(
        self,
        query: Query,
        columns: list[str],
        types: dict[str, str],
        stats: EntityStats,
        keepalive: object = None,
    ) -> None:
        self.query = query
        self.columns = columns
        self.types = types
        self.stats = stats
        self.keepalive = keepalive


def _is_sql(text: str) -> bool:
    return text.lstrip().lower().startswith(_SQL_STARTS)


def load_entity(
    cursor: duckdb.DuckDBPyConnection, entity_df: EntityInput, timestamp_column: str
) -> EntityFrame:
    """Load any :data:`EntityInput` onto ``cursor``; checks the timestamp column.

    Raises:
        EntityFrameError: Unsupported input, missing or unparsable timestamp column, or a
            failing entity SQL query.
    """
    if isinstance(entity_df, Path) or (isinstance(entity_df, str) and not _is_sql(entity_df)):
        return _parquet_entity(cursor, str(entity_df), timestamp_column)
    if isinstance(entity_df, str):
        try:
            table = cursor.sql(entity_df).to_arrow_table()
        except duckdb.Error as exc:
            msg = f"The entity SQL query failed: {exc}. Fix the query: {entity_df!r}"
            raise EntityFrameError(msg) from exc
        return _arrow_entity(cursor, table, timestamp_column)
    return _arrow_entity(cursor, to_arrow_table(entity_df), timestamp_column)


def to_arrow_table(entity_df: object) -> pa.Table:
    if isinstance(entity_df, pa.Table):
        return entity_df
    if isinstance(entity_df, pa.RecordBatch):
        return pa.Table.from_batches([entity_df])
    module = type(entity_df).__module__
    if module.startswith("polars"):
        import polars as pl

        if isinstance(entity_df, pl.LazyFrame):
            entity_df = entity_df.collect()
        if isinstance(entity_df, pl.DataFrame):
            return entity_df.to_arrow()
    if module.startswith("pandas"):
        import pandas as pd

        if isinstance(entity_df, pd.DataFrame):
            return pa.Table.from_pandas(entity_df, preserve_index=False)
    msg = (
        f"Cannot use a {type(entity_df).__name__} as an entity frame. Pass a pandas or polars "
        "DataFrame, a pyarrow Table, a Parquet path or a DuckDB SQL query."
    )
    raise EntityFrameError(msg)


def _check_columns(columns: list[str], timestamp_column: str) -> None:
    reserved = [c for c in columns if c.startswith("__fs")]
    if reserved:
        msg = f"Entity frame column '{reserved[0]}' uses the reserved prefix '__fs'; rename it."
        raise EntityFrameError(msg)
    if timestamp_column not in columns:
        msg = (
            f"The entity frame has no timestamp column '{timestamp_column}' (columns: "
            f"{', '.join(columns)}). Add it, or pass "
            f"{term('timestamp_column=<your column>', cli='--timestamp-column <your column>')}."
        )
        raise EntityFrameError(msg)


def _arrow_entity(
    cursor: duckdb.DuckDBPyConnection, table: pa.Table, timestamp_column: str
) -> EntityFrame:
    columns = list(table.column_names)
    _check_columns(columns, timestamp_column)
    if len(set(columns)) != len(columns):
        dup = next(c for c in columns if columns.count(c) > 1)
        msg = f"The entity frame has two columns named '{dup}'; rename one."
        raise EntityFrameError(msg)
    import numpy as np  # here: only in-memory entity frames use numpy and Arrow compute
    import pyarrow.compute as pc

    index = columns.index(timestamp_column)
    ts = to_utc_array(table.column(index), column=timestamp_column)
    table = table.set_column(index, timestamp_column, ts)
    table = table.append_column(ROW_COL, pa.array(np.arange(table.num_rows, dtype=np.int64)))
    name = f"__fs_entity_{next(_counter)}"
    cursor.register(name, table)
    minmax = pc.min_max(ts)
    stats = EntityStats(
        rows=table.num_rows, min_ts=minmax["min"].as_py(), max_ts=minmax["max"].as_py()
    )
    rel = cursor.sql(f"SELECT * FROM {quote_ident(name)}")
    types = dict(zip(rel.columns, (str(t) for t in rel.types), strict=True))
    query = Query().add(f"SELECT * FROM {quote_ident(name)}")
    return EntityFrame(query, columns, types, stats, keepalive=table)


def _parquet_entity(
    cursor: duckdb.DuckDBPyConnection, path: str, timestamp_column: str
) -> EntityFrame:
    if not glob.has_magic(path) and not Path(path).exists():
        msg = f"Entity frame Parquet path '{path}' does not exist. Check the path."
        raise EntityFrameError(msg)
    pattern = str(Path(path) / "**" / "*.parquet") if Path(path).is_dir() else path
    try:
        rel = cursor.sql("SELECT * FROM read_parquet(?) LIMIT 0", params=[pattern])
    except duckdb.Error as exc:
        msg = f"Cannot read the entity frame Parquet '{path}': {exc}. Check the file."
        raise EntityFrameError(msg) from exc
    columns = list(rel.columns)
    types = dict(zip(columns, (str(t) for t in rel.types), strict=True))
    _check_columns(columns, timestamp_column)
    ts_type = types[timestamp_column]
    ts_col = quote_ident(timestamp_column)
    if is_timestamp_type(ts_type):
        ts_expr = utc_timestamp_expr(ts_col, ts_type)
        bad_expr = "0"
    elif ts_type == "VARCHAR":
        ts_expr = f"CAST({ts_col} AS TIMESTAMPTZ)"
        bad_expr = (
            f"count(*) FILTER (WHERE {ts_col} IS NOT NULL "
            f"AND TRY_CAST({ts_col} AS TIMESTAMPTZ) IS NULL)"
        )
    else:
        msg = (
            f"Column '{timestamp_column}' must hold timestamps, but its type is {ts_type}. "
            "Write datetimes (naive ones mean UTC) or ISO 8601 strings."
        )
        raise EntityFrameError(msg)
    stat_expr = ts_expr.replace("CAST(", "TRY_CAST(", 1) if ts_type == "VARCHAR" else ts_expr
    # Microseconds, not timestamps: DuckDB gives those to Python with a ZoneInfo, whose import
    # (and time zone file) a small training frame would pay for (issue 10 item 13).
    row = cursor.sql(
        f"SELECT count(*), epoch_us(min({stat_expr})), epoch_us(max({stat_expr})), {bad_expr} "
        "FROM read_parquet(?)",
        params=[pattern],
    ).fetchall()[0]
    assert row is not None  # an aggregate always yields one row
    if row[3]:
        msg = (
            f"Column '{timestamp_column}' of the entity frame has {row[3]} values that are not "
            "ISO 8601 timestamps. Fix them, e.g. '2026-11-27T09:00:00Z'."
        )
        raise EntityFrameError(msg)
    min_ts, max_ts = (None if us is None else from_micros(us) for us in row[1:3])
    stats = EntityStats(rows=int(row[0]), min_ts=min_ts, max_ts=max_ts)
    types[timestamp_column] = "TIMESTAMP WITH TIME ZONE"
    return EntityFrame(_parquet_query(cursor, pattern, ts_expr, ts_col), columns, types, stats)


def _parquet_query(
    cursor: duckdb.DuckDBPyConnection, pattern: str, ts_expr: str, ts_col: str
) -> Query:
    """The Parquet entity frame's query; ``__fs_row`` numbers rows by (file name, row in file).

    The position is the file's offset (row counts of the files before it, from the footers)
    plus the row's number in its file: no window function over the whole frame. A path to one
    local file needs no footers (nor the query that reads them).
    """
    files: list[tuple[str, int]] = []
    single = not glob.has_magic(pattern) and Path(pattern).is_file()
    if not single:
        files = cursor.sql(
            "SELECT file_name, num_rows FROM parquet_file_metadata(?) ORDER BY file_name",
            params=[pattern],
        ).fetchall()
        single = len(files) == 1
    replace = f"REPLACE ({ts_expr} AS {ts_col})"
    if single:
        return Query().add(
            f"SELECT * EXCLUDE (file_row_number) {replace}, "
            f"CAST(file_row_number AS BIGINT) AS {ROW_COL} "
            "FROM read_parquet(?, file_row_number=true)",
            pattern,
        )
    names = [str(name) for name, _ in files]
    starts = [0, *itertools.accumulate(int(n) for _, n in files)][:-1]
    return Query().add(
        f"SELECT __fs_p.* EXCLUDE (__fs_file, file_row_number) {replace}, "
        f"CAST(__fs_f.start + __fs_p.file_row_number AS BIGINT) AS {ROW_COL} "
        "FROM read_parquet(?, filename='__fs_file', file_row_number=true) AS __fs_p "
        "JOIN (SELECT unnest(?::VARCHAR[]) AS name, unnest(?::BIGINT[]) AS start) AS __fs_f "
        "ON __fs_p.__fs_file = __fs_f.name",
        pattern,
        names,
        starts,
    )


def _key_compatible(duckdb_type: str, dtype: DType) -> bool:
    if duckdb_type in {'"NULL"', "NULL"}:
        return True
    if isinstance(dtype, Array):
        return False
    name = dtype.name
    if name in {"Int32", "Int64"}:
        return is_integer_type(duckdb_type)
    if name in {"Float32", "Float64"}:
        return is_integer_type(duckdb_type) or duckdb_type in {"FLOAT", "DOUBLE"}
    if name == "String":
        return duckdb_type == "VARCHAR"
    if name == "Bytes":
        return duckdb_type in {"BLOB", "VARCHAR"}
    if name == "Bool":
        return duckdb_type == "BOOLEAN"
    return is_timestamp_type(duckdb_type)


def feature_types(
    entity: EntityFrame,
    requests: list[tuple[ViewRecord, list[str]]],
    output_names: dict[FeatureRef, str],
) -> dict[str, pa.DataType]:
    """The Arrow type of each output column, refusing clashes with entity columns.

    Ordered like ``output_names`` (the caller's ref order), not grouped by view.
    """
    dtypes = {
        FeatureRef(record.view.name, f.name): f.dtype
        for record, features in requests
        for f in record.view.schema
        if f.name in features
    }
    types: dict[str, pa.DataType] = {}
    taken = set(entity.columns)
    for ref, out in output_names.items():
        if ref not in dtypes:
            continue
        if out in taken:
            msg = (
                f"Output column '{out}' (feature '{ref}') clashes with another column of the "
                "training frame. Rename the entity frame's column or pass "
                "full_feature_names=True."
            )
            raise EntityFrameError(msg)
        taken.add(out)
        types[out] = to_arrow(dtypes[ref])
    return types


def _float_for_int(duckdb_type: str, dtype: DType) -> bool:
    return duckdb_type in {"FLOAT", "DOUBLE"} and str(dtype) in {"Int32", "Int64"}


def _all_integral(cursor: duckdb.DuckDBPyConnection, entity: EntityFrame, key: str) -> bool:
    column = quote_ident(key)
    query = Query().add(
        f"SELECT count(*) FILTER (WHERE {column} IS NOT NULL AND ({column} <> trunc({column}) "
        f"OR isinf({column}))) FROM ("
    )
    query.extend(entity.query).add(")")
    return int(cursor.sql(query.text, params=query.params).fetchall()[0][0]) == 0


def validate_entity(
    cursor: duckdb.DuckDBPyConnection,
    entity: EntityFrame,
    requests: list[tuple[ViewRecord, list[str]]],
) -> None:
    """Check that the frame has every requested view's join keys, with compatible types.

    Raises:
        EntityFrameError: A join key column is missing or has an incompatible type.
    """
    for record, _ in requests:
        missing = [k for k in record.view.join_keys if k not in entity.types]
        if missing:
            msg = (
                f"The entity frame lacks join key column(s) {', '.join(missing)} of feature "
                f"view '{record.view.name}' (columns: {', '.join(entity.columns)}). Add them."
            )
            raise EntityFrameError(msg)
        for key in record.view.join_keys:
            have, want = entity.types[key], record.key_dtypes[key]
            if _float_for_int(have, want) and _all_integral(cursor, entity, key):
                continue  # pandas stores integer keys with gaps as float64
            if not _key_compatible(have, want):
                msg = (
                    f"Entity frame column '{key}' has type {have}, but join key '{key}' of "
                    f"feature view '{record.view.name}' is {want}. Cast the column to {want}."
                )
                raise EntityFrameError(msg)
