"""Tiles of aggregation views online (DESIGN G7, docs/aggregations.md, docs/online-format.md).

An aggregation view is stored as one record per (entity key, tile): the partial aggregates of
the key's events in ``[start, start + hop)``, under the store's "view" name
:func:`tile_view` (``view@start``, the start in microseconds). A tile record is an ordinary
record (:mod:`featurestore.online.codec`) of the fixed tile schema :func:`tile_dtypes`, so
it has the same version, fingerprint and conditional write; its order key means:

* event part: the tile's **coverage end**, how far its events were read (``min(tile end,
  window end)``); a tile is always read from its start;
* created part: the number of events read.

A write replaces a stored tile when its ``(coverage end, events)`` is not smaller, so the
most complete computation wins whatever order windows run in, and a repeated one replaces
(idempotent). A read at T fetches the tiles from ``floor(T, hop) - widest window`` to
``floor(T, hop)`` in the same round trip as the other views, and :func:`combine` adds them
up (status rules in :func:`combine`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from featurestore.online.base import FieldStatus
from featurestore.online.codec import RecordCodec
from featurestore.online.layout import FINGERPRINT_FIELD, RECORD_VERSION, VERSION_FIELD
from featurestore.types import Float64, Int64
from featurestore.window import floor_to

if TYPE_CHECKING:
    from collections.abc import Sequence

    from featurestore.definitions import FeatureView
    from featurestore.types import DType

__all__ = [
    "PARTS",
    "TilePlan",
    "combine",
    "expiry_horizon",
    "tile_codec",
    "tile_dtypes",
    "tile_starts",
    "tile_view",
]

PARTS = ("count", "sum", "m2", "min", "max", "last")
"""The partial aggregates of one aggregated column in a tile, in record order."""
_PART_TYPES: tuple[DType, ...] = (Int64, Float64, Float64, Float64, Float64, Float64)
_HEAD = 2  # events, newest event time


def tile_view(view: str, start_us: int) -> str:
    """The store's view name of the tile of ``view`` starting at ``start_us``."""
    return f"{view}@{start_us}"


def tile_dtypes(view: FeatureView) -> list[DType]:
    """The tile schema: events, newest event time (us), then :data:`PARTS` per column."""
    return [Int64, Int64, *(_PART_TYPES * len(view.event_columns))]


def tile_codec(view: FeatureView, fingerprint: str) -> RecordCodec:
    """The codec of a view's tile records."""
    return RecordCodec(tile_dtypes(view), fingerprint=fingerprint)


def widest_us(view: FeatureView) -> int:
    """The largest window of an aggregation view, in microseconds."""
    return max(a.window_us for a in view.aggregations)


def tile_starts(now_us: int, hop_us: int, widest: int) -> range:
    """The starts of the tiles a read at ``now_us`` needs, oldest first."""
    last = floor_to(now_us, hop_us)
    return range(last - widest, last + hop_us, hop_us)


def expiry_horizon(watermark_us: int, hop_us: int, widest: int) -> int:
    """Tiles starting before this are expired once the watermark is ``watermark_us``.

    No read at ``T >= watermark`` needs them (its widest window starts at
    ``floor(T, hop) - widest``); one hop more is kept.
    """
    return floor_to(watermark_us, hop_us) - widest - hop_us


@dataclass(frozen=True, slots=True)
class TilePlan:
    """How to combine one aggregation view's tiles into its requested features.

    Attributes:
        hop_us, widest: The view's hop and largest window (microseconds).
        codec: The tile codec (its fingerprint is the applied one).
        features: Per requested feature: function, the column's position among the view's
            event columns (-1 for a count of events), window in microseconds.
    """

    hop_us: int
    widest: int
    codec: RecordCodec
    features: tuple[tuple[str, int, int], ...]

    @classmethod
    def of(cls, view: FeatureView, fingerprint: str, names: Sequence[str]) -> TilePlan:
        """The plan of the features ``names`` of aggregation view ``view``."""
        by_name = {a.output_name: a for a in view.aggregations}
        columns = view.event_columns
        features = []
        for name in names:
            a = by_name[name]
            index = -1 if a.column is None else columns.index(a.column)
            features.append((a.function, index, a.window_us))
        return cls(view.hop_us, widest_us(view), tile_codec(view, fingerprint), tuple(features))

    def starts(self, now_us: int) -> range:
        """:func:`tile_starts` of this view."""
        return tile_starts(now_us, self.hop_us, self.widest)


