"""Tile blocks of format 2 (docs/online-format.md): narrow entries, refused counts, stale formats."""

from __future__ import annotations

import struct
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pytest

from featurestore import Aggregation, Entity, FeatureView, ParquetSource
from featurestore.errors import MaterializationError
from featurestore.materialization.tiles import _entries
from featurestore.online.layout import HEAD_SIZE
from featurestore.online.tiles import TileBlocks, TilePlan, combine

H = timedelta(hours=1)
card = Entity("card", join_keys=["card_id"])
source = ParquetSource("data/tx.parquet", timestamp_field="ts")
HOUR_US = 3_600_000_000
FP = "0123456789abcdef"


def view(hop: timedelta) -> FeatureView:
    aggs = [Aggregation(None, "count", 2 * hop), Aggregation("amount", "max", 2 * hop)]
    return FeatureView("w", entities=[card], source=source, aggregations=aggs, hop=hop)


def batch(events: int, newest_offset: int) -> pa.RecordBatch:
    """One tile of key 7 starting at hour 10, as the tiles query gives it."""
    start = 10 * HOUR_US
    return pa.record_batch(
        {
            "card_id": [7],
            "__fs_tile": [start],
            "__fs_n": [events],
            "__fs_max": [start + newest_offset],
            "__fs_c0_count": [events],
            "__fs_c0_max": [2.5],
        }
    )


def test_narrow_entries_below_the_limit_and_wide_entries_above() -> None:
    assert TileBlocks(view(H), FP).dtype.itemsize == 8 + 4 * 4 + 8
    assert TileBlocks(view(24 * H), FP).dtype.itemsize == 8 * 6


def test_entries_store_offsets_and_read_back_as_times() -> None:
    blocks = TileBlocks(view(H), FP)
    starts = np.array([10 * HOUR_US])
    entries = _entries(blocks, "w", batch(3, 5), 2, starts, starts + HOUR_US // 2)
    assert entries[0].tolist() == (10 * HOUR_US, HOUR_US // 2, 3, 5, 3, 2.5)
    (block,) = blocks.encode([entries], 10 * HOUR_US)
    plan = TilePlan.of(view(H), FP, ["count_2h", "amount_max_2h"])
    now = 10 * HOUR_US + 7
    columns, statuses, events = combine(plan, [block], now, now)
    assert (columns, [s.name for s in statuses], events) == (
        [[3], [2.5]],
        ["PRESENT"],
        [10 * HOUR_US + 5],
    )


def test_a_count_too_large_for_four_bytes_is_refused_not_wrapped() -> None:
    blocks = TileBlocks(view(H), FP)
    starts = np.array([10 * HOUR_US])
    with pytest.raises(MaterializationError, match=r"'w'.*Declare a smaller hop"):
        _entries(blocks, "w", batch(2**32, 5), 2, starts, starts + HOUR_US)


def test_a_block_of_format_1_is_stale() -> None:
    blocks = TileBlocks(view(H), FP)
    starts = np.array([10 * HOUR_US])
    (block,) = blocks.encode([_entries(blocks, "w", batch(3, 5), 2, starts, starts)], 0)
    fields = len(blocks.dtype.names or ())
    old = block[: HEAD_SIZE - 2] + struct.pack(">H", fields) + block[HEAD_SIZE:]
    plan = TilePlan.of(view(H), FP, ["count_2h"])
    _, statuses, _ = combine(plan, [old], 10 * HOUR_US, 10 * HOUR_US)
    assert [s.name for s in statuses] == ["STALE_DEFINITION"]


def test_new_tiles_are_never_merged_into_a_block_of_format_1() -> None:
    """Replacing an older-format block of the same definition by a window's tiles would drop
    its older tiles and serve windows without them as PRESENT: the merge refuses and names
    the rebuild. A block of another definition is still replaced (apply started it over)."""
    blocks = TileBlocks(view(H), FP)
    starts = np.array([10 * HOUR_US])
    (block,) = blocks.encode([_entries(blocks, "w", batch(3, 5), 2, starts, starts)], 0)
    fields = len(blocks.dtype.names or ())
    old = block[: HEAD_SIZE - 2] + struct.pack(">H", fields) + block[HEAD_SIZE:]
    merge = blocks.merge(None, 11 * HOUR_US)
    with pytest.raises(MaterializationError, match=r"'w'.*--rebuild --views w"):
        merge([old], [block])
    (other,) = TileBlocks(view(H), "fedcba9876543210").encode(
        [_entries(blocks, "w", batch(9, 5), 2, starts, starts)], 0
    )
    (merged,) = merge([other], [block])
    assert blocks.entries(merged) is not None
    assert blocks.entries(merged)["events"].tolist() == [3]


def test_ready_aggregates_of_the_hop_before_the_write_equal_the_combined_tiles() -> None:
    """A block written at hop F answers reads in F - hop, F and F + hop from its ready
    aggregates: the same values, statuses and event times as combining its tiles (forced here
    by a block written far later), PRESENT when T's tile holds no later event, else
    OUTSIDE_MAX_AGE."""
    blocks = TileBlocks(view(H), FP)
    tiles = [  # key 7: tiles at hours 8, 9 and 10, newest events 5, 40 and 20 minutes in
        _entries(blocks, "w", one_tile(hour, events, minutes), 2, *window_of(hour))
        for hour, events, minutes in ((8, 2, 5), (9, 3, 40), (10, 1, 20))
    ]
    group = np.concatenate(tiles)
    plan = TilePlan.of(view(H), FP, ["count_2h", "amount_max_2h"])
    (ready,) = blocks.encode([group], 10 * HOUR_US)
    (combined,) = blocks.encode([group], 30 * HOUR_US)  # no ready set near any T below
    # The same block without its tiles: it answers alike only from its ready aggregates.
    ready_only = ready[: blocks.body]
    minute = 60_000_000
    seen = set()
    for hour in (9, 10, 11):
        for minutes in (0, 30, 45, 59):
            now = hour * HOUR_US + minutes * minute
            got = combine(plan, [ready], now, 10 * HOUR_US)
            assert got == combine(plan, [combined], now, 10 * HOUR_US), (hour, minutes)
            assert got == combine(plan, [ready_only], now, 10 * HOUR_US), (hour, minutes)
            # More keys than _FEW_KEYS: the ready sets of all keys at once (numpy).
            many = combine(plan, [ready_only] * 9, now, 10 * HOUR_US)
            assert many == ([c * 9 for c in got[0]], got[1] * 9, got[2] * 9), (hour, minutes)
            seen.add(got[1][0].name)
    assert seen == {"PRESENT", "OUTSIDE_MAX_AGE"}


def one_tile(hour: int, events: int, minutes: int) -> pa.RecordBatch:
    start = hour * HOUR_US
    return pa.record_batch(
        {
            "card_id": [7],
            "__fs_tile": [start],
            "__fs_n": [events],
            "__fs_max": [start + minutes * 60_000_000],
            "__fs_c0_count": [events],
            "__fs_c0_max": [float(hour)],
        }
    )


def window_of(hour: int) -> tuple[np.ndarray, np.ndarray]:
    starts = np.array([hour * HOUR_US])
    return starts, starts + HOUR_US
