"""Writing an aggregation view's tiles: materialization windows, pushes, expiry (DESIGN G7).

Every write recomputes whole tiles from the offline store (source files and push log, read
through the engine like every other reader), never adds to a stored one:

* a materialization window ``[start, end)`` recomputes the tiles from ``floor(start, hop)``
  up to ``end``; a tile's coverage end is ``min(tile end, end)``;
* a push (:func:`fold_events`) recomputes the whole tiles its events fall in (coverage: the
  tile's end), after the push log holds them.

The tiles of a key are merged into its tile block (:mod:`featurestore.online.tiles`) by the
store's atomic read-merge-write: per tile, the larger ``(coverage end, events read)`` wins.
A tile's events only grow with its coverage and with the offline rows, so windows in any
order, repeated or overlapping, and pushes before or after them, leave the tiles of one full
run: a row is never counted twice. Tiles starting before
:func:`~featurestore.online.tiles.expiry_horizon` of the watermark are dropped by each merge,
and the blocks whose newest tile the watermark's advance expires are deleted.
"""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurestore._time import from_micros, to_micros, utc_now
from featurestore.errors import MaterializationError
from featurestore.online.codec import KeyEncoder, PackedBytes
from featurestore.online.tiles import TileBlocks, expiry_horizon, widest_us
from featurestore.types import to_arrow
from featurestore.window import floor_to

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from datetime import datetime

    from featurestore.online.base import OnlineStore
    from featurestore.repo.registry import ViewRecord
    from featurestore.types import DType

__all__ = ["TileSource", "expire_tiles", "fold_events", "write_tiles"]

logger = logging.getLogger(__name__)

_TILE = "__fs_tile"


class TileSource(Protocol):
    """What tiles need from the offline engine (``OfflineEngine.tiles`` provides it)."""

    def tiles(
        self,
        record: ViewRecord,
        lo: datetime,
        hi: datetime,
        *,
        wanted: pa.Table | None = ...,
        batch_size: int = ...,
    ) -> Iterator[pa.RecordBatch]:
        """Per (key, tile) partial aggregates of the events in ``[lo, hi)``."""
        ...


def write_tiles(
    offline: TileSource,
    online: OnlineStore,
    record: ViewRecord,
    start: datetime,
    end: datetime,
    *,
    watermark: datetime | None,
    batch_size: int = 200_000,
) -> tuple[int, int]:
    """Recompute the tiles of the window ``[start, end)`` and merge them into the blocks.

    ``watermark`` is the view's watermark after this window (None: none); tiles it expires
    are neither computed nor kept (a window that does not move the watermark keeps the older
    tiles reads before the watermark still need).
    Returns (tiles computed, tile blocks written).
    """
    view = record.view
    hop, end_us = view.hop_us, to_micros(end)
    lo = floor_to(to_micros(start), hop)
    horizon = _horizon(record, watermark)
    if horizon is not None:
        lo = max(lo, horizon)
    if lo >= end_us:
        return 0, 0
    batches = offline.tiles(record, from_micros(lo), end, batch_size=batch_size)

    def coverage(tiles: np.ndarray) -> np.ndarray:
        covered: np.ndarray = np.minimum(tiles + hop, end_us)
        return covered

    at = floor_to(to_micros(watermark if watermark is not None else end), hop)
    return _write(online, record, batches, coverage, horizon, at)


def fold_events(
    offline: TileSource, online: OnlineStore, record: ViewRecord, events: pa.Table
) -> int:
    """Fold pushed events into the online tiles of aggregation view ``record`` (DESIGN G8).

    Call it once the offline store (the push log) holds ``events``: every tile an event
    falls in is recomputed whole from the offline store and written with coverage up to the
    tile's end, so the online read includes the events at once and a row is never counted
    twice (module docstring). Only the join keys and the source's timestamp column of
    ``events`` are read; rows with a null key or timestamp are ignored. Returns the number
    of tile blocks (keys) written.
    """
    view = record.view
    hop = view.hop_us
    keys = list(view.join_keys)
    needed = [*keys, view.source.timestamp_field]
    origin = {d: s for s, d in view.source.field_mapping.items()}
    columns = {}
    for name in needed:  # the view's names, or the source's (before field_mapping)
        column = name if name in events.column_names else origin.get(name, name)
        if column not in events.column_names:
            msg = (
                f"Pushed events of aggregation view '{view.name}' have no column '{name}'; "
                f"their columns are {', '.join(events.column_names)}."
            )
            raise MaterializationError(msg)
        columns[name] = events.column(column)
    ts = pc.cast(columns.pop(view.source.timestamp_field), pa.timestamp("us", tz="UTC"))
    table = pa.table(
        {
            **{k: pc.cast(c, to_arrow(record.key_dtypes[k])) for k, c in columns.items()},
            _TILE: pc.cast(ts, pa.int64()),
        }
    )
    for name in [*keys, _TILE]:
        table = table.filter(pc.is_valid(table.column(name)))
    if table.num_rows == 0:
        return 0
    tiles = [floor_to(t, hop) for t in table.column(_TILE).to_pylist()]
    table = table.set_column(
        table.schema.get_field_index(_TILE), _TILE, pa.array(tiles, pa.int64())
    )
    wanted = table.group_by([*keys, _TILE]).aggregate([])
    lo, hi = min(tiles), max(tiles) + hop
    batches = offline.tiles(record, from_micros(lo), from_micros(hi), wanted=wanted)
    horizon = _horizon(record, record.watermark)
    at = floor_to(to_micros(utc_now()), hop)  # reads after a push are at the current time
    _, written = _write(online, record, batches, lambda tiles: tiles + hop, horizon, at)
    return written


