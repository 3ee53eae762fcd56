"""Property: snapshots of aggregation views (G7) equal the brute-force oracle and the training
frame of the same keys all at T.

The G7 cases of ``tests/agg_cases.py``: events on hop and window boundaries, ties, nulls in
the aggregated column, null keys and times, two hops; keys without events (count 0, other
aggregates null) and null keys (null everywhere) in a given keys frame.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore import FeatureStore
from tests.agg_cases import AGGS, FEATURES_PY, HOPS, SCHEMA, events, scale_of
from tests.agg_oracle import agg_oracle, close, window_start
from tests.conftest import make_repo
from tests.strategies import grid_times, write_timeline

WIDEST = max(a.window for a in AGGS)
STAMP = pa.timestamp("us", tz="UTC")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    repo = make_repo(tmp_path_factory.mktemp("g7snap"), FEATURES_PY)
    write_timeline(repo / "data/events", [], SCHEMA)
    fs = FeatureStore(repo)
    fs.apply()
    yield fs
    fs.close()


def assert_close(got: list[dict[str, Any]], expected: list[dict[str, Any]], scale: float) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        for agg in AGGS:
            assert close(g[agg.name], e[agg.name], scale=scale), (agg.name, g, e)


@settings(max_examples=30, deadline=None)
@given(
    rows=events(),
    t=grid_times(max_seconds=28),
    keys=st.one_of(st.none(), st.lists(st.one_of(st.none(), st.integers(1, 5)), max_size=8)),
    available=st.booleans(),
)
def test_aggregation_snapshot_equals_oracle_and_training_frame(
    store: FeatureStore, rows: list[dict[str, Any]], t, keys, available: bool
) -> None:
    write_timeline(store.repo_root / "data/events", rows, SCHEMA)
    mode = "available" if available else "event"
    for view, hop in HOPS.items():
        features = [f"{view}:{a.name}" for a in AGGS]
        given_keys = None if keys is None else pa.table({"user_id": pa.array(keys, pa.int64())})
        snap = store.get_snapshot(features, t, keys=given_keys, point_in_time=mode).to_arrow()
        users = snap.column("user_id").to_pylist()
        if keys is None:  # every key with an event in the widest window, sorted
            start = window_start(t, hop, WIDEST)
            assert users == sorted(
                {
                    r["user_id"]
                    for r in rows
                    if r["user_id"] is not None
                    and r["event_ts"] is not None
                    and start <= r["event_ts"] <= t
                    and (mode == "event" or r["created_ts"] is None or r["created_ts"] <= t)
                }
            )
        else:
            assert users == keys
        at_t = [{"user_id": u, "event_timestamp": t} for u in users]
        expected = agg_oracle(
            at_t, rows, join_keys=["user_id"], aggs=AGGS, hop=hop, point_in_time=mode
        )
        assert_close(snap.to_pylist(), expected, scale_of(rows))
        entity = pa.table(
            {
                "user_id": pa.array(users, pa.int64()),
                "event_timestamp": pa.array([t] * len(users), STAMP),
            }
        )
        train = store.get_training_frame(entity, features, point_in_time=mode).to_arrow()
        assert snap.schema == train.schema
        assert_close(snap.to_pylist(), train.to_pylist(), scale_of(rows))
