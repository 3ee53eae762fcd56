"""G7 with G8: pushed events fold into aggregation tiles, never counted twice.

Random source events (``tests.agg_cases``: ties, null keys, times and amounts) and a random
mix of pushes of events to one aggregation view and materialization windows inside
``[T0, W)``, in random order, then windows covering ``[T0, W)``, then more pushes (folded into
the tiles at once, with no materialization after them). W is after every event, so
an online read at any T >= W must equal the brute-force oracle over the source events plus
every pushed event (pushes rank after the source files, in push order: ``last`` sees them so):
PRESENT, with the oracle's values. Real DuckDB, SQLite and Redis.
"""

from __future__ import annotations

import itertools
import random
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from tests.agg_cases import AGGS, AMOUNTS, FEATURES_PY, HOPS, SCHEMA, events, scale_of
from tests.agg_oracle import agg_oracle, close
from tests.conftest import fresh_store, make_repo
from tests.strategies import BASE, grid_times, write_timeline

T0 = BASE - timedelta(seconds=1)
W = BASE + timedelta(seconds=23)  # after every source (<= 20 s) and pushed (<= 22 s) event
USERS = [1, 2, 3, 4, 5]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("push-g7"), FEATURES_PY)


@st.composite
def pushed_events(draw: st.DrawFn) -> list[dict[str, Any]]:
    rows = []
    for _ in range(draw(st.integers(1, 3))):
        event = draw(grid_times(max_seconds=22))
        rows.append(
            {
                "user_id": draw(st.integers(1, 4)),
                "event_ts": event,
                "created_ts": draw(st.one_of(st.none(), st.just(event))),
                "amount": draw(AMOUNTS),
            }
        )
    return rows


@st.composite
def plans(
    draw: st.DrawFn,
) -> tuple[list[tuple[str, Any]], list[tuple[Any, Any]], list[list[dict[str, Any]]]]:
    ops: list[tuple[str, Any]] = []
    for _ in range(draw(st.integers(1, 5))):
        if draw(st.integers(0, 2)):
            ops.append(("push", draw(pushed_events())))
        else:
            a, b = sorted([draw(grid_times(max_seconds=28)), draw(grid_times(max_seconds=28))])
            if max(a, T0) < min(b, W):
                ops.append(("window", (max(a, T0), min(b, W))))
    inner = draw(st.lists(grid_times(max_seconds=22), max_size=3))
    cuts = sorted({T0, W, *(c for c in inner if T0 < c < W)})
    covering = [(a, b) for a, b in itertools.pairwise(cuts) if a < b]
    random.Random(draw(st.integers(0, 2**32))).shuffle(covering)
    late = draw(st.lists(pushed_events(), max_size=2))  # pushed after the covering windows
    return ops, covering, late


@pytest.mark.parametrize(
    "backend",
    [
        "sqlite",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("redis-cluster", marks=pytest.mark.redis),
    ],
)
@settings(max_examples=10, deadline=None)
@given(
    rows=events(),
    plan=plans(),
    view=st.sampled_from(sorted(HOPS)),
    after=st.lists(st.integers(0, 2), min_size=1, max_size=2),
)
def test_pushed_events_are_counted_once_whatever_the_order_of_pushes_and_windows(
    repo: Path, backend: str, request: pytest.FixtureRequest, rows, plan, view, after
) -> None:
    note(f"events={rows!r} plan={plan!r}")
    ops, covering, late = plan
    write_timeline(repo / "data/events", rows, SCHEMA)
    shutil.rmtree(repo / "push_log", ignore_errors=True)
    store = fresh_store(repo, backend, request)
    pushed: list[dict[str, Any]] = []

    def push(batch: list[dict[str, Any]]) -> None:
        store.push(
            view,
            [
                {"user_id": r["user_id"], "ts": r["event_ts"], "created": r["created_ts"],
                 "amount": r["amount"]}
                for r in batch
            ],
        )  # fmt: skip

    try:
        for number, (kind, arg) in enumerate(ops):
            if kind == "window":
                store.materialize(*arg, views=[view])
                continue
            push(arg)
            pushed += [{**r, "file": f"~push-{number:04d}", "row": i} for i, r in enumerate(arg)]
        for start, end in covering:
            store.materialize(start, end, views=[view])
        for number, batch in enumerate(late, start=len(ops)):  # folded into the tiles at once
            push(batch)
            pushed += [{**r, "file": f"~push-{number:04d}", "row": i} for i, r in enumerate(batch)]
        every = [*rows, *pushed]
        for seconds in after:
            t = W + timedelta(seconds=seconds)
            got = store.get_online_features(
                [f"{view}:{a.name}" for a in AGGS], {"user_id": USERS}, request_time=t
            )
            expected = agg_oracle(
                [{"user_id": u, "event_timestamp": t} for u in USERS],
                every,
                join_keys=["user_id"],
                aggs=AGGS,
                hop=HOPS[view],
            )
            values = got.to_dict()
            for i, user in enumerate(USERS):
                for agg in AGGS:
                    assert got.statuses[agg.name][i] == "PRESENT", (user, t, agg.name)
                    want = expected[i][agg.name]
                    value = values[agg.name][i]
                    assert close(value, want, scale=scale_of(every)), (user, t, agg.name, value)
    finally:
        store.close()