def expire_tiles(
    online: OnlineStore, record: ViewRecord, old: datetime | None, new: datetime
) -> int:
    """Delete the tile blocks the watermark's move from ``old`` to ``new`` expires.

    A block whose newest tile starts before the new horizon holds no tile a read at or
    after ``new`` uses; the older tiles of the other blocks are dropped when they are next
    written (reads never look at them). Returns how many blocks were deleted.
    """
    if old is None or new <= old:
        return 0
    view = record.view
    hop, widest = view.hop_us, widest_us(view)
    first = expiry_horizon(to_micros(old), hop, widest)
    last = expiry_horizon(to_micros(new), hop, widest)
    return online.delete_older(view.name, last) if last > first else 0


def _horizon(record: ViewRecord, watermark: datetime | None) -> int | None:
    """The expiry horizon of ``record``'s view at ``watermark`` (None: no watermark)."""
    if watermark is None:
        return None
    view = record.view
    return expiry_horizon(to_micros(watermark), view.hop_us, widest_us(view))


def _write(
    online: OnlineStore,
    record: ViewRecord,
    batches: Iterator[pa.RecordBatch],
    coverage: Callable[[np.ndarray], np.ndarray],
    horizon: int | None,
    at: int,
) -> tuple[int, int]:
    """Encode tile batches into per-key blocks (numpy) and merge them into the store.

    The blocks' ready aggregates are for reads in hop ``at``.
    """
    view = record.view
    keys = list(view.join_keys)
    encoder = KeyEncoder({k: record.key_dtypes[k] for k in keys})
    blocks = TileBlocks(view, record.fingerprint)
    merge = blocks.merge(horizon, at)
    computed = written = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        key_arrays = [batch.column(k) for k in keys]
        entity_keys: Sequence[bytes] | None = None
        if all(record.key_dtypes[k].name in ("Int32", "Int64") for k in keys):
            entity_keys = encoder.encode_arrays([a.to_numpy() for a in key_arrays])
        if entity_keys is None:
            entity_keys = encoder.encode_columns(
                [
                    _python_keys(a, record.key_dtypes[k])
                    for a, k in zip(key_arrays, keys, strict=True)
                ]
            )
        starts = batch.column(_TILE).to_numpy()
        entries = _entries(blocks, view.name, batch, len(keys) + 1, starts, coverage(starts))
        order, firsts = _group(entity_keys, starts)
        entries = entries[order]
        bounds = list(itertools.pairwise([*firsts, len(order)]))
        out_keys = [entity_keys[int(order[lo])] for lo, _ in bounds]
        out_blocks = blocks.encode([entries[lo:hi] for lo, hi in bounds], at)
        written += online.merge_records(view.name, out_keys, out_blocks, merge)
        computed += batch.num_rows
    logger.debug("%s: %d tiles computed, %d blocks written", view.name, computed, written)
    return computed, written


def _entries(
    blocks: TileBlocks,
    view: str,
    batch: pa.RecordBatch,
    first: int,
    starts: np.ndarray,
    covered_to: np.ndarray,
) -> np.ndarray:
    """The tile entries of a batch of the tiles query (its columns from ``first`` on).

    Times after the start are stored as offsets from it; a count too large for the
    entry's integers is refused, never wrapped.
    """
    entries = np.zeros(len(starts), dtype=blocks.dtype)
    columns = {"start": starts, "covered": covered_to - starts}
    names = blocks.dtype.names or ()
    for name, i in zip(names[2:], range(first, batch.num_columns), strict=True):
        columns[name] = pc.fill_null(batch.column(i), 0).to_numpy(zero_copy_only=False)
    columns["latest"] = columns["latest"] - starts
    for name in names:
        values = columns[name]
        kind = blocks.dtype[name]
        if kind.kind == "u" and len(values) and int(values.max()) >= 2 ** (8 * kind.itemsize):
            at = int(np.argmax(values))
            msg = (
                f"Aggregation view '{view}': the tile starting at {int(starts[at])} us holds "
                f"{int(values.max()):,} {'events' if name == 'events' else 'values'} of one key, "
                "more than its 4-byte counts hold. Declare a smaller hop (fewer events a "
                "tile), or a hop of 72 minutes or more (8-byte counts)."
            )
            raise MaterializationError(msg)
        entries[name] = values
    return entries


def _group(entity_keys: Sequence[bytes], starts: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """The order that groups rows by key, tiles oldest first, and where each key begins.

    The tiles query sorts its rows so (checked here): then the order is the identity.
    """
    n = len(starts)
    if isinstance(entity_keys, PackedBytes):  # equal-sized keys: numpy compares them bytewise
        packed = np.frombuffer(entity_keys.buffer, dtype=f"S{entity_keys.itemsize}")
        changes = packed[1:] != packed[:-1]
    else:
        keys = list(entity_keys)
        changes = np.array([a != b for a, b in itertools.pairwise(keys)], dtype=bool)
    firsts = [0, *(np.flatnonzero(changes) + 1).tolist()]
    runs = {entity_keys[i] for i in firsts}
    if len(runs) == len(firsts) and bool(np.all((np.diff(starts) > 0) | changes)):
        return np.arange(n), firsts
    keys = list(entity_keys)
    order = np.array(sorted(range(n), key=lambda i: (keys[i], int(starts[i]))), dtype=np.int64)
    firsts = [i for i in range(n) if i == 0 or keys[order[i]] != keys[order[i - 1]]]
    return order, firsts


def _python_keys(column: pa.Array, dtype: DType) -> list[Any]:
    """Key values as the key encoder takes them (timestamps as microseconds)."""
    if dtype.name == "Timestamp":
        column = pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC")), pa.int64())
    values: list[Any] = column.to_pylist()
    return values
