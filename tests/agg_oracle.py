"""Brute-force oracle of DESIGN G7 (windowed aggregations), in plain Python over raw events.

Written the obvious way and independently of featurestore's code: for each entity row at time
``t`` it loops over every event and keeps those with the entity's keys and
``start(t) <= event_ts <= t``, where ``start(t) = floor(t, hop) - window`` is computed with
datetime arithmetic (``timedelta // timedelta`` floors), then aggregates them with the
standard library (``math.fsum``, ``statistics.stdev``). Nulls in the column are skipped;
``last`` is the newest non-null value by the total order (``tests.oracle.newer_key``); an
empty window gives count 0 and None for the others; an entity row with a null key or time
gives None everywhere.

Events are dicts like the rows of ``tests.oracle``: join keys, ``event_ts``, ``created_ts``,
``file``, ``row`` and the aggregated columns.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from tests.oracle import newer_key

__all__ = ["Agg", "agg_oracle", "agg_values", "close", "window_start"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Agg:
    """One aggregation, as the oracle needs it."""

    name: str
    column: str | None
    function: str
    window: timedelta


def window_start(t: datetime, hop: timedelta, window: timedelta) -> datetime:
    """``floor(t, hop) - window``, by datetime arithmetic."""
    return EPOCH + ((t - EPOCH) // hop) * hop - window


def agg_values(events: Sequence[dict[str, Any]], agg: Agg) -> Any:
    """One aggregate over the events of a window (already selected)."""
    if agg.column is None:
        return len(events)
    values = [e[agg.column] for e in events if e[agg.column] is not None]
    if agg.function == "count":
        return len(values)
    if not values:
        return None
    if agg.function == "sum":
        return math.fsum(values)
    if agg.function == "mean":
        return math.fsum(values) / len(values)
    if agg.function == "min":
        return min(values)
    if agg.function == "max":
        return max(values)
    if agg.function == "stddev":
        return statistics.stdev(values) if len(values) >= 2 else None
    assert agg.function == "last"
    newest = max((e for e in events if e[agg.column] is not None), key=newer_key)
    return newest[agg.column]


def agg_oracle(
    entity_rows: Sequence[dict[str, Any]],
    events: Sequence[dict[str, Any]],
    *,
    join_keys: Sequence[str],
    aggs: Sequence[Agg],
    hop: timedelta,
    timestamp_column: str = "event_timestamp",
    point_in_time: Literal["event", "available"] = "event",
) -> list[dict[str, Any]]:
    """The aggregates G7 gives each entity row, in input order."""
    out: list[dict[str, Any]] = []
    for entity in entity_rows:
        t = entity.get(timestamp_column)
        keys = tuple(entity.get(k) for k in join_keys)
        if t is None or any(k is None for k in keys):
            out.append({a.name: None for a in aggs})
            continue
        row: dict[str, Any] = {}
        for agg in aggs:
            start = window_start(t, hop, agg.window)
            selected = [
                e
                for e in events
                if e["event_ts"] is not None
                and tuple(e.get(k) for k in join_keys) == keys
                and start <= e["event_ts"] <= t
                and not (
                    point_in_time == "available"
                    and e["created_ts"] is not None
                    and e["created_ts"] > t
                )
            ]
            row[agg.name] = agg_values(selected, agg)
        out.append(row)
    return out


def close(actual: Any, expected: Any, *, scale: float = 1.0) -> bool:
    """Equal, or (floats) within 1e-9 relative, with ``1e-9 * scale`` absolute slack near 0.

    ``scale`` is the largest magnitude of the values aggregated: a standard deviation of
    equal values is 0 exactly in the oracle and may be a rounding residue elsewhere.
    """
    if actual is None or expected is None:
        return actual is None and expected is None
    if isinstance(expected, float) or isinstance(actual, float):
        return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-9 * scale)
    return bool(actual == expected)
