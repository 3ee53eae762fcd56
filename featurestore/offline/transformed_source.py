"""Sources of feature views with a batch transform: the source rows run through the executor.

A view with ``transform=fn`` is read in two steps. The source is scanned by DuckDB (join keys
cast to their types, timestamps normalized to UTC, ``field_mapping`` applied, rows with a null
key or event timestamp dropped) and streamed as Arrow record batches through
:func:`~featurestore.transformations.run.run_transformation` -- the one executor, which checks
the declared types. The output (keys, timestamps, the row's source position and the declared
features) is written to a temporary Parquet file per view, and the training join and
materialization both read that file like an ordinary source scan
(:func:`featurestore.offline.sql.source_scan` shape). So both paths see the same derived
values, and ties still break on the row's position in the *original* source files.

The file is cached per engine, keyed by the view's fingerprint (which covers the transform's
source) and the source files' paths, sizes and modification times; a changed source or an
applied change of the function writes a new one. Nothing is loaded whole into Python: batches
of at most :data:`BATCH_ROWS` rows go through the function.

The registry stores no function (never a pickle). A view read back from the registry file has
``transform=None`` and a :class:`~featurestore.repo.registry.TransformRecord`; the engine's
:class:`~featurestore.repo.functions.AppliedFunctions` gives it back its function (loaded
once, checked against the applied fingerprint).
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from featurestore.errors import SourceError
from featurestore.offline.sql import (
    CREATED_TS,
    EVENT_TS,
    FILE_COL,
    FILE_INDEX_COL,
    FILE_ROW_COL,
    Query,
    is_timestamp_type,
    quote_ident,
    utc_timestamp_expr,
)
from featurestore.offline.training_frame import conform
from featurestore.transformations.batch import BatchTransform, batch_transform
from featurestore.transformations.check import RowIndependenceReport, check_row_independence
from featurestore.transformations.run import run_transformation
from featurestore.types import to_arrow, to_duckdb

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from featurestore.definitions import FeatureView
    from featurestore.offline.sources import SourceFiles, Sources
    from featurestore.repo.registry import ViewRecord
    from featurestore.types import DType

__all__ = ["BATCH_ROWS", "TransformedSources"]

logger = logging.getLogger(__name__)

BATCH_ROWS = 100_000
"""Source rows per call of the transform (bounded memory; legal because it is row-wise)."""
VALIDATE_ROWS = 256
"""Source rows the transform runs on at plan/apply to check its output types."""

ROUNDING_TOLERANCE = 1e-9
"""Relative float tolerance of the row-wise check of batch transforms. polars rounds some
expressions differently on one row than on many (``x / 100`` is ``x * 0.01`` on many rows);
training and materialization read the same transformed copy, so that cannot skew them, while
the cross-row dependence the check guards against (means, ranks, shifts) is far larger."""

_POSITION = (FILE_INDEX_COL, FILE_ROW_COL)
_UTC = pa.timestamp("us", tz="UTC")


class TransformedSources:
    """The transformed sources of one offline engine (temporary Parquet files, cached).

    Args:
        sources: The engine's sources.
        connect: A new DuckDB session on the engine's database.
        temp_parent: Where the temporary files go (default: the system's temp directory).
    """

    def __init__(
        self,
        sources: Sources,
        connect: Callable[[], duckdb.DuckDBPyConnection],
        *,
        temp_parent: Path | None = None,
    ) -> None:
        self._sources = sources
        self._connect = connect
        self._temp_parent = temp_parent
        self._dir: Path | None = None
        self._files: dict[tuple[object, ...], Path] = {}
        self._counter = itertools.count()

    def close(self) -> None:
        """Delete the temporary files."""
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self._files.clear()

    def _directory(self) -> Path:
        if self._dir is None:
            if self._temp_parent is not None:
                self._temp_parent.mkdir(parents=True, exist_ok=True)
            prefix = "featurestore-transformed-"
            self._dir = Path(tempfile.mkdtemp(prefix=prefix, dir=self._temp_parent))
            weakref.finalize(self, shutil.rmtree, self._dir, ignore_errors=True)
        return self._dir

    # -- the transform's input ------------------------------------------------------------------

    def _input_query(
        self, view: FeatureView, source_files: SourceFiles, key_dtypes: Mapping[str, DType]
    ) -> tuple[Query, list[str]]:
        """The source rows as the transform sees them, plus the position columns.

        Returns the query and the transform's input column names (the position columns
        ``__fs_file_index`` and ``file_row_number`` come last and are not inputs).
        """
        source = view.source
        columns = source_files.columns
        mapped = {source.field_mapping.get(n, n): n for n in columns.types}

        def col(name: str) -> str:
            return quote_ident(mapped.get(name, name))

        select: list[str] = []
        names: list[str] = []
        for key in view.join_keys:
            select.append(f"CAST({col(key)} AS {to_duckdb(key_dtypes[key])}) AS {quote_ident(key)}")
            names.append(key)
        for ts in (source.timestamp_field, source.created_timestamp_field):
            if ts is None:
                continue
            typ = columns.types[mapped.get(ts, ts)]
            expr = utc_timestamp_expr(col(ts), typ) if is_timestamp_type(typ) else "NULL"
            select.append(f"CAST({expr} AS TIMESTAMPTZ) AS {quote_ident(ts)}")
            names.append(ts)
        reserved = {*names, FILE_COL, *_POSITION}
        for name in mapped:
            if name not in reserved:
                select.append(f"{col(name)} AS {quote_ident(name)}")
                names.append(name)
        select.append(f"CAST(list_position(?, {FILE_COL}) AS INTEGER) AS {FILE_INDEX_COL}")
        select.append(FILE_ROW_COL)
        not_null = [f"{col(source.timestamp_field)} IS NOT NULL"]
        not_null += [f"{col(k)} IS NOT NULL" for k in view.join_keys]
        query = Query().add("SELECT " + ", ".join(select), source_files.files)
        query.add(
            f" FROM read_parquet(?, filename='{FILE_COL}', file_row_number=true)",
            source_files.pattern,
        )
        query.add(" WHERE " + " AND ".join(not_null))
        return query, names

    def _batches(
        self, view: FeatureView, query: Query, batch_rows: int = BATCH_ROWS
    ) -> Iterator[pa.RecordBatch]:
        cursor = self._connect()
        try:
            reader = cursor.sql(query.text, params=query.params).to_arrow_reader(batch_rows)
            yield from reader
        except duckdb.Error as exc:
            msg = (
                f"Reading the source of feature view '{view.name}' for its batch transform "
                f"failed: {exc}"
            )
            raise SourceError(msg) from exc
        finally:
            cursor.close()

    def _prepare(
        self, view: FeatureView, key_dtypes: Mapping[str, DType]
    ) -> tuple[Query, BatchTransform]:
        source_files = self._sources.read(view, check=False)
        query, names = self._input_query(view, source_files, key_dtypes)
        return query, batch_transform(view, names)

    # -- plan / apply -----------------------------------------------------------------------------

    def validate(self, view: FeatureView, key_dtypes: Mapping[str, DType]) -> None:
        """Run the transform on the first source rows: it must return the declared types.

        Raises:
            TransformationError: The function raised or returned wrong rows, columns or types.
        """
        query, transform = self._prepare(view, key_dtypes)
        query.add(f" LIMIT {VALIDATE_ROWS}")
        batches = list(self._batches(view, query, VALIDATE_ROWS))
        table = pa.Table.from_batches(batches) if batches else None
        if table is None or table.num_rows == 0:
            return
        run_transformation(transform, _inputs(table))

    def sample(
        self, view: FeatureView, key_dtypes: Mapping[str, DType], *, rows: int, seed: int
    ) -> tuple[pl.DataFrame, BatchTransform]:
        """Up to ``rows`` random source rows as the transform's input, and the transform."""
        query, transform = self._prepare(view, key_dtypes)
        sampled = Query().add("SELECT * FROM (").extend(query)
        sampled.add(f") USING SAMPLE reservoir({int(rows)} ROWS) REPEATABLE ({int(seed)})")
        sampled.add(f" ORDER BY {FILE_INDEX_COL}, {FILE_ROW_COL}")
        batches = list(self._batches(view, sampled))
        if not batches:
            empty = pl.DataFrame()
            return empty, transform
        return _inputs(pa.Table.from_batches(batches)), transform

    def sample_features(
        self, view: FeatureView, features: list[str], *, rows: int, seed: int
    ) -> pa.Table:
        """Up to ``rows`` random transformed rows: ``features``, typed as declared."""
        key_dtypes = self._sources.key_dtypes(view)
        inputs, transform = self.sample(view, key_dtypes, rows=rows, seed=seed)
        dtypes = {f.name: to_arrow(f.dtype) for f in view.schema}
        if inputs.height == 0:
            return pa.table({f: pa.array([], type=dtypes[f]) for f in features})
        out = run_transformation(transform, inputs).select(features).to_arrow()
        result = conform(out, {f: dtypes[f] for f in features})
        assert isinstance(result, pa.Table)
        return result

    def check(self, view: FeatureView, *, rows: int = 200, seed: int = 0) -> RowIndependenceReport:
        """The row-independence check of ``view``'s transform on sampled source rows."""
        inputs, transform = self.sample(view, self._sources.key_dtypes(view), rows=rows, seed=seed)
        if inputs.height == 0:  # an empty source: nothing to compare
            zero = dict.fromkeys(transform.feature_names, 0)
            return RowIndependenceReport(view.name, 0, zero, {}, kind=transform.kind)
        return check_row_independence(transform, inputs, rel_tol=ROUNDING_TOLERANCE)

    # -- training frames and materialization -----------------------------------------------------

    def scan(
        self,
        record: ViewRecord,
        source_files: SourceFiles,
        features: list[str] | None = None,
    ) -> Query:
        """A source scan of the transformed rows (same columns as ``sql.source_scan``).

        Writes the transformed source to a temporary Parquet file on first use (cached by
        fingerprint and the source files' sizes and modification times).

        Raises:
            TransformationError: The function raised or returned wrong rows, columns or types.
        """
        view = record.view
        stats = tuple((f, *_stat(f)) for f in source_files.files)
        key = (view.name, record.fingerprint, stats)
        path = self._files.get(key)
        if path is None:
            path = self._write(record, source_files)
            self._files[key] = path
        wanted = list(view.feature_names) if features is None else features
        select = [quote_ident(k) for k in view.join_keys]
        select += [EVENT_TS, CREATED_TS, *_POSITION, *(quote_ident(f) for f in wanted)]
        return Query().add(f"SELECT {', '.join(select)} FROM read_parquet(?)", str(path))

    def _write(self, record: ViewRecord, source_files: SourceFiles) -> Path:
        view = record.view
        query, names = self._input_query(view, source_files, record.key_dtypes)
        transform = batch_transform(view, names)
        fields = [pa.field(k, to_arrow(record.key_dtypes[k])) for k in view.join_keys]
        fields += [pa.field(EVENT_TS, _UTC), pa.field(CREATED_TS, _UTC)]
        fields += [pa.field(FILE_INDEX_COL, pa.int32()), pa.field(FILE_ROW_COL, pa.int64())]
        fields += [pa.field(f.name, to_arrow(f.dtype)) for f in view.schema]
        schema = pa.schema(fields)
        target = self._directory() / f"{view.name}-{record.fingerprint}-{next(self._counter)}"
        partial = target.with_suffix(".partial")
        rows = 0
        try:
            with pq.ParquetWriter(partial, schema) as writer:
                for batch in self._batches(view, query):
                    if batch.num_rows == 0:
                        continue
                    out = run_transformation(transform, _inputs(batch))
                    created = view.source.created_timestamp_field
                    arrays = [batch.column(k) for k in view.join_keys]
                    arrays.append(batch.column(view.source.timestamp_field))
                    arrays.append(
                        batch.column(created)
                        if created is not None
                        else pa.nulls(batch.num_rows, _UTC)
                    )
                    arrays += [batch.column(c) for c in _POSITION]
                    arrays += [out.get_column(f.name).to_arrow() for f in view.schema]
                    table = pa.Table.from_arrays(arrays, names=schema.names).cast(schema)
                    writer.write_table(table)
                    rows += batch.num_rows
            final = target.with_suffix(".parquet")
            partial.replace(final)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        logger.debug("transformed source of '%s': %d rows -> %s", view.name, rows, final)
        return final


def _inputs(data: pa.Table | pa.RecordBatch) -> pl.DataFrame:
    """The transform's input frame: everything but the position columns."""
    frame = pl.from_arrow(data.drop_columns(list(_POSITION)))
    assert isinstance(frame, pl.DataFrame)
    return frame


def _stat(path: str) -> tuple[int, int]:
    try:
        stat = os.stat(path)  # noqa: PTH116 (plain string paths from DuckDB's glob)
    except OSError:
        return (-1, -1)
    return (stat.st_size, stat.st_mtime_ns)
