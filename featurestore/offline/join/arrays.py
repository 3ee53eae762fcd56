"""The ``"arrays"`` join strategy: the G1 point-in-time join on packed integer arrays.

The rule is the one of :mod:`featurestore.offline.join` (read its docstring first); this
module computes the same result in memory with numpy, reading the sources through the same
DuckDB scans (so types, ``field_mapping`` and pruning behave identically):

1. A first scan reads each source row's join keys and event time only, limited to the
   entity frame's time range (``min(t) - ttl`` to ``max(t)``; DuckDB skips row groups by
   their statistics). The keys become dense integer *codes* (a single integer key is used
   as is, offset by the frame's smallest key; other keys are numbered by a polars join
   against the frame's distinct key tuples).
2. Each row becomes one ``int64``: ``code << B | (event_ts - lo)``, where ``lo`` is the
   oldest time that can matter and ``B`` the bits of the time span; rows that no entity row
   can see (key not in the frame, too new, too old for the ttl: :mod:`featurestore.window`)
   become -1.
3. ``point_in_time="event"``: the values are sorted (no permutation: the value is the key
   and the time). Each entity row packs ``code << B | (t - lo)``, and a
   ``searchsorted(side="right")`` finds the last value at or before it -- the newest
   (key, event time) if its code equals the entity row's. A second scan joins the winning
   (key, event time) pairs to their rows' features; where several rows share a key and an
   event time (the scan says whether any do), it also reads the rest of the total order
   (created timestamp with null lowest, file rank, row in file: :mod:`featurestore.ordering`)
   and keeps the newest.
4. ``point_in_time="available"``: rows are put in the order "newer" by an ``argsort`` (ties
   broken as above), then packed by the time they became visible, ``max(event_ts,
   created_ts)`` (null created = event time) and sorted by it; a running maximum of the rank
   in the order "newer" gives, at each point, the newest row visible then, and the same
   ``searchsorted`` reads it off. The second scan joins the winners by row id.
5. Either way the ttl is a check on the winner's event timestamp (if the newest candidate is
   too old, all are). The second scan must find every winner with the event time the
   first saw, else the source changed in between (a :class:`SourceError`). Features
   are put in entity order by a gather (numpy for fixed-width types).

Memory is a few ``int64`` per source row plus the winners' features and the output; the
features of the whole source are never held at once.

The entity frame is read once (its keys cast to every view's key types in the same scan).
Views run concurrently on their own DuckDB sessions (``threads``; DuckDB, numpy and Arrow
release the GIL), and their first scans overlap the entity read.

When codes and times do not fit in 62 bits, :class:`DoesNotFit` is raised before any join
work and the planner falls back to a SQL strategy.
"""

from __future__ import annotations

import itertools
import logging
import re
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from featurestore._time import to_utc
from featurestore.errors import SourceError
from featurestore.offline._numpy import int64_array, int64_values, take, valid_mask
from featurestore.offline.join.spec import ROW_COL
from featurestore.offline.sql import (
    CREATED_TS,
    EVENT_TS,
    FILE_INDEX_COL,
    FILE_ROW_COL,
    Query,
    quote_ident,
)
from featurestore.ordering import NULL_CREATED_US, newer_lexsort, row_id_sql
from featurestore.types import to_duckdb
from featurestore.window import (
    in_window_array,
    lower_bound,
    lower_bound_datetime,
    ttl_micros,
)

if TYPE_CHECKING:
    from datetime import datetime

    from featurestore.offline.join.spec import JoinSpec, PointInTime, ViewRequest

__all__ = ["DoesNotFit", "arrays_join", "estimate_bytes", "memory_limit_bytes"]

logger = logging.getLogger(__name__)

