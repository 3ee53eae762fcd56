"""Tiles of aggregation views online (DESIGN G7, docs/aggregations.md, docs/online-format.md).

A **tile** holds the partial aggregates of one key's events in one hop ``[start, start +
hop)``. An aggregation view stores one **tile block** per entity key, under the view's own
name like every record: the record header (:data:`~featurestore.online.layout.HEADER`), then
the key's tiles, oldest first, each a fixed-size entry of :func:`entry_dtype`. So a read
fetches one record per key and view, in the same round trip as the other views, whatever the
window; :func:`combine` adds the tiles of each requested window at request time, for every
key of the request at once (numpy, no loop per key or tile).

A block also holds its **ready aggregates**: every aggregate of the view computed from its
tiles for reads in the hops ``F - hop``, ``F`` and ``F + hop`` (:data:`READY_HOPS`; ``F``
is the hop of the watermark a materialization writes, or of the time of a push), each with
the newest event time of its own tile. A read at T in one of those hops takes them as they
are when T's tile holds no event after T: the window of every read in a hop is the same set
of tiles, so they are the value :func:`combine` would compute (the same code computed
them). When T's tile does hold a later event, the read is ``OUTSIDE_MAX_AGE`` whatever the
other tiles hold, so that is known from the ready set too. Other reads combine the tiles.

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
from featurestore.errors import MaterializationError
from featurestore.online.base import FieldStatus
from featurestore.online.codec import fingerprint_bytes
from featurestore.online.layout import FINGERPRINT_SLICE, HEAD_FORMAT, HEAD_SIZE, RECORD_VERSION
from featurestore.ordering import created_order_key, event_order_key
from featurestore.window import floor_to

if TYPE_CHECKING:
    from collections.abc import Sequence

    from featurestore.definitions import FeatureView

__all__ = [
    "BLOCK_FORMAT",
    "NARROW_LIMIT",
    "TileBlocks",
    "TilePlan",
    "combine",
    "entry_dtype",
    "expiry_horizon",
    "widest_us",
]

_HEAD: Final = struct.Struct(HEAD_FORMAT)
READY_HOPS: Final = 3
"""Ready aggregates are stored for three hops: the one before the write's (F - hop), the
write's (F) and the next (F + hop). The one before answers reads shortly before the
watermark (a model scoring what happened a few minutes ago, a replay) without combining."""
READY_FIRST: Final = -1
"""The first ready set's hop, in hops from F."""
_NUMPY: Final = str.maketrans("qd", "if")  # struct codes -> numpy kinds
_NO_CREATED: Final = created_order_key(None)
_INT64_MIN: Final = -(2**63)
_PRESENT = FieldStatus.PRESENT
_NOT_FOUND = FieldStatus.NOT_FOUND
_OUTSIDE = FieldStatus.OUTSIDE_MAX_AGE
_STALE = FieldStatus.STALE_DEFINITION


BLOCK_FORMAT: Final = 3
"""The tile block format (docs/online-format.md); a block of another format is stale."""
NARROW_LIMIT: Final = 2**32
"""Below this hop (microseconds, ~71.6 minutes), a tile's offsets and counts are 4 bytes."""


