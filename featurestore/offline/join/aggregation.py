"""Training frames of aggregation views (DESIGN G7): every aggregate at each entity row's time.

One query per view: the entity rows are joined to the view's events on the keys, with the
largest window as inequality conditions (``start(t) <= event <= t``), and grouped by entity
row; each aggregation keeps the events of its own window (the rule of
:func:`featurestore.window.agg_start_sql`): in two stages through the events' levels in the
nested windows (:func:`_levels`), or, for a view with a ``stddev``, with one ``FILTER`` per
aggregate. DuckDB runs it as a hash join on the keys with a
range filter, streaming: no per-row Python, no cross product of entity rows and events. A
``LEFT JOIN`` keeps the entity rows whose window holds no event, so their counts are 0 and
their other aggregates null. ``last`` takes the newest non-null value by the one total order
(:func:`featurestore.offline.sql.newer_order_key`). The source is pruned to the frame's time
range before the join.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurestore._time import from_micros, to_micros
from featurestore.definitions.aggregation import tile_parts
from featurestore.offline.join.query import T_COL, entity_keys_sql, key_match
from featurestore.offline.join.spec import ROW_COL
from featurestore.offline.sql import CREATED_TS, EVENT_TS, Query, newer_order_key, quote_ident
from featurestore.window import agg_start, agg_start_sql

if TYPE_CHECKING:
    from datetime import datetime

    from featurestore.definitions import Aggregation, FeatureView
    from featurestore.offline.join.spec import JoinSpec, ViewRequest

__all__ = ["TILE_TIME", "aggregate_sql", "aggregation_join", "tiles_query"]

_SQL_FUNCTIONS = {
    "count": "count",
    "sum": "sum",
    "mean": "avg",
    "min": "min",
    "max": "max",
    "stddev": "stddev_samp",
}


def aggregate_sql(aggregation: Aggregation, in_window: str, prefix: str = "s.") -> str:
    """One aggregate over the joined events for which ``in_window`` holds (DuckDB SQL)."""
    if aggregation.column is None:
        return f"count({prefix}{EVENT_TS}) FILTER (WHERE {in_window})"
    column = f"{prefix}{quote_ident(aggregation.column)}"
    if aggregation.function == "last":
        return (
            f"arg_max({column}, {newer_order_key(prefix)}) "
            f"FILTER (WHERE {in_window} AND {column} IS NOT NULL)"
        )
    function = _SQL_FUNCTIONS[aggregation.function]
    return f"{function}({column}) FILTER (WHERE {in_window})"


def aggregation_join(spec: JoinSpec, request: ViewRequest) -> Query:
    """One aggregation view's ``(__fs_row, v0, v1, ...)``, a row for every matchable entity row.

    Plain columns, not the other strategies' ``__fs_vals`` struct: no struct is built per
    entity row (measured ~2.5 % of the issue-size frame, ``benchmarks/bench_aggregations.py``).

    ``request.scan`` is the scan of the view's events (the event view's columns). Times are
    compared as ``BIGINT`` microseconds: each entity row's time and window starts
    (:func:`~featurestore.window.agg_start_sql`) are computed once per entity row, each
    event's time once per event, so the join and every ``FILTER`` compare integers instead
    of computing a window start per joined pair (measured: the fastest form, see
    ``benchmarks/bench_aggregations.py``).
    """
    view = request.record.view
    hop = view.hop_us
    by_name = {a.output_name: a for a in view.aggregations}
    widest = max(a.window_us for a in view.aggregations)
    windows = sorted({by_name[t].window_us for t, _ in request.taken if t in by_name} | {widest})
    starts = {window: f"__fs_s{k}" for k, window in enumerate(windows)}
    if any(a.function == "stddev" for a in view.aggregations):
        values = []
        for j, (taken, _) in enumerate(request.taken):
            if taken == EVENT_TS:  # the newest event of the widest window (what reads report)
                values.append(f"max(s.{EVENT_TS}) AS v{j}")
                continue
            aggregation = by_name[taken]
            in_window = f"s.{_US} >= e.{starts[aggregation.window_us]}"
            values.append(f"{aggregate_sql(aggregation, in_window)} AS v{j}")
        select = f"SELECT e.{ROW_COL}, {', '.join(values)} FROM ("
        query = Query().add(select)
        group = f" GROUP BY e.{ROW_COL}"
    else:
        level, parts, values = _levels(request, windows, starts)
        query = Query().add(f"SELECT {ROW_COL}, {', '.join(values)}")
        query.add(f" FROM (SELECT e.{ROW_COL}, {level} AS {_LEVEL}, {', '.join(parts)} FROM (")
        group = f" GROUP BY e.{ROW_COL}, {_LEVEL}) GROUP BY {ROW_COL}"
    bounds = "".join(
        f", {agg_start_sql(f'epoch_us({T_COL})', hop, window)} AS {name}"
        for window, name in starts.items()
    )
    query.add(f"SELECT *, epoch_us({T_COL}) AS {_T_US}{bounds} FROM (")
    query.add(entity_keys_sql(request, spec.timestamp_column)).add(")) e LEFT JOIN (")
    query.add(f"SELECT *, epoch_us({EVENT_TS}) AS {_US} FROM (")
    query.extend(request.scan).add(") WHERE TRUE")
    stats = spec.stats
    if stats.max_ts is not None:
        query.add(f" AND {EVENT_TS} <= ?", stats.max_ts)
    if stats.min_ts is not None:
        try:
            lower = from_micros(agg_start(to_micros(stats.min_ts), hop, widest))
        except (OverflowError, ValueError):  # before year 1: nothing to prune
            lower = None
        if lower is not None:
            query.add(f" AND {EVENT_TS} >= ?", lower)
    query.add(
        f") s ON {key_match(request, 'e', 's')} AND s.{_US} <= e.{_T_US}"
        f" AND s.{_US} >= e.{starts[widest]}"
    )
    if spec.point_in_time == "available":
        query.add(f" AND (s.{CREATED_TS} IS NULL OR s.{CREATED_TS} <= e.{T_COL})")
    query.add(group)
    return query


def _levels(
    request: ViewRequest, windows: list[int], starts: dict[int, str]
) -> tuple[str, list[str], list[str]]:
    """The two-stage form of the aggregates: (level expression, parts, values).

    Every window ends at the entity row's time, so they are nested: an event's **level** is
    how many of the windows but the widest hold it, and window ``k`` (the k-th smallest,
    from 0) holds the events of level ``m - 1 - k`` or more (``m`` windows). The joined
    events are grouped by (entity row, level) into the partial aggregates each function
    needs (no ``FILTER``: one count, sum, min, max or newest value per column), then by
    entity row, each window adding up its levels. That replaces a ``FILTER``ed aggregate
    per (window, function) over every joined event, the most expensive part of the join
    (~1.4x faster measured). ``stddev`` does not combine this way in SQL exactly, so a view
    with one keeps the single-stage form.
    """
    view = request.record.view
    by_name = {a.output_name: a for a in view.aggregations}
    m = len(windows)
    level = " + ".join(f"CAST(s.{_US} >= e.{starts[w]} AS INTEGER)" for w in windows[:-1])
    parts: dict[str, str] = {}
    values = []

    def part(name: str, sql: str) -> str:
        parts.setdefault(name, f"{sql} AS {name}")
        return name

    for j, (taken, _) in enumerate(request.taken):
        if taken == EVENT_TS:  # the newest event of the widest window (what reads report)
            values.append(f"max({part('__fs_newest', f'max(s.{EVENT_TS})')}) AS v{j}")
            continue
        aggregation = by_name[taken]
        k = windows.index(aggregation.window_us)
        where = f" FILTER (WHERE {_LEVEL} >= {m - 1 - k})" if k < m - 1 else ""
        column = aggregation.column
        if column is None:
            n = part("__fs_n", f"count(s.{_US})")
            values.append(f"CAST(coalesce(sum({n}){where}, 0) AS BIGINT) AS v{j}")
            continue
        c = f"s.{quote_ident(column)}"
        i = sorted({a.column for a in view.aggregations if a.column is not None}).index(column)
        function = aggregation.function
        if function in ("count", "mean"):
            n = part(f"__fs_c{i}_n", f"count({c})")
        if function in ("sum", "mean"):
            total = part(f"__fs_c{i}_sum", f"sum({c})")
        if function == "count":
            values.append(f"CAST(coalesce(sum({n}){where}, 0) AS BIGINT) AS v{j}")
        elif function == "sum":
            values.append(f"sum({total}){where} AS v{j}")
        elif function == "mean":
            values.append(f"sum({total}){where} / nullif(sum({n}){where}, 0) AS v{j}")
        elif function in ("min", "max"):
            extreme = part(f"__fs_c{i}_{function}", f"{function}({c})")
            values.append(f"{function}({extreme}){where} AS v{j}")
        else:  # last: the value of the newest order key among the levels' newest
            newest = f"max(struct_pack(k := {newer_order_key('s.')}, v := {c}))"
            last = part(f"__fs_c{i}_last", f"{newest} FILTER (WHERE {c} IS NOT NULL)")
            values.append(f"(max({last}){where}).v AS v{j}")
    return level or "0", list(parts.values()), values


_LEVEL = "__fs_level"
"""An event's level in the two-stage form (:func:`_levels`)."""
_US = "__fs_us"
"""An event's time in microseconds (the event side of :func:`aggregation_join`)."""
_T_US = "__fs_t_us"
"""An entity row's time in microseconds."""


