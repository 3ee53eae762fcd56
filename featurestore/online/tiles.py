"""Tiles of aggregation views online (DESIGN G7, docs/aggregations.md, docs/online-format.md).

A **tile** holds the partial aggregates of one key's events in one hop ``[start, start +
hop)``. An aggregation view stores one **tile block** per entity key, under the view's own
name like every record: the record header (:data:`~featurestore.online.layout.HEADER`), then
the key's tiles, oldest first, each a fixed-size entry of :func:`entry_dtype`. So a read
fetches one record per key and view, in the same round trip as the other views, whatever the
window; :func:`combine` adds the tiles of each requested window at request time, for every
key of the request at once (numpy, no loop per key or tile).

A block also holds its **ready aggregates**: every aggregate of the view computed from its
tiles for reads whose hop is ``F`` (the hop of the watermark a materialization writes, or
of the time of a push), with the newest event time of tile ``F``. A read at T with
``floor(T, hop) = F``, when tile ``F`` holds no event after T, takes them as they are:
the window of every read in that hop is the same set of tiles, so they are the value
:func:`combine` would compute (the same code computed them); other reads combine the tiles.

Writers never add to a stored tile: they recompute whole tiles from the offline store and
**merge** them into the block (:meth:`TileBlocks.merge`, run by the store's atomic
read-merge-write, :meth:`~featurestore.online.base.OnlineStore.merge_records`). Per tile
start, the entry with the larger ``(coverage end, events)`` wins and an equal one replaces:
a tile's coverage end is how far its events were read (``min(tile end, window end)``), and
its events only grow with coverage and with the offline rows. So windows in any order,
repeated or overlapping, and pushes, leave the tiles of one full run. The header's event
order key is the newest tile's start, so expiry deletes a block whose newest tile expired
without decoding it (:meth:`~featurestore.online.base.OnlineStore.delete_older`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

import numpy as np

from featurestore.definitions.aggregation import tile_parts
from featurestore.online.base import FieldStatus
from featurestore.online.codec import fingerprint_bytes
from featurestore.online.layout import FINGERPRINT_SLICE, HEAD_FORMAT, HEAD_SIZE, RECORD_VERSION
from featurestore.ordering import created_order_key, event_order_key
from featurestore.window import floor_to

if TYPE_CHECKING:
    from collections.abc import Sequence

    from featurestore.definitions import FeatureView

__all__ = ["TileBlocks", "TilePlan", "combine", "entry_dtype", "expiry_horizon", "widest_us"]

_HEAD: Final = struct.Struct(HEAD_FORMAT)
_NO_CREATED: Final = created_order_key(None)
_INT64_MIN: Final = -(2**63)
_PRESENT = FieldStatus.PRESENT
_NOT_FOUND = FieldStatus.NOT_FOUND
_OUTSIDE = FieldStatus.OUTSIDE_MAX_AGE
_STALE = FieldStatus.STALE_DEFINITION


def entry_dtype(view: FeatureView) -> np.dtype[Any]:
    """The entry of one tile in a block (numpy structured dtype, big-endian).

    Start, coverage end, events, newest event time (``Int64``, times in microseconds),
    then per aggregated column the parts of
    :func:`~featurestore.definitions.aggregation.tile_parts` (count ``Int64``, the others
    ``Float64``; a part is 0 where the column's count is 0).
    """
    fields = [("start", ">i8"), ("coverage", ">i8"), ("events", ">i8"), ("newest", ">i8")]
    for i, (_, parts) in enumerate(tile_parts(view.aggregations)):
        fields += [(f"c{i}_{p}", ">i8" if p == "count" else ">f8") for p in parts]
    return np.dtype(fields)


def widest_us(view: FeatureView) -> int:
    """The largest window of an aggregation view, in microseconds."""
    return max(a.window_us for a in view.aggregations)


def expiry_horizon(watermark_us: int, hop_us: int, widest: int) -> int:
    """Tiles starting before this are expired once the watermark is ``watermark_us``.

    No read at ``T >= watermark`` needs them (its widest window starts at
    ``floor(T, hop) - widest``); one hop more is kept.
    """
    return floor_to(watermark_us, hop_us) - widest - hop_us


class TileBlocks:
    """The tile blocks of one aggregation view and fingerprint: encode, decode, merge.

    Args:
        view: The aggregation view.
        fingerprint: Its applied fingerprint (written into, and checked in, every block).
    """

    def __init__(self, view: FeatureView, fingerprint: str) -> None:
        self.dtype = entry_dtype(view)
        self.fingerprint = fingerprint_bytes(fingerprint)
        self.slots = len(self.dtype.names or ())
        self.hop_us, self.widest = view.hop_us, widest_us(view)
        self.features = _features(view, [a.output_name for a in view.aggregations])
        self.words = (len(self.features) + 63) // 64
        kinds = "".join("q" if f[1] < 0 or f[0] == "count" else "d" for f in self.features)
        # Ready aggregates: hop F, newest event in the widest window and in tile F (us;
        # INT64_MIN: none), null bitmap words, every aggregate in definition order.
        self.ready = struct.Struct(">qqq" + "Q" * self.words + kinds)
        self.body = HEAD_SIZE + self.ready.size  # where the tiles begin
        # Version, fingerprint and slot count: what a block of this definition starts with.
        self._check = (RECORD_VERSION, self.fingerprint + struct.pack(">H", self.slots))

    def encode(self, groups: Sequence[np.ndarray], at: int) -> list[bytes]:
        """The blocks of several keys' tiles, with their ready aggregates for hop ``at``.

        Each group holds one key's tiles (:attr:`dtype`), sorted by start.
        """
        bodies = [g.astype(self.dtype, copy=False).tobytes() for g in groups]
        windows = _Windows.of(self, bodies, [len(g) for g in groups], at)
        values = [windows.aggregate(*f) for f in self.features]
        newest, no_newest = windows.newest(self.widest)
        current, no_current = windows.newest(0)
        # Per key: header, then ready aggregates (null bitmap words; nulls stored as 0).
        nulls = np.array([n for _, n in values], dtype=bool).reshape(len(values), len(groups))
        columns = [np.where(n, 0, v).tolist() for v, n in values]
        bits = [
            (
                nulls[w * 64 : (w + 1) * 64].astype(np.uint64)
                << np.arange(min(64, len(nulls) - w * 64), dtype=np.uint64)[:, None]
            )
            .sum(axis=0, dtype=np.uint64)
            .tolist()
            for w in range(self.words)
        ]
        newest_list = np.where(no_newest, _INT64_MIN, newest).tolist()
        current_list = np.where(no_current, _INT64_MIN, current).tolist()
        pack, head = self.ready.pack, _HEAD.pack
        rows = zip(bodies, groups, newest_list, current_list, *bits, *columns, strict=True)
        blocks = []
        for body, group, *ready in rows:
            last = int(group["start"][-1]) if len(group) else _INT64_MIN
            order = event_order_key(last)
            blocks.append(
                head(RECORD_VERSION, order, _NO_CREATED, self.fingerprint, self.slots)
                + pack(at, *ready)
                + body
            )
        return blocks

    def is_ours(self, block: bytes) -> bool:
        """Whether ``block`` is a tile block of this definition and format."""
        version, tail = self._check
        return (
            len(block) >= self.body
            and block[0] == version
            and block[FINGERPRINT_SLICE.start : HEAD_SIZE] == tail
            and (len(block) - self.body) % self.dtype.itemsize == 0
        )

    def entries(self, block: bytes) -> np.ndarray | None:
        """The tiles of a block, oldest first (None: another definition or format)."""
        if not self.is_ours(block):
            return None
        return np.frombuffer(block, dtype=self.dtype, offset=self.body)

    def merge(self, horizon: int | None, at: int) -> _Merge:
        """The merge of a stored block with a new one (module docstring), for the store.

        Tiles starting before ``horizon`` (None: none) are dropped; a stored block of
        another definition or format is replaced whole; the merged block's ready aggregates
        are for hop ``at``.
        """
        return _Merge(self, horizon, at)


def _features(view: FeatureView, names: Sequence[str]) -> tuple[tuple[str, int, int], ...]:
    """Per feature of ``names``: function, column position (-1: events), window (us)."""
    by_name = {a.output_name: a for a in view.aggregations}
    columns = [column for column, _ in tile_parts(view.aggregations)]
    features = []
    for name in names:
        a = by_name[name]
        index = -1 if a.column is None else columns.index(a.column)
        features.append((a.function, index, a.window_us))
    return tuple(features)


@dataclass(frozen=True, slots=True)
class _Merge:
    blocks: TileBlocks
    horizon: int | None
    at: int

    def __call__(self, olds: Sequence[bytes | None], news: Sequence[bytes]) -> list[bytes]:
        """The blocks to store: per tile start, the larger ``(coverage, events)``, new on ties.

        The ready aggregates of the blocks that change are computed together (numpy).
        """
        blocks = self.blocks
        out = list(news)
        changed: list[int] = []
        groups: list[np.ndarray] = []
        for i, (old, new) in enumerate(zip(olds, news, strict=True)):
            tiles = blocks.entries(new)
            if tiles is None:  # pragma: no cover - writers only pass blocks of their definition
                msg = "A new tile block must be of the writer's definition."
                raise ValueError(msg)
            stored = blocks.entries(old) if old is not None else None
            merged = False
            if stored is not None and len(stored):
                # Concatenated as bytes: np.concatenate of structured arrays is slow.
                body = blocks.body
                joined = bytes(memoryview(cast("bytes", old))[body:]) + memoryview(new)[body:]
                both = np.frombuffer(joined, dtype=blocks.dtype)
                # lexsort is stable: among equal (start, coverage, events) the new tile is last.
                both = both[np.lexsort((both["events"], both["coverage"], both["start"]))]
                starts = both["start"]
                last = np.ones(len(both), dtype=bool)
                last[:-1] = starts[1:] != starts[:-1]
                tiles, merged = both[last], True
            if self.horizon is not None and len(tiles) and tiles["start"][0] < self.horizon:
                tiles, merged = tiles[tiles["start"] >= self.horizon], True
            if merged or blocks.ready.unpack_from(new, HEAD_SIZE)[0] != self.at:
                changed.append(i)
                groups.append(tiles)
        if groups:
            for i, block in zip(changed, blocks.encode(groups, self.at), strict=True):
                out[i] = block
        return out


@dataclass(frozen=True, slots=True)
class TilePlan:
    """How to combine one aggregation view's tiles into its requested features.

    Attributes:
        hop_us, widest: The view's hop and largest window (microseconds).
        blocks: The view's tile blocks (the applied fingerprint).
        features: Per requested feature: function, the column's position among the view's
            aggregated columns (-1 for a count of events), window in microseconds.
        ready: Per requested feature, its position among the block's ready aggregates.
    """

    hop_us: int
    widest: int
    blocks: TileBlocks
    features: tuple[tuple[str, int, int], ...]
    ready: tuple[int, ...]

    @classmethod
    def of(cls, view: FeatureView, fingerprint: str, names: Sequence[str]) -> TilePlan:
        """The plan of the features ``names`` of aggregation view ``view``."""
        blocks = TileBlocks(view, fingerprint)
        features = _features(view, names)
        ready = [blocks.features.index(f) for f in features]
        return cls(view.hop_us, widest_us(view), blocks, features, tuple(ready))


def combine(
    plan: TilePlan, records: Sequence[bytes | None], now_us: int, watermark_us: int | None
) -> tuple[list[list[Any]], list[FieldStatus], list[int | None]]:
    """The requested aggregates at ``now_us`` of each key, from its tile block.

    The window of width ``w`` holds the tiles starting in ``[floor(T, hop) - w, floor(T,
    hop)]`` (G7: the tile holding T is counted up to T). Returns one column per requested
    feature, one status per key and the newest event time in the widest window (None when
    it holds no event). The status of a key is:

    * ``STALE_DEFINITION``: its block was written with another definition or format;
    * ``NOT_FOUND``: the view was never materialized (no watermark; a new definition has
      none until it is);
    * ``OUTSIDE_MAX_AGE``: the tiles cannot give the exact value at ``T``: its window
      reaches tiles that may have expired (``floor(T) < floor(W) - hop``), or the tile
      holding ``T`` also holds events after ``T`` (a read in the past); values are null;
    * ``PRESENT`` otherwise: exact; an empty window (or no block) gives count 0 and null
      for the others.
    """
    blocks = plan.blocks
    n = len(records)
    floor_t = floor_to(now_us, plan.hop_us)
    if watermark_us is None:
        fill: FieldStatus | None = _NOT_FOUND
    elif floor_t < floor_to(watermark_us, plan.hop_us) - plan.hop_us:
        fill = _OUTSIDE
    else:
        fill = None
    columns: list[list[Any]] = [[None] * n for _ in plan.features]
    events: list[int | None] = [None] * n
    statuses: list[FieldStatus] = []
    slow: list[int] = []
    unpack, first, ready = blocks.ready.unpack_from, 3 + blocks.words, plan.ready
    for i, record in enumerate(records):
        if record is not None and not blocks.is_ours(record):
            statuses.append(_STALE)
        elif fill is not None:
            statuses.append(fill)
        elif record is None:  # no tile: an empty window
            statuses.append(_PRESENT)
            for j, (function, column, _) in enumerate(plan.features):
                if column < 0 or function == "count":
                    columns[j][i] = 0
        else:
            statuses.append(_PRESENT)
            values = unpack(record, HEAD_SIZE)
            if values[0] != floor_t or values[2] > now_us:
                slow.append(i)  # ready for another hop, or tile T holds later events
                continue
            for j, at in enumerate(ready):
                if not values[3 + at // 64] >> (at % 64) & 1:
                    columns[j][i] = values[first + at]
            if values[1] != _INT64_MIN:
                events[i] = values[1]
    if slow:
        _combine_tiles(
            plan,
            [cast("bytes", records[i]) for i in slow],
            now_us,
            floor_t,
            slow,
            columns,
            statuses,
            events,
        )
    return columns, statuses, events


def _combine_tiles(
    plan: TilePlan,
    records: list[bytes],
    now_us: int,
    floor_t: int,
    rows: list[int],
    columns: list[list[Any]],
    statuses: list[FieldStatus],
    events: list[int | None],
) -> None:
    """:func:`combine` from the tiles, of the blocks ``records`` (response rows ``rows``)."""
    blocks = plan.blocks
    size, body = blocks.dtype.itemsize, blocks.body
    windows = _Windows.of(
        blocks,
        [memoryview(r)[body:] for r in records],
        [(len(r) - body) // size for r in records],
        floor_t,
    )
    late = windows.late(now_us).tolist()
    results = [windows.aggregate(*f) for f in plan.features]
    lists = [(v.tolist(), nulls.tolist()) for v, nulls in results]
    newest, none = windows.newest(plan.widest)
    newest_list, none_list = newest.tolist(), none.tolist()
    for r, i in enumerate(rows):
        if late[r]:  # a read in the past: the tile holding T holds later events
            statuses[i] = _OUTSIDE
            continue
        for column, (values, nulls) in zip(columns, lists, strict=True):
            if not nulls[r]:
                column[i] = values[r]
        if not none_list[r]:
            events[i] = newest_list[r]


class _Windows:
    """Per-key reductions of the tiles in a window (one numpy ``reduceat`` per part).

    ``ints`` is the (slot, tile) matrix of all keys' tiles, the keys' tiles one after the
    other from ``firsts``, then one padding tile (never in a window).
    """

    def __init__(
        self,
        blocks: TileBlocks,
        ints: np.ndarray,
        firsts: np.ndarray,
        empty: np.ndarray,
        floor_t: int,
    ) -> None:
        self.ints, self.floats = ints, ints.view(np.float64)
        self.slot = {name: i for i, name in enumerate(blocks.dtype.names or ())}
        self.firsts, self.empty, self.floor_t = firsts, empty, floor_t
        self.starts = ints[self.slot["start"]]
        self.tiles = ints.shape[1]
        self.lengths = np.diff(np.append(firsts, self.tiles - 1))
        self._masks: dict[int, np.ndarray] = {}
        self._parts: dict[tuple[int, int, str], np.ndarray] = {}

    @classmethod
    def of(
        cls,
        blocks: TileBlocks,
        bodies: Sequence[bytes | memoryview],
        lengths: Sequence[int],
        floor_t: int,
    ) -> _Windows:
        """The windows over the tiles of several blocks (``bodies``: their tile bytes)."""
        counts = np.array(lengths, dtype=np.int64)
        # One padding tile: reduceat needs every index in range. Every slot is 8 bytes: one
        # byte swap into a (slot, tile) matrix of native int64, whose Float64 slots are read
        # through a float64 view of the same memory.
        joined = b"".join([*bodies, bytes(blocks.dtype.itemsize)])
        slots = np.frombuffer(joined, dtype=">i8").reshape(-1, blocks.slots)
        ints = np.ascontiguousarray(slots.T, dtype=np.int64)
        firsts = np.zeros(len(counts), dtype=np.int64)
        np.cumsum(counts[:-1], out=firsts[1:])
        return cls(blocks, ints, firsts, counts == 0, floor_t)

    def _int(self, name: str) -> np.ndarray:
        return self.ints[self.slot[name]]  # type: ignore[no-any-return]

    def _float(self, name: str) -> np.ndarray:
        return self.floats[self.slot[name]]  # type: ignore[no-any-return]

    def late(self, now_us: int) -> np.ndarray:
        """Per key: whether the tile holding T holds an event after T."""
        flags = (self.starts == self.floor_t) & (self._int("newest") > now_us)
        flags[-1] = False
        found: np.ndarray = np.logical_or.reduceat(flags, self.firsts) & ~self.empty
        return found

    def _mask(self, window: int) -> np.ndarray:
        mask = self._masks.get(window)
        if mask is None:
            mask = (self.starts >= self.floor_t - window) & (self.starts <= self.floor_t)
            mask[-1] = False  # the padding tile
            self._masks[window] = mask
        return mask

    def _sum(self, values: np.ndarray, where: np.ndarray) -> np.ndarray:
        zero = np.zeros((), dtype=values.dtype)
        total: np.ndarray = np.add.reduceat(np.where(where, values, zero), self.firsts)
        total[self.empty] = 0
        return total

    def _part(self, window: int, column: int, part: str) -> np.ndarray:
        """The per-key reduction of one part of a column over a window (cached)."""
        key = (window, column, part)
        got = self._parts.get(key)
        if got is not None:
            return got
        mask = self._mask(window)
        if column < 0:
            got = self._sum(self._int("events"), mask)
        else:
            counts = self._int(f"c{column}_count")
            valued = self._mask_valued(window, column, mask, counts)
            if part == "count":
                got = self._sum(counts, valued)
            elif part == "sum":
                got = self._sum(self._float(f"c{column}_sum"), valued)
            elif part in ("min", "max"):
                values = self._float(f"c{column}_{part}")
                fill, reduce = (np.inf, np.minimum) if part == "min" else (-np.inf, np.maximum)
                got = reduce.reduceat(np.where(valued, values, fill), self.firsts)
            elif part == "last":
                at = np.where(valued, np.arange(self.tiles), -1)
                position = np.maximum.reduceat(at, self.firsts)
                position[self.empty] = -1
                lasts = self._float(f"c{column}_last")
                got = np.where(position >= 0, lasts[position], 0.0)
                self._parts[window, column, "last_at"] = position
            else:  # m2: Chan et al.'s combination of the tiles' (count, mean, m2)
                n = self._part(window, column, "count")
                mean = self._part(window, column, "sum") / np.maximum(n, 1)
                each = np.repeat(np.append(mean, 0.0), np.append(self.lengths, 1))
                tile_mean = self._float(f"c{column}_sum") / np.maximum(counts, 1)
                spread = self._float(f"c{column}_m2") + counts * (tile_mean - each) ** 2
                got = self._sum(spread, valued)
        self._parts[key] = got
        return got

    def _mask_valued(
        self, window: int, column: int, mask: np.ndarray, counts: np.ndarray
    ) -> np.ndarray:
        key = (window, column, "valued")
        got = self._parts.get(key)
        if got is None:
            got = self._parts[key] = mask & (counts > 0)
        return got

    def aggregate(self, function: str, column: int, window: int) -> tuple[np.ndarray, np.ndarray]:
        """(values, nulls) per key of one feature."""
        if column < 0:
            counts = self._part(window, column, "events")
            return counts, np.zeros(len(counts), dtype=bool)
        n = self._part(window, column, "count")
        if function == "count":
            return n, np.zeros(len(n), dtype=bool)
        if function in ("sum", "min", "max"):
            return self._part(window, column, function), n == 0
        if function == "last":
            values = self._part(window, column, "last")
            return values, self._parts[window, column, "last_at"] < 0
        total = self._part(window, column, "sum")
        if function == "mean":
            return total / np.maximum(n, 1), n == 0
        m2 = self._part(window, column, "m2")  # stddev (sample)
        return np.sqrt(np.maximum(m2, 0.0) / np.maximum(n - 1, 1)), n < 2

    def newest(self, widest: int) -> tuple[np.ndarray, np.ndarray]:
        """(newest event time, none) per key over the widest window."""
        mask = self._mask(widest)
        newest = np.where(mask, self._int("newest"), _INT64_MIN)
        got = np.maximum.reduceat(newest, self.firsts)
        none = self.empty | (got == _INT64_MIN)
        return got, none
