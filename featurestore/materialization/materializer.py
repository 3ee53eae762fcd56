"""Latest value per entity in ``[start, end)`` -> online store, streamed in batches.

The offline engine yields, per join key, the newest row of the window by the one total order
(event timestamp, created timestamp null lowest, file position). Each batch is encoded and
written conditionally, so windows may run in any order, overlap or repeat (DESIGN G3). The
watermark advances only after a view's window is completely written; a crash before that
leaves the previous online state servable, and a rerun is safe.

Every run first takes the online store's epoch (``OnlineStore.ensure_epoch``, written into an
empty store) and records it with each watermark. A view whose watermark was recorded under
another epoch is **lost** (the store was emptied or replaced, see
:mod:`featurestore.online.epoch`): its records are deleted and it is materialized as if for
the first time, and the report says so (``ViewMaterialization.rebuilt``).

A view with expectations (DESIGN G6) is gated: the window's rows, exactly as they would be
written (after the batch transform), are collected and validated with Great Expectations before
the first online write. A failing window of an
``on_failure="block"`` view writes nothing, keeps its watermark and raises
:class:`~featurestore.errors.ValidationError`; views after it (by name) are not run. With
``"warn"`` it is written and the failure logged. Either way the run is kept in the
:class:`~featurestore.validation.result.ValidationLog`. Collecting a gated window holds its
rows in memory (measured in benchmarks/README.md, "Validation").
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from featurestore._time import to_utc, utc_now
from featurestore.errors import DefinitionError, FeatureViewNotFoundError, MaterializationError
from featurestore.materialization.tiles import TileSource, expire_tiles, write_tiles
from featurestore.materialization.watermarks import advances_watermark, incremental_start
from featurestore.offline.base import WritesFromExecutors
from featurestore.online.codec import KeyEncoder, PackedBytes, RecordCodec
from featurestore.online.epoch import is_lost, lost_reason
from featurestore.types import Array, DType, ScalarType, Timestamp, to_arrow
from featurestore.validation.gate import enforce
from featurestore.validation.run import validate_table
from featurestore.window import lower_bound_datetime

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from datetime import datetime

    import numpy as np

    from featurestore.materialization.history import MaterializationHistory
    from featurestore.online.base import OnlineStore
    from featurestore.repo.registry import Registry, RegistrySnapshot, ViewRecord
    from featurestore.validation.result import ValidationLog, ValidationResult

__all__ = [
    "EVENT_TS_COLUMN",
    "MaterializationReport",
    "Materializer",
    "ProgressCallback",
    "RowSource",
    "ViewMaterialization",
    "validate_window",
]

logger = logging.getLogger(__name__)

EVENT_TS_COLUMN = "__fs_event_ts"
CREATED_TS_COLUMN = "__fs_created_ts"
DEFAULT_BATCH_SIZE = 200_000
"""Rows per batch: read from DuckDB (its chunks regrouped), encoded, then written in one
transaction. Larger batches make key-sorted SQLite writes more sequential (50k -> 200k:
~1.5x rows/s); 500k measured no better than 200k."""


class ProgressCallback(Protocol):
    """Called after every written batch: ``done`` of ``total`` entity keys of ``view``."""

    def __call__(self, view: str, done: int, total: int | None) -> None:
        """Report progress; ``total`` is None when unknown."""


class RowSource(TileSource, Protocol):
    """What materialization needs from the offline engine (``OfflineEngine`` provides it)."""

    def latest_rows(
        self,
        record: ViewRecord,
        start: datetime,
        end: datetime,
        *,
        batch_size: int = ...,
        ordered: bool = ...,
    ) -> Iterator[pa.RecordBatch]:
        """Per join key with a row in ``[start, end)``, its newest row (see module doc).

        ``ordered=True``: sorted by the join keys in name order.
        """
        ...

    def count_keys(self, record: ViewRecord, start: datetime, end: datetime) -> int:
        """How many join keys have a row in ``[start, end)``."""
        ...

    def source_time_range(self, record: ViewRecord) -> tuple[datetime, datetime] | None:
        """The earliest and latest event timestamps of the source (None when empty)."""
        ...


@dataclass(frozen=True, slots=True)
class ViewMaterialization:
    """What one view's window wrote."""

    view: str
    start: datetime | None
    """None when there was nothing to do (already materialized through ``end``)."""
    end: datetime
    rows: int
    """Entity keys read from the window (one newest row each)."""
    written: int
    """Records that replaced an older (or no) stored record."""
    seconds: float
    watermark: datetime | None
    """The view's watermark after the run."""
    rebuilt: bool = False
    """The view's online records were deleted first and it was materialized as if for the
    first time: the store had lost them (another store epoch), or a rebuild was asked for."""

    @property
    def rows_per_second(self) -> float:
        """Throughput of the window."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class MaterializationReport:
    """The result of one materialize or materialize_incremental call."""

    views: tuple[ViewMaterialization, ...]

    @property
    def rows(self) -> int:
        """Entity keys read over all views."""
        return sum(v.rows for v in self.views)

    @property
    def seconds(self) -> float:
        """Total time over all views."""
        return sum(v.seconds for v in self.views)


class Materializer:
    """Moves the latest rows of feature views from the offline engine to the online store.

    Args:
        registry: Where watermarks are recorded.
        offline: The row source (the offline engine).
        online: The online store.
        batch_size: Rows per batch read from DuckDB and written to the store.
        validation_log: Where the runs of views' expectations are kept (None: not kept).
        history: Where finished windows are recorded for people to read (None: not kept).
    """

    def __init__(
        self,
        registry: Registry,
        offline: RowSource,
        online: OnlineStore,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        validation_log: ValidationLog | None = None,
        history: MaterializationHistory | None = None,
    ) -> None:
        self.registry = registry
        self.offline = offline
        self.online = online
        self.batch_size = batch_size
        self.validation_log = validation_log
        self.history = history

    def materialize(
        self,
        snapshot: RegistrySnapshot,
        start: datetime,
        end: datetime,
        *,
        views: Sequence[str] | None = None,
        progress: ProgressCallback | None = None,
    ) -> MaterializationReport:
        """Materialize the window ``[start, end)`` of the selected online views.

        A view's watermark moves to ``end`` when the window is contiguous with it (``start``
        at or before the watermark) or the view was never materialized.

        Raises:
            MaterializationError: ``start`` is not before ``end``, or a window failed.
            FeatureViewNotFoundError: A named view is not applied.
            ValidationError: A view's window broke its expectations (``on_failure="block"``).
            MissingDependencyError: A view has expectations and Great Expectations is not
                installed.
        """
        start, end = to_utc(start), to_utc(end)
        if start >= end:
            msg = (
                f"Materialization window [{start.isoformat()}, {end.isoformat()}) is empty; "
                "START must be before END."
            )
            raise MaterializationError(msg)
        epoch = self.online.ensure_epoch()
        results = []
        for selected in _select(snapshot, views):
            record = self._forget_if_lost(selected, epoch)
            advance = advances_watermark(record, start)
            if not advance:
                logger.warning(
                    "window of %s starts after its watermark %s: written, watermark kept",
                    record.view.name,
                    record.watermark,
                )
            results.append(
                self._run(
                    record,
                    start,
                    end,
                    advance=advance,
                    epoch=epoch,
                    rebuilt=record is not selected,
                    progress=progress,
                )
            )
        return MaterializationReport(tuple(results))

    def materialize_incremental(
        self,
        snapshot: RegistrySnapshot,
        end: datetime | None = None,
        *,
        views: Sequence[str] | None = None,
        progress: ProgressCallback | None = None,
        rebuild: bool = False,
    ) -> MaterializationReport:
        """Materialize each selected view from its watermark to ``end`` (default: now).

        A first run starts at ``end - ttl``, or at the earliest source row when the ttl is
        unlimited. A lost view (see the module doc), and every selected view when
        ``rebuild`` is set, has its online records deleted and runs as a first run; a rebuild
        runs at least up to the view's previous watermark, so it covers what was there.
        """
        end = to_utc(end) if end is not None else utc_now()
        epoch = self.online.ensure_epoch()
        results = []
        for selected in _select(snapshot, views):
            record = self._forget_if_lost(selected, epoch, forget=rebuild)
            rebuilt = record is not selected
            view_end = max(end, selected.watermark) if rebuild and selected.watermark else end
            earliest = None
            if record.watermark is None and (
                lower_bound_datetime(view_end, record.view.effective_ttl) is None
            ):
                time_range = self.offline.source_time_range(record)
                earliest = time_range[0] if time_range else None
            start = incremental_start(record, view_end, earliest)
            if start is None:
                if record.watermark is None or record.watermark < view_end:
                    # An empty source: nothing below ``end`` exists, so it is all materialized.
                    self.registry.set_watermark(
                        record.view.name, view_end, fingerprint=record.fingerprint, epoch=epoch
                    )
                watermark = max(record.watermark or view_end, view_end)
                results.append(
                    ViewMaterialization(
                        record.view.name, None, view_end, 0, 0, 0.0, watermark, rebuilt
                    )
                )
                continue
            results.append(
                self._run(
                    record,
                    start,
                    view_end,
                    advance=True,
                    epoch=epoch,
                    rebuilt=rebuilt,
                    progress=progress,
                )
            )
        return MaterializationReport(tuple(results))

    def _forget_if_lost(
        self, record: ViewRecord, epoch: str, *, forget: bool = False
    ) -> ViewRecord:
        """``record`` as never materialized, with its online records deleted, or unchanged.

        Forgotten when it is lost in the store of ``epoch``, or when ``forget`` is set.
        """
        lost = is_lost(record, epoch)
        if not (lost or forget):
            return record
        name = record.view.name
        if lost:
            logger.warning(
                "%s Rebuilding it now.", lost_reason([record], epoch, self.online.location)
            )
        deleted = self.online.delete_records(name)
        logger.info("deleted %d online records of %s before rebuilding it", deleted, name)
        return replace(record, watermark=None, epoch=None)

    def _run(
        self,
        record: ViewRecord,
        start: datetime,
        end: datetime,
        *,
        advance: bool,
        epoch: str,
        rebuilt: bool,
        progress: ProgressCallback | None,
    ) -> ViewMaterialization:
        name = record.view.name
        began = time.perf_counter()
        if record.view.aggregations:  # tiles, not rows (G7; materialization/tiles.py)
            after = max(record.watermark or end, end) if advance else record.watermark
            rows, written = write_tiles(
                self.offline, self.online, record, start, end, watermark=after
            )
            if advance:
                expire_tiles(self.online, record, record.watermark, end)
        else:
            rows, written = self._write_rows(record, start, end, progress)
        watermark = record.watermark
        if advance:
            if self.registry.set_watermark(name, end, fingerprint=record.fingerprint, epoch=epoch):
                watermark = max(watermark or end, end)
            else:
                logger.warning("%s was redefined during materialization; watermark kept", name)
        seconds = time.perf_counter() - began
        logger.info(
            "materialized %d rows of %s [%s, %s) in %.2f s",
            rows,
            name,
            start.isoformat(),
            end.isoformat(),
            seconds,
        )
        result = ViewMaterialization(name, start, end, rows, written, seconds, watermark, rebuilt)
        if self.history is not None:
            self.history.record(result)
        return result

    def _write_rows(
        self,
        record: ViewRecord,
        start: datetime,
        end: datetime,
        progress: ProgressCallback | None,
    ) -> tuple[int, int]:
        """Write the newest row of each key in the window; returns (rows, records written)."""
        name = record.view.name
        if record.view.suite_json is None and isinstance(self.offline, WritesFromExecutors):
            if progress is not None:
                progress(name, 0, None)
            write = _PartitionWriter(record, self.online, self.batch_size)
            rows, written = self.offline.write_latest(record, start, end, write)
            if progress is not None:
                progress(name, rows, rows)
            return rows, written
        total = self.offline.count_keys(record, start, end) if progress is not None else None
        if progress is not None:
            progress(name, 0, total)
        batches = self.offline.latest_rows(
            record, start, end, batch_size=self.batch_size, ordered=True
        )
        chunks: Iterable[pa.Table] = _rebatched(batches, self.batch_size)
        if record.view.suite_json is not None:
            chunks = self._validated(record, list(chunks), start, end)

        def written_so_far(rows: int) -> None:
            if progress is not None:
                progress(name, rows, total)

        return _write_chunks(self.online, record, chunks, written_so_far)

    def _validated(
        self, record: ViewRecord, chunks: list[pa.Table], start: datetime, end: datetime
    ) -> list[pa.Table]:
        """``chunks`` once the window they make up passed the view's suite (see module doc).

        Raises:
            ValidationError: The window failed and the view blocks on failure.
        """
        if not chunks:
            return chunks  # nothing would be written: nothing to check
        view = record.view
        table = _as_written(record, pa.concat_tables(chunks))
        result = validate_table(view, table, start=start, end=end, kind="materialization")
        if self.validation_log is not None:
            self.validation_log.save(result)
        enforce(result)
        return chunks


def _as_written(record: ViewRecord, table: pa.Table) -> pa.Table:
    """A window's newest rows with the columns expectations name.

    Join keys, features and the source's timestamp columns (by their names in the source).
    """
    view = record.view
    names = {EVENT_TS_COLUMN: view.source.timestamp_field}
    if view.source.created_timestamp_field:
        names[CREATED_TS_COLUMN] = view.source.created_timestamp_field
    columns = [*view.join_keys, *view.feature_names, *names]
    return table.select(columns).rename_columns([names.get(c, c) for c in columns])


def validate_window(
    offline: RowSource,
    record: ViewRecord,
    start: datetime | None,
    end: datetime | None,
    *,
    log: ValidationLog | None,
) -> ValidationResult:
    """Run ``record``'s expectations over the rows materializing ``[start, end)`` would write.

    Nothing is written online and no watermark moves; the run is kept in ``log``. ``start``
    defaults to the earliest source row, ``end`` to now.

    Raises:
        DefinitionError: The view has no expectations.
        MissingDependencyError: Great Expectations is not installed.
    """
    view = record.view
    if view.suite_json is None:
        msg = (
            f"Feature view '{view.name}' has no expectations; add expectations=[...] to its "
            "definition and run 'featurestore apply'."
        )
        raise DefinitionError(msg)
    end = to_utc(end) if end is not None else utc_now()
    if start is None:
        time_range = offline.source_time_range(record)
        start = time_range[0] if time_range else end
    start = min(to_utc(start), end)
    batches = list(offline.latest_rows(record, start, end))
    if batches:
        table = pa.Table.from_batches(batches)
    else:
        table = pa.Table.from_batches([], schema=_window_schema(record))
    result = validate_table(view, _as_written(record, table), start=start, end=end, kind="validate")
    if log is not None:
        log.save(result)
    return result


def _window_schema(record: ViewRecord) -> pa.Schema:
    """The schema of :meth:`RowSource.latest_rows` batches, for an empty window."""
    fields = [pa.field(k, to_arrow(record.key_dtypes[k])) for k in record.view.join_keys]
    fields += [pa.field(f.name, to_arrow(f.dtype)) for f in record.view.schema]
    fields += [
        pa.field(EVENT_TS_COLUMN, pa.timestamp("us", tz="UTC")),
        pa.field(CREATED_TS_COLUMN, pa.timestamp("us", tz="UTC")),
    ]
    return pa.schema(fields)


def _rebatched(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.Table]:
    """The batches regrouped into tables of at least ``size`` rows (the last may be smaller).

    DuckDB streams a sorted result in chunks of its own (~123k rows) whatever batch size is
    asked; one write transaction per ``size`` rows is what the batch size promises.
    """
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        count += batch.num_rows
        if count >= size:
            yield pa.Table.from_batches(pending)
            pending, count = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def _select(snapshot: RegistrySnapshot, views: Sequence[str] | None) -> list[ViewRecord]:
    if views is None:
        return [r for _, r in sorted(snapshot.feature_views.items()) if r.view.online]
    selected = []
    for name in dict.fromkeys(views):
        record = snapshot.feature_views.get(name)
        if record is None:
            raise FeatureViewNotFoundError(name=name, candidates=snapshot.feature_views)
        if not record.view.online:
            msg = (
                f"Feature view '{name}' has online=False, so it is not materialized. Set "
                "online=True in its definition and run 'featurestore apply'."
            )
            raise MaterializationError(msg)
        selected.append(record)
    return selected


class _PartitionWriter:
    """Writes one partition of a window's newest rows where the partition is (an executor).

    Pickled with the store's :meth:`~featurestore.online.base.OnlineStore.opener`, it opens
    a connection of its own there, and encodes and writes each batch as
    :meth:`Materializer._write_rows` does on this machine.
    """

    def __init__(self, record: ViewRecord, online: OnlineStore, batch_size: int) -> None:
        self.record = record
        self.open_online = online.opener()
        self.batch_size = batch_size

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> tuple[int, int]:
        online = self.open_online()
        try:
            return _write_chunks(online, self.record, _rebatched(batches, self.batch_size))
        finally:
            online.close()


def _write_chunks(
    online: OnlineStore,
    record: ViewRecord,
    chunks: Iterable[pa.Table],
    written_so_far: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Encode and conditionally write each chunk of newest rows; (rows, records written).

    The one write loop of materialization: the driver's and each Spark partition's.
    """
    writer = _BatchWriter(record)
    name = record.view.name
    rows = written = 0
    for chunk in chunks:
        keys, records = writer.encode(chunk)
        written += online.write_records(name, keys, records)
        rows += chunk.num_rows
        logger.debug("%s: wrote batch of %d rows", name, chunk.num_rows)
        if written_so_far is not None:
            written_so_far(rows)
    return rows, written


