"""The ``"asof"`` join strategy (large entity frames, ``point_in_time="event"`` only).

One ASOF JOIN per view on the *whole order key*: the source rows' ``newer_order_key`` struct
against the probe ``(t, +inf, +inf, +inf)`` (:func:`featurestore.ordering.newest_probe_sql`),
so the match is the newest row with ``event_timestamp <= t`` -- ties on the event timestamp
are resolved by the join itself, with no separate dedupe (measured 2.4x faster than
dedupe-then-ASOF). Matches older than the window's lower bound are then nulled out. This is
exact because the newest candidate is always the newest row with ``event_timestamp <= t``;
if that one is older than ``t - ttl``, every other candidate is too. The ASOF JOIN sorts
the whole source. ``"available"`` cannot use it (the newest *available* row depends on
``t``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurestore.offline.join.query import T_COL, entity_keys_sql, key_match, values_struct
from featurestore.offline.join.spec import ROW_COL
from featurestore.offline.sql import EVENT_TS, Query, newer_order_key, quote_ident
from featurestore.ordering import newest_probe_sql
from featurestore.window import lower_bound_sql

if TYPE_CHECKING:
    from featurestore.offline.join.spec import JoinSpec, ViewRequest

__all__ = ["asof_join"]


def asof_join(spec: JoinSpec, request: ViewRequest) -> Query:
    """One view's ``(__fs_row, __fs_vals)``: the newest row at or before t, if in the window."""
    lower, params = lower_bound_sql(
        f"s.{EVENT_TS}", f"e.{T_COL}", request.record.view.effective_ttl
    )
    vals = "s.__fs_vals" if not params else f"CASE WHEN {lower} THEN s.__fs_vals END"
    keys = ", ".join(f"s.{quote_ident(k)}" for k in request.record.view.join_keys)
    query = Query().add(f"SELECT e.{ROW_COL}, {vals} AS __fs_vals FROM (SELECT *, ", *params)
    query.add(f"{newest_probe_sql(T_COL)} AS __fs_order FROM (")
    query.add(entity_keys_sql(request, spec.timestamp_column)).add(")) e ASOF JOIN (")
    query.add(f"SELECT {keys}, s.{EVENT_TS}, {newer_order_key('s.')} AS __fs_order, ")
    query.add(f"{values_struct(request, 's.')} AS __fs_vals FROM (").extend(request.scan)
    query.add(f") s) s ON {key_match(request, 'e', 's')} AND e.__fs_order >= s.__fs_order")
    return query