def combine(
    plan: TilePlan, records: Sequence[bytes | None], now_us: int, watermark_us: int | None
) -> tuple[list[Any], FieldStatus, int | None]:
    """The requested aggregates at ``now_us`` from the tiles of :meth:`TilePlan.starts`.

    Returns the values, one status for all of them and the newest event time combined
    (None when the window holds no event). The status is:

    * ``STALE_DEFINITION``: a tile was written with another definition or format;
    * ``NOT_FOUND``: the view was never materialized (no watermark; a new definition has
      none until it is);
    * ``OUTSIDE_MAX_AGE``: the tiles cannot give the exact value at ``now_us``: its window
      reaches tiles that may have expired (``floor(T) < floor(W) - hop``), or the tile
      holding ``T`` also holds events after ``T`` (a read in the past); values are null;
    * ``PRESENT`` otherwise: exact; an empty window gives count 0 and null for the others.
    """
    nulls: list[Any] = [None] * len(plan.features)
    decoded = _decode(plan.codec, records)
    if decoded is None:
        return nulls, FieldStatus.STALE_DEFINITION, None
    if watermark_us is None:
        return nulls, FieldStatus.NOT_FOUND, None
    hop = plan.hop_us
    if floor_to(now_us, hop) < floor_to(watermark_us, hop) - hop:
        return nulls, FieldStatus.OUTSIDE_MAX_AGE, None
    current = decoded[-1] if decoded else None
    if current is not None and current[1] > now_us:
        return nulls, FieldStatus.OUTSIDE_MAX_AGE, None
    values = []
    n = len(decoded)
    for function, column, window in plan.features:
        first = n - 1 - window // hop  # the tile starting at floor(T) - window
        tiles = [t for t in decoded[first:] if t is not None]
        values.append(_combine_one(function, column, tiles))
    newest = [t[1] for t in decoded if t is not None]
    return values, FieldStatus.PRESENT, max(newest) if newest else None


def _decode(
    codec: RecordCodec, records: Sequence[bytes | None]
) -> list[Sequence[Any] | None] | None:
    """Each tile's values (None: no tile), or None when a tile is of another definition.

    Present tiles are unpacked in one ``struct`` call (tile records have one fixed size);
    null slots read 0, which :func:`_combine_one` never uses (a part is read only from
    tiles whose count of the column is non-zero).
    """
    present = [r for r in records if r is not None]
    if not present:
        return [None] * len(records)
    columns = codec.unpack_columns(present)
    if columns is None:  # another definition or format: other sizes
        return None
    if columns[VERSION_FIELD].count(RECORD_VERSION) != len(present) or columns[
        FINGERPRINT_FIELD
    ].count(codec.fingerprint) != len(present):
        return None
    rows = iter(list(zip(*columns[codec.first_slot :], strict=True)))
    return [None if r is None else next(rows) for r in records]


def _combine_one(function: str, column: int, tiles: list[Sequence[Any]]) -> Any:
    if column < 0:
        return sum(t[0] for t in tiles)
    at = _HEAD + column * len(PARTS)
    parts = [t[at : at + len(PARTS)] for t in tiles if t[at]]  # tiles with a non-null value
    if function == "count":
        return sum(p[0] for p in parts)
    if not parts:
        return None
    if function == "sum":
        return math.fsum(p[1] for p in parts)
    if function == "min":
        return min(p[3] for p in parts)
    if function == "max":
        return max(p[4] for p in parts)
    if function == "last":
        return parts[-1][5]  # tiles are oldest first; each holds its own newest value
    count = sum(p[0] for p in parts)
    total = math.fsum(p[1] for p in parts)
    if function == "mean":
        return total / count
    # stddev (sample): Chan et al.'s combination of the tiles' (count, mean, m2).
    if count < 2:
        return None
    mean = total / count
    m2 = math.fsum(p[2] + p[0] * (p[1] / p[0] - mean) ** 2 for p in parts)
    return math.sqrt(max(m2, 0.0) / (count - 1))