def entry_dtype(view: FeatureView) -> np.dtype[Any]:
    """The entry of one tile in a block (numpy structured dtype, big-endian).

    ``start`` (``Int64`` microseconds); ``covered``, the microseconds of the tile its events
    were read from (coverage end - start, at most the hop); ``events``; ``latest``, the
    newest event time - start; then per aggregated column the parts of
    :func:`~featurestore.definitions.aggregation.tile_parts` (count an integer, the others
    ``Float64``; a part is 0 where the column's count is 0). The integers after ``start``
    are unsigned 4-byte when the hop is below :data:`NARROW_LIMIT` (the offsets are below
    the hop; a writer refuses a count that does not fit), else 8-byte: a block of 1-hour
    tiles of one column's count, sum and max is 40 bytes a tile instead of 56, so a key's
    week of tiles stays inside SQLite's B-tree page (no overflow page per record).
    """
    small = ">u4" if view.hop_us < NARROW_LIMIT else ">i8"
    fields = [("start", ">i8"), ("covered", small), ("events", small), ("latest", small)]
    for i, (_, parts) in enumerate(tile_parts(view.aggregations)):
        fields += [(f"c{i}_{p}", small if p == "count" else ">f8") for p in parts]
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
        self.view_name = view.name
        self.dtype = entry_dtype(view)
        self.fingerprint = fingerprint_bytes(fingerprint)
        # The header's count: the block format and the slots of a tile entry.
        self.slots = BLOCK_FORMAT << 8 | len(self.dtype.names or ())
        self.hop_us, self.widest = view.hop_us, widest_us(view)
        self.features = _features(view, [a.output_name for a in view.aggregations])
        self.windows = sorted({self.widest, *(w for _, _, w in self.features)})
        self.words = (len(self.features) + 63) // 64
        kinds = "".join("q" if f[1] < 0 or f[0] == "count" else "d" for f in self.features)
        # Ready aggregates: hop F, then for F - hop, F and F + hop each: the newest event in the
        # widest window and in the hop's own tile (us; INT64_MIN: none), null bitmap words,
        # every aggregate in definition order.
        one = "qq" + "Q" * self.words + kinds
        self.ready = struct.Struct(">q" + one * READY_HOPS)
        self.ready_width = len(one)  # values of one hop's set
        self.body = HEAD_SIZE + self.ready.size  # where the tiles begin
        # Version, fingerprint and slot count: what a block of this definition starts with.
        self.signature = (RECORD_VERSION, self.fingerprint + struct.pack(">H", self.slots))
        # The same prefix (header, ready aggregates) as numpy, to read many blocks at once.
        tail = FINGERPRINT_SLICE.start
        fields = [("version", "u1", 0), ("tail", f"S{HEAD_SIZE - tail}", tail)]
        fields.append(("at", ">i8", HEAD_SIZE))
        names = ["newest", "current", *(f"bits{w}" for w in range(self.words))]
        names += [f"v{j}" for j in range(len(kinds))]
        codes = ["i", "i", *"u" * self.words, *kinds.translate(_NUMPY)]
        for s in range(READY_HOPS):
            first = HEAD_SIZE + 8 + 8 * s * len(one)
            fields += [
                (f"{name}_{s}", f">{code}8", first + 8 * i)
                for i, (name, code) in enumerate(zip(names, codes, strict=True))
            ]
        self.prefix = np.dtype(
            {
                "names": [f[0] for f in fields],
                "formats": [f[1] for f in fields],
                "offsets": [f[2] for f in fields],
                "itemsize": self.body,
            }
        )

    def encode(self, groups: Sequence[np.ndarray], at: int) -> list[bytes]:
        """The blocks of several keys' tiles, with their ready aggregates for hop ``at``.

        Each group holds one key's tiles (:attr:`dtype`), sorted by start.
        """
        bodies = [g.astype(self.dtype, copy=False).tobytes() for g in groups]
        tiles = np.frombuffer(b"".join(bodies), dtype=self.dtype)
        lengths = np.array([len(g) for g in groups], dtype=np.int64)
        sets = [
            self._ready_columns(
                _Windows(tiles, lengths, at + (s + READY_FIRST) * self.hop_us, self.windows)
            )
            for s in range(READY_HOPS)
        ]
        pack, head = self.ready.pack, _HEAD.pack
        blocks = []
        columns = [column for one in sets for column in one]
        for body, group, *ready in zip(bodies, groups, *columns, strict=True):
            last = int(group["start"][-1]) if len(group) else _INT64_MIN
            order = event_order_key(last)
            blocks.append(
                head(RECORD_VERSION, order, _NO_CREATED, self.fingerprint, self.slots)
                + pack(at, *ready)
                + body
            )
        return blocks

    def _ready_columns(self, windows: _Windows) -> list[list[Any]]:
        """One hop's ready aggregates, column by column (nulls stored as 0, in the bitmap)."""
        values = [windows.aggregate(*f) for f in self.features]
        newest, no_newest = windows.newest(self.widest)
        current, no_current = windows.newest(0)
        keys = windows.keys
        nulls = np.array([n for _, n in values], dtype=bool).reshape(len(values), keys)
        bits = [
            (
                nulls[w * 64 : (w + 1) * 64].astype(np.uint64)
                << np.arange(min(64, len(nulls) - w * 64), dtype=np.uint64)[:, None]
            )
            .sum(axis=0, dtype=np.uint64)
            .tolist()
            for w in range(self.words)
        ]
        return [
            np.where(no_newest, _INT64_MIN, newest).tolist(),
            np.where(no_current, _INT64_MIN, current).tolist(),
            *bits,
            *(np.where(n, 0, v).tolist() for v, n in values),
        ]

    def is_ours(self, block: bytes) -> bool:
        """Whether ``block`` is a tile block of this definition and format."""
        version, tail = self.signature
        return (
            len(block) >= self.body
            and block[0] == version
            and block[FINGERPRINT_SLICE.start : HEAD_SIZE] == tail
            and (len(block) - self.body) % self.dtype.itemsize == 0
        )

    def is_older_format(self, block: bytes) -> bool:
        """Whether ``block`` is of this definition (version, fingerprint) in another format."""
        return (
            len(block) >= HEAD_SIZE
            and block[0] == self.signature[0]
            and block[FINGERPRINT_SLICE] == self.fingerprint
            and not self.is_ours(block)
        )

    def entries(self, block: bytes) -> np.ndarray | None:
        """The tiles of a block, oldest first (None: another definition or format)."""
        if not self.is_ours(block):
            return None
        return np.frombuffer(block, dtype=self.dtype, offset=self.body)

    def merge(self, horizon: int | None, at: int) -> _Merge:
        """The merge of a stored block with a new one (module docstring), for the store.

        Tiles starting before ``horizon`` (None: none) are dropped; a stored block of
        another definition is replaced whole (apply started the view over); a block of this
        definition in another format (written by another featurestore version) is refused:
        replacing it by a window's tiles would drop its older tiles. The merged block's ready
        aggregates are for hop ``at``.
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


def _older_format_message(view: str) -> str:
    return (
        f"Feature view '{view}': the online store holds its tiles in a block format of another "
        "featurestore version, which this one reads as STALE_DEFINITION and cannot merge new "
        "tiles into without dropping the stored ones. Nothing was written. Rebuild its tiles "
        f"once: 'featurestore materialize-incremental --rebuild --views {view}' (Python: "
        f"store.rebuild_online(['{view}']))."
    )


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
            if stored is None and old is not None and blocks.is_older_format(old):
                raise MaterializationError(_older_format_message(blocks.view_name))
            merged = False
            if stored is not None and len(stored):
                # Concatenated as bytes: np.concatenate of structured arrays is slow.
                body = blocks.body
                joined = bytes(memoryview(cast("bytes", old))[body:]) + memoryview(new)[body:]
                both = np.frombuffer(joined, dtype=blocks.dtype)
                # lexsort is stable: among equal (start, coverage, events) the new tile is last.
                both = both[np.lexsort((both["events"], both["covered"], both["start"]))]
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
    floor_t = floor_to(now_us, plan.hop_us)
    if watermark_us is None:
        fill: FieldStatus | None = _NOT_FOUND
    elif floor_t < floor_to(watermark_us, plan.hop_us) - plan.hop_us:
        fill = _OUTSIDE
    else:
        fill = None
    if len(records) <= _FEW_KEYS:
        columns, statuses, events, slow = _ready_few(plan, records, now_us, floor_t, fill)
    else:
        columns, statuses, events, slow = _ready_many(plan, records, now_us, floor_t, fill)
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


_FEW_KEYS: Final = 8
"""Up to this many keys, the ready aggregates are read key by key (``struct``), above it
for all keys at once (numpy): the same values, each the cheaper for its size."""
_Ready = tuple[list[list[Any]], list[FieldStatus], list["int | None"], list[int]]


def _ready_few(
    plan: TilePlan,
    records: Sequence[bytes | None],
    now_us: int,
    floor_t: int,
    fill: FieldStatus | None,
) -> _Ready:
    """:func:`combine` from the ready aggregates, key by key; returns the keys left to combine."""
    blocks = plan.blocks
    n = len(records)
    columns: list[list[Any]] = [[None] * n for _ in plan.features]
    events: list[int | None] = [None] * n
    statuses: list[FieldStatus] = []
    slow: list[int] = []
    unpack, width, words, ready = (
        blocks.ready.unpack_from,
        blocks.ready_width,
        blocks.words,
        plan.ready,
    )
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
            values = unpack(record, HEAD_SIZE)
            hops = (floor_t - values[0]) // plan.hop_us - READY_FIRST
            if not 0 <= hops < READY_HOPS:
                statuses.append(_PRESENT)
                slow.append(i)  # ready for other hops: combine the tiles
                continue
            base = 1 + hops * width
            if values[base + 1] > now_us:  # T's tile holds later events: a read in the past
                statuses.append(_OUTSIDE)
                continue
            statuses.append(_PRESENT)
            first = base + 2 + words
            for j, at in enumerate(ready):
                if not values[base + 2 + at // 64] >> (at % 64) & 1:
                    columns[j][i] = values[first + at]
            if values[base] != _INT64_MIN:
                events[i] = values[base]
    return columns, statuses, events, slow


def _ready_many(
    plan: TilePlan,
    records: Sequence[bytes | None],
    now_us: int,
    floor_t: int,
    fill: FieldStatus | None,
) -> _Ready:
    """:func:`_ready_few` for all keys at once (numpy)."""
    blocks = plan.blocks
    n = len(records)
    # Every block's header and ready aggregates, unpacked together; a missing or too short
    # record reads as zeros (version 0: not ours).
    body, blank = blocks.body, bytes(blocks.body)
    lengths = np.array([0 if r is None else len(r) for r in records], dtype=np.int64)
    prefix = np.frombuffer(
        b"".join([blank if r is None or len(r) < body else r[:body] for r in records]),
        dtype=blocks.prefix,
    )
    version, tail = blocks.signature
    stored = lengths > 0
    ours = (
        (lengths >= body)
        & ((lengths - body) % blocks.dtype.itemsize == 0)
        & (prefix["version"] == version)
        & (prefix["tail"] == tail)
    )
    statuses = [_PRESENT if fill is None else fill] * n
    for i in np.flatnonzero(stored & ~ours).tolist():
        statuses[i] = _STALE
    if fill is not None:
        return [[None] * n for _ in plan.features], statuses, [None] * n, []
    # Which hop's set answers each key (-1: none), and whether T's tile holds later events.
    hops = (floor_t - prefix["at"].astype(np.int64)) // plan.hop_us - READY_FIRST
    use = np.where(ours & (hops >= 0) & (hops < READY_HOPS), hops, -1)

    def pick(name: str) -> np.ndarray:
        got: np.ndarray = prefix[f"{name}_0"]
        for s in range(1, READY_HOPS):
            got = np.where(use == s, prefix[f"{name}_{s}"], got)
        return got

    late = (use >= 0) & (pick("current") > now_us)  # a read in the past: no exact value
    for i in np.flatnonzero(late).tolist():
        statuses[i] = _OUTSIDE
    ready = (use >= 0) & ~late
    slow = np.flatnonzero(ours & (use < 0)).tolist()
    empty = ~stored if not stored.all() else None  # no block: an empty window, count 0
    columns: list[list[Any]] = []
    if not ready.any():  # every stored block is late or combines its tiles
        for function, column, _ in plan.features:
            if empty is not None and (column < 0 or function == "count"):
                columns.append([0 if e else None for e in empty.tolist()])
            else:
                columns.append([None] * n)
        return columns, statuses, [None] * n, slow
    for (function, column, _), at in zip(plan.features, plan.ready, strict=True):
        bits = pick(f"bits{at // 64}")
        nulls = ~ready | (bits >> np.uint64(at % 64) & np.uint64(1) > 0)
        values = _with_nulls(pick(f"v{at}"), nulls)
        if empty is not None and (column < 0 or function == "count"):
            values = [0 if e else v for v, e in zip(values, empty.tolist(), strict=True)]
        columns.append(values)
    newest = pick("newest")
    return columns, statuses, _with_nulls(newest, ~ready | (newest == _INT64_MIN)), slow


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
        [r[body:] for r in records],
        [(len(r) - body) // size for r in records],
        floor_t,
        [plan.widest, *(w for _, _, w in plan.features)],
    )
    late = windows.late(now_us)
    every = len(rows) == len(statuses)
    for j, feature in enumerate(plan.features):
        values, nulls = windows.aggregate(*feature)
        got = _with_nulls(values, nulls | late)
        if every:  # every key combined its tiles: the column is the result
            columns[j] = got
        else:
            column = columns[j]
            for r, i in enumerate(rows):
                column[i] = got[r]
    newest, none = windows.newest(plan.widest)
    newest_list = _with_nulls(newest, none | late)
    if late.any():  # a read in the past: T's tile holds later events
        for r, is_late in enumerate(late.tolist()):
            if is_late:
                statuses[rows[r]] = _OUTSIDE
    for r, i in enumerate(rows):
        events[i] = newest_list[r]


def _with_nulls(values: np.ndarray, nulls: np.ndarray) -> list[Any]:
    """``values`` as a list, None where ``nulls``."""
    got: list[Any] = values.tolist()
    if nulls.any():
        got = [None if null else v for v, null in zip(got, nulls.tolist(), strict=True)]
    return got


class _Windows:
    """Per-key reductions of the tiles in a request's windows, every window at once (numpy).

    All windows end at the tile of ``floor_t``, so they are nested: a tile ``d = floor_t -
    start`` before it is in every window ``w >= d``. Each tile gets a **level**, how many of
    the windows (``0``, the tile of ``floor_t`` alone, included) hold it: 0 for none, ``m``
    for all ``m``. A key's tiles are sorted by start, so its tiles of one level are
    consecutive: a part is reduced once per such run (one ``reduceat``), and window ``k``
    (the k-th smallest) is the reduction of levels ``m - k`` up to ``m``: one
    ``accumulate`` over the levels, newest first. So the cost is a few numpy calls per
    part, whatever the number of keys and windows, and no float is ever subtracted.
    """

    def __init__(
        self, tiles: np.ndarray, lengths: np.ndarray, floor_t: int, windows: Sequence[int]
    ) -> None:
        self.tiles, self.floor_t, self.keys = tiles, floor_t, len(lengths)
        self.windows = sorted({0, *windows})
        m = len(self.windows)
        self.width = m + 1  # levels 0 (in no window) .. m
        self.starts = tiles["start"].astype(np.int64)
        ahead = floor_t - self.starts
        level = m - np.searchsorted(np.array(self.windows, dtype=np.int64), ahead)
        level[ahead < 0] = 0
        self.level = level
        self.owner = np.repeat(np.arange(self.keys, dtype=np.int64), lengths)
        index = self.owner * self.width + level
        # Runs of equal (key, level); level 0 (older or newer tiles) may make two runs of a
        # key, both dropped.
        changes = np.flatnonzero(index[1:] != index[:-1]) + 1
        self.runs = np.concatenate((np.zeros(min(len(index), 1), dtype=np.int64), changes))
        self.run_index = index[self.runs]
        self._parts: dict[tuple[int, str], np.ndarray] = {}

    @classmethod
    def of(
        cls,
        blocks: TileBlocks,
        bodies: Sequence[bytes | memoryview],
        lengths: Sequence[int],
        floor_t: int,
        windows: Sequence[int],
    ) -> _Windows:
        """The windows over the tiles of several blocks (``bodies``: their tile bytes)."""
        tiles = np.frombuffer(b"".join(bodies), dtype=blocks.dtype)
        return cls(tiles, np.array(lengths, dtype=np.int64), floor_t, windows)

    def _int(self, name: str) -> np.ndarray:
        return self.tiles[name].astype(np.int64)

    def _float(self, name: str) -> np.ndarray:
        return self.tiles[name].astype(np.float64)

    def _by_window(self, table: np.ndarray, accumulate: Any) -> np.ndarray:
        """(key, level) reductions -> (key, window): column k is window ``windows[k]``."""
        levels = table.reshape(self.keys, self.width)[:, :0:-1]  # levels m .. 1
        out: np.ndarray = accumulate(levels, axis=1)
        return out

    def _reduce(self, values: np.ndarray, fill: Any, ufunc: Any) -> np.ndarray:
        """(key, window) reductions of one value per tile by ``ufunc`` (``fill``: none)."""
        table = np.full(self.keys * self.width, fill, dtype=values.dtype)
        if len(self.runs):
            table[self.run_index] = ufunc.reduceat(values, self.runs)
        return self._by_window(table, ufunc.accumulate)

    def _sums(self, values: np.ndarray) -> np.ndarray:
        return self._reduce(values, 0, np.add)

    def _extreme(self, values: np.ndarray, fill: Any, ufunc: Any, where: np.ndarray) -> np.ndarray:
        return self._reduce(np.where(where, values, fill), fill, ufunc)

    def _part(self, column: int, part: str) -> np.ndarray:
        """The (key, window) reductions of one part of a column (cached)."""
        key = (column, part)
        got = self._parts.get(key)
        if got is not None:
            return got
        if column < 0:
            got = self._sums(self._int("events"))
        else:
            counts = self._int(f"c{column}_count")
            valued = counts > 0
            if part == "count":
                got = self._sums(counts)
            elif part == "sum":
                got = self._sums(self._float(f"c{column}_sum"))
            elif part in ("min", "max"):
                ufunc = np.minimum if part == "min" else np.maximum
                fill = np.inf if part == "min" else -np.inf
                got = self._extreme(self._float(f"c{column}_{part}"), fill, ufunc, valued)
            else:  # last: the newest valued tile (tiles are oldest first in each block)
                position = np.arange(len(counts), dtype=np.int64)
                got = self._extreme(position, -1, np.maximum, valued)
        self._parts[key] = got
        return got

    def _m2(self, column: int, k: int) -> np.ndarray:
        """Chan et al.'s combination of the tiles' (count, mean, m2) in window ``k``."""
        n = self._part(column, "count")[:, k]
        mean = self._part(column, "sum")[:, k] / np.maximum(n, 1)
        counts = self._int(f"c{column}_count")
        inside = self.level >= len(self.windows) - k
        tile_mean = self._float(f"c{column}_sum") / np.maximum(counts, 1)
        spread = self._float(f"c{column}_m2") + counts * (tile_mean - mean[self.owner]) ** 2
        m2: np.ndarray = np.bincount(
            self.owner[inside], weights=spread[inside], minlength=self.keys
        )
        return m2

    def aggregate(self, function: str, column: int, window: int) -> tuple[np.ndarray, np.ndarray]:
        """(values, nulls) per key of one feature."""
        k = self.windows.index(window)
        if column < 0:
            counts = self._part(column, "events")[:, k]
            return counts, np.zeros(self.keys, dtype=bool)
        n = self._part(column, "count")[:, k]
        if function == "count":
            return n, np.zeros(self.keys, dtype=bool)
        if function in ("sum", "min", "max"):
            return self._part(column, function)[:, k], n == 0
        if function == "last":
            position = self._part(column, "last")[:, k]
            lasts = np.append(self._float(f"c{column}_last"), 0.0)  # position -1: none
            return lasts[position], position < 0
        total = self._part(column, "sum")[:, k]
        if function == "mean":
            return total / np.maximum(n, 1), n == 0
        m2 = self._m2(column, k)  # stddev (sample)
        return np.sqrt(np.maximum(m2, 0.0) / np.maximum(n - 1, 1)), n < 2

    def newest(self, window: int) -> tuple[np.ndarray, np.ndarray]:
        """(newest event time, none) per key over a window (0: the tile of ``floor_t``)."""
        k = self.windows.index(window)
        newest = self._parts.get((-1, "newest"))
        if newest is None:
            latest = self.starts + self._int("latest")
            newest = self._reduce(latest, _INT64_MIN, np.maximum)
            self._parts[-1, "newest"] = newest
        got = newest[:, k]
        return got, got == _INT64_MIN

    def late(self, now_us: int) -> np.ndarray:
        """Per key: whether the tile of ``floor_t`` holds an event after ``now_us``."""
        current, none = self.newest(0)
        found: np.ndarray = ~none & (current > now_us)
        return found
