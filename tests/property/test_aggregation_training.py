"""Property G7 offline: a training frame's aggregates equal the brute-force oracle's.

Random events (ties on event and created time, nulls in the aggregated column, null keys and
times, several files, events exactly on hop and window boundaries: the grid is whole seconds
and the hops are 1 and 2 seconds) and random entity frames (null keys and times, duplicated
rows, keys with no events, times before every event) through the real DuckDB engine, for a
view whose hop is derived from its smallest window and one with a declared hop, in both
``point_in_time`` modes; with a ``stddev`` (the single-stage query) and without (two-stage).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore import FeatureStore
from tests.agg_cases import AGGS, FEATURES_PY, HOPS, SCHEMA, events, scale_of
from tests.agg_oracle import agg_oracle, close
from tests.conftest import make_repo
from tests.strategies import grid_times, write_timeline


@st.composite
def entity_frames(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Entity rows: keys 1-5 (5 has no events) or null, grid times or null, duplicates."""
    rows = [
        {
            "user_id": draw(st.one_of(st.none(), st.integers(1, 5), st.integers(1, 5))),
            "event_timestamp": draw(st.one_of(st.none(), *[grid_times(max_seconds=28)] * 5)),
        }
        for _ in range(draw(st.integers(0, 12)))
    ]
    rows += [dict(r) for r in draw(st.lists(st.sampled_from(rows), max_size=3))] if rows else []
    return rows


STDDEV = '    Aggregation("amount", "stddev", 6 * s),\n'
"""Without it, the views take the two-stage form (offline/join/aggregation.py, _levels)."""


@pytest.fixture(scope="module", params=["single-stage", "two-stage"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    assert STDDEV in FEATURES_PY
    features = FEATURES_PY if request.param == "single-stage" else FEATURES_PY.replace(STDDEV, "")
    repo = make_repo(tmp_path_factory.mktemp("g7"), features)
    write_timeline(repo / "data/events", [], SCHEMA)
    store = FeatureStore(repo)
    store.apply()
    yield store
    store.close()


@settings(max_examples=40, deadline=None)
@given(rows=events(), entity=entity_frames(), available=st.booleans())
def test_training_frame_aggregates_equal_oracle(
    store: FeatureStore, rows: list[dict[str, Any]], entity: list[dict[str, Any]], available: bool
) -> None:
    write_timeline(store.repo_root / "data/events", rows, SCHEMA)
    table = pa.table(
        {
            "user_id": pa.array([r["user_id"] for r in entity], pa.int64()),
            "event_timestamp": pa.array(
                [r["event_timestamp"] for r in entity], pa.timestamp("us", tz="UTC")
            ),
        }
    )
    mode = "available" if available else "event"
    names = set(store.get_feature_view("derived").view.feature_names)
    aggs = [a for a in AGGS if a.name in names]
    for view, hop in HOPS.items():
        frame = store.get_training_frame(
            table,
            features=[f"{view}:{a.name}" for a in aggs],
            point_in_time=mode,
        ).to_arrow()
        assert frame.num_rows == len(entity)
        got = frame.to_pylist()
        expected = agg_oracle(
            entity, rows, join_keys=["user_id"], aggs=aggs, hop=hop, point_in_time=mode
        )
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            assert g["user_id"] == entity[i]["user_id"]
            for agg in aggs:
                assert close(g[agg.name], e[agg.name], scale=scale_of(rows)), (
                    view,
                    i,
                    agg.name,
                    g[agg.name],
                    e[agg.name],
                )
