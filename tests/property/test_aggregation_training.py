"""Property G7 offline: a training frame's aggregates equal the brute-force oracle's.

Random events (ties on event and created time, nulls in the aggregated column, null keys and
times, several files, events exactly on hop and window boundaries: the grid is whole seconds
and the hops are 1 and 2 seconds) and random entity frames (null keys and times, duplicated
rows, keys with no events, times before every event) through the real DuckDB engine, for a
view whose hop is derived from its smallest window and one with a declared hop, in both
``point_in_time`` modes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore import FeatureStore
from tests.agg_oracle import Agg, agg_oracle, close
from tests.conftest import make_repo
from tests.strategies import grid_times, write_timeline

FEATURES_PY = """
from datetime import timedelta
from featurestore import Aggregation, Entity, FeatureView, ParquetSource

user = Entity("user", join_keys=["user_id"])
events = ParquetSource("data/events", timestamp_field="ts", created_timestamp_field="created")
s = timedelta(seconds=1)
aggs = [
    Aggregation(None, "count", 2 * s),
    Aggregation("amount", "count", 4 * s),
    Aggregation("amount", "sum", 4 * s),
    Aggregation("amount", "mean", 6 * s),
    Aggregation("amount", "min", 2 * s),
    Aggregation("amount", "max", 6 * s),
    Aggregation("amount", "last", 4 * s),
    Aggregation("amount", "last", 2 * s),
    Aggregation("amount", "stddev", 6 * s),
    Aggregation("amount", "sum", 2 * s, name="recent_total"),
]
derived = FeatureView("derived", entities=[user], source=events, aggregations=aggs)
hop1 = FeatureView("hop1", entities=[user], source=events, aggregations=aggs, hop=s)
"""
S = timedelta(seconds=1)
AGGS = [
    Agg("count_2s", None, "count", 2 * S),
    Agg("amount_count_4s", "amount", "count", 4 * S),
    Agg("amount_sum_4s", "amount", "sum", 4 * S),
    Agg("amount_mean_6s", "amount", "mean", 6 * S),
    Agg("amount_min_2s", "amount", "min", 2 * S),
    Agg("amount_max_6s", "amount", "max", 6 * S),
    Agg("amount_last_4s", "amount", "last", 4 * S),
    Agg("amount_last_2s", "amount", "last", 2 * S),
    Agg("amount_stddev_6s", "amount", "stddev", 6 * S),
    Agg("recent_total", "amount", "sum", 2 * S),
]
HOPS = {"derived": 2 * S, "hop1": S}
SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("created", pa.timestamp("us", tz="UTC")),
        ("amount", pa.float64()),
    ]
)
AMOUNTS = st.one_of(
    st.none(),
    st.sampled_from([0.0, 1.0, -2.5, 1e3]),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
)


@st.composite
def events(draw: st.DrawFn, *, max_rows: int = 30) -> list[dict[str, Any]]:
    """Raw events: ties on (event, created) in several files, null keys, times and amounts."""
    rows: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, max_rows))):
        event = draw(st.one_of(grid_times(), grid_times(), grid_times(), st.none()))
        created = draw(st.one_of(st.none(), st.just(event), grid_times()))
        rows.append(
            {
                "user_id": draw(st.one_of(st.none(), st.integers(1, 4), st.integers(1, 4))),
                "event_ts": event,
                "created_ts": created,
                "amount": draw(AMOUNTS),
                "file": draw(st.integers(0, 2)),
            }
        )
    for original in draw(st.lists(st.sampled_from(rows), max_size=4)) if rows else []:
        copy = dict(original)  # same keys and times, other value and file
        copy["amount"] = draw(AMOUNTS)
        copy["file"] = draw(st.integers(0, 2))
        rows.append(copy)
    return draw(st.permutations(rows))


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


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    repo = make_repo(tmp_path_factory.mktemp("g7"), FEATURES_PY)
    write_timeline(repo / "data/events", [], SCHEMA)
    store = FeatureStore(repo)
    store.apply()
    yield store
    store.close()


def scale_of(rows: list[dict[str, Any]]) -> float:
    return 1.0 + sum(abs(r["amount"]) for r in rows if r["amount"] is not None)


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
    for view, hop in HOPS.items():
        frame = store.get_training_frame(
            table,
            features=[f"{view}:{a.name}" for a in AGGS],
            point_in_time=mode,
        ).to_arrow()
        assert frame.num_rows == len(entity)
        got = frame.to_pylist()
        expected = agg_oracle(
            entity, rows, join_keys=["user_id"], aggs=AGGS, hop=hop, point_in_time=mode
        )
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            assert g["user_id"] == entity[i]["user_id"]
            for agg in AGGS:
                assert close(g[agg.name], e[agg.name], scale=scale_of(rows)), (
                    view,
                    i,
                    agg.name,
                    g[agg.name],
                    e[agg.name],
                )
