"""SQL building blocks for the offline engine: quoting, typed source scans, the row order.

Every piece of SQL featurestore sends to DuckDB is assembled here or in ``offline/join/``.
Identifiers go through :func:`quote_ident`; values are bound parameters (``?``), collected in
a :class:`Query` next to the text that uses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from featurestore.ordering import order_key_sql
from featurestore.types import to_duckdb

if TYPE_CHECKING:
    from featurestore.definitions import FeatureView
    from featurestore.types import DType

__all__ = [
    "CREATED_TS",
    "EVENT_TS",
    "FILE_COL",
    "FILE_INDEX_COL",
    "FILE_ROW_COL",
    "Query",
    "SourceColumns",
    "newer_order_key",
    "quote_ident",
    "source_scan",
    "utc_timestamp_expr",
]

EVENT_TS = "__fs_event_ts"
"""Name of the normalized event timestamp column of a source scan (TIMESTAMPTZ, UTC)."""
CREATED_TS = "__fs_created_ts"
"""Name of the normalized created timestamp column of a source scan (nullable)."""
FILE_COL = "__fs_file"
"""The file a source row comes from (DuckDB ``read_parquet(filename=...)``)."""
FILE_INDEX_COL = "__fs_file_index"
"""The 1-based rank of a source row's file path among the source's files (sorted by path);
ordering by it is ordering by path, but compares as an integer."""
FILE_ROW_COL = "file_row_number"
"""The row number of a source row within its file (DuckDB ``read_parquet(file_row_number=true)``)."""


def quote_ident(name: str) -> str:
    """Quote an identifier for DuckDB.

    Example:
        >>> quote_ident('we"ird')
        '"we""ird"'
    """
    return '"' + name.replace('"', '""') + '"'


@dataclass
class Query:
    """SQL text with its positional parameters, built piece by piece in order."""

    text: str = ""
    params: list[object] = field(default_factory=list)

    def add(self, text: str, *params: object) -> Query:
        """Append ``text`` (whose ``?`` placeholders take ``params``, in order)."""
        self.text += text
        self.params.extend(params)
        return self

    def extend(self, other: Query) -> Query:
        """Append another query's text and parameters."""
        self.text += other.text
        self.params.extend(other.params)
        return self


_INTEGER_TYPES = frozenset(
    {
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "UHUGEINT",
    }
)
_TIMESTAMP_TYPES = frozenset(
    {
        "TIMESTAMP",
        "TIMESTAMP_S",
        "TIMESTAMP_MS",
        "TIMESTAMP_NS",
        "TIMESTAMP WITH TIME ZONE",
        "TIMESTAMPTZ",
        "TIMESTAMPTZ_NS",
        "TIMESTAMP_NS WITH TIME ZONE",
        "DATE",
    }
)


def is_integer_type(duckdb_type: str) -> bool:
    """Whether a DuckDB type name is an integer type."""
    return duckdb_type in _INTEGER_TYPES


def is_timestamp_type(duckdb_type: str) -> bool:
    """Whether a DuckDB type name is a timestamp or date type."""
    return duckdb_type in _TIMESTAMP_TYPES


def utc_timestamp_expr(column_sql: str, duckdb_type: str) -> str:
    """SQL turning a timestamp/date/ISO-string column into TIMESTAMPTZ (UTC, microseconds).

    This is the SQL twin of ``featurestore._time.to_utc_array`` for data that never enters
    Python (Parquet sources, Parquet entity frames): the engine's session time zone is UTC,
    so a naive value means UTC, and nanoseconds are truncated (not rounded) to microseconds.
    """
    if duckdb_type.startswith("TIMESTAMP") and "NS" in duckdb_type:
        # A plain cast would round to the nearest microsecond; featurestore truncates.
        return f"CAST(make_timestamp(epoch_ns({column_sql}) // 1000) AS TIMESTAMPTZ)"
    return f"CAST({column_sql} AS TIMESTAMPTZ)"


