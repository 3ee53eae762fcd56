"""The ``"range"`` join strategy (small entity frames; both ``point_in_time`` modes).

The source is pruned to the frame's time range (``[min(t) - ttl, max(t)]``, bound parameters
DuckDB pushes into the Parquet scan), joined to the entity rows on the keys with the
candidate window as inequality conditions, and each entity row keeps the ``arg_max`` of its
candidates by the order "newer". Its cost grows with entity rows x source rows per key, so it
loses on large frames (:mod:`~featurestore.offline.join.planner`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurestore.offline.join.query import T_COL, entity_keys_sql, key_match, values_struct
from featurestore.offline.join.spec import ROW_COL
from featurestore.offline.sql import CREATED_TS, EVENT_TS, Query, newer_order_key
from featurestore.window import lower_bound_datetime, window_sql

if TYPE_CHECKING:
    from featurestore.offline.join.spec import JoinSpec, ViewRequest

__all__ = ["range_join"]


def range_join(spec: JoinSpec, request: ViewRequest) -> Query:
    """One view's ``(__fs_row, __fs_vals)``: the newest candidate of each entity row."""
    ttl = request.record.view.effective_ttl
    query = Query().add(
        f"SELECT e.{ROW_COL}, arg_max({values_struct(request, 's.')}, "
        f"{newer_order_key('s.')}) AS __fs_vals FROM ("
    )
    query.add(entity_keys_sql(request, spec.timestamp_column)).add(") e JOIN (SELECT * FROM (")
    query.extend(request.scan).add(") WHERE TRUE")
    stats = spec.stats
    if stats.max_ts is not None:
        query.add(f" AND {EVENT_TS} <= ?", stats.max_ts)
    lower = None if stats.min_ts is None else lower_bound_datetime(stats.min_ts, ttl)
    if lower is not None:
        query.add(f" AND {EVENT_TS} >= ?", lower)
    window, params = window_sql(f"s.{EVENT_TS}", f"e.{T_COL}", ttl)
    query.add(f") s ON {key_match(request, 'e', 's')} AND {window}", *params)
    if spec.point_in_time == "available":
        query.add(f" AND (s.{CREATED_TS} IS NULL OR s.{CREATED_TS} <= e.{T_COL})")
    query.add(f" GROUP BY e.{ROW_COL}")
    return query
