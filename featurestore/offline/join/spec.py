"""What a training-frame join is asked: the entity frame, the views, and how to join them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from featurestore.offline.sql import EVENT_TS

if TYPE_CHECKING:
    from datetime import datetime

    from featurestore.offline.sql import Query
    from featurestore.repo.registry import ViewRecord

__all__ = ["ROW_COL", "EntityStats", "JoinSpec", "JoinStrategy", "PointInTime", "ViewRequest"]

JoinStrategy = Literal["auto", "asof", "range", "arrays"]
PointInTime = Literal["event", "available"]

ROW_COL = "__fs_row"
"""The entity frame's input position column (0-based), added by the engine."""


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
    event_column: str | None = None
    """Also return the winning row's event timestamp (UTC) as this output column, null where
    no row wins (the skew report classifies by it)."""

    @property
    def taken(self) -> list[tuple[str, str]]:
        """``(scan column, output column)`` of each value taken from the winning row.

        The requested features, then the event timestamp when :attr:`event_column` is set.
        """
        pairs = list(zip(self.features, self.output_columns, strict=True))
        if self.event_column is not None:
            pairs.append((EVENT_TS, self.event_column))
        return pairs


@dataclass(frozen=True)
class JoinSpec:
    """One training-frame join, as every strategy takes it.

    Attributes:
        entity: The entity frame query: its own columns, a UTC ``TIMESTAMPTZ`` timestamp
            column and the :data:`ROW_COL` position column.
        entity_columns: The entity frame's own columns, output first, in order.
        requests: The views and features to join.
        timestamp_column: The entity frame's timestamp column.
        stats: Entity frame size and time range.
        point_in_time: ``"event"`` or ``"available"`` (the rule: :mod:`featurestore.offline.join`).
        feature_order: The output feature columns, in order.
    """

    entity: Query
    entity_columns: list[str]
    requests: list[ViewRequest]
    timestamp_column: str
    stats: EntityStats
    point_in_time: PointInTime
    feature_order: list[str]
