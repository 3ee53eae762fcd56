"""OfflineEngine: DuckDB over the repo's Parquet sources; training frames and latest rows.

The engine owns one DuckDB database. Sources are read in place with ``read_parquet`` and never
loaded into Python objects; the join itself is built in ``pit_join.py``.
"""

from __future__ import annotations

import glob
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import duckdb
import pyarrow as pa

from featurestore.definitions import FeatureRef
from featurestore.dtypes import Array, DType, ScalarType, dtype_from_arrow, to_arrow
from featurestore.errors import SourceError
from featurestore.offline.entity_frame import (
    EntityInput,
    feature_types,
    load_entity,
    validate_entity,
)
from featurestore.offline.pit_join import (
    RANGE_MAX_ENTITY_ROWS,
    JoinStrategy,
    ViewRequest,
    latest_rows_query,
)
from featurestore.offline.sql import (
    CREATED_TS,
    EVENT_TS,
    Query,
    SourceColumns,
    source_scan,
)
from featurestore.offline.training_frame import TrainingFrame, conform, plan_training_frame
from featurestore.offline.transformed_source import TransformedSources

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime

    from featurestore.definitions import FeatureView
    from featurestore.repo.config import DuckDBOfflineStoreConfig
    from featurestore.repo.registry import ViewRecord

__all__ = ["EntityInput", "OfflineEngine"]

logger = logging.getLogger(__name__)


