"""The point-in-time join that produces training frames (DESIGN G1), written once.

The rule
--------
Let an entity row have join keys ``K`` and timestamp ``t`` (UTC, microseconds), and let feature
view ``V`` have ttl ``L`` (``None`` or zero means unlimited). The *candidates* for the row are
V's source rows ``r`` with

* ``r.keys == K`` (every join key equal; a null key on either side never matches),
* ``r.event_timestamp <= t``,
* ``r.event_timestamp >= t - L`` when ``L`` is set and non-zero (both bounds inclusive),
* with ``point_in_time="available"`` also ``r.created_timestamp <= t``. A row whose created
  timestamp is null has an unknown creation time and is treated as available (consistent with
  null being the *lowest* created timestamp in the order below).

The *newest* candidate supplies **all** of the requested features of V; no candidate (or a
null key / null ``t`` in the entity row) gives nulls. "Newest" is the one total order of DESIGN
section 3, :func:`featurestore.offline.sql.newer_order_key`: ``(event_timestamp,
created_timestamp with null lowest, file path, row number within the file)``, largest wins.
Source rows with a null event timestamp or a null join key are never candidates.

Every entity row is returned exactly once, in input order (duplicates included), with all of
its columns, followed by the feature columns in request order.

Two strategies compute the same result
--------------------------------------
* ``"asof"`` (large entity frames): one ASOF JOIN per view on the *whole order key*: the
  source rows' ``newer_order_key`` struct against the probe ``(t, +inf, +inf, +inf)``
  (``sql.newest_probe``), so the match is the newest row with ``event_timestamp <= t`` --
  ties on the event timestamp are resolved by the join itself, with no separate dedupe
  (measured 2.4x faster than dedupe-then-ASOF). Matches older than ``t - L`` are then
  nulled out. This is exact because the newest candidate is always the newest row with
  ``event_timestamp <= t``; if that one is older than ``t - L``, every other candidate is
  too. The ASOF JOIN sorts the whole source.
  ``"available"`` cannot use it (the newest *available* row depends on ``t``), so it always
  uses the range strategy.
* ``"range"`` (small entity frames): prune the source to the frame's keys (hash join) and time
  range ``[min(t) - L, max(t)]`` (bound parameters DuckDB pushes into the Parquet scan), join
  on keys with the inequality conditions, and keep per entity row the ``arg_max`` by the order.
  Its cost grows with entity rows x source rows per key, so it loses on large frames.

* ``"arrays"`` (large frames that fit in memory): the same rule on packed ``int64`` keys with
  numpy (:mod:`featurestore.offline.pit_arrays`), also for ``"available"``; it falls back to
  the SQL above when keys and times do not pack into 62 bits.

``"auto"`` picks ``range`` when the frame has at most :data:`RANGE_MAX_ENTITY_ROWS` rows; else
``arrays`` when its memory estimate fits (``training_frame.ARRAYS_MEMORY_FRACTION``) and the
frame has more than :data:`ARRAYS_MIN_ENTITY_FRACTION` of the largest source's rows; else
``range`` up to :data:`RANGE_MAX_ENTITY_FRACTION` of them; else ``asof`` (see
``benchmarks/README.md`` for the measurements behind the numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from featurestore.dtypes import to_duckdb
from featurestore.offline.sql import (
    CREATED_TS,
    EVENT_TS,
    Query,
    newer_order_key,
    newest_probe,
    quote_ident,
)

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from featurestore.repo.registry import ViewRecord

__all__ = [
    "ARRAYS_MIN_ENTITY_FRACTION",
    "RANGE_MAX_ENTITY_FRACTION",
    "RANGE_MAX_ENTITY_ROWS",
    "ROW_COL",
    "EntityStats",
    "JoinStrategy",
    "ViewRequest",
    "choose_strategy",
    "entity_keys_sql",
    "latest_rows_query",
    "training_query",
]

JoinStrategy = Literal["auto", "asof", "range", "arrays"]

ROW_COL = "__fs_row"
"""The entity frame's input position column (0-based), added by the engine."""

