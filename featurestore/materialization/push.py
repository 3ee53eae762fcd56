"""Push: rows written now, to the push log and to the online store (DESIGN G8).

A push checks every row against the view's schema and key types before anything is written
(an error names the column and the row), runs the view's expectations, appends the rows
durably to the view's push log (:mod:`featurestore.offline.push_log`), then writes the
newest row of each key online with the same conditional write as materialization: a pushed
row older than the stored one (by the order "newer") never replaces it. The push log is read
after the source files by every offline reader, so training frames contain pushed rows in
push order.

A crash between the offline append and the online write leaves the rows in the log but not
online; :func:`heal_pushes` (run by every materialization) writes the online rows of push
files it has not seen, conditionally, so the next materialization heals the crash.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from featurestore._time import parse_timestamp, to_micros, to_utc, to_utc_array, utc_now
from featurestore.errors import DefinitionError, EntityFrameError, MaterializationError
from featurestore.materialization.materializer import (
    CREATED_TS_COLUMN,
    EVENT_TS_COLUMN,
    _BatchWriter,
)
from featurestore.materialization.tiles import TileSource
from featurestore.offline.push_log import PUSH_ID_COLUMN, PUSH_ONLINE_COLUMN, PUSH_TIME_COLUMN
from featurestore.offline.sql import quote_ident
from featurestore.types import Timestamp, to_arrow

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from featurestore.offline.sources import Sources
    from featurestore.online.base import OnlineStore
    from featurestore.repo.snapshot import ViewRecord
    from featurestore.validation.result import ValidationLog

__all__ = ["PushMode", "PushResult", "PushRows", "Pusher", "heal_pushes", "rows_to_table"]

logger = logging.getLogger(__name__)

PushMode = Literal["online", "offline", "online_and_offline"]


class PushOffline(TileSource, Protocol):
    """What pushes need from the offline engine (``OfflineEngine`` provides it)."""

    sources: Sources


PUSH_MODES: tuple[PushMode, ...] = ("online", "offline", "online_and_offline")

PushRows = object
"""Rows to push: a pandas or polars DataFrame, an Arrow table or record batch, a list of
dicts (one per row) or a dict of columns (column-major, as Feast's ``POST /push`` sends)."""

_HEALED_FILE = ".healed"


@dataclass(frozen=True, slots=True)
class PushResult:
    """What one push wrote."""

    view: str
    rows: int
    """Rows pushed."""
    written: int
    """Online records replaced (0 when ``to="offline"``, or every row was older)."""
    log_file: str | None
    """The push log file the rows were appended to (None when ``to="online"``)."""


def rows_to_table(rows: PushRows, *, types: Mapping[str, pa.DataType]) -> pa.Table:
    """Pushed rows as an Arrow table; Python values are converted straight to ``types``.

    Raises:
        EntityFrameError: The rows are of an unsupported kind, or a value cannot be converted
            (the message names the column and the row).
    """
    if isinstance(rows, pa.Table):
        return rows
    if isinstance(rows, pa.RecordBatch):
        return pa.Table.from_batches([rows])
    if isinstance(rows, list):
        names = list(dict.fromkeys(k for row in rows for k in _row_keys(row)))
        columns = {n: [row.get(n) for row in rows] for n in names}
        return _table_from_columns(columns, types, len(rows))
    if isinstance(rows, dict):
        lengths = {len(v) for v in rows.values() if isinstance(v, list | tuple)}
        if len(lengths) > 1 or any(not isinstance(v, list | tuple) for v in rows.values()):
            msg = (
                "Pushed columns must be lists of equal length (column-major rows); got "
                + ", ".join(f"'{k}': {type(v).__name__}" for k, v in rows.items())
                + "."
            )
            raise EntityFrameError(msg)
        n = lengths.pop() if lengths else 0
        return _table_from_columns({k: list(v) for k, v in rows.items()}, types, n)
    module = type(rows).__module__.split(".")[0]
    if module == "polars":
        table: pa.Table = rows.to_arrow()  # type: ignore[attr-defined]  # a polars frame
        return table
    if module == "pandas":
        return pa.Table.from_pandas(rows, preserve_index=False)
    msg = (
        f"Cannot push rows of type {type(rows).__name__}: pass a pandas or polars DataFrame, "
        "an Arrow table, a list of dicts or a dict of column lists."
    )
    raise EntityFrameError(msg)


def _row_keys(row: object) -> list[str]:
    if not isinstance(row, dict):
        msg = f"Pushed rows given as a list must be dicts (one per row), not {type(row).__name__}."
        raise EntityFrameError(msg)
    return [str(k) for k in row]


def _table_from_columns(
    columns: dict[str, list[object]], types: Mapping[str, pa.DataType], n: int
) -> pa.Table:
    arrays: dict[str, pa.Array] = {}
    for name, values in columns.items():
        target = types.get(name)
        if target is not None and pa.types.is_timestamp(target):
            parsed = _iso_strings(values)
            if parsed is not None:
                arrays[name] = parsed
                continue
            values = [_utc_value(v, i, name) for i, v in enumerate(values)]
        try:
            arrays[name] = pa.array(values, type=target, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError) as exc:
            row = _first_bad(values, target)
            raise _bad_value(name, row, values[row] if row is not None else None, target) from exc
    if not arrays:
        return pa.table({"__empty": pa.nulls(n)}).drop_columns(["__empty"])
    return pa.table(arrays)


def _iso_strings(values: list[object]) -> pa.Array | None:
    """ISO 8601 strings parsed by Arrow (with offsets, or naive = UTC); None if it cannot.

    Arrow parses a whole column at once; values it refuses go through :func:`_utc_value`,
    one by one, which names the bad row.
    """
    if not all(v is None or isinstance(v, str) for v in values):
        return None
    strings = pa.array(values, pa.string())
    utc = pa.timestamp("us", tz="UTC")
    for parse in (utc, pa.timestamp("us")):  # with an offset, or naive (meaning UTC)
        try:
            parsed: pa.Array = pc.cast(strings, parse).cast(utc)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        return parsed
    return None


def _utc_value(value: object, row: int, column: str) -> object:
    """A pushed timestamp as aware UTC: ISO strings parsed, naive datetimes meaning UTC."""
    if isinstance(value, str):
        return parse_timestamp(value, what=f"row {row}, column '{column}'")
    if isinstance(value, datetime):
        return to_utc(value)
    return value


def _first_bad(values: Sequence[object], target: pa.DataType | None) -> int | None:
    for i, value in enumerate(values):
        try:
            pa.array([value], type=target, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
            return i
    return None


def _bad_value(column: str, row: int | None, value: object, target: object) -> EntityFrameError:
    where = f"row {row}, " if row is not None else ""
    kind = f" as {target}" if target is not None else ""
    return EntityFrameError(
        f"{where}column '{column}': value {value!r} cannot be read{kind}. "
        "Fix the value or the column's type."
    )


class Pusher:
    """Pushes rows of applied feature views to the push log and the online store.

    Args:
        offline: The offline engine (its sources' push log, source schemas, and the tiles
            of aggregation views).
        online: The online store (None: only ``to="offline"`` pushes are possible).
        validation_log: Where expectation runs of pushed rows are kept.
    """

    def __init__(
        self,
        offline: PushOffline,
        online: OnlineStore | None,
        *,
        validation_log: ValidationLog | None = None,
    ) -> None:
        self.offline = offline
        self.sources = offline.sources
        self.online = online
        self.validation_log = validation_log
        self._epoch: str | None = None
        self._writers: dict[tuple[str, str], _BatchWriter] = {}
        self._log_schemas: dict[tuple[str, str], pa.Schema] = {}
        self._log_plans: dict[tuple[str, str], tuple[pa.Schema, list[tuple[str, pa.DataType]]]] = {}
        self._types: dict[tuple[str, str], tuple[dict[str, pa.DataType], frozenset[str]]] = {}

    def push(
        self,
        record: ViewRecord,
        rows: PushRows,
        *,
        to: PushMode = "online_and_offline",
        push_ids: Sequence[str | None] | None = None,
    ) -> PushResult:
        """Check ``rows``, append them to the push log, then write them online.

        Args:
            record: The applied view.
            rows: The rows (see :data:`PushRows`), with the view's join keys, features and
                source timestamp column(s) by their names in the view.
            to: Where the rows go.
            push_ids: A message id per row (the stream consumer's duplicate check).

        Raises:
            EntityFrameError: A column is missing, unknown, or a value has the wrong type or
                is null where it cannot be (the message names the column and the row).
            DefinitionError: The view cannot take pushes (batch transform, or ``to``
                includes online and the view is offline only).
            ValidationError: The rows broke the view's expectations (``on_failure="block"``).
            SourceError: The push log file cannot be written.
        """
        view = record.view
        if to not in PUSH_MODES:
            msg = f"Push to feature view '{view.name}': to={to!r} must be one of {PUSH_MODES}."
            raise DefinitionError(msg)
        self._check_pushable(record, to)
        table = self.conform(record, rows)
        if view.suite_json is not None:
            from featurestore.validation.gate import check_pushed_rows

            check_pushed_rows(view, table, log=self.validation_log)
        log_file = None
        if to != "online":
            log_file = self.sources.push_log.append(
                view.name, self._log_table(record, table, online=to != "offline", ids=push_ids)
            )
        try:
            written = self.write_pushed(record, table) if to != "offline" else 0
        except MaterializationError as exc:  # the online store refused (e.g. old tile blocks)
            if log_file is None:
                raise
            msg = (
                f"{exc} The pushed rows are in the push log already (training frames read "
                "them, and the next materialization writes them online): do not push them again."
            )
            raise MaterializationError(msg) from exc
        return PushResult(view.name, table.num_rows, written, log_file)

    def write_pushed(self, record: ViewRecord, table: pa.Table) -> int:
        """Write conformed pushed rows online; the records (or tiles) written.

        A plain view gets records; an aggregation view gets the tiles the events fall in,
        recomputed from the push log, which must hold the rows already.
        """
        if not record.view.aggregations:
            return self.write_online(record, table)
        from featurestore.materialization.tiles import fold_events

        assert self.online is not None  # checked by _check_pushable
        if self._epoch is None:
            self._epoch = self.online.ensure_epoch()
        return fold_events(self.offline, self.online, record, table)

    def _check_pushable(self, record: ViewRecord, to: PushMode) -> None:
        view = record.view
        if view.transform is not None or record.transform is not None:
            msg = (
                f"Feature view '{view.name}' has a batch transform, so it cannot take pushed "
                "rows (they would skip the transform). Push to a view without a transform."
            )
            raise DefinitionError(msg)
        if view.aggregations and to == "online":
            msg = (
                f"Feature view '{view.name}' aggregates events: its online tiles are computed "
                "from the push log, so pushed events must go there. Push with "
                "to='online_and_offline'."
            )
            raise DefinitionError(msg)
        if to != "offline" and not view.online:
            msg = (
                f"Feature view '{view.name}' has online=False, so rows cannot be pushed "
                "online. Push with to='offline', or set online=True and run 'featurestore apply'."
            )
            raise DefinitionError(msg)
        if to != "offline" and self.online is None:
            msg = "This store has no online store; push with to='offline'."
            raise DefinitionError(msg)

    def conform(self, record: ViewRecord, rows: PushRows) -> pa.Table:
        """Pushed rows with the view's columns in their declared types (see :meth:`push`).

        Columns: join keys, features, the source's timestamp field (``timestamp[us, UTC]``)
        and its created timestamp field (null when not pushed).
        """
        view = record.view
        source = view.source
        types, known = self._column_types(record)
        try:
            table = rows_to_table(rows, types=types)
        except EntityFrameError as exc:
            msg = f"Push to feature view '{view.name}': {exc}"
            raise EntityFrameError(msg) from exc
        present = table.column_names  # a new list at each call of the property: read once
        unknown = [c for c in present if c not in known]
        if unknown:
            msg = (
                f"Push to feature view '{view.name}': unknown column(s) "
                f"{', '.join(repr(c) for c in unknown)}. Its columns are "
                f"{', '.join(repr(c) for c in types)}."
            )
            raise EntityFrameError(msg)
        not_null = (*view.join_keys, source.timestamp_field)
        columns: dict[str, pa.ChunkedArray] = {}
        for name, target in types.items():
            if name not in present:
                if name == source.created_timestamp_field:
                    columns[name] = pa.chunked_array([pa.nulls(table.num_rows, target)])
                    continue
                msg = (
                    f"Push to feature view '{view.name}': column '{name}' is missing. Pushed "
                    f"rows need the columns {', '.join(repr(c) for c in types)}"
                    + (
                        f" ('{source.created_timestamp_field}' may be left out)."
                        if source.created_timestamp_field
                        else "."
                    )
                )
                raise EntityFrameError(msg)
            column = table.column(name)
            if pa.types.is_null(column.type):  # no value at all: typed nulls
                column = pa.chunked_array([pa.nulls(len(column), target)])
            if pa.types.is_timestamp(target):
                column = _timestamps(view.name, name, column)
            else:
                column = _cast_column(view.name, name, column, target)
            if name in not_null and column.null_count:
                row = pc.index(pc.is_null(column), True).as_py()
                what = "join key" if name in view.join_keys else "timestamp"
                msg = (
                    f"Push to feature view '{view.name}': row {row} has a null {what} "
                    f"'{name}'. Every pushed row needs its join keys and event timestamp."
                )
                raise EntityFrameError(msg)
            columns[name] = column
        return pa.table(columns)

    def _column_types(self, record: ViewRecord) -> tuple[dict[str, pa.DataType], frozenset[str]]:
        """The pushable columns' types, and every name a push may hold (kept per view version).

        The names a push may hold are the pushable columns and the source's columns as the
        view sees them (after ``field_mapping``).
        """
        key = (record.view.name, record.fingerprint)
        cached = self._types.get(key)
        if cached is None:
            types = _column_types(_pushed_record(record))
            mapping = record.view.source.field_mapping
            names = (mapping.get(n, n) for n in self._source_schema(record).names)
            cached = self._types[key] = (types, frozenset(types).union(names))
        return cached

    def _source_schema(self, record: ViewRecord) -> pa.Schema:
        key = (record.view.name, record.fingerprint)
        schema = self._log_schemas.get(key)
        if schema is None:
            schema = self.sources.source_schema(record.view)
            self._log_schemas[key] = schema
        return schema

    def _log_table(
        self,
        record: ViewRecord,
        table: pa.Table,
        *,
        online: bool,
        ids: Sequence[str | None] | None,
    ) -> pa.Table:
        """The rows as a push file: the source's columns and types, then the push columns."""
        view = record.view
        schema, columns = self._log_plan(record)
        n = table.num_rows
        present = set(table.column_names)
        arrays: list[pa.ChunkedArray | pa.Array] = []
        for name, stored in columns:
            if name not in present:
                arrays.append(pa.nulls(n, stored))
                continue
            column = table.column(name)
            if pa.types.is_timestamp(stored) and stored.tz is None:
                column = column.cast(pa.timestamp("us")).cast(stored)
            elif not column.type.equals(stored):
                column = _cast_column(view.name, name, column, stored, stored=True)
            arrays.append(column)
        if ids is not None and len(ids) != n:
            msg = f"Push to feature view '{view.name}': {len(ids)} push ids for {n} rows."
            raise EntityFrameError(msg)
        arrays += [
            pa.repeat(pa.scalar(utc_now(), _UTC), n),
            pa.array(ids, pa.string()) if ids is not None else pa.nulls(n, pa.string()),
            pa.repeat(pa.scalar(online), n),
        ]
        return pa.Table.from_arrays(arrays, schema=schema)

    def _log_plan(self, record: ViewRecord) -> tuple[pa.Schema, list[tuple[str, pa.DataType]]]:
        """A push file's schema, and each source column's name in the view and stored type.

        Kept per view version: built once, not at each push.
        """
        key = (record.view.name, record.fingerprint)
        plan = self._log_plans.get(key)
        if plan is not None:
            return plan
        view = record.view
        source_schema = self._source_schema(record)
        mapping = view.source.field_mapping
        columns = []
        for field in source_schema:
            name = mapping.get(field.name, field.name)
            if name in _PUSH_COLS:
                msg = (
                    f"Source of feature view '{view.name}' has a column '{field.name}', a name "
                    "the push log keeps for itself. Rename the source column."
                )
                raise DefinitionError(msg)
            columns.append((name, field.type))
        push_fields = [pa.field(PUSH_TIME_COLUMN, _UTC), pa.field(PUSH_ID_COLUMN, pa.string()),
                       pa.field(PUSH_ONLINE_COLUMN, pa.bool_())]  # fmt: skip
        plan = self._log_plans[key] = (pa.schema([*source_schema, *push_fields]), columns)
        return plan

    def write_online(self, record: ViewRecord, table: pa.Table) -> int:
        """Write the newest pushed row of each key online, conditionally; records replaced."""
        assert self.online is not None  # checked by _check_pushable
        if table.num_rows == 0:
            return 0
        view = record.view
        source = view.source
        created = source.created_timestamp_field
        rows = table.rename_columns(
            [
                EVENT_TS_COLUMN
                if c == source.timestamp_field
                else CREATED_TS_COLUMN
                if created is not None and c == created
                else c
                for c in table.column_names
            ]
        )
        if CREATED_TS_COLUMN not in rows.column_names:
            rows = rows.append_column(
                CREATED_TS_COLUMN, pa.nulls(rows.num_rows, pa.timestamp("us", tz="UTC"))
            )
        if rows.num_rows > 1:
            rows = newest_per_key(rows, view.join_keys)
        if self._epoch is None:
            self._epoch = self.online.ensure_epoch()
        key = (view.name, record.fingerprint)
        writer = self._writers.get(key)
        if writer is None:
            writer = self._writers[key] = _BatchWriter(record)
        keys, records = writer.encode(rows)
        return self.online.write_records(view.name, keys, records)


_PUSH_COLS = (PUSH_TIME_COLUMN, PUSH_ID_COLUMN, PUSH_ONLINE_COLUMN)
_UTC = pa.timestamp("us", tz="UTC")


def newest_per_key(rows: pa.Table, keys: Sequence[str]) -> pa.Table:
    """The newest row of each key tuple by the order "newer" (later rows win ties).

    ``rows`` has the join keys (no nulls), ``__fs_event_ts`` and ``__fs_created_ts``; within
    one push the row number is the last component of the order, as in its push file.
    """
    import numpy as np

    from featurestore.ordering import NULL_CREATED_US, newer_lexsort

    n = rows.num_rows
    if n < 2:
        return rows
    events = rows.column(EVENT_TS_COLUMN).cast(pa.int64()).to_numpy()
    created = pc.fill_null(rows.column(CREATED_TS_COLUMN).cast(pa.int64()), NULL_CREATED_US)
    order = newer_lexsort(events, created.to_numpy(), np.arange(n, dtype=np.int64))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n, dtype=np.int64)
    # Sort by (keys, rank); the last row of each run of equal keys is that key's newest.
    ranked = rows.select(list(keys)).append_column("__rank", pa.array(rank))
    by = [(k, "ascending") for k in keys] + [("__rank", "ascending")]
    index = pc.sort_indices(ranked, sort_keys=by).to_numpy()
    boundary = np.zeros(n - 1, dtype=bool)  # row i and row i + 1 differ in some key
    for key in keys:
        column = rows.column(key).take(pa.array(index))
        boundary |= pc.not_equal(column.slice(1), column.slice(0, n - 1)).to_numpy()
    last = np.append(boundary, True)
    return rows.take(pa.array(np.sort(index[last])))


def _pushed_record(record: ViewRecord) -> ViewRecord:
    """What pushed rows hold: the view's features, or an aggregation view's raw events."""
    if not record.view.aggregations:
        return record
    return replace(record, view=record.view.event_view())


def _column_types(record: ViewRecord) -> dict[str, pa.DataType]:
    """The Arrow type of each pushable column, by its name in the view."""
    view = record.view
    types: dict[str, pa.DataType] = {k: to_arrow(record.key_dtypes[k]) for k in view.join_keys}
    types.update({f.name: to_arrow(f.dtype) for f in view.schema})
    types[view.source.timestamp_field] = to_arrow(Timestamp)
    if view.source.created_timestamp_field is not None:
        types[view.source.created_timestamp_field] = to_arrow(Timestamp)
    return types


def _timestamps(view: str, name: str, column: pa.ChunkedArray) -> pa.ChunkedArray:
    try:
        return to_utc_array(column, column=name)
    except EntityFrameError as exc:
        msg = f"Push to feature view '{view}': {exc}"
        raise EntityFrameError(msg) from exc


def _cast_column(
    view: str, name: str, column: pa.ChunkedArray, target: pa.DataType, *, stored: bool = False
) -> pa.ChunkedArray:
    if column.type.equals(target):
        return column
    try:
        return column.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        values = column.to_pylist()
        row = None
        for i, value in enumerate(values):
            try:
                pa.array([value], type=column.type).cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                row = i
                break
        where = f"row {row}, " if row is not None else ""
        value = f"value {values[row]!r}" if row is not None else f"type {column.type}"
        into = f"the source's type {target}" if stored else str(target)
        msg = (
            f"Push to feature view '{view}': {where}column '{name}': {value} cannot be read "
            f"as {into}. Fix the value or the column's type."
        )
        raise EntityFrameError(msg) from exc


def heal_pushes(record: ViewRecord, sources: Sources, pusher: Pusher) -> int:
    """Write online the rows of push files not yet healed; records replaced.

    Materialization runs this for every view: a push that crashed between its offline
    append and its online write is written now (conditionally, so rows already online, or
    older than what is stored, change nothing). The last healed file is kept in the view's
    push log folder.
    """
    folder = sources.push_log.folder(record.view.name)
    files = sources.push_log.files(record.view.name)
    marker = folder / _HEALED_FILE
    done = marker.read_text().strip() if marker.exists() else ""
    pending = [f for f in files if Path(f).name > done]
    if not pending:
        return 0
    import pyarrow.parquet as pq

    view = record.view
    mapping = view.source.field_mapping
    tables = []
    for path in pending:  # a row that supersedes a pending one comes later: pending too
        table = pq.read_table(path)
        tables.append(table.rename_columns([mapping.get(c, c) for c in table.column_names]))
    table = pa.concat_tables(tables, promote_options="default")
    if view.aggregations:  # tiles are recomputed from the offline rows: any order is exact
        table = table.filter(pc.field(PUSH_ONLINE_COLUMN))
    else:
        table = _not_superseded(record, table)
    if table.num_rows == 0:
        written = 0
    else:
        written = pusher.write_pushed(
            record, pusher.conform(record, _pushed_columns(record, table))
        )
    temp = folder / f"{_HEALED_FILE}.tmp"
    temp.write_text(Path(pending[-1]).name)
    temp.replace(marker)
    logger.info("%s: healed %d pushed rows, %d written", view.name, table.num_rows, written)
    return written


def _not_superseded(record: ViewRecord, table: pa.Table) -> pa.Table:
    """The pending online rows that no later row ties with (G3 under any healing order).

    ``table`` holds the pending push files of the view (those after the last healed one) in
    push order; the rows to write are those pushed online. A pending row is dropped when a
    later pushed row of the same key has the same event and created timestamps and belongs
    online (pushed online, or before the watermark): in the total order that row is newer,
    but the stored record's order key cannot tell them apart, so writing the older one last
    would replace the newer one. A later row lies in a later file, so it is pending too: the
    files healed before are never read again.
    """
    import duckdb

    view, source = record.view, record.view.source
    rows = table.append_column("__fs_pos", pa.array(range(table.num_rows), pa.int64()))
    watermark = record.watermark
    ts, created = quote_ident(source.timestamp_field), source.created_timestamp_field
    same = " AND ".join(
        [f"l.{quote_ident(k)} = p.{quote_ident(k)}" for k in view.join_keys]
        + [f"l.{ts} = p.{ts}"]
        + (
            [f"l.{quote_ident(created)} IS NOT DISTINCT FROM p.{quote_ident(created)}"]
            if created and created in table.column_names
            else []
        )
    )
    online = f"l.{quote_ident(PUSH_ONLINE_COLUMN)}" + (
        " OR l.__fs_ts_us < $watermark" if watermark is not None else ""
    )
    conn = duckdb.connect()
    try:
        conn.register("rows_in", rows)
        conn.execute(f"CREATE TEMP VIEW r AS SELECT *, epoch_us({ts}) AS __fs_ts_us FROM rows_in")
        keep = conn.execute(
            f"SELECT p.__fs_pos FROM r AS p WHERE p.{quote_ident(PUSH_ONLINE_COLUMN)} "
            f"AND NOT EXISTS (SELECT 1 FROM r AS l "
            f"WHERE l.__fs_pos > p.__fs_pos AND ({online}) AND {same}) ORDER BY p.__fs_pos",
            {"watermark": to_micros(watermark)} if watermark else {},
        ).fetchnumpy()["__fs_pos"]
    finally:
        conn.close()
    return table.take(pa.array(keep, pa.int64()))


def _pushed_columns(record: ViewRecord, table: pa.Table) -> pa.Table:
    names = _column_types(_pushed_record(record))
    return table.select([c for c in table.column_names if c in names])