_BITS = 62
_T = "__fs_t"
_CODE = "__fs_code"
_UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4}
_UNITS.update({"KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4})
_NULL_MICROS = NULL_CREATED_US  # NaT: below every time
_Columns = list[pa.ChunkedArray]
_ROWID = "__fs_rowid"
"""A source row's id (:func:`featurestore.ordering.row_id`); orders like (file, row)."""
_PACKED = "__fs_packed"
_names = itertools.count()


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
    entity_rows: int,
    entity_columns: int,
    requests: list[ViewRequest],
    *,
    point_in_time: PointInTime = "event",
    threads: int = 2,
) -> int:
    """A generous estimate of the arrays strategy's peak memory.

    Per source row of each view computed at once (the ``threads`` largest): about 8
    ``int64`` for ``"event"`` (the key scan, the packed and sorted values, the join's hash
    table) and 14 for ``"available"`` (it also reads created timestamps and row ids, and
    keeps a permutation). Measured with two 5M-row views at once and a 1M-row frame,
    including the interpreter and libraries: ~1.4 GB (event), ~2.0 GB (available). Per entity
    row and view: about eight; the output: entity columns and features at 8 bytes (plus
    validity), held twice while the table is assembled.
    """
    per_row = 8 if point_in_time == "event" else 14
    largest = sorted((r.source_rows for r in requests), reverse=True)[: max(threads, 1)]
    sources = sum(largest) * per_row * 8
    working = entity_rows * 8 * 8 * max(len(requests), 1)
    features = sum(len(r.features) for r in requests)
    output = entity_rows * (entity_columns + features) * 9 * 2
    return sources + working + output


def arrays_join(cursor: duckdb.DuckDBPyConnection, spec: JoinSpec, *, threads: int = 2) -> pa.Table:
    """The training frame as an Arrow table (entity columns, then ``spec.feature_order``).

    Source rows that no entity row can see (outside the entity frame's time range, widened
    by the ttl) are filtered in the scans, so DuckDB skips row groups.

    Args:
        cursor: The DuckDB session the entity query runs on (it may use views registered
            on this session only); sources are read on new sessions of its database.
        spec: The join.
        threads: Views computed at once (each on its own DuckDB session); 1 runs them one
            after the other (less memory).

    Raises:
        DoesNotFit: A view's keys and times do not pack into 62 bits.
        SourceError: A source changed between the two scans of a view.
        duckdb.Error: A scan failed (the caller translates it).
    """
    timezone = _timezone(cursor)
    requests = spec.requests
    stats = spec.stats
    time_range = None
    if stats.min_ts is not None and stats.max_ts is not None:
        time_range = (to_utc(stats.min_ts), to_utc(stats.max_ts))

    def one_view(index: int, entity_read: Future[tuple[pa.Table, list[_Probes]]]) -> _Columns:
        request = requests[index]
        session = cursor.cursor()
        try:
            if timezone is not None:
                session.execute("SET TimeZone = ?", [timezone])
            scan = _Scan(request, time_range)
            available = spec.point_in_time == "available"
            source = scan.keys(session, order=available)  # overlaps the entity read
            table, probes = entity_read.result()
            plan = _Plan(source, request, probes[index])
            del source  # the plan keeps what it needs
            if not request.taken:
                return []
            view = _available_view if available else _event_view
            return view(session, scan, plan, table.num_rows)
        finally:
            session.close()

    workers = max(1, min(threads, len(requests)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        entity_read: Future[tuple[pa.Table, list[_Probes]]] = Future()
        jobs = [pool.submit(one_view, i, entity_read) for i in range(len(requests))]
        try:  # the entity frame may be registered on this session only: read it here
            entity_read.set_result(_read_entity(cursor, spec))
        except BaseException as exc:
            entity_read.set_exception(exc)
            raise
        results = [job.result() for job in jobs]
    table = entity_read.result()[0]
    columns: dict[str, pa.ChunkedArray] = {}
    for request, gathered in zip(requests, results, strict=True):
        columns.update(zip((out for _, out in request.taken), gathered, strict=True))
    arrays = [*table.columns, *(columns[name] for name in spec.feature_order)]
    return pa.Table.from_arrays(arrays, names=[*table.column_names, *spec.feature_order])


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
    cursor: duckdb.DuckDBPyConnection, spec: JoinSpec
) -> tuple[pa.Table, list[_Probes]]:
    """The entity frame in input order (one scan) and each view's probes.

    Keys are cast to each view's key types in the same scan (one aliased column per
    distinct key and type); a row with a null key or a null timestamp never matches.
    """
    entity_columns, requests = spec.entity_columns, spec.requests
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
    query = Query().add(f"SELECT {', '.join(select)} FROM (").extend(spec.entity)
    query.add(f") ORDER BY {ROW_COL}")
    read = cursor.sql(query.text, params=query.params).to_arrow_table()
    table = read.select(list(range(len(entity_columns))))
    t_column = read.column(spec.timestamp_column)
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


class _Keys:
    """Dense integer codes for one view's join keys, numbered over the entity frame's keys.

    A single integer key is its own code, offset by the frame's smallest key; other keys
    are numbered by a polars join against the frame's distinct key tuples.
    """

    def __init__(self, entity: pa.Table, key_types: list[pa.DataType], keys: list[str]) -> None:
        self.names = keys
        self.types = key_types
        self.offset: int | None = None
        self.distinct: pl.DataFrame | None = None
        if len(keys) == 1 and pa.types.is_integer(entity.schema.field(keys[0]).type):
            ek = int64_values(entity.column(keys[0]))
            kmin = int(ek.min()) if len(ek) else 0
            kmax = int(ek.max()) if len(ek) else -1
            if kmax - kmin < 2**31:
                self.offset = kmin
                self.count = kmax - kmin + 1
                self.entity = ek - kmin
                return
        ent = pl.from_arrow(entity.select(keys))
        assert isinstance(ent, pl.DataFrame)
        self.distinct = ent.unique(maintain_order=True).with_row_index(_CODE)
        self.count = self.distinct.height
        e_code = ent.join(self.distinct, on=keys, how="left", maintain_order="left")[_CODE]
        self.entity = e_code.cast(pl.Int64).to_numpy()

    def codes(self, source: pa.Table) -> np.ndarray:
        """The codes of the source rows' keys (-1: not in the frame), in a new array."""
        if self.distinct is None:
            assert self.offset is not None
            codes: np.ndarray = int64_values(source.column(self.names[0])) - self.offset
            np.putmask(codes, (codes < 0) | (codes >= self.count), -1)
            return codes
        src = pl.from_arrow(source.select(self.names))
        assert isinstance(src, pl.DataFrame)
        s_code = src.join(self.distinct, on=self.names, how="left", maintain_order="left")[_CODE]
        return np.array(s_code.cast(pl.Int64).fill_null(-1).to_numpy())  # writable

    def key_table(self, codes: np.ndarray) -> pa.Table:
        """The key values of ``codes``, typed like the source's key columns."""
        if self.distinct is None:
            assert self.offset is not None
            values = int64_array(codes + self.offset).cast(self.types[0])
            return pa.table({self.names[0]: values})
        table = self.distinct.drop(_CODE).to_arrow().take(int64_array(codes))
        columns = [table.column(i).cast(t) for i, t in enumerate(self.types)]
        return pa.Table.from_arrays(columns, names=self.names)


class _Plan:
    """One view's rows packed as ``code << bits | (event - lo)`` and its entity probes.

    ``packed`` has one value per scanned row, -1 for rows no entity row can see (key not
    in the frame, newer than every entity time, or older than the ttl allows). The scan is
    kept only if it has the rest of the order (created timestamps, row ids): the event mode
    needs nothing of it once packed, and its memory goes.
    """

    def __init__(self, source: pa.Table, request: ViewRequest, probes: _Probes) -> None:
        self.source = source if _ROWID in source.column_names else None
        self.probes = probes
        keys = list(request.record.view.join_keys)
        self.keys = _Keys(probes.keys, [source.schema.field(k).type for k in keys], keys)
        self.ttl_us = ttl_micros(request.record.view.effective_ttl)
        event = int64_values(source.column(EVENT_TS))
        packed = self.keys.codes(source)  # then packed in place
        drop = packed < 0
        t = probes.t
        self.max_t = int(t.max()) if len(t) else 0
        if len(t):
            drop |= event > self.max_t
            oldest = lower_bound(int(t.min()), self.ttl_us)
            if oldest is not None:
                drop |= event < oldest
        else:
            drop[:] = True
        self.lo = int(np.min(event, where=~drop, initial=self.max_t))
        self.bits = max(self.max_t + 1 - self.lo, 1).bit_length()
        if max(self.keys.count, 1).bit_length() + self.bits > _BITS:
            msg = f"view {request.record.view.name}: {self.keys.count} keys x {self.bits}-bit times"
            raise DoesNotFit(msg)
        np.left_shift(packed, self.bits, out=packed)
        np.bitwise_or(packed, event - self.lo, out=packed)
        np.putmask(packed, drop, -1)
        self.packed = packed

    def take_packed(self) -> np.ndarray:
        """The packed values, handed over: the plan drops them so their memory can go."""
        packed, self.packed = self.packed, np.empty(0, dtype=np.int64)
        return packed

    def order_column(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        """An order column of the scan (created timestamps, row ids) as int64, at ``rows``."""
        assert self.source is not None, "the scan was read without its order columns"
        column = self.source.column(name)
        if rows is not None:
            column = column.take(int64_array(rows))
        return int64_values(column, null=_NULL_MICROS)

    def probe_values(self) -> np.ndarray:
        """Each probe packed like the rows (-1 if its time is before every row)."""
        query_t = self.probes.t - self.lo
        probe: np.ndarray = (self.keys.entity << self.bits) | np.maximum(query_t, 0)
        np.putmask(probe, query_t < 0, -1)
        return probe

    def matches(self, values: np.ndarray, at: np.ndarray, probes: np.ndarray) -> np.ndarray:
        """Where the row value found for each of ``probes`` has its key and is in the window.

        ``probes`` are positions among the probes, in the order of ``values`` and ``at``.
        The value was found at or before the probe's time, so the window's upper bound
        holds; :func:`featurestore.window.in_window_array` checks both anyway.
        """
        found: np.ndarray = (at >= 0) & (values >> self.bits == self.keys.entity[probes])
        event = (values & ((1 << self.bits) - 1)) + self.lo
        found &= in_window_array(event, self.probes.t[probes], self.ttl_us)
        return found


def _search(sorted_values: np.ndarray, probe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The probes' sorting permutation and, in that order, the last value <= each probe.

    Positions are -1 where no value is <= the probe; they are nondecreasing, as the probes.
    """
    order = _argsort(probe)
    return order, np.searchsorted(sorted_values, probe[order], side="right") - 1


def _argsort(values: np.ndarray) -> np.ndarray:
    """``np.argsort(values)`` (ties in any order) as int64, with polars' faster sort."""
    return pl.Series(values).arg_sort().to_numpy().astype(np.int64, copy=False)


def _unique_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)``, with polars' faster sort."""
    order = _argsort(values)
    unique, sorted_inverse = _runs(values[order])
    inverse = np.empty(len(values), dtype=np.int64)
    inverse[order] = sorted_inverse
    return unique, inverse


def _runs(ordered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of a sorted array, and each element's index among them."""
    starts = np.empty(len(ordered), dtype=bool)
    starts[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    return ordered[starts], np.cumsum(starts) - 1


class _Scan:
    """A view's two source scans: keys and times of every row, then the winners' features.

    Both see only rows inside the entity frame's time range (``time_range``; the ttl
    widens it backwards), so DuckDB can skip row groups by their statistics.
    """

    def __init__(self, request: ViewRequest, time_range: tuple[datetime, datetime] | None) -> None:
        self.request = request
        self.where = Query()
        if time_range is not None:
            self.where.add(f" WHERE {EVENT_TS} <= ?", time_range[1])
            oldest = lower_bound_datetime(time_range[0], request.record.view.effective_ttl)
            if oldest is not None:
                self.where.add(f" AND {EVENT_TS} >= ?", oldest)

    def _select(self, columns: list[str]) -> Query:
        """The scan's ``columns`` (:data:`_ROWID` computed) of the rows in range."""
        rowid = row_id_sql(FILE_INDEX_COL, FILE_ROW_COL)
        exprs = [f"{rowid} AS {_ROWID}" if c == _ROWID else c for c in columns]
        query = Query().add(f"SELECT {', '.join(exprs)} FROM (").extend(self.request.scan)
        return query.add(")").extend(self.where)

    def _run(self, cursor: duckdb.DuckDBPyConnection, query: Query) -> pa.Table:
        return cursor.sql(query.text, params=query.params).to_arrow_table()

    def keys(self, cursor: duckdb.DuckDBPyConnection, *, order: bool) -> pa.Table:
        """Join keys and event times of the rows in range.

        With ``order``, also the rest of the order: created timestamp and row id.
        """
        columns = [quote_ident(k) for k in self.request.record.view.join_keys] + [EVENT_TS]
        return self._run(cursor, self._select(columns + ([CREATED_TS, _ROWID] if order else [])))

    def _join(
        self, cursor: duckdb.DuckDBPyConnection, winners: pa.Table, on: list[str], extra: list[str]
    ) -> pa.Table:
        """The feature rows matching ``winners`` on ``on`` (an inner join), with ``extra``."""
        name = f"__fs_winners_{next(_names)}"
        cursor.register(name, winners)
        try:
            columns = [quote_ident(f) for f in self.request.features]
            inner = self._select(list(dict.fromkeys([*columns, *on, *extra, EVENT_TS])))
            condition = " AND ".join(f"__fs_s.{c} = __fs_w.{c}" for c in on)
            query = Query().add("SELECT __fs_s.*")
            query.add(f", __fs_w.{_PACKED}" if _PACKED in winners.column_names else "")
            query.add(" FROM (").extend(inner).add(f") AS __fs_s JOIN {name} AS __fs_w ON ")
            return self._run(cursor, query.add(condition))
        finally:
            cursor.unregister(name)

    def newest_at(
        self, cursor: duckdb.DuckDBPyConnection, plan: _Plan, values: np.ndarray, *, ties: bool
    ) -> tuple[pa.Table, np.ndarray]:
        """The newest row of each (key, event time) in ``values``.

        ``values`` are sorted, unique packed values. Returns the feature rows and, per
        value, its row in them.

        If some rows tie on key and event time (``ties``), they are told apart by the rest
        of the order: created timestamp with null lowest, then row id.
        """
        mask = (1 << plan.bits) - 1
        winners = plan.keys.key_table(values >> plan.bits)
        event = int64_array((values & mask) + plan.lo).view(pa.timestamp("us", tz="UTC"))
        winners = winners.append_column(EVENT_TS, event)
        winners = winners.append_column(_PACKED, int64_array(values))
        on = [*(quote_ident(k) for k in plan.keys.names), EVENT_TS]
        found = self._join(cursor, winners, on, [CREATED_TS, _ROWID] if ties else [])
        got = int64_values(found.column(_PACKED))
        if ties and len(got) != len(values):  # keep the newest row of each value
            created = int64_values(found.column(CREATED_TS), null=_NULL_MICROS)
            order = newer_lexsort(got, created, int64_values(found.column(_ROWID)))
            last = np.ones(len(order), dtype=bool)
            np.not_equal(got[order][1:], got[order][:-1], out=last[:-1])
            rows = order[last]
            got = got[rows]
        else:
            rows = np.arange(len(got), dtype=np.int64)
        return found, _positions(self.request, values, got, rows)

    def rows(
        self, cursor: duckdb.DuckDBPyConnection, plan: _Plan, scan_rows: np.ndarray
    ) -> tuple[pa.Table, np.ndarray]:
        """The rows at ``scan_rows`` (sorted, unique) of the first scan, by row id.

        Returns them and, per scan row, its row in them.
        """
        ids = plan.order_column(_ROWID, scan_rows)
        event = plan.order_column(EVENT_TS, scan_rows)
        winners = pa.table({_ROWID: int64_array(ids)})
        found = self._join(cursor, winners, [_ROWID], [])
        got = int64_values(found.column(_ROWID))
        at = _positions(self.request, ids, got, np.arange(len(got), dtype=np.int64))
        if not np.array_equal(int64_values(found.column(EVENT_TS)).take(at), event):
            raise _source_changed(self.request)
        return found, at


def _positions(
    request: ViewRequest, wanted: np.ndarray, got: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """For each of ``wanted`` (sorted, unique): ``rows[i]`` where ``got[i]`` equals it.

    Raises:
        SourceError: A wanted value is missing (the source changed between scans).
    """
    order = _argsort(got)
    if len(got) != len(wanted) or not np.array_equal(got[order], wanted):
        raise _source_changed(request)
    result: np.ndarray = rows[order]
    return result


def _event_view(
    cursor: duckdb.DuckDBPyConnection, scan: _Scan, plan: _Plan, n_rows: int
) -> _Columns:
    """``point_in_time="event"``: the winner is the last packed value at or before the probe.

    The features of the winning (key, event time) pairs come from one join.
    """
    packed = pl.Series(plan.take_packed()).sort().to_numpy()  # polars: ~3x numpy's speed
    start = int(np.searchsorted(packed, 0))  # rows that cannot match come first
    ties = bool(np.any(packed[start + 1 :] == packed[start:-1]))
    probes, at = _search(packed, plan.probe_values())
    values = _values_at(packed, at)  # sorted, as the probes are
    found = plan.matches(values, at, probes)
    wanted, slot = _runs(values[found])
    rows, row_of = scan.newest_at(cursor, plan, wanted, ties=ties)
    return _take(scan.request, rows, plan.probes.rows[probes[found]], row_of[slot], n_rows)


def _available_view(
    cursor: duckdb.DuckDBPyConnection, scan: _Scan, plan: _Plan, n_rows: int
) -> _Columns:
    """``point_in_time="available"``: the newest row visible at the probe's time.

    Rows are put in the order "newer" (module docstring, step 4), then by the time they
    became visible; a running maximum of the first order gives the newest row visible at
    each point.
    """
    packed = plan.take_packed()
    order = _argsort(packed)
    ordered = packed[order]
    del packed
    start = int(np.searchsorted(ordered, 0))  # rows that cannot match come first
    order, ordered = order[start:], ordered[start:]
    _break_ties(plan, order, ordered)
    mask = (1 << plan.bits) - 1
    created = plan.order_column(CREATED_TS)[order]
    visible = np.maximum(created, (ordered & mask) + plan.lo)  # null created: event time
    # Rows visible only after max(t) are parked at max(t) + 1, beyond every probe.
    np.minimum(visible, plan.max_t + 1, out=visible)
    visible -= plan.lo
    visible |= (ordered >> plan.bits) << plan.bits
    by_visible = _argsort(visible)
    newest = np.maximum.accumulate(by_visible)
    probes, at = _search(visible[by_visible], plan.probe_values())
    candidate = _values_at(newest, at)
    found = plan.matches(_values_at(ordered, candidate), at, probes)
    wanted, slot = _unique_inverse(order[candidate[found]])
    rows, row_of = scan.rows(cursor, plan, wanted)
    return _take(scan.request, rows, plan.probes.rows[probes[found]], row_of[slot], n_rows)


def _values_at(values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``values[at]``, -1 where ``at`` is negative."""
    if len(values) == 0:
        return np.full(len(at), -1, dtype=np.int64)
    return np.where(at >= 0, values[np.maximum(at, 0)], -1)


def _break_ties(plan: _Plan, order: np.ndarray, ordered: np.ndarray) -> None:
    """Order rows tying on key and event time by created timestamp, then row id (in place)."""
    ties = ordered[1:] == ordered[:-1]
    if not ties.any():
        return
    in_run = np.zeros(len(ordered), dtype=bool)
    in_run[1:] |= ties
    in_run[:-1] |= ties
    positions = np.flatnonzero(in_run)
    starts = np.ones(len(positions), dtype=bool)
    starts[1:] = ~ties[positions[1:] - 1]
    run = np.cumsum(starts)
    rows = order[positions]
    created = plan.order_column(CREATED_TS, rows)
    rowid = plan.order_column(_ROWID, rows)
    order[positions] = order[positions][newer_lexsort(run, created, rowid)]


def _take(
    request: ViewRequest, rows: pa.Table, entity_rows: np.ndarray, row_of: np.ndarray, n: int
) -> _Columns:
    """The features of ``rows`` in entity order (null where no row wins).

    Entity row ``entity_rows[i]`` gets row ``row_of[i]``.
    """
    positions = np.zeros(n, dtype=np.int64)
    positions[entity_rows] = row_of
    missing = np.ones(n, dtype=bool)
    missing[entity_rows] = False
    return [take(rows.column(c), positions, missing) for c, _ in request.taken]


def _source_changed(request: ViewRequest) -> SourceError:
    """The second scan of a source missed rows of the first (files rewritten in between)."""
    return SourceError(
        f"The source of feature view '{request.record.view.name}' changed while the training "
        "frame was computed. Run it again once the files are written."
    )
