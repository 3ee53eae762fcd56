"""Great Expectations' SQL engine on DuckDB, over an Arrow table: the path of large windows.

GE runs each metric query on a SQLAlchemy connection, returns the connection, and only then
fetches the rows. Returning it rolls back, and DuckDB keeps a query's result on the
connection, so with duckdb-engine as it is GE gets no rows at all ("list index out of range"
for every expectation). :class:`_BufferedCursor` fetches a query's rows when it runs, which is
all GE needs. The table is registered on a cursor of a private in-memory DuckDB connection:
nothing is copied or loaded.

NaN is a value to DuckDB and a missing value to GE's pandas engine; float NaNs are made nulls
first, so both paths give the same verdict, counts and samples
(tests/unit/validation/test_run.py runs the oracle against both).
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import duckdb
import duckdb_engine
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["SQL_EXPECTATIONS", "duckdb_batch"]

SQL_EXPECTATIONS = frozenset(
    {
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_null",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_not_be_in_set",
        "expect_column_values_to_be_unique",
        "expect_column_value_lengths_to_be_between",
        "expect_column_min_to_be_between",
        "expect_column_max_to_be_between",
        "expect_column_mean_to_be_between",
        "expect_column_median_to_be_between",
        "expect_column_stdev_to_be_between",
        "expect_column_unique_value_count_to_be_between",
        "expect_column_proportion_of_unique_values_to_be_between",
        "expect_column_distinct_values_to_be_in_set",
        "expect_table_row_count_to_be_between",
    }
)
"""The expectations whose results GE's SQL engine on DuckDB gives exactly as its pandas engine
(tests/unit/validation/test_engines.py). Others differ without an error (the sum of an
all-null column is 0 to pandas and null to SQL; quantiles interpolate differently;
column-pair, multicolumn and compound ones treat nulls otherwise) or are missing (regex,
increasing): a suite with any of them runs on pandas at every size."""

_TABLE = "window_rows"
_names = itertools.count()


class _BufferedCursor(duckdb_engine.CursorWrapper):
    """A duckdb-engine cursor whose rows are fetched when the query runs."""

    def __init__(self, raw: duckdb.DuckDBPyConnection, wrapper: _Connection) -> None:
        super().__init__(raw, wrapper)
        self._raw = raw
        self._rows: list[Any] = []
        self.description: Any = None

    def execute(self, statement: str, parameters: Any = None, context: Any = None) -> None:
        super().execute(statement, parameters, context)
        self.description = self._raw.description
        self._rows = self._raw.fetchall() if self.description else []

    def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        count = size or 1
        rows, self._rows = self._rows[:count], self._rows[count:]
        return rows


class _Connection(duckdb_engine.ConnectionWrapper):
    def __init__(self, raw: duckdb.DuckDBPyConnection) -> None:
        super().__init__(raw)
        self._raw = raw

    def cursor(self) -> _BufferedCursor:
        return _BufferedCursor(self._raw, self)


def _without_nan(table: pa.Table) -> pa.Table:
    """``table`` with float NaNs as nulls (GE's pandas engine counts NaN as missing)."""
    for index, column in enumerate(table.columns):
        if pa.types.is_floating(column.type):
            nan = pc.fill_null(pc.is_nan(column), False)
            if pc.any(nan).as_py():
                cleared = pc.if_else(nan, pa.scalar(None, column.type), column)
                table = table.set_column(index, table.field(index), cleared)
    return table


@contextmanager
def duckdb_batch(ctx: Any, table: pa.Table) -> Iterator[Any]:
    """A GE batch of ``table``'s rows on GE's SQL engine, on DuckDB; removed from ``ctx`` after.

    Args:
        ctx: The GE data context (``gx.context()``); the caller holds its lock.
        table: The rows to check.
    """
    rows = _without_nan(table)
    database = duckdb.connect()

    def connect() -> _Connection:
        cursor = database.cursor()
        cursor.register(_TABLE, rows)
        return _Connection(cursor)

    name = f"featurestore-duckdb-{next(_names)}"
    source = ctx.data_sources.add_sql(
        name, connection_string="duckdb:///:memory:", kwargs={"creator": connect}
    )
    try:
        asset = source.add_table_asset(_TABLE, table_name=_TABLE)
        yield asset.add_batch_definition_whole_table("all").get_batch()
    finally:
        ctx.data_sources.delete(name)
        database.close()