RANGE_MAX_ENTITY_ROWS = 10_000
"""``auto`` always uses the range join up to this many entity rows (cheap whatever the source)."""
RANGE_MAX_ENTITY_FRACTION = 0.05
"""... and, when the ``arrays`` join does not fit in memory, also while the frame has at most
this fraction of the largest source's row count (the crossover with the ASOF JOIN).

Measured on 2 x 5M-row sources (100k / 50k keys, 90 days, ttl 30 d), seconds range vs asof:
10k entity rows 1.5 vs 7.8; 100k 4.0 vs 16.6; 300k 10.1 vs 16.2; 1M 55 vs 8.0 (commit e6d3498;
again at commit 01205a4: 0.67 vs 4.23, 1.53 vs 3.33, 3.38 vs 4.03, 10.75 vs 8.25). The range
join costs about entity rows x source rows per key, the ASOF JOIN a sort of the whole source,
so the crossover scales with the source size: ~6% of it here; 5% keeps a margin.
"""
ARRAYS_MIN_ENTITY_FRACTION = 0.01
"""``auto`` prefers the ``arrays`` join (when it fits) over the range join above this fraction
of the largest source's row count.

The arrays join costs about one pass over each source whatever the frame's size. Same data,
commit 01205a4, seconds range vs arrays: 10k 0.67 vs 1.13; 100k 1.53 vs 1.12; 300k 3.38 vs
1.08; 1M 10.75 vs 2.98: the crossover is near 60k rows, 1.2% of the source.
"""

_T = "__fs_t"


@dataclass(frozen=True)
class EntityStats:
    """What the planner knows about the entity frame before joining."""

    rows: int
    min_ts: datetime | None
    max_ts: datetime | None


@dataclass(frozen=True)
class ViewRequest:
    """One view's part of a training frame."""

    record: ViewRecord
    features: list[str]
    output_columns: list[str]
    scan: Query
    """A source scan (``sql.source_scan``) with the join keys and requested features."""
    source_rows: int


def choose_strategy(
    stats: EntityStats,
    requests: list[ViewRequest],
    *,
    point_in_time: Literal["event", "available"],
    strategy: JoinStrategy = "auto",
    arrays_fit: bool = False,
) -> Literal["asof", "range", "arrays"]:
    """The join strategy to use.

    ``auto``: ``range`` for small frames (see :data:`RANGE_MAX_ENTITY_ROWS`), else
    ``arrays`` when its memory estimate fits (``arrays_fit``) and the frame is not tiny next
    to the sources (:data:`ARRAYS_MIN_ENTITY_FRACTION`), else ``range`` up to
    :data:`RANGE_MAX_ENTITY_FRACTION`, else ``asof`` (``range`` for
    ``point_in_time="available"``, which the ASOF JOIN cannot compute).
    """
    if strategy != "auto":
        if strategy == "asof" and point_in_time == "available":
            return "range"
        return strategy
    largest = max((r.source_rows for r in requests), default=0)
    if stats.rows <= RANGE_MAX_ENTITY_ROWS:
        return "range"
    if arrays_fit and stats.rows > ARRAYS_MIN_ENTITY_FRACTION * largest:
        return "arrays"
    if stats.rows <= RANGE_MAX_ENTITY_FRACTION * largest:
        return "range"
    return "range" if point_in_time == "available" else "asof"


