"""Brute-force oracles for the point-in-time rule (DESIGN G1) and materialization windows.

Plain Python over lists of dicts, written the obviously-correct way (loops, no cleverness), so
that tests can compare DuckDB's output (and the online store's) against them.

Source rows are dicts with the view's join keys, the feature values, and four bookkeeping
entries:

* ``"event_ts"``: aware UTC datetime, or None (such a row is never a candidate),
* ``"created_ts"``: aware UTC datetime, or None (lowest in the order),
* ``"file"``: the path (or any string that sorts like the path) of the file holding the row,
* ``"row"``: the row's number within that file.

The order "newer" is ``(event_ts, created_ts with None lowest, file, row)``, largest wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

Row = dict[str, Any]

__all__ = ["latest_in_window", "newer_key", "pit_oracle"]


def newer_key(row: Row) -> tuple[Any, ...]:
    """The sort key of the total order "newer" (larger = newer); created None is lowest."""
    created = row["created_ts"]
    return (row["event_ts"], created is not None, created or datetime.min, row["file"], row["row"])


def _keys_of(row: Row, join_keys: Sequence[str]) -> tuple[Any, ...] | None:
    values = tuple(row.get(k) for k in join_keys)
    return None if any(v is None for v in values) else values


def pit_oracle(
    entity_rows: Sequence[Row],
    view_rows: Sequence[Row],
    *,
    join_keys: Sequence[str],
    features: Sequence[str],
    ttl: timedelta | None = None,
    timestamp_column: str = "event_timestamp",
    point_in_time: Literal["event", "available"] = "event",
) -> list[dict[str, Any]]:
    """The features G1 gives each entity row, in input order.

    Args:
        entity_rows: Dicts with the join keys and ``timestamp_column`` (aware UTC or None).
        view_rows: The view's source rows (see the module docstring).
        join_keys: The view's join keys.
        features: The requested features.
        ttl: The view's ttl; None or zero means unlimited.
        timestamp_column: The entity rows' timestamp key.
        point_in_time: ``"available"`` also requires ``created_ts <= t`` (None = available).

    Returns:
        One dict ``{feature: value}`` per entity row; all None when there is no candidate.
    """
    out: list[dict[str, Any]] = []
    for entity in entity_rows:
        t = entity.get(timestamp_column)
        keys = _keys_of(entity, join_keys)
        best: Row | None = None
        if t is not None and keys is not None:
            for row in view_rows:
                if row["event_ts"] is None or _keys_of(row, join_keys) != keys:
                    continue
                if row["event_ts"] > t:
                    continue
                if ttl and row["event_ts"] < t - ttl:
                    continue
                created = row["created_ts"]
                if point_in_time == "available" and created is not None and created > t:
                    continue
                if best is None or newer_key(row) > newer_key(best):
                    best = row
        out.append({f: (best[f] if best is not None else None) for f in features})
    return out


def latest_in_window(
    view_rows: Sequence[Row], start: datetime, end: datetime, *, join_keys: Sequence[str]
) -> dict[tuple[Any, ...], Row]:
    """For each key tuple, its newest row with ``start <= event_ts < end`` (half-open).

    Rows with a null event timestamp or a null join key are skipped. Keys without such a row
    are absent from the result.
    """
    latest: dict[tuple[Any, ...], Row] = {}
    for row in view_rows:
        keys = _keys_of(row, join_keys)
        if keys is None or row["event_ts"] is None:
            continue
        if not (start <= row["event_ts"] < end):
            continue
        if keys not in latest or newer_key(row) > newer_key(latest[keys]):
            latest[keys] = row
    return latest