TILE_TIME = "__fs_tile"
"""The tile start column of :func:`tiles_query` (``BIGINT`` microseconds, a multiple of the hop)."""


def tiles_query(
    scan: Query, view: FeatureView, lo: datetime, hi: datetime, *, wanted: str | None = None
) -> Query:
    """Per (key, tile) partial aggregates of the events with ``lo <= event < hi`` (G7 tiles).

    ``lo`` should be a tile start (else the first tile is partial). Columns: the join keys,
    :data:`TILE_TIME`, ``__fs_n`` (events), ``__fs_max`` (the newest event time,
    microseconds), then per aggregated column the parts of
    :func:`~featurestore.definitions.aggregation.tile_parts`, in that order: non-null count,
    sum, the sum of squared deviations from the tile's mean (what ``stddev`` combines), min,
    max and the newest non-null value by the total order. ``wanted`` names a relation of
    (join keys, ``__fs_tile``): only those tiles.
    """
    hop = view.hop_us
    us = f"epoch_us({EVENT_TS})"
    keys = ", ".join(quote_ident(k) for k in view.join_keys)
    parts = ["count(*) AS __fs_n", f"max({us}) AS __fs_max"]
    for i, (column, kept) in enumerate(tile_parts(view.aggregations)):
        c = quote_ident(column)
        sql = {
            "count": f"count({c})",
            "sum": f"sum({c})",
            "m2": f"var_pop({c}) * count({c})",
            "min": f"min({c})",
            "max": f"max({c})",
            "last": f"arg_max({c}, {newer_order_key()}) FILTER (WHERE {c} IS NOT NULL)",
        }
        parts += [f"{sql[part]} AS __fs_c{i}_{part}" for part in kept]
    query = Query().add(f"SELECT {keys}, {TILE_TIME}, {', '.join(parts)} FROM (SELECT *, ")
    query.add(f"({us} - ((({us} % {hop}) + {hop}) % {hop})) AS {TILE_TIME} FROM (")
    query.extend(scan).add(f") WHERE {EVENT_TS} >= ? AND {EVENT_TS} < ?) t", lo, hi)
    if wanted is not None:
        match = " AND ".join(
            f"t.{k} = w.{k}" for k in [*(quote_ident(k) for k in view.join_keys), TILE_TIME]
        )
        query.add(f" WHERE EXISTS (SELECT 1 FROM {wanted} w WHERE {match})")
    query.add(f" GROUP BY {keys}, {TILE_TIME} ORDER BY {keys}, {TILE_TIME}")
    return query
