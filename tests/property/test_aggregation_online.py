"""Property G7 online: after random materialization windows, reads equal the brute-force oracle.

Random events (ties, nulls in the column, null keys, events on hop and window boundaries;
``tests.agg_cases``), random windows whose union is [T0, W) -- overlapping, repeated,
shuffled -- materialized through the real DuckDB engine into a real SQLite file and a real
redis-server. Then, for every key (5 never has an event) and request times before, on and
after W (in the hop before W's, W's and the next, reads take the blocks' ready aggregates;
elsewhere the tiles), with few keys and with many (each read its own way), the
statuses follow the rule of ``featurestore.online.tiles.combine``, derived here
from the events alone:

* ``OUTSIDE_MAX_AGE`` when the widest window may reach expired tiles
  (``floor(T) < floor(watermark) - hop``) or the tile holding T holds an event after T;
* ``PRESENT`` otherwise, with the oracle's values over the events with ``event_ts < W``
  (count 0 and nulls for an empty window).

The stored tiles from the expiry horizon on equal those of one full run [T0, W) (floats
within rounding: DuckDB's float sums depend on its threads' order).
"""

from __future__ import annotations

import itertools
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from featurestore._time import to_micros
from featurestore.online.base import ReadRequest
from featurestore.online.codec import KeyEncoder
from featurestore.online.tiles import TileBlocks
from featurestore.types import Int64
from tests.agg_cases import AGGS, FEATURES_PY, HOPS, SCHEMA, events, scale_of
from tests.agg_oracle import agg_oracle, close, window_start
from tests.conftest import fresh_store, make_repo
from tests.strategies import BASE, grid_times, write_timeline

T0 = BASE - timedelta(seconds=1)
USERS = [1, 2, 3, 4, 5]
KEYS = KeyEncoder({"user_id": Int64})


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("g7-online"), FEATURES_PY)


@st.composite
def windows(draw: st.DrawFn) -> tuple[Any, list[tuple[Any, Any]]]:
    """A watermark W and shuffled windows whose union is [T0, W), with overlaps and repeats."""
    w = draw(grid_times(max_seconds=22))
    cuts = sorted(set(draw(st.lists(grid_times(max_seconds=22), max_size=4))) | {T0, w})
    parts = [(a, b) for a, b in itertools.pairwise(c for c in cuts if T0 <= c <= w) if a < b]
    extra = []
    for _ in range(draw(st.integers(0, 2))):
        a, b = sorted([draw(grid_times(max_seconds=22)), draw(grid_times(max_seconds=22))])
        if max(a, T0) < min(b, w):
            extra.append((max(a, T0), min(b, w)))
    repeats = draw(st.lists(st.sampled_from(parts), max_size=2)) if parts else []
    all_windows = parts + extra + repeats
    random.Random(draw(st.integers(0, 2**32))).shuffle(all_windows)
    return w, all_windows


def live_tiles(blocks: TileBlocks, block: bytes | None, first: int) -> np.ndarray:
    """The tiles of a block starting at ``first`` or later (none without a block)."""
    if block is None:
        return np.zeros(0, dtype=blocks.dtype)
    entries = blocks.entries(block)
    assert entries is not None  # of the applied definition
    return entries[entries["start"] >= first]


def expected_status(
    rows: list[dict[str, Any]], user: int, t: Any, w: Any, hop: Any, wm: Any
) -> str:
    """The status the tile rule gives, from the events alone (module docstring)."""
    tile = window_start(t, hop, timedelta(0))
    if tile < window_start(wm, hop, timedelta(0)) - hop:
        return "OUTSIDE_MAX_AGE"
    after = [
        r
        for r in rows
        if r["user_id"] == user
        and r["event_ts"] is not None
        and tile <= r["event_ts"] < min(tile + hop, w)
        and r["event_ts"] > t
    ]
    return "OUTSIDE_MAX_AGE" if after else "PRESENT"