def training_query(
    entity: Query,
    entity_columns: list[str],
    requests: list[ViewRequest],
    *,
    timestamp_column: str,
    stats: EntityStats,
    point_in_time: Literal["event", "available"],
    strategy: JoinStrategy = "auto",
    feature_order: list[str] | None = None,
) -> Query:
    """The full training-frame query: entity columns, then features, in input order.

    Args:
        entity: A query yielding the entity frame with a UTC ``TIMESTAMPTZ`` timestamp column
            and the ``__fs_row`` position column.
        entity_columns: The entity frame's own columns, in order (output first).
        requests: The views and features to join, in output order.
        timestamp_column: The entity frame's timestamp column.
        stats: Entity frame size and time range.
        point_in_time: ``"event"`` or ``"available"`` (see the module docstring).
        strategy: Force a strategy (tests), or ``"auto"``.
        feature_order: The output feature columns in order (default: request order).
    """
    chosen = choose_strategy(stats, requests, point_in_time=point_in_time, strategy=strategy)
    if chosen == "arrays":  # this query is the arrays strategy's fallback
        chosen = "range" if point_in_time == "available" else "asof"
    query = Query().add("WITH __fs_entity AS (").extend(entity).add(")")
    for i, request in enumerate(requests):
        query.add(f", __fs_v{i} AS (")
        if chosen == "asof":
            query.extend(_asof_join(request, timestamp_column))
        else:
            query.extend(_range_join(request, timestamp_column, stats, point_in_time=point_in_time))
        query.add(")")
    features: dict[str, str] = {}
    joins: list[str] = []
    for i, request in enumerate(requests):
        for j, out in enumerate(request.output_columns):
            features[out] = f"__fs_v{i}.__fs_vals.v{j} AS {quote_ident(out)}"
        joins.append(f" LEFT JOIN __fs_v{i} ON __fs_v{i}.{ROW_COL} = __fs_entity.{ROW_COL}")
    order = feature_order if feature_order is not None else list(features)
    select = [f"__fs_entity.{quote_ident(c)}" for c in entity_columns]
    select += [features[out] for out in order]
    query.add(" SELECT " + ", ".join(select) + " FROM __fs_entity")
    query.add("".join(joins))
    query.add(f" ORDER BY __fs_entity.{ROW_COL}")
    return query


def entity_keys_sql(request: ViewRequest, timestamp_column: str) -> str:
    """The entity rows that can match: keys cast to the view's key types, non-null."""
    record = request.record
    keys = [
        f"CAST({quote_ident(k)} AS {to_duckdb(record.key_dtypes[k])}) AS {quote_ident(k)}"
        for k in record.view.join_keys
    ]
    conds = [f"{quote_ident(k)} IS NOT NULL" for k in record.view.join_keys]
    conds.append(f"{quote_ident(timestamp_column)} IS NOT NULL")
    return (
        f"SELECT {ROW_COL}, {', '.join(keys)}, {quote_ident(timestamp_column)} AS {_T} "
        f"FROM __fs_entity WHERE {' AND '.join(conds)}"
    )


def _values_struct(request: ViewRequest, prefix: str) -> str:
    fields = [f"v{j} := {prefix}{quote_ident(f)}" for j, f in enumerate(request.features)]
    return "struct_pack(" + ", ".join(fields) + ")"


def _key_match(request: ViewRequest, left: str, right: str) -> str:
    return " AND ".join(
        f"{left}.{quote_ident(k)} = {right}.{quote_ident(k)}" for k in request.record.view.join_keys
    )


def _asof_join(request: ViewRequest, timestamp_column: str) -> Query:
    ttl = request.record.view.effective_ttl
    if ttl is None:
        vals = "s.__fs_vals"
        params: tuple[object, ...] = ()
    else:
        vals = f"CASE WHEN s.{EVENT_TS} >= e.{_T} - ? THEN s.__fs_vals END"
        params = (ttl,)
    keys = ", ".join(f"s.{quote_ident(k)}" for k in request.record.view.join_keys)
    query = Query().add(f"SELECT e.{ROW_COL}, {vals} AS __fs_vals FROM (SELECT *, ", *params)
    query.add(f"{newest_probe(_T)} AS __fs_order FROM (")
    query.add(entity_keys_sql(request, timestamp_column)).add(")) e ASOF JOIN (")
    query.add(f"SELECT {keys}, s.{EVENT_TS}, {newer_order_key('s.')} AS __fs_order, ")
    query.add(f"{_values_struct(request, 's.')} AS __fs_vals FROM (").extend(request.scan)
    query.add(f") s) s ON {_key_match(request, 'e', 's')} AND e.__fs_order >= s.__fs_order")
    return query


