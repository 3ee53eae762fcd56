"""TrainingFrame: a lazy point-in-time training frame, computed by its planned join on demand."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from featurestore.errors import SourceError
from featurestore.frames import arrow_to_pandas, arrow_to_polars, describe, describe_html

if TYPE_CHECKING:
    from collections.abc import Iterator

    import polars as pl
    import pyarrow.parquet as pq

    from featurestore.offline.join import JoinPlan
    from featurestore.validation.frame import FrameValidation

__all__ = ["BATCH_ROWS", "TrainingFrame", "computed_when", "conform", "parquet_writer"]

logger = logging.getLogger(__name__)


def conform(
    data: pa.RecordBatch | pa.Table, types: dict[str, pa.DataType]
) -> pa.RecordBatch | pa.Table:
    """Cast the columns named in ``types`` to those Arrow types (the declared feature types)."""
    schema = data.schema
    fields = [
        pa.field(f.name, types[f.name], nullable=True) if f.name in types else f for f in schema
    ]
    target = pa.schema(fields, metadata=schema.metadata)
    if target.equals(schema):
        return data
    return data.cast(target)


BATCH_ROWS = 131_072
"""Rows per streamed batch (``record_batches``) and per Parquet row group when a computed
frame is written: the writer holds one encoded row group at a time (a 1M x 24 frame as one
group cost ~180 MB more peak memory)."""


def parquet_writer(path: str | Path, schema: pa.Schema) -> pq.ParquetWriter:
    """A pyarrow Parquet writer for training frames (snappy; no dictionary for floats).

    Dictionary-encoding float features rarely pays (they are nearly all distinct) and costs
    the writer most of its time: writing a 1M x 24 frame took 0.5-0.7 s this way against
    1.5-2.2 s through DuckDB ``COPY`` (benchmarks/README.md).
    """
    import pyarrow.parquet as pq  # here: only computed frames are written by pyarrow

    dictionary = [f.name for f in schema if not pa.types.is_floating(f.type)]
    return pq.ParquetWriter(path, schema, use_dictionary=dictionary)


class TrainingFrame:
    """A point-in-time-correct training frame, computed by DuckDB when asked for.

    Nothing runs until a ``to_*`` method or :meth:`record_batches` is called; each call runs
    the query again. Rows come in the entity frame's order, with every entity column first,
    then one column per requested feature (typed as declared). A frame asked for with
    ``validate=True`` is computed once, checked, and held: see :attr:`validation`.

    Example:
        >>> frame = store.get_training_frame(entity_df, features="fraud_v1")  # doctest: +SKIP
        >>> frame.to_parquet("train.parquet")  # streams; fits frames larger than memory  # doctest: +SKIP
    """

    _noun = "training frame"  # what an error message calls this frame

    def __init__(
        self,
        cursor: duckdb.DuckDBPyConnection,
        plan: JoinPlan,
        *,
        feature_types: dict[str, pa.DataType],
        keepalive: object = None,
    ) -> None:
        self._cursor = cursor
        self._plan = plan
        self._query = plan.query
        self._feature_types = feature_types
        self._keepalive = keepalive  # the registered entity table must outlive the cursor's use
        self._lock = threading.Lock()
        self.columns = [*plan.spec.entity_columns, *plan.spec.feature_order]
        """The output column names, in order."""
        self.validation: FrameValidation | None = None
        """The frame's feature columns checked against their views' expectations, when asked
        for (``get_training_frame(..., validate=True)``); else None."""
        self._held: pa.Table | None = None

    def hold(self, table: pa.Table, validation: FrameValidation) -> None:
        """Keep ``table``, checked by ``validation``, as the frame's rows.

        Every ``to_*`` call then returns these rows (no query runs again), so what a model is
        trained on is what was checked. ``get_training_frame(..., validate=True)`` calls it.
        """
        self._held = table
        self.validation = validation

    @property
    def sql(self) -> str:
        """The SQL DuckDB runs (parameters shown as ``?``), for debugging and EXPLAIN.

        With the in-memory ``arrays`` strategy this is the equivalent DuckDB query it falls
        back to.
        """
        return self._query.text

    def _computed(self) -> pa.Table | None:
        """The held frame, the frame from the ``arrays`` strategy, or None to run the SQL."""
        if self._held is not None:
            return self._held
        try:
            return self._plan.compute(self._cursor)
        except duckdb.Error as exc:
            raise _query_error(exc, self._noun) from exc

    def _relation(self) -> duckdb.DuckDBPyRelation:
        try:
            return self._cursor.sql(self._query.text, params=self._query.params)
        except duckdb.Error as exc:
            raise _query_error(exc, self._noun) from exc

    def to_arrow(self) -> pa.Table:
        """The whole frame as an Arrow table."""
        with self._lock:
            table = self._computed()
            if table is None:
                try:
                    table = self._relation().to_arrow_table()
                except duckdb.Error as exc:
                    raise _query_error(exc, self._noun) from exc
        result = conform(table, self._feature_types)
        assert isinstance(result, pa.Table)
        return result

    def to_polars(self) -> pl.DataFrame:
        """The whole frame as a polars DataFrame."""
        return arrow_to_polars(self.to_arrow())

    def to_pandas(self) -> Any:
        """The whole frame as a pandas DataFrame with nullable dtypes (``frames.arrow_to_pandas``).

        Needs the ``pandas`` extra.
        """
        return arrow_to_pandas(self.to_arrow(), what="TrainingFrame.to_pandas")

    def record_batches(self, batch_size: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """Stream the frame as Arrow record batches of at most ``batch_size`` rows."""
        with self._lock:
            table = self._computed()
            if table is not None:
                for batch in table.to_batches(max_chunksize=batch_size):
                    result = conform(batch, self._feature_types)
                    assert isinstance(result, pa.RecordBatch)
                    yield result
                return
            try:
                reader = self._relation().to_arrow_reader(batch_size)
                for batch in reader:
                    result = conform(batch, self._feature_types)
                    assert isinstance(result, pa.RecordBatch)
                    yield result
            except duckdb.Error as exc:
                raise _query_error(exc, self._noun) from exc

    def _copy(self, path: str | Path, options: str) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            table = self._computed()
            try:
                if table is None:
                    self._cursor.execute(
                        f"COPY ({self._query.text}) TO ? ({options})",
                        [*self._query.params, str(target)],
                    )
                elif options.startswith("FORMAT parquet"):
                    result = conform(table, self._feature_types)
                    assert isinstance(result, pa.Table)
                    try:
                        with parquet_writer(target, result.schema) as writer:
                            writer.write_table(result, row_group_size=BATCH_ROWS)
                    except (OSError, pa.ArrowException) as exc:
                        msg = (
                            f"Cannot write the training frame to '{target}': {exc}. Check "
                            "that the directory is writable and the disk has room."
                        )
                        raise SourceError(msg) from exc
                else:
                    result = conform(table, self._feature_types)
                    self._cursor.register("__fs_result", result)
                    try:
                        self._cursor.execute(
                            f"COPY (SELECT * FROM __fs_result) TO ? ({options})", [str(target)]
                        )
                    finally:
                        self._cursor.unregister("__fs_result")
            except duckdb.Error as exc:
                raise _query_error(exc, self._noun) from exc
        logger.info("wrote training frame to %s", target)
        return target

    def to_parquet(self, path: str | Path) -> Path:
        """Write the frame to one Parquet file, streaming (frames larger than memory work)."""
        return self._copy(path, "FORMAT parquet")

    def to_csv(self, path: str | Path) -> Path:
        """Write the frame to a CSV file with a header, streaming."""
        return self._copy(path, "FORMAT csv, HEADER true")

    def describe(self) -> list[tuple[str, str]]:
        """What the frame will compute, without computing it: the join, views and columns."""
        spec = self._plan.spec
        views = [
            f"{r.record.view.name} ({', '.join(r.features) or 'no features'})"
            for r in spec.requests
        ]
        return [
            ("entity rows", f"{spec.stats.rows:,}"),
            ("point in time", spec.point_in_time),
            ("join strategy", self._plan.strategy),
            ("views", "; ".join(views)),
            ("columns", ", ".join(self.columns)),
            computed_when(self.validation),
        ]

    def __repr__(self) -> str:
        return describe(type(self).__name__, self.describe())

    def _repr_html_(self) -> str:
        return describe_html(type(self).__name__, self.describe())


def computed_when(validation: FrameValidation | None) -> tuple[str, str]:
    """The ``computed`` fact of a frame's description, and its validation when it has one."""
    if validation is None:
        return ("computed", "on each to_* call (lazy)")
    verdict = "passed" if validation.success else f"{len(validation.failures)} expectations FAILED"
    return ("computed", f"once, then held; validated: {verdict} (see .validation)")


def _query_error(exc: duckdb.Error, noun: str) -> SourceError:
    return SourceError(
        f"Computing the {noun} failed in DuckDB: {exc}. If a source changed since "
        "'featurestore apply', run apply again; if memory ran out, set offline_store "
        "memory_limit and temp_directory."
    )
