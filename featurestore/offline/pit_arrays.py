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
   (``take`` per batch, winners sorted by position), then put in entity order with one more
   ``take``. Memory is a few ``int64`` per source row plus the output; the whole source is
   never held at once.

The entity frame is read once (its keys cast to every view's key types in the same scan).
Views run concurrently on their own DuckDB sessions (``threads``; DuckDB, numpy and Arrow
release the GIL), and their first scans overlap the entity read.

When codes and times do not fit in 62 bits, :class:`DoesNotFit` is raised before any join
work and the caller falls back to DuckDB's ASOF JOIN.
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from featurestore.dtypes import to_duckdb
from featurestore.offline._numpy import int64_array, int64_values, valid_mask
from featurestore.offline.pit_join import ROW_COL
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
_NULL_MICROS = np.iinfo(np.int64).min  # NaT: below every time
_Columns = list[pa.ChunkedArray]


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


def estimate_bytes(
    entity_rows: int, entity_columns: int, requests: list[ViewRequest], *, threads: int = 2
) -> int:
    """A generous estimate of the arrays strategy's peak memory.

    Per source row of each view computed at once (the ``threads`` largest): about 14
    ``int64`` (the key scan and the working arrays; measured ~1.2 GB for one 5M-row view at
    a time, ~1.8 GB for two at once, with a 1M-row frame); per entity row and view: about
    eight; the output: entity columns and features at 8 bytes (plus validity), held twice
    while the table is assembled.
    """
    largest = sorted((r.source_rows for r in requests), reverse=True)[: max(threads, 1)]
    sources = sum(largest) * 14 * 8
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
    threads: int = 2,
) -> pa.Table:
    """The training frame as an Arrow table (entity columns, then ``feature_order``).

    Args:
        cursor: The DuckDB session the entity query runs on (it may use views registered
            on this session only); sources are read on new sessions of its database.
        entity: The entity frame query (``__fs_row`` and a UTC timestamp column).
        entity_columns: The entity frame's own columns, output first, in order.
        requests: The views and features to join.
        timestamp_column: The entity frame's timestamp column.
        point_in_time: ``"event"`` or ``"available"`` (module docstring).
        feature_order: The output feature columns, in order.
        threads: Views computed at once (each on its own DuckDB session); 1 runs them one
            after the other (less memory).

    Raises:
        DoesNotFit: A view's keys and times do not pack into 62 bits.
        duckdb.Error: A scan failed (the caller translates it).
    """
    timezone = _timezone(cursor)

    def one_view(index: int, entity_read: Future[tuple[pa.Table, list[_Probes]]]) -> _Columns:
        request = requests[index]
        session = cursor.cursor()
        try:
            if timezone is not None:
                session.execute("SET TimeZone = ?", [timezone])
            source = _scan_keys(session, request)  # overlaps the entity read
            table, probes = entity_read.result()
            plan = _plan_view(source, request, probes[index])
            winners = _winners(plan, request, point_in_time=point_in_time)
            return _gather(session, request, plan, winners, table.num_rows)
        finally:
            session.close()

    workers = max(1, min(threads, len(requests)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        entity_read: Future[tuple[pa.Table, list[_Probes]]] = Future()
        jobs = [pool.submit(one_view, i, entity_read) for i in range(len(requests))]
        try:  # the entity frame may be registered on this session only: read it here
            entity_read.set_result(
                _read_entity(cursor, entity, entity_columns, requests, timestamp_column)
            )
        except BaseException as exc:
            entity_read.set_exception(exc)
            raise
        results = [job.result() for job in jobs]
    table = entity_read.result()[0]
    columns: dict[str, pa.ChunkedArray] = {}
    for request, gathered in zip(requests, results, strict=True):
        columns.update(zip(request.output_columns, gathered, strict=True))
    arrays = [*table.columns, *(columns[name] for name in feature_order)]
    return pa.Table.from_arrays(arrays, names=[*table.column_names, *feature_order])


def _timezone(cursor: duckdb.DuckDBPyConnection) -> str | None:
    """The session's TimeZone setting (None without the ICU extension)."""
    try:
        return str(cursor.sql("SELECT current_setting('TimeZone')").fetchall()[0][0])
    except duckdb.Error:
        return None


class _Probes:
    """One view's entity side: the usable rows, their keys (view types) and times."""

    def __init__(self, rows: np.ndarray, keys: pa.Table, t: np.ndarray) -> None:
        self.rows = rows  # positions of the entity rows that can match
        self.keys = keys  # their join keys, named like the view's keys
        self.t = t  # their t, int64 microseconds


def _read_entity(
    cursor: duckdb.DuckDBPyConnection,
    entity: Query,
    entity_columns: list[str],
    requests: list[ViewRequest],
    timestamp_column: str,
) -> tuple[pa.Table, list[_Probes]]:
    """The entity frame in input order (one scan) and each view's probes.

    Keys are cast to each view's key types in the same scan (one aliased column per
    distinct key and type); a row with a null key or a null timestamp never matches.
    """
    select = [quote_ident(c) for c in entity_columns]
    aliases: dict[str, str] = {}
    key_columns: list[list[str]] = []
    for request in requests:
        names = []
        for key in request.record.view.join_keys:
            expr = f"CAST({quote_ident(key)} AS {to_duckdb(request.record.key_dtypes[key])})"
            if expr not in aliases:
                aliases[expr] = f"__fs_key{len(aliases)}"
                select.append(f"{expr} AS {aliases[expr]}")
            names.append(aliases[expr])
        key_columns.append(names)
    query = Query().add(f"SELECT {', '.join(select)} FROM (").extend(entity)
    query.add(f") ORDER BY {ROW_COL}")
    read = cursor.sql(query.text, params=query.params).to_arrow_table()
    table = read.select(list(range(len(entity_columns))))
    t_column = read.column(timestamp_column)
    t_all = int64_values(t_column, null=_NULL_MICROS)
    t_valid = valid_mask(t_column)
    probes = []
    for request, names in zip(requests, key_columns, strict=True):
        valid = t_valid.copy()
        for name in names:
            valid &= valid_mask(read.column(name))
        rows = np.flatnonzero(valid)
        keys = read.select(names).rename_columns(list(request.record.view.join_keys))
        if len(rows) != read.num_rows:
            keys = keys.take(int64_array(rows))
        probes.append(_Probes(rows, keys, t_all[rows]))
    return table, probes


class _Plan:
    """One view's packed source rows and entity probes."""

    def __init__(
        self,
        probes: _Probes,
        entity_code: np.ndarray,
        source_index: np.ndarray,
        source_code: np.ndarray,
        event: np.ndarray,
        source: pa.Table,
        lo: int,
        max_t: int,
        bits: int,
    ) -> None:
        self.max_t = max_t
        self.entity_rows = probes.rows  # positions of the entity rows that can match
        self.entity_t = probes.t  # their t, int64 microseconds
        self.entity_code = entity_code
        self.source_index = source_index  # position of each kept row in the scan
        self.source_code = source_code
        self.event = event
        self.lo = lo
        self.bits = bits
        self.source = source  # the scan: order columns and features

    def created(self, scan_rows: np.ndarray | None = None) -> np.ndarray:
        """Created timestamps (int64 microseconds, null = int64 min) by scan position."""
        column = self.source.column(CREATED_TS)
        if scan_rows is not None:
            column = column.take(int64_array(scan_rows))
        return int64_values(column, null=_NULL_MICROS)

    def file_index(self, scan_rows: np.ndarray) -> np.ndarray:
        """File ranks of the given scan positions."""
        return int64_values(self.source.column(FILE_INDEX_COL).take(int64_array(scan_rows)))

    def file_row(self, scan_rows: np.ndarray) -> np.ndarray:
        """Row numbers within the file of the given scan positions."""
        return int64_values(self.source.column(FILE_ROW_COL).take(int64_array(scan_rows)))


def _scan_keys(cursor: duckdb.DuckDBPyConnection, request: ViewRequest) -> pa.Table:
    """A view's source rows: join keys, event and created timestamps, file rank and row."""
    columns = [quote_ident(k) for k in request.record.view.join_keys]
    columns += [EVENT_TS, CREATED_TS, FILE_INDEX_COL, FILE_ROW_COL]
    query = Query().add(f"SELECT {', '.join(columns)} FROM (").extend(request.scan).add(")")
    return cursor.sql(query.text, params=query.params).to_arrow_table()


def _plan_view(src: pa.Table, request: ViewRequest, probes: _Probes) -> _Plan:
    keys = list(request.record.view.join_keys)

    entity_t = probes.t
    event = int64_values(src.column(EVENT_TS), null=_NULL_MICROS)
    index = np.arange(src.num_rows, dtype=np.int64)
    entity_code, source_code, n_codes = _codes(probes.keys, src, keys)
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
    lo = int(event.min()) if len(event) else max_t
    bits = max(max_t + 1 - lo, 1).bit_length()
    if max(n_codes, 1).bit_length() + bits > _BITS:
        msg = f"view {request.record.view.name}: {n_codes} keys x {bits}-bit times"
        raise DoesNotFit(msg)
    return _Plan(probes, entity_code, index, source_code, event, src, lo, max_t, bits)


def _codes(ent: pa.Table, src: pa.Table, keys: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """Dense codes of the entity rows' keys and the source rows' keys (-1: not in the frame)."""
    if len(keys) == 1 and pa.types.is_integer(ent.schema.field(keys[0]).type):
        ek = int64_values(ent.column(keys[0]))
        sk = int64_values(src.column(keys[0]))
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


def _argsort(values: np.ndarray) -> np.ndarray:
    """``np.argsort(values)`` (ties in any order) as int64, with polars' faster sort."""
    return pl.Series(values).arg_sort().to_numpy().astype(np.int64, copy=False)


def _sorted_order(plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
    """Kept source rows in the order ``(code, newer)``: the permutation and packed keys."""
    packed = (plan.source_code << plan.bits) | (plan.event - plan.lo)
    order = _argsort(packed)
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
        within = np.lexsort((plan.file_row(scan), plan.file_index(scan), plan.created(scan), run))
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
    probe_order = _argsort(probe)
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
        by_visible = _argsort(packed)
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
    batch_size: int = 262_144,
) -> list[pa.ChunkedArray]:
    """The requested features of the winning rows from a second, streamed scan.

    Each batch keeps only its winning rows (``take``); the kept rows, in scan order, are
    then put in entity order with one more ``take`` (null where no row wins).
    """
    if not request.features:
        return []
    matched = winners >= 0
    scan_rows = plan.source_index[winners[matched]]
    unique_rows, slot_of_matched = np.unique(scan_rows, return_inverse=True)
    features = [quote_ident(f) for f in request.features]
    query = Query().add(f"SELECT {', '.join(features)}, {FILE_ROW_COL} FROM (")
    query.extend(request.scan).add(")")
    reader = cursor.sql(query.text, params=query.params).to_arrow_reader(batch_size)
    file_row = plan.source.column(FILE_ROW_COL)
    pieces: list[pa.RecordBatch] = []
    start = 0
    at = len(features)
    for batch in reader:
        end = start + batch.num_rows
        if not batch.column(at).equals(file_row.slice(start, batch.num_rows).combine_chunks()):
            msg = "the source changed while the training frame was computed"
            raise SourceChangedError(msg)
        lo, hi = np.searchsorted(unique_rows, [start, end])
        if hi > lo:
            pieces.append(batch.take(int64_array(unique_rows[lo:hi] - start)))
        start = end
    if start != plan.source.num_rows:
        msg = "the source changed while the training frame was computed"
        raise SourceChangedError(msg)
    kept = pa.Table.from_batches(pieces, schema=reader.schema).combine_chunks()
    slots = np.zeros(n_rows, dtype=np.int64)
    rows = plan.entity_rows[matched]
    slots[rows] = slot_of_matched
    missing = np.ones(n_rows, dtype=bool)
    missing[rows] = False
    indices = int64_array(slots, missing)
    return [kept.column(j).take(indices) for j in range(len(features))]


class SourceChangedError(Exception):
    """Two scans of one source disagreed (files rewritten during the join)."""