class OfflineEngine:
    """DuckDB over Parquet: validates sources, builds training frames, reads latest rows.

    Args:
        config: The ``offline_store`` section of the repo config.
        repo_root: The feature repo; relative source paths and ``temp_directory`` resolve
            against it.
    """

    def __init__(self, config: DuckDBOfflineStoreConfig, *, repo_root: Path) -> None:
        self.config = config
        self.repo_root = Path(repo_root)
        settings: dict[str, str | bool | int | float | list[str]] = {}
        if config.memory_limit is not None:
            settings["memory_limit"] = config.memory_limit
        if config.threads is not None:
            settings["threads"] = config.threads
        if config.temp_directory is not None:
            temp = Path(config.temp_directory)
            settings["temp_directory"] = str(temp if temp.is_absolute() else self.repo_root / temp)
        try:
            self._con = duckdb.connect(":memory:", config=settings)
        except duckdb.Error as exc:
            msg = f"Cannot open DuckDB with offline_store settings {settings}: {exc}. Fix them."
            raise SourceError(msg) from exc
        self.transformed = TransformedSources(self)
        """Sources of views with a batch transform, run through the executor (cached)."""

    # -- connections --------------------------------------------------------------------------

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """A new session on the engine's database, in UTC (sessions own their time zone)."""
        cursor = self._con.cursor()
        try:
            cursor.execute("SET TimeZone = 'UTC'")
        except duckdb.Error:
            # Without the ICU extension DuckDB has no time zones: TIMESTAMPTZ is UTC already.
            logger.debug("DuckDB has no ICU extension; timestamps are UTC by construction")
        return cursor

    def close(self) -> None:
        """Close the DuckDB database (open training frames can no longer run)."""
        self._con.close()
        self.transformed.close()

    # -- sources ------------------------------------------------------------------------------

    def source_pattern(self, view: FeatureView) -> str:
        """The ``read_parquet`` pattern of a view's source, checked to match files.

        Raises:
            SourceError: The path does not exist or the glob matches no file.
        """
        raw = Path(view.source.path)
        path = raw if raw.is_absolute() else self.repo_root / raw
        text = str(path)
        if glob.has_magic(text):
            if not glob.glob(text, recursive=True):  # noqa: PTH207 (absolute patterns)
                msg = (
                    f"Source of feature view '{view.name}': glob '{text}' matches no file. "
                    "Write the Parquet files or fix ParquetSource(path=...)."
                )
                raise SourceError(msg)
            return text
        if path.is_dir():
            if not any(path.rglob("*.parquet")):
                msg = (
                    f"Source of feature view '{view.name}': directory '{path}' holds no "
                    "*.parquet file. Write the files or fix ParquetSource(path=...)."
                )
                raise SourceError(msg)
            return str(path / "**" / "*.parquet")
        if not path.exists():
            msg = (
                f"Source of feature view '{view.name}': '{path}' does not exist. Write the "
                "Parquet file or fix ParquetSource(path=...) (relative paths are relative to "
                "the feature repo)."
            )
            raise SourceError(msg)
        return text

    def _source_schema(self, view: FeatureView, pattern: str) -> tuple[pa.Schema, SourceColumns]:
        cursor = self._cursor()
        try:
            rel = cursor.sql("SELECT * FROM read_parquet(?) LIMIT 0", params=[pattern])
            schema = rel.to_arrow_table().schema
            types = dict(zip(rel.columns, (str(t) for t in rel.types), strict=True))
        except duckdb.Error as exc:
            msg = (
                f"Source of feature view '{view.name}': cannot read Parquet '{pattern}': {exc}. "
                "Check that the files are valid Parquet."
            )
            raise SourceError(msg) from exc
        finally:
            cursor.close()
        return schema, SourceColumns(types)

    def _check_source(self, view: FeatureView, schema: pa.Schema) -> None:
        """Validate a source schema against the view (names after ``field_mapping``)."""
        source = view.source
        renamed = {source.field_mapping.get(n, n): n for n in schema.names}

        def column(name: str, role: str) -> pa.DataType:
            if name not in renamed:
                origins = [s for s, d in source.field_mapping.items() if d == name]
                mapped = f" (field_mapping reads it from '{origins[0]}')" if origins else ""
                msg = (
                    f"Source of feature view '{view.name}' ('{source.path}') has no {role} "
                    f"column '{name}'{mapped}; its columns are {', '.join(schema.names)}. Add "
                    "the column, or fix the view (field_mapping renames source columns)."
                )
                raise SourceError(msg)
            return schema.field(renamed[name]).type

        for field_name, role in (
            (source.timestamp_field, "timestamp_field"),
            (source.created_timestamp_field, "created_timestamp_field"),
        ):
            if field_name is None:
                continue
            typ = column(field_name, role)
            if not (pa.types.is_timestamp(typ) or pa.types.is_date(typ) or pa.types.is_null(typ)):
                msg = (
                    f"Source of feature view '{view.name}': {role} '{field_name}' has type "
                    f"{typ}; it must be a timestamp or date column. Write it as a Parquet "
                    "timestamp."
                )
                raise SourceError(msg)
        for key in view.join_keys:
            column(key, "join key")
        if view.transform is not None:  # the transform's output is checked instead
            return
        for feature in view.schema:
            typ = column(feature.name, "feature")
            if not _castable(typ, feature.dtype):
                msg = (
                    f"Source of feature view '{view.name}': column '{feature.name}' has type "
                    f"{typ}, which cannot be read as the declared {feature.dtype}. Change the "
                    "Field's type or write the column with a compatible type."
                )
                raise SourceError(msg)

    def infer_key_dtypes(self, view: FeatureView) -> dict[str, DType]:
        """Validate a view's source (schema only, no data scan) and infer its join key types.

        Raises:
            SourceError: Missing path, missing or mistyped columns, or a key type that
                cannot be a join key.
            TransformationError: The view's batch transform fails on the first source rows
                or returns other types than declared (its output is validated, not the
                source's feature columns).
        """
        pattern = self.source_pattern(view)
        schema, _ = self._source_schema(view, pattern)
        self._check_source(view, schema)
        renamed = {view.source.field_mapping.get(n, n): n for n in schema.names}
        result: dict[str, DType] = {}
        for key in view.join_keys:
            typ = schema.field(renamed[key]).type
            dtype = dtype_from_arrow(typ)
            if not isinstance(dtype, ScalarType) or dtype.name in {"Float32", "Float64"}:
                msg = (
                    f"Source of feature view '{view.name}': join key '{key}' has type {typ}, "
                    "which cannot be a join key. Use an integer, string, bytes, bool or "
                    "timestamp column."
                )
                raise SourceError(msg)
            result[key] = dtype
        if view.transform is not None:
            self.transformed.validate(view, result)
        return result

    def _scan(self, record: ViewRecord, features: list[str] | None = None) -> Query:
        record = self.transformed.resolve(record)
        pattern = self.source_pattern(record.view)
        schema, columns = self._source_schema(record.view, pattern)
        self._check_source(record.view, schema)
        if record.view.transform is not None:
            files = self._files(record.view, pattern)
            return self.transformed.scan(record, pattern, columns, files, features)
        return source_scan(
            record.view,
            pattern,
            columns,
            files=self._files(record.view, pattern),
            key_dtypes=record.key_dtypes,
            features=features,
        )

    def _files(self, view: FeatureView, pattern: str) -> list[str]:
        """The files ``read_parquet(pattern)`` reads, sorted by path (DuckDB's own glob)."""
        cursor = self._cursor()
        try:
            rows = cursor.sql("SELECT file FROM glob(?) ORDER BY file", params=[pattern])
            return [str(r[0]) for r in rows.fetchall()]
        except duckdb.Error as exc:
            msg = f"Cannot list the files of feature view '{view.name}' ('{pattern}'): {exc}"
            raise SourceError(msg) from exc
        finally:
            cursor.close()

    def _source_rows(self, record: ViewRecord) -> int:
        cursor = self._cursor()
        try:
            row = cursor.sql(
                "SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata(?)",
                params=[self.source_pattern(record.view)],
            ).fetchall()[0]
        except duckdb.Error as exc:
            msg = f"Cannot read the Parquet metadata of feature view '{record.view.name}': {exc}"
            raise SourceError(msg) from exc
        finally:
            cursor.close()
        return int(row[0]) if row else 0

    # -- training frames ----------------------------------------------------------------------

    def training_frame(
        self,
        entity_df: EntityInput,
        requests: list[tuple[ViewRecord, list[str]]],
        *,
        output_names: dict[FeatureRef, str],
        timestamp_column: str,
        point_in_time: Literal["event", "available"],
        strategy: JoinStrategy = "auto",
    ) -> TrainingFrame:
        """A lazy point-in-time-correct training frame (rule: ``pit_join`` module docstring).

        Args:
            entity_df: The entity frame (see :data:`EntityInput`).
            requests: Each view with the features requested from it, in output order.
            output_names: The output column of each feature ref.
            timestamp_column: The entity frame's timestamp column.
            point_in_time: ``"event"`` or ``"available"``.
            strategy: Force the join strategy (tests and benchmarks); ``"auto"`` picks by size.

        Raises:
            EntityFrameError: Missing join key or timestamp column, unparsable timestamps,
                incompatible key types, or a column clashing with a feature name.
            SourceError: A source is missing or no longer matches its view.
        """
        cursor = self._cursor()
        try:
            entity = load_entity(cursor, entity_df, timestamp_column)
            validate_entity(cursor, entity, requests)
            out_types = feature_types(entity, requests, output_names)
            big = entity.stats.rows > RANGE_MAX_ENTITY_ROWS
            view_requests = [
                ViewRequest(
                    record=record,
                    features=list(features),
                    output_columns=[
                        output_names[FeatureRef(record.view.name, f)] for f in features
                    ],
                    scan=self._scan(record, list(features)),
                    source_rows=self._source_rows(record) if big else 0,
                )
                for record, features in requests
            ]
            frame = plan_training_frame(
                cursor,
                entity.query,
                entity.columns,
                view_requests,
                timestamp_column=timestamp_column,
                stats=entity.stats,
                point_in_time=point_in_time,
                strategy=strategy,
                feature_types=out_types,
                keepalive=entity.keepalive,
            )
        except BaseException:
            cursor.close()
            raise
        logger.debug(
            "training frame: %d entity rows, %d views", entity.stats.rows, len(view_requests)
        )
        return frame

    # -- materialization ----------------------------------------------------------------------

    def latest_rows(
        self,
        record: ViewRecord,
        start: datetime,
        end: datetime,
        *,
        batch_size: int = 100_000,
        ordered: bool = False,
    ) -> Iterator[pa.RecordBatch]:
        """The newest row per join-key tuple among rows with ``start <= event_ts < end``.

        Yields batches with the join keys, the features (declared types, schema order),
        ``__fs_event_ts`` and ``__fs_created_ts``, streamed from DuckDB (bounded memory).
        The source is validated before this returns; the query runs on first iteration.
        ``ordered=True`` sorts the rows by the join keys in name order (DuckDB spills a
        large sort to disk, so memory stays bounded).

        Raises:
            SourceError: The source is missing or no longer matches the view.
        """
        query = latest_rows_query(self._scan(record), record, start, end, ordered=ordered)
        return self._stream_latest(record, query, batch_size)

    def _stream_latest(
        self, record: ViewRecord, query: Query, batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        types: dict[str, pa.DataType] = {k: to_arrow(t) for k, t in record.key_dtypes.items()}
        types.update({f.name: to_arrow(f.dtype) for f in record.view.schema})
        types[EVENT_TS] = pa.timestamp("us", tz="UTC")
        types[CREATED_TS] = pa.timestamp("us", tz="UTC")
        cursor = self._cursor()
        try:
            reader = cursor.sql(query.text, params=query.params).to_arrow_reader(batch_size)
            for batch in reader:
                yield conform(batch, types)
        except duckdb.Error as exc:
            msg = f"Reading the latest rows of feature view '{record.view.name}' failed: {exc}"
            raise SourceError(msg) from exc
        finally:
            cursor.close()

    def count_keys(self, record: ViewRecord, start: datetime, end: datetime) -> int:
        """How many rows :meth:`latest_rows` would yield for this window."""
        query = latest_rows_query(self._scan(record, []), record, start, end, count=True)
        cursor = self._cursor()
        try:
            row = cursor.sql(query.text, params=query.params).fetchall()[0]
        finally:
            cursor.close()
        return int(row[0]) if row else 0

    def source_time_range(self, record: ViewRecord) -> tuple[datetime, datetime] | None:
        """The smallest and largest event timestamp of a view's source (None when empty)."""
        scan = self._scan(record, [])
        query = Query().add(f"SELECT min({EVENT_TS}), max({EVENT_TS}) FROM (").extend(scan)
        query.add(")")
        cursor = self._cursor()
        try:
            row = cursor.sql(query.text, params=query.params).fetchall()[0]
        finally:
            cursor.close()
        if row[0] is None:
            return None
        return row[0], row[1]


def _castable(source: pa.DataType, dtype: DType) -> bool:
    """Whether a source column of Arrow type ``source`` can be read as feature type ``dtype``."""
    if pa.types.is_null(source):
        return True
    if pa.types.is_dictionary(source):
        return _castable(source.value_type, dtype)
    if isinstance(dtype, Array):
        if not (pa.types.is_list(source) or pa.types.is_large_list(source)):
            return False
        return _castable(source.value_type, dtype.inner)
    name = dtype.name
    if name in {"Int32", "Int64"}:
        return bool(pa.types.is_integer(source))
    if name in {"Float32", "Float64"}:
        return bool(pa.types.is_integer(source) or pa.types.is_floating(source))
    if name == "String":
        return bool(
            pa.types.is_string(source)
            or pa.types.is_large_string(source)
            or pa.types.is_string_view(source)
        )
    if name == "Bool":
        return bool(pa.types.is_boolean(source))
    if name == "Timestamp":
        return bool(pa.types.is_timestamp(source) or pa.types.is_date(source))
    return bool(
        pa.types.is_binary(source)
        or pa.types.is_large_binary(source)
        or pa.types.is_string(source)
        or pa.types.is_large_string(source)
    )
