"""The ``"arrays"`` join strategy: the G1 point-in-time join on packed integer arrays.

The rule is the one of :mod:`featurestore.offline.pit_join` (read its docstring first); this
module computes the same result in memory with numpy, reading the sources through the same
DuckDB scans (so types, ``field_mapping`` and pruning behave identically):

1. The entity frame's join keys become dense integer *codes* (a single integer key is used
   as is, offset by its minimum; other keys are numbered by a polars join against the
   frame's distinct key tuples). Source rows whose keys are not in the frame are dropped.
2. Each source row becomes one ``int64``: ``code << B | (event_ts - lo)``, where ``lo`` is the
   smallest time that can matter (``min(t) - ttl``, or the oldest source row) and ``B`` the bits
   of the time span; rows newer than ``max(t)`` are dropped. One ``argsort`` orders the rows
   by ``(keys, event_ts)``; rows tying on both are then ordered by the rest of the total order
   (created timestamp with null lowest, file rank, row in file), so the sorted array is the
   order "newer" within each key.
3. ``point_in_time="event"``: each entity row packs ``code << B | (t - lo)`` and a
   ``searchsorted(side="right")`` finds the last row at or before it -- the newest candidate
   if its code equals the entity row's. ``"available"``: rows are packed by the time they
   became visible, ``max(event_ts, created_ts)`` (null created = event time), sorted by it,
   and a running maximum of the rows' rank in the order "newer" gives, at each point, the
   newest row visible then; the same ``searchsorted`` reads it off. Either way the ttl is a
   check on the winner's event timestamp (if the newest candidate is too old, all are).
4. The features are read in a second, streamed scan and only the winning rows are kept
   (``take`` per batch, winners sorted by position), then put in entity order. Memory is a
   few ``int64`` per source row plus the output; the whole source is never held at once.

When codes and times do not fit in 62 bits, :class:`DoesNotFit` is raised before any join
work and the caller falls back to DuckDB's ASOF JOIN.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from featurestore.offline.pit_join import ROW_COL, entity_keys_sql
from featurestore.offline.sql import (
    CREATED_TS,
    EVENT_TS,
    FILE_INDEX_COL,
    FILE_ROW_COL,
    Query,
    quote_ident,
)

if TYPE_CHECKING:
    from featurestore.offline.pit_join import ViewRequest

__all__ = ["DoesNotFit", "arrays_join", "estimate_bytes", "memory_limit_bytes"]

logger = logging.getLogger(__name__)

_BITS = 62
_T = "__fs_t"
_CODE = "__fs_code"
_UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4}
_UNITS.update({"KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4})
_ONE_US = timedelta(microseconds=1)


class DoesNotFit(Exception):
    """Keys and times of a view do not pack into one int64; use another strategy."""


def memory_limit_bytes(cursor: duckdb.DuckDBPyConnection) -> int | None:
    """DuckDB's ``memory_limit`` of this session in bytes (None if unparsable)."""
    try:
        text = str(cursor.sql("SELECT current_setting('memory_limit')").fetchall()[0][0])
    except duckdb.Error:
        return None
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", text)
    if match is None or match.group(2).upper() not in _UNITS:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def estimate_bytes(entity_rows: int, entity_columns: int, requests: list[ViewRequest]) -> int:
    """A generous estimate of the arrays strategy's peak memory.

    Per source row: about six ``int64`` working arrays; per entity row and view: about eight;
    the output: entity columns and features at 8 bytes (plus validity), held twice while the
    table is assembled.
    """
    sources = max((r.source_rows for r in requests), default=0) * 6 * 8
    working = entity_rows * 8 * 8 * max(len(requests), 1)
    features = sum(len(r.features) for r in requests)
    output = entity_rows * (entity_columns + features) * 9 * 2
    return sources + working + output


def arrays_join(
    cursor: duckdb.DuckDBPyConnection,
    entity: Query,
    entity_columns: list[str],
    requests: list[ViewRequest],
    *,
    timestamp_column: str,
    point_in_time: Literal["event", "available"],
    feature_order: list[str],
    batch_size: int = 262_144,
) -> pa.Table:
    """The training frame as an Arrow table (entity columns, then ``feature_order``).

    Raises:
        DoesNotFit: A view's keys and times do not pack into 62 bits.
        duckdb.Error: A scan failed (the caller translates it).
    """
    base = Query().add(f"SELECT {', '.join(quote_ident(c) for c in entity_columns)} FROM (")
    base.extend(entity).add(f") ORDER BY {ROW_COL}")
    table = cursor.sql(base.text, params=base.params).to_arrow_table()
    n_rows = table.num_rows
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    for request in requests:  # one view at a time: its arrays are freed before the next
        plan = _plan_view(cursor, entity, request, timestamp_column)
        winners = _winners(plan, request, point_in_time=point_in_time)
        gathered = _gather(cursor, request, plan, winners, n_rows, batch_size)
        columns.update(zip(request.output_columns, gathered, strict=True))
    for name in feature_order:
        table = table.append_column(name, columns[name])
    return table


