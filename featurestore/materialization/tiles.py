"""Writing an aggregation view's tiles: materialization windows, pushes, expiry (DESIGN G7).

Every write recomputes whole tiles from the offline store (source files and push log, read
through the engine like every other reader), never adds to a stored one:

* a materialization window ``[start, end)`` recomputes the tiles from ``floor(start, hop)``
  up to ``end``; a tile's coverage end is ``min(tile end, end)``;
* a push (:func:`fold_events`) recomputes the whole tiles its events fall in (coverage: the
  tile's end), after the push log holds them.

The conditional write (:mod:`featurestore.online.tiles`) keeps the tile with the larger
``(coverage end, events read)``. A tile's events only grow with its coverage and with the
offline rows, so windows in any order, repeated or overlapping, and pushes before or after
them, leave the tiles of one full run: a row is never counted twice. Tiles starting before
:func:`~featurestore.online.tiles.expiry_horizon` of the new watermark are not written, and
those the watermark's advance expires are deleted.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurestore._time import from_micros, to_micros
from featurestore.errors import MaterializationError
from featurestore.online.codec import KeyEncoder, PackedBytes
from featurestore.online.tiles import expiry_horizon, tile_codec, tile_view, widest_us
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
    """Recompute and write the tiles of the window ``[start, end)``.

    ``watermark`` is the view's watermark after this window (None: none); tiles it expires
    are skipped (a window that does not move the watermark keeps the older tiles reads
    before the watermark still need).
    Returns (tiles computed, tile records written).
    """
    view = record.view
    hop, end_us = view.hop_us, to_micros(end)
    lo = floor_to(to_micros(start), hop)
    if watermark is not None:
        lo = max(lo, expiry_horizon(to_micros(watermark), hop, widest_us(view)))
    if lo >= end_us:
        return 0, 0
    batches = offline.tiles(record, from_micros(lo), end, batch_size=batch_size)
    return _write(online, record, batches, lambda tiles: np.minimum(tiles + hop, end_us))


def fold_events(
    offline: TileSource, online: OnlineStore, record: ViewRecord, events: pa.Table
) -> int:
    """Fold pushed events into the online tiles of aggregation view ``record`` (DESIGN G8).

    Call it once the offline store (the push log) holds ``events``: every tile an event
    falls in is recomputed whole from the offline store and written with coverage up to the
    tile's end, so the online read includes the events at once and a row is never counted
    twice (module docstring). Only the join keys and the source's timestamp column of
    ``events`` are read; rows with a null key or timestamp are ignored. Returns the number
    of tile records written.
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
    _, written = _write(online, record, batches, lambda tiles: tiles + hop)
    return written


def expire_tiles(
    online: OnlineStore, record: ViewRecord, old: datetime | None, new: datetime
) -> int:
    """Delete the tiles the watermark's move from ``old`` to ``new`` expires; returns how many.

    Nothing older than ``old``'s horizon exists (it was deleted, or never written); without
    ``old`` nothing before ``new``'s horizon was written.
    """
    if old is None or new <= old:
        return 0
    view = record.view
    hop, widest = view.hop_us, widest_us(view)
    first = expiry_horizon(to_micros(old), hop, widest)
    last = expiry_horizon(to_micros(new), hop, widest)
    return sum(online.delete_records(tile_view(view.name, s)) for s in range(first, last, hop))


def _write(
    online: OnlineStore,
    record: ViewRecord,
    batches: Iterator[pa.RecordBatch],
    coverage: Callable[[np.ndarray], np.ndarray],
) -> tuple[int, int]:
    """Encode tile batches (numpy, no per-value Python work) and write them tile by tile."""
    view = record.view
    keys = list(view.join_keys)
    encoder = KeyEncoder({k: record.key_dtypes[k] for k in keys})
    codec = tile_codec(view, record.fingerprint)
    computed = written = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        tiles = batch.column(_TILE).to_numpy()
        order = np.argsort(tiles, kind="stable")
        batch = batch.take(pa.array(order))  # grouped by tile
        tiles = tiles[order]
        first = len(keys) + 1
        values, nulls = [], []
        for i in range(first, batch.num_columns):
            column = batch.column(i)
            null = pc.is_null(column).to_numpy(zero_copy_only=False) if column.null_count else None
            values.append(pc.fill_null(column, 0).to_numpy(zero_copy_only=False))
            nulls.append(null)
        records = codec.encode_arrays(coverage(tiles), values[0], None, values, nulls)
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
        assert records is not None  # tile schemas are fixed-width
        bounds = np.flatnonzero(np.diff(tiles)) + 1
        for lo, hi in zip([0, *bounds.tolist()], [*bounds.tolist(), len(tiles)], strict=True):
            name = tile_view(view.name, int(tiles[lo]))
            written += online.write_records(
                name, _rows(entity_keys, lo, hi), _rows(records, lo, hi)
            )
        computed += batch.num_rows
    logger.debug("%s: %d tiles computed, %d written", view.name, computed, written)
    return computed, written


def _rows(items: Sequence[bytes], lo: int, hi: int) -> Sequence[bytes]:
    """``items[lo:hi]``, still packed when ``items`` is (SQLite's bulk write takes it whole)."""
    if isinstance(items, PackedBytes):
        size = items.itemsize
        return PackedBytes(items.buffer[lo * size : hi * size], size)
    return items[lo:hi]


def _python_keys(column: pa.Array, dtype: DType) -> list[Any]:
    """Key values as the key encoder takes them (timestamps as microseconds)."""
    if dtype.name == "Timestamp":
        column = pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC")), pa.int64())
    values: list[Any] = column.to_pylist()
    return values