def _range_join(
    request: ViewRequest,
    timestamp_column: str,
    stats: EntityStats,
    *,
    point_in_time: Literal["event", "available"],
) -> Query:
    ttl = request.record.view.effective_ttl
    query = Query().add(
        f"SELECT e.{ROW_COL}, arg_max({_values_struct(request, 's.')}, "
        f"{newer_order_key('s.')}) AS __fs_vals FROM ("
    )
    query.add(entity_keys_sql(request, timestamp_column)).add(") e JOIN (SELECT * FROM (")
    query.extend(request.scan).add(") WHERE TRUE")
    if stats.max_ts is not None:
        query.add(f" AND {EVENT_TS} <= ?", stats.max_ts)
    lower = _lower_bound(stats.min_ts, ttl)
    if lower is not None:
        query.add(f" AND {EVENT_TS} >= ?", lower)
    query.add(f") s ON {_key_match(request, 'e', 's')} AND s.{EVENT_TS} <= e.{_T}")
    if ttl is not None:
        query.add(f" AND s.{EVENT_TS} >= e.{_T} - ?", ttl)
    if point_in_time == "available":
        query.add(f" AND (s.__fs_created_ts IS NULL OR s.__fs_created_ts <= e.{_T})")
    query.add(f" GROUP BY e.{ROW_COL}")
    return query


def _lower_bound(min_ts: datetime | None, ttl: timedelta | None) -> datetime | None:
    if min_ts is None or ttl is None:
        return None
    try:
        return min_ts - ttl
    except OverflowError:
        return None


def latest_rows_query(
    scan: Query,
    record: ViewRecord,
    start: datetime,
    end: datetime,
    *,
    count: bool = False,
    ordered: bool = False,
) -> Query:
    """The newest row (by the one order) per key tuple with ``start <= event_ts < end``.

    Columns: join keys, the scan's features, ``__fs_event_ts``, ``__fs_created_ts``. With
    ``count=True``: one row holding the number of such key tuples. With ``ordered=True``:
    rows sorted by the join keys in name order (materialization writes them in key order).
    """
    keys = ", ".join(quote_ident(k) for k in record.view.join_keys)
    window = Query().add("SELECT * FROM (").extend(scan)
    window.add(f") WHERE {EVENT_TS} >= ? AND {EVENT_TS} < ?", start, end)
    if count:
        return (
            Query()
            .add("SELECT count(*) FROM (SELECT DISTINCT " + keys + " FROM (")
            .extend(window)
            .add("))")
        )
    features = [f for f in record.view.feature_names]
    fields = [f"v{j} := {quote_ident(f)}" for j, f in enumerate(features)]
    fields += [f"e := {EVENT_TS}", f"c := {CREATED_TS}"]
    outs = [quote_ident(k) for k in record.view.join_keys]
    outs += [f"__fs_vals.v{j} AS {quote_ident(f)}" for j, f in enumerate(features)]
    outs += [f"__fs_vals.e AS {EVENT_TS}", f"__fs_vals.c AS {CREATED_TS}"]
    query = Query().add(f"SELECT {', '.join(outs)} FROM (SELECT {keys}, ")
    query.add(f"arg_max(struct_pack({', '.join(fields)}), {newer_order_key()}) AS __fs_vals FROM (")
    query.extend(window).add(f") GROUP BY {keys})")
    if ordered:
        query.add(" ORDER BY " + ", ".join(quote_ident(k) for k in sorted(record.view.join_keys)))
    return query