class _Plan:
    """One view's packed source rows and entity queries."""

    def __init__(
        self,
        entity_rows: np.ndarray,
        entity_t: np.ndarray,
        entity_code: np.ndarray,
        source_index: np.ndarray,
        source_code: np.ndarray,
        event: np.ndarray,
        source: pa.Table,
        file_row: np.ndarray,
        lo: int,
        max_t: int,
        bits: int,
    ) -> None:
        self.max_t = max_t
        self.entity_rows = entity_rows  # __fs_row of the entity rows that can match
        self.entity_t = entity_t  # their t, int64 microseconds
        self.entity_code = entity_code
        self.source_index = source_index  # position of each kept row in the scan
        self.source_code = source_code
        self.event = event
        self.lo = lo
        self.bits = bits
        self.source = source  # the first scan (created timestamps and file ranks, on demand)
        self.file_row = file_row  # by scan position (``source_index``), not kept row

    def created(self, scan_rows: np.ndarray | None = None) -> np.ndarray:
        """Created timestamps (int64 microseconds, null = int64 min) by scan position."""
        column = self.source.column(CREATED_TS)
        if scan_rows is not None:
            column = column.take(pa.array(scan_rows))
        return _micros(column)

    def file_index(self, scan_rows: np.ndarray) -> np.ndarray:
        """File ranks of the given scan positions."""
        values = self.source.column(FILE_INDEX_COL).take(pa.array(scan_rows))
        return np.asarray(values.to_numpy(), dtype=np.int64)