@dataclass(frozen=True)
class SourceColumns:
    """The DuckDB types of a source's columns, by source column name (as read from Parquet)."""

    types: dict[str, str]


def source_scan(
    view: FeatureView,
    path_pattern: str | list[str],
    columns: SourceColumns,
    *,
    files: list[str],
    key_dtypes: dict[str, DType],
    features: list[str] | None = None,
) -> Query:
    """A SELECT over a view's Parquet source with typed, normalized, renamed columns.

    The result has the view's join keys (cast to ``key_dtypes``), ``__fs_event_ts``,
    ``__fs_created_ts``, ``__fs_file_index`` (rank of the row's file in ``files``, the sorted
    paths ``read_parquet`` reads), ``file_row_number`` and the requested features
    (default: all, schema order) cast to their declared types. Rows with a null event
    timestamp or a null join key are dropped: they can never be candidates.
    """
    source = view.source
    by_name = {dst: src for src, dst in source.field_mapping.items()}

    def col(name: str) -> str:
        return quote_ident(by_name.get(name, name))

    wanted = list(view.feature_names) if features is None else features
    dtypes = {f.name: f.dtype for f in view.schema}
    select: list[str] = []
    for key in view.join_keys:
        select.append(f"CAST({col(key)} AS {to_duckdb(key_dtypes[key])}) AS {quote_ident(key)}")
    ts_type = columns.types[by_name.get(source.timestamp_field, source.timestamp_field)]
    select.append(f"{utc_timestamp_expr(col(source.timestamp_field), ts_type)} AS {EVENT_TS}")
    if source.created_timestamp_field is not None:
        created = source.created_timestamp_field
        created_type = columns.types[by_name.get(created, created)]
        if is_timestamp_type(created_type):
            select.append(f"{utc_timestamp_expr(col(created), created_type)} AS {CREATED_TS}")
        else:  # an all-null column written without a type
            select.append(f"CAST(NULL AS TIMESTAMPTZ) AS {CREATED_TS}")
    else:
        select.append(f"CAST(NULL AS TIMESTAMPTZ) AS {CREATED_TS}")
    select.append(f"CAST(list_position(?, {FILE_COL}) AS INTEGER) AS {FILE_INDEX_COL}")
    select.append(FILE_ROW_COL)
    for name in wanted:
        dtype = dtypes[name]
        source_type = columns.types[by_name.get(name, name)]
        if str(dtype) == "Timestamp" and is_timestamp_type(source_type):
            expr = utc_timestamp_expr(col(name), source_type)
        else:
            expr = f"CAST({col(name)} AS {to_duckdb(dtype)})"
        select.append(f"{expr} AS {quote_ident(name)}")
    not_null = [f"{col(source.timestamp_field)} IS NOT NULL"]
    not_null += [f"{col(k)} IS NOT NULL" for k in view.join_keys]
    query = Query()
    query.add("SELECT " + ", ".join(select), files)  # the one "?" is the file list
    query.add(
        f" FROM read_parquet(?, filename={_sql_string(FILE_COL)}, file_row_number=true)",
        path_pattern,
    )
    query.add(" WHERE " + " AND ".join(not_null))
    return query


def _sql_string(text: str) -> str:
    # Only for constant option names chosen by featurestore itself (never user values).
    return "'" + text.replace("'", "''") + "'"


def newer_order_key(prefix: str = "") -> str:
    """The order "newer" over a source scan's columns (:func:`featurestore.ordering.order_key_sql`).

    A larger struct is a newer row. The training join (every SQL strategy) and
    materialization (``latest_rows``) rank rows with this one expression, so ties can never
    resolve differently offline and online.

    Args:
        prefix: A qualifier for the columns of a source scan, e.g. ``"s."``.
    """
    return order_key_sql(
        f"{prefix}{EVENT_TS}",
        f"{prefix}{CREATED_TS}",
        f"{prefix}{FILE_INDEX_COL}",
        f"{prefix}{FILE_ROW_COL}",
    )