class _BatchWriter:
    """Turns an Arrow table of newest rows into (entity keys, records) for one view."""

    def __init__(self, record: ViewRecord) -> None:
        self.record = record
        self.key_names = record.view.join_keys
        self.key_encoder = KeyEncoder({k: record.key_dtypes[k] for k in self.key_names})
        self.fields = record.view.schema
        self.codec = RecordCodec([f.dtype for f in self.fields], fingerprint=record.fingerprint)
        self._fixed = all(
            isinstance(t, ScalarType) and t.name not in ("String", "Bytes")
            for t in [
                *(record.key_dtypes[k] for k in self.key_names),
                *(f.dtype for f in self.fields),
            ]
        )

    def encode(self, table: pa.Table) -> tuple[Sequence[bytes], Sequence[bytes]]:
        try:
            valid = None
            for key in self.key_names:
                ok = pc.is_valid(table.column(key))
                valid = ok if valid is None else pc.and_(valid, ok)
            if valid is not None and not pc.all(valid).as_py():
                dropped = table.num_rows - pc.sum(valid).as_py()
                logger.warning(
                    "%s: skipped %d rows with a null join key", self.record.view.name, dropped
                )
                table = table.filter(valid)
            fast = self._encode_arrays(table)
            if fast is not None:
                return fast
            keys = [
                _python_values(table.column(k), self.record.key_dtypes[k]) for k in self.key_names
            ]
            columns = [_python_values(table.column(f.name), f.dtype) for f in self.fields]
            event_us = _python_values(table.column(EVENT_TS_COLUMN), Timestamp)
            created_us = _python_values(table.column(CREATED_TS_COLUMN), Timestamp)
        except KeyError as exc:
            msg = (
                f"The offline engine returned no column {exc} for feature view "
                f"'{self.record.view.name}'; this is a bug, please report it."
            )
            raise MaterializationError(msg) from exc
        return (
            self.key_encoder.encode_columns(keys),
            self.codec.encode_rows(event_us, created_us, columns),  # type: ignore[arg-type]  # micros
        )

    def _encode_arrays(self, table: pa.Table) -> tuple[PackedBytes, PackedBytes] | None:
        """The batch encoded from numpy arrays, for views and keys of fixed-width types.

        Same bytes as the per-value path (tests/unit/materialization check it), packed in one
        buffer each (SQLite writes such a batch in one statement); None when a key or feature
        is variable-width, or an event timestamp is null.
        """
        if not self._fixed:
            return None
        events = _cast(table.column(EVENT_TS_COLUMN), Timestamp)
        if events.null_count:
            return None
        keys = [
            _numpy_values(table.column(k), self.record.key_dtypes[k])[0] for k in self.key_names
        ]
        entity_keys = self.key_encoder.encode_arrays(keys)
        if entity_keys is None:
            return None
        created, created_null = _numpy_values(table.column(CREATED_TS_COLUMN), Timestamp)
        values, nulls = [], []
        for f in self.fields:
            column, null = _numpy_values(table.column(f.name), f.dtype)
            values.append(column)
            nulls.append(null)
        records = self.codec.encode_arrays(events.to_numpy(), created, created_null, values, nulls)
        if records is None:
            return None
        return entity_keys, records


def _numpy_values(column: pa.ChunkedArray, dtype: DType) -> tuple[np.ndarray, np.ndarray | None]:
    """A fixed-width column as numpy values (nulls as zero) and its null mask (None: none)."""
    column = _cast(column, dtype)
    nulls = None
    if column.null_count:
        nulls = pc.is_null(column).to_numpy()
        column = pc.fill_null(column, False if dtype.name == "Bool" else 0)
    return column.to_numpy(), nulls


def _python_values(column: pa.ChunkedArray, dtype: DType) -> list[object]:
    """A column as the codec's Python values (timestamps as int microseconds)."""
    values: list[object] = _cast(column, dtype).to_pylist()
    return values


def _cast(column: pa.ChunkedArray, dtype: DType) -> pa.ChunkedArray:
    """A column in the declared type (timestamps as int64 microseconds)."""
    target = to_arrow(dtype)
    if not column.type.equals(target):
        try:
            column = column.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            msg = f"Column of type {column.type} cannot be stored as {dtype} ({exc})."
            raise MaterializationError(msg) from exc
    if dtype == Timestamp:
        column = column.cast(pa.int64())
    elif dtype == Array(Timestamp):
        column = column.cast(pa.large_list(pa.int64()))
    return column