def _micros(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Timestamps as int64 microseconds; null becomes the int64 minimum (NaT)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if column.type != pa.timestamp("us", tz="UTC"):
        column = column.cast(pa.timestamp("us", tz="UTC"))
    values = column.to_numpy(zero_copy_only=False)
    return np.asarray(values.view(np.int64), dtype=np.int64)


def _plan_view(
    cursor: duckdb.DuckDBPyConnection, entity: Query, request: ViewRequest, timestamp_column: str
) -> _Plan:
    keys = list(request.record.view.join_keys)
    ent_q = Query().add("WITH __fs_entity AS (").extend(entity).add(") ")
    ent_q.add(entity_keys_sql(request, timestamp_column))
    ent = cursor.sql(ent_q.text, params=ent_q.params).to_arrow_table()
    src_q = Query().add("SELECT ")
    src_q.add(", ".join([*(quote_ident(k) for k in keys), EVENT_TS, CREATED_TS]))
    src_q.add(f", {FILE_INDEX_COL}, {FILE_ROW_COL} FROM (").extend(request.scan).add(")")
    src = cursor.sql(src_q.text, params=src_q.params).to_arrow_table()

    entity_rows = np.asarray(ent.column(ROW_COL).to_numpy(), dtype=np.int64)
    entity_t = _micros(ent.column(_T))
    event = _micros(src.column(EVENT_TS))
    index = np.arange(src.num_rows, dtype=np.int64)
    entity_code, source_code, n_codes = _codes(ent, src, keys)
    keep = source_code >= 0
    ttl = request.record.view.effective_ttl
    ttl_us = None if ttl is None else ttl // _ONE_US
    if len(entity_t):
        max_t = int(entity_t.max())
        keep &= event <= max_t
        if ttl_us is not None:
            keep &= event >= int(entity_t.min()) - ttl_us
    else:
        max_t = 0
        keep[:] = False
    if not keep.all():
        index = index[keep]
        source_code = source_code[keep]
        event = event[keep]
    file_row = np.asarray(src.column(FILE_ROW_COL).to_numpy(), dtype=np.int64)
    lo = int(event.min()) if len(event) else max_t
    bits = max(max_t + 1 - lo, 1).bit_length()
    if max(n_codes, 1).bit_length() + bits > _BITS:
        msg = f"view {request.record.view.name}: {n_codes} keys x {bits}-bit times"
        raise DoesNotFit(msg)
    return _Plan(
        entity_rows,
        entity_t,
        entity_code,
        index,
        source_code,
        event,
        src,
        file_row,
        lo,
        max_t,
        bits,
    )


def _codes(ent: pa.Table, src: pa.Table, keys: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """Dense codes of the entity rows' keys and the source rows' keys (-1: not in the frame)."""
    if len(keys) == 1 and pa.types.is_integer(ent.schema.field(keys[0]).type):
        ek = np.asarray(ent.column(keys[0]).to_numpy(), dtype=np.int64)
        sk = np.asarray(src.column(keys[0]).to_numpy(), dtype=np.int64)
        if len(ek) == 0:
            return ek, np.full(len(sk), -1, dtype=np.int64), 0
        kmin, kmax = int(ek.min()), int(ek.max())
        if kmax - kmin < 2**31:
            inside = (sk >= kmin) & (sk <= kmax)
            return ek - kmin, np.where(inside, sk - kmin, -1), kmax - kmin + 1
    ent_keys = pl.from_arrow(ent.select(keys))
    src_keys = pl.from_arrow(src.select(keys))
    assert isinstance(ent_keys, pl.DataFrame)
    assert isinstance(src_keys, pl.DataFrame)
    distinct = ent_keys.unique().with_row_index(_CODE)
    e_code = ent_keys.join(distinct, on=keys, how="left", maintain_order="left")[_CODE]
    s_code = src_keys.join(distinct, on=keys, how="left", maintain_order="left")[_CODE]
    return (
        e_code.cast(pl.Int64).to_numpy(),
        s_code.cast(pl.Int64).fill_null(-1).to_numpy(),
        distinct.height,
    )


def _sorted_order(plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
    """Kept source rows in the order ``(code, newer)``: the permutation and packed keys."""
    packed = (plan.source_code << plan.bits) | (plan.event - plan.lo)
    order = np.argsort(packed)
    ordered = packed[order]
    ties = ordered[1:] == ordered[:-1]
    if ties.any():
        in_run = np.zeros(len(ordered), dtype=bool)
        in_run[1:] |= ties
        in_run[:-1] |= ties
        positions = np.flatnonzero(in_run)
        starts = np.ones(len(positions), dtype=bool)
        starts[1:] = ~ties[positions[1:] - 1]
        run = np.cumsum(starts)
        rows = order[positions]
        scan = plan.source_index[rows]
        within = np.lexsort((plan.file_row[scan], plan.file_index(scan), plan.created(scan), run))
        order[positions] = rows[within]
    return order, ordered


def _winners(
    plan: _Plan, request: ViewRequest, *, point_in_time: Literal["event", "available"]
) -> np.ndarray:
    """For each of ``plan.entity_rows``: the winning kept source row (index into plan), or -1."""
    n = len(plan.entity_rows)
    winners = np.full(n, -1, dtype=np.int64)
    if n == 0 or len(plan.source_code) == 0:
        return winners
    order, ordered = _sorted_order(plan)
    query_t = plan.entity_t - plan.lo
    usable = query_t >= 0
    probe = (plan.entity_code << plan.bits) | np.where(usable, query_t, 0)
    probe_order = np.argsort(probe)
    if point_in_time == "event":
        at = np.empty(n, dtype=np.int64)
        at[probe_order] = np.searchsorted(ordered, probe[probe_order], side="right") - 1
        found = at >= 0
        candidate = np.where(found, order[np.maximum(at, 0)], 0)
    else:
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order), dtype=np.int64)
        # Rows visible only after max(t) are parked at max(t) + 1, beyond every probe.
        visible = np.maximum(plan.event, plan.created()[plan.source_index])
        np.minimum(visible, plan.max_t + 1, out=visible)
        packed = (plan.source_code << plan.bits) | (visible - plan.lo)
        by_visible = np.argsort(packed)
        newest = np.maximum.accumulate(rank[by_visible])
        at = np.empty(n, dtype=np.int64)
        at[probe_order] = np.searchsorted(packed[by_visible], probe[probe_order], side="right") - 1
        found = at >= 0
        candidate = np.where(found, order[newest[np.maximum(at, 0)]], 0)
    found &= usable & (plan.source_code[candidate] == plan.entity_code)
    ttl = request.record.view.effective_ttl
    if ttl is not None:
        ttl_us = min(ttl // _ONE_US, 2**62)
        found &= plan.event[candidate] >= plan.entity_t - ttl_us
    winners[found] = candidate[found]
    return winners


def _gather(
    cursor: duckdb.DuckDBPyConnection,
    request: ViewRequest,
    plan: _Plan,
    winners: np.ndarray,
    n_rows: int,
    batch_size: int,
) -> list[pa.Array]:
    """The requested features of the winning rows, one array per feature, in entity order."""
    matched = winners >= 0
    scan_rows = plan.source_index[winners[matched]]
    out_rows = plan.entity_rows[matched]
    by_scan = np.argsort(scan_rows)
    scan_rows = scan_rows[by_scan]
    out_rows = out_rows[by_scan]
    features = [quote_ident(f) for f in request.features]
    if not features:
        return []
    query = Query().add(f"SELECT {', '.join(features)}, {FILE_ROW_COL} FROM (")
    query.extend(request.scan).add(")")
    reader = cursor.sql(query.text, params=query.params).to_arrow_reader(batch_size)
    matched_rows = np.zeros(n_rows, dtype=bool)
    matched_rows[out_rows] = True
    sinks = [_sink(reader.schema.field(j).type, n_rows) for j in range(len(features))]
    start = 0
    for batch in reader:
        end = start + batch.num_rows
        _check_alignment(plan, batch, start, end, len(features))
        lo, hi = np.searchsorted(scan_rows, [start, end])
        if hi > lo:
            local = scan_rows[lo:hi] - start
            for j, sink in enumerate(sinks):
                sink.put(batch.column(j), local, out_rows[lo:hi])
        start = end
    return [sink.result(matched_rows) for sink in sinks]


def _raw(values: pa.Array, dtype: np.dtype[np.generic]) -> np.ndarray:
    data = values.buffers()[1]
    assert data is not None
    return np.frombuffer(data, dtype=dtype)[values.offset :][: len(values)]


class _Sink:
    """Collects one feature's values into entity order (any Arrow type, via ``take``)."""

    def __init__(self, typ: pa.DataType, n_rows: int) -> None:
        self.typ = typ
        self.n_rows = n_rows
        self.pieces: list[pa.Array] = []
        self.rows: list[np.ndarray] = []

    def put(self, values: pa.Array, local: np.ndarray, rows: np.ndarray) -> None:
        self.pieces.append(values.take(pa.array(local)))
        self.rows.append(rows)

    def result(self, matched: np.ndarray) -> pa.Array:
        del matched  # unmatched rows have no slot
        values = pa.concat_arrays(self.pieces) if self.pieces else pa.array([], type=self.typ)
        slot = np.full(self.n_rows, -1, dtype=np.int64)
        if self.rows:
            rows = np.concatenate(self.rows)
            slot[rows] = np.arange(len(rows), dtype=np.int64)
        return values.take(pa.array(slot, mask=slot < 0))


class _FixedWidthSink(_Sink):
    """The same for fixed-width numbers and timestamps, scattered with numpy.

    Validity is the view's matched-rows mask, minus the rows whose value is null (tracked
    only when a null occurs), so a column without nulls costs one scatter.
    """

    def __init__(self, typ: pa.DataType, n_rows: int, dtype: np.dtype[np.generic]) -> None:
        super().__init__(typ, n_rows)
        self.values = np.zeros(n_rows, dtype=dtype)
        self.nulls: np.ndarray | None = None

    def put(self, values: pa.Array, local: np.ndarray, rows: np.ndarray) -> None:
        self.values[rows] = _raw(values, self.values.dtype)[local]
        if values.null_count:
            valid = np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
            if self.nulls is None:
                self.nulls = np.zeros(self.n_rows, dtype=bool)
            self.nulls[rows[~valid[local]]] = True

    def result(self, matched: np.ndarray) -> pa.Array:
        mask = ~matched if self.nulls is None else ~matched | self.nulls
        array = pa.array(self.values, mask=mask)
        return array if array.type == self.typ else array.view(self.typ)


def _sink(typ: pa.DataType, n_rows: int) -> _Sink:
    if pa.types.is_integer(typ) or pa.types.is_floating(typ):
        return _FixedWidthSink(typ, n_rows, np.dtype(typ.to_pandas_dtype()))
    if pa.types.is_timestamp(typ) and typ.unit == "us":
        return _FixedWidthSink(typ, n_rows, np.dtype(np.int64))
    return _Sink(typ, n_rows)


def _check_alignment(plan: _Plan, batch: pa.RecordBatch, start: int, end: int, at: int) -> None:
    """The streamed scan must yield the first scan's rows in the same order (checked)."""
    file_row = np.asarray(batch.column(at).to_numpy(), dtype=np.int64)
    if not np.array_equal(file_row, plan.file_row[start:end]):
        msg = "the source changed while the training frame was computed"
        raise SourceChangedError(msg)


class SourceChangedError(Exception):
    """Two scans of one source disagreed (files rewritten during the join)."""
