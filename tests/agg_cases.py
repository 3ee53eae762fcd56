"""Shared by the G7 property tests: the aggregation views, their oracle specs, random events.

Two views over one source of events: ``derived`` (hop = the smallest window, 2 s) and
``hop1`` (declared hop 1 s); times sit on a whole-second grid with +-1 us jitter, so events
fall exactly on hop and window boundaries, at equal times, and just beside them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

from tests.agg_oracle import Agg
from tests.strategies import grid_times

__all__ = ["AGGS", "AMOUNTS", "FEATURES_PY", "HOPS", "SCHEMA", "events", "scale_of"]

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


def scale_of(rows: list[dict[str, Any]]) -> float:
    """The absolute slack scale of :func:`tests.agg_oracle.close` for these events."""
    return 1.0 + sum(abs(r["amount"]) for r in rows if r["amount"] is not None)
