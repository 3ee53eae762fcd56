"""Per-view high-water marks: where incremental runs start, and each view's online status.

The watermark of a view lives in the registry (``ViewRecord.watermark``): every row with
``event_timestamp < watermark`` has been written to the online store with the view's current
fingerprint. It only moves forward, and only after a window is completely written. It is
recorded with the online store's epoch, so a store that lost its data is told apart
(:mod:`featurestore.online.epoch`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from featurestore._time import to_utc
from featurestore.online.epoch import is_lost, lost_reason
from featurestore.window import lower_bound_datetime

if TYPE_CHECKING:
    from datetime import datetime

    from featurestore.online.base import OnlineStore
    from featurestore.repo.registry import RegistrySnapshot, ViewRecord

__all__ = [
    "ViewStatus",
    "advances_watermark",
    "incremental_start",
    "online_status",
]


@dataclass(frozen=True, slots=True)
class ViewStatus:
    """The online state of one feature view."""

    name: str
    online: bool
    fingerprint: str
    watermark: datetime | None
    """Rows with ``event_timestamp < watermark`` are materialized (None = never)."""
    records: int
    """Entity keys with a stored record of this view (any fingerprint)."""
    problem: str | None = None
    """Why the view's online values cannot be served (the store lost them, see
    :mod:`featurestore.online.epoch`); None when they can."""


def incremental_start(
    record: ViewRecord, end: datetime, earliest: datetime | None
) -> datetime | None:
    """Where an incremental run up to ``end`` starts, or None when there is nothing to do.

    From the watermark when there is one; on a first run from ``end - ttl``, or from the
    earliest source row when the ttl excludes nothing (unlimited, or reaching past the first
    representable time; ``earliest`` None = the source is empty, the window is empty).
    """
    end = to_utc(end)
    oldest = lower_bound_datetime(end, record.view.effective_ttl)
    if record.watermark is not None:
        start = record.watermark
    elif oldest is not None:
        start = oldest
    elif earliest is not None:
        start = min(to_utc(earliest), end)
    else:
        start = end
    return start if start < end else None


def advances_watermark(record: ViewRecord, start: datetime) -> bool:
    """Whether writing the window ``[start, end)`` may move the watermark to ``end``.

    Only a window contiguous with what is already materialized does (``start`` at or before
    the watermark), so the watermark never claims a gap. A view never materialized takes the
    first window's end, as in Feast: the caller chose where history starts.
    """
    return record.watermark is None or to_utc(start) <= record.watermark


def online_status(snapshot: RegistrySnapshot, store: OnlineStore) -> list[ViewStatus]:
    """Per applied view: online flag, fingerprint, watermark, stored record count, problem.

    Raises:
        OnlineStoreIntegrityError: The store's file was deleted while open.
        OnlineStoreUnavailableError: The store cannot be reached.
    """
    epoch = store.read_epoch()
    return [
        ViewStatus(
            name=name,
            online=record.view.online,
            fingerprint=record.fingerprint,
            watermark=record.watermark,
            records=store.count_records(name) if record.view.online else 0,
            problem=(
                lost_reason([record], epoch, store.location) if is_lost(record, epoch) else None
            ),
        )
        for name, record in sorted(snapshot.feature_views.items())
    ]
