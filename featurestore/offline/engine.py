"""OfflineEngine: DuckDB over the repo's Parquet sources; training frames and latest rows.

The engine owns one DuckDB database and wires its parts: :mod:`~featurestore.offline.sources`
(where the files are, their schemas), :mod:`~featurestore.offline.transformed_source` (views
with a batch transform), :mod:`~featurestore.offline.join` (the point-in-time join) and
:mod:`~featurestore.offline.latest_rows` (materialization). Sources are read in place with
``read_parquet`` and never loaded into Python objects.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from featurestore.definitions import FeatureRef
from featurestore.errors import EntityFrameError, SourceError
from featurestore.offline.entity_frame import (
    EntityInput,
    feature_types,
    load_entity,
    validate_entity,
)
from featurestore.offline.join import JoinSpec, ViewRequest, plan_join
from featurestore.offline.join.aggregation import tiles_query
from featurestore.offline.join.planner import needs_source_rows
from featurestore.offline.latest_rows import latest_rows_query
from featurestore.offline.sources import Sources
from featurestore.offline.sql import CREATED_TS, EVENT_TS, Query, source_scan
from featurestore.offline.training_frame import TrainingFrame, conform
from featurestore.types import to_arrow

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from datetime import datetime

    from featurestore.definitions import FeatureView
    from featurestore.offline.join import JoinStrategy, PointInTime
    from featurestore.offline.transformed_source import TransformedSources
    from featurestore.repo.config import DuckDBOfflineStoreConfig
    from featurestore.repo.functions import AppliedFunctions
    from featurestore.repo.registry import ViewRecord
    from featurestore.types import DType

__all__ = ["EntityInput", "OfflineEngine"]

logger = logging.getLogger(__name__)


class OfflineEngine:
    """DuckDB over Parquet: validates sources, builds training frames, reads latest rows.

    Args:
        config: The ``offline_store`` section of the repo config.
        repo_root: The feature repo; relative source paths and ``temp_directory`` resolve
            against it.
        functions: The applied batch transforms (views read from the registry carry none).
    """

    def __init__(
        self, config: DuckDBOfflineStoreConfig, *, repo_root: Path, functions: AppliedFunctions
    ) -> None:
        self.config = config
        self.repo_root = Path(repo_root)
        self._functions = functions
        settings: dict[str, str | bool | int | float | list[str]] = {}
        if config.memory_limit is not None:
            settings["memory_limit"] = config.memory_limit
        if config.threads is not None:
            settings["threads"] = config.threads
        temp: Path | None = None
        if config.temp_directory is not None:
            temp = Path(config.temp_directory)
            temp = temp if temp.is_absolute() else self.repo_root / temp
            settings["temp_directory"] = str(temp)
        try:
            self._con = duckdb.connect(":memory:", config=settings)
        except duckdb.Error as exc:
            msg = f"Cannot open DuckDB with offline_store settings {settings}: {exc}. Fix them."
            raise SourceError(msg) from exc
        self.sources = Sources(self.cursor, self.repo_root)
        """The views' Parquet sources: patterns, schemas, files, row counts."""
        self._temp = temp
        self._transformed: TransformedSources | None = None

    @property
    def local(self) -> OfflineEngine:
        """Itself: DuckDB is the local engine of the ``Engine`` interface (offline/base.py)."""
        return self

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new session on the engine's database, in UTC (sessions own their time zone)."""
        cursor = self._con.cursor()
        try:
            cursor.execute("SET TimeZone = 'UTC'")
        except duckdb.Error:
            # Without the ICU extension DuckDB has no time zones: TIMESTAMPTZ is UTC already.
            logger.debug("DuckDB has no ICU extension; timestamps are UTC by construction")
        return cursor

    @property
    def transformed(self) -> TransformedSources:
        """Sources of views with a batch transform, run through the executor (cached).

        Created on first use: the executor needs polars, which a repo without batch
        transforms never loads.
        """
        if self._transformed is None:
            from featurestore.offline.transformed_source import TransformedSources

            self._transformed = TransformedSources(
                self.sources, self.cursor, temp_parent=self._temp
            )
        return self._transformed

    def close(self) -> None:
        """Close the DuckDB database (open training frames can no longer run)."""
        self._con.close()
        if self._transformed is not None:
            self._transformed.close()

    def infer_key_dtypes(self, view: FeatureView) -> dict[str, DType]:
        """Validate a view's source (schema only, no data scan) and infer its join key types.

        Raises:
            SourceError: Missing path, missing or mistyped columns, or a key type that
                cannot be a join key.
            TransformationError: The view's batch transform fails on the first source rows
                or returns other types than declared (its output is validated, not the
                source's feature columns).
        """
        result = self.sources.key_dtypes(view.event_view() if view.aggregations else view)
        if view.transform is not None:
            self.transformed.validate(view, result)
        return result

    def scan(self, record: ViewRecord, features: list[str] | None = None) -> Query:
        """The one read path of a view's rows (source files, then its push log).

        A view with a batch transform reads its transformed rows; an aggregation view reads
        its raw events.
        """
        if record.view.aggregations:  # an aggregation view reads its raw events (G7)
            record = replace(record, view=record.view.event_view())
            features = None if features else features
        record = self._functions.with_transform(record)
        source_files = self.sources.read(record.view)
        if record.view.transform is not None:
            return self.transformed.scan(record, source_files, features)
        return source_scan(
            record.view,
            source_files.pattern,
            source_files.columns,
            files=source_files.files,
            key_dtypes=record.key_dtypes,
            features=features,
        )

    # -- training frames ----------------------------------------------------------------------

    def training_frame(
        self,
        entity_df: EntityInput,
        requests: list[tuple[ViewRecord, list[str]]],
        *,
        output_names: dict[FeatureRef, str],
        timestamp_column: str,
        point_in_time: PointInTime,
        strategy: JoinStrategy = "auto",
        event_columns: Mapping[str, str] | None = None,
    ) -> TrainingFrame:
        """A lazy point-in-time-correct training frame (the rule: :mod:`featurestore.offline.join`).

        Args:
            entity_df: The entity frame (see :data:`EntityInput`).
            requests: Each view with the features requested from it, in output order.
            output_names: The output column of each feature ref.
            timestamp_column: The entity frame's timestamp column.
            point_in_time: ``"event"`` or ``"available"``.
            strategy: Force the join strategy (tests and benchmarks); ``"auto"`` picks by size.
            event_columns: View name -> an output column for the event timestamp of the row
                that supplied the view's features (null where none did), after the features.

        Raises:
            EntityFrameError: Missing join key or timestamp column, unparsable timestamps,
                incompatible key types, or a column clashing with a feature name.
            SourceError: A source is missing or no longer matches its view.
        """
        cursor = self.cursor()
        try:
            entity = load_entity(cursor, entity_df, timestamp_column)
            validate_entity(cursor, entity, requests)
            out_types = feature_types(entity, requests, output_names)
            events = _event_columns(requests, event_columns or {}, out_types, entity.columns)
            big = needs_source_rows(entity.stats.rows)
            view_requests = [
                ViewRequest(
                    record=record,
                    features=list(features),
                    output_columns=[
                        output_names[FeatureRef(record.view.name, f)] for f in features
                    ],
                    scan=self.scan(record, list(features)),
                    source_rows=self.sources.row_count(record.view) if big else 0,
                    event_column=events.get(record.view.name),
                )
                for record, features in requests
            ]
            spec = JoinSpec(
                entity=entity.query,
                entity_columns=entity.columns,
                requests=view_requests,
                timestamp_column=timestamp_column,
                stats=entity.stats,
                point_in_time=point_in_time,
                feature_order=list(out_types),
            )
            plan = plan_join(cursor, spec, strategy)
            frame = TrainingFrame(cursor, plan, feature_types=out_types, keepalive=entity.keepalive)
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
        query = latest_rows_query(self.scan(record), record, start, end, ordered=ordered)
        return self._stream_latest(record, query, batch_size)

    def _stream_latest(
        self, record: ViewRecord, query: Query, batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        types: dict[str, pa.DataType] = {k: to_arrow(t) for k, t in record.key_dtypes.items()}
        types.update({f.name: to_arrow(f.dtype) for f in record.view.schema})
        types[EVENT_TS] = pa.timestamp("us", tz="UTC")
        types[CREATED_TS] = pa.timestamp("us", tz="UTC")
        cursor = self.cursor()
        try:
            reader = cursor.sql(query.text, params=query.params).to_arrow_reader(batch_size)
            for batch in reader:
                yield conform(batch, types)
        except duckdb.Error as exc:
            msg = f"Reading the latest rows of feature view '{record.view.name}' failed: {exc}"
            raise SourceError(msg) from exc
        finally:
            cursor.close()

    def tiles(
        self,
        record: ViewRecord,
        lo: datetime,
        hi: datetime,
        *,
        wanted: pa.Table | None = None,
        batch_size: int = 100_000,
    ) -> Iterator[pa.RecordBatch]:
        """An aggregation view's tiles over its events with ``lo <= event < hi`` (G7).

        The columns of :func:`~featurestore.offline.join.aggregation.tiles_query`, streamed.
        ``wanted`` (join keys and ``__fs_tile``) restricts them to those tiles.

        Raises:
            SourceError: The source is missing or no longer matches the view.
        """
        query = tiles_query(
            self.scan(record), record.view, lo, hi, wanted=None if wanted is None else "__fs_w"
        )
        cursor = self.cursor()
        try:
            if wanted is not None:
                cursor.register("__fs_w", wanted)
            yield from cursor.sql(query.text, params=query.params).to_arrow_reader(batch_size)
        except duckdb.Error as exc:
            msg = f"Computing the tiles of feature view '{record.view.name}' failed: {exc}"
            raise SourceError(msg) from exc
        finally:
            cursor.close()

    def count_keys(self, record: ViewRecord, start: datetime, end: datetime) -> int:
        """How many rows :meth:`latest_rows` would yield for this window."""
        query = latest_rows_query(self.scan(record, []), record, start, end, count=True)
        cursor = self.cursor()
        try:
            row = cursor.sql(query.text, params=query.params).fetchall()[0]
        finally:
            cursor.close()
        return int(row[0]) if row else 0

    def source_time_range(self, record: ViewRecord) -> tuple[datetime, datetime] | None:
        """The smallest and largest event timestamp of a view's source (None when empty)."""
        scan = self.scan(record, [])
        query = Query().add(f"SELECT min({EVENT_TS}), max({EVENT_TS}) FROM (").extend(scan)
        query.add(")")
        cursor = self.cursor()
        try:
            row = cursor.sql(query.text, params=query.params).fetchall()[0]
        finally:
            cursor.close()
        if row[0] is None:
            return None
        return row[0], row[1]


def _event_columns(
    requests: list[tuple[ViewRecord, list[str]]],
    event_columns: Mapping[str, str],
    out_types: dict[str, pa.DataType],
    entity_columns: list[str],
) -> dict[str, str]:
    """The requested views' event timestamp columns, added to ``out_types`` (after features).

    Raises:
        EntityFrameError: A column clashes with a feature or entity column.
    """
    events = {
        r.view.name: event_columns[r.view.name] for r, _ in requests if r.view.name in event_columns
    }
    for view, column in events.items():
        if column in out_types or column in entity_columns:
            msg = (
                f"Event timestamp column '{column}' of view '{view}' clashes with another "
                "column of the training frame. Name it differently."
            )
            raise EntityFrameError(msg)
        out_types[column] = pa.timestamp("us", tz="UTC")
    return events