@pytest.mark.parametrize(
    "backend",
    [
        "sqlite",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("redis-cluster", marks=pytest.mark.redis),
    ],
)
@settings(max_examples=15, deadline=None)
@given(
    rows=events(),
    plan=windows(),
    times=st.lists(grid_times(max_seconds=32), min_size=1, max_size=4),
)
def test_online_aggregates_equal_oracle_below_watermark(
    repo: Path, backend: str, request: pytest.FixtureRequest, rows, plan, times
) -> None:
    note(f"events={rows!r} windows={plan!r} times={times!r}")
    w, window_list = plan
    if not window_list:
        return
    write_timeline(repo / "data/events", rows, SCHEMA)
    store = fresh_store(repo, backend, request)
    full = fresh_store(repo, backend, request)
    try:
        for start, end in window_list:
            store.materialize(start, end)
        full.materialize(T0, w)
        below = [r for r in rows if r["event_ts"] is not None and r["event_ts"] < w]
        for view, hop in HOPS.items():
            wm = store.get_feature_view(view).watermark
            assert wm is not None
            assert wm <= w
            for t in [*times, w]:  # at W: the blocks' ready aggregates
                got = store.get_online_features(
                    [f"{view}:{a.name}" for a in AGGS], {"user_id": USERS}, request_time=t
                )
                expected = agg_oracle(
                    [{"user_id": u, "event_timestamp": t} for u in USERS],
                    below,
                    join_keys=["user_id"],
                    aggs=AGGS,
                    hop=hop,
                )
                values = got.to_dict()
                # More keys than tiles._FEW_KEYS: the ready aggregates are read for all keys
                # at once (numpy) instead of key by key; the same response.
                many = store.get_online_features(
                    [f"{view}:{a.name}" for a in AGGS], {"user_id": USERS * 2}, request_time=t
                )
                for agg in AGGS:
                    assert many.statuses[agg.name] == got.statuses[agg.name] * 2
                    assert many.to_dict()[agg.name] == values[agg.name] * 2, (view, t, agg.name)
                for i, user in enumerate(USERS):
                    status = expected_status(rows, user, t, w, hop, wm)
                    for agg in AGGS:
                        assert got.statuses[agg.name][i] == status, (view, user, t, agg.name, wm, w)
                        value = values[agg.name][i]
                        if status == "PRESENT":
                            want = expected[i][agg.name]
                            assert close(value, want, scale=scale_of(rows)), (
                                view,
                                user,
                                t,
                                agg.name,
                                value,
                                want,
                            )
                        else:
                            assert value is None
            # Same tiles as one full run, from the full run's expiry horizon (the widest
            # window, 6 s, and one hop before the floor of W); a block may still hold older
            # tiles, which no read uses, until its key is written again. Integer parts
            # (start, coverage, events, times, counts) are equal; float parts within
            # rounding: DuckDB adds a tile's floats in an order that depends on its threads.
            first = to_micros(window_start(w, hop, timedelta(seconds=6)) - hop)
            record = store.get_feature_view(view)
            blocks = TileBlocks(record.view, record.fingerprint)
            requests = [ReadRequest(k, (view,)) for k in KEYS.encode_columns([USERS])]
            got_blocks = store.online.read_records(requests)
            full_blocks = full.online.read_records(requests)
            for (a,), (b,) in zip(got_blocks, full_blocks, strict=True):
                tiles = [live_tiles(blocks, x, first) for x in (a, b)]
                assert len(tiles[0]) == len(tiles[1])
                for name in blocks.dtype.names or ():
                    # m2 is in squared units: its rounding residue scales with the squares.
                    scale = scale_of(rows) ** (2 if name.endswith("_m2") else 1) * len(rows)
                    for x, y in zip(tiles[0][name].tolist(), tiles[1][name].tolist(), strict=True):
                        assert close(x, y, scale=scale), (view, name, x, y)
    finally:
        store.close()
        full.close()
