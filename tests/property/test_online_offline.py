"""Property G3: after materializing random windows in random order, online reads equal G1.

Random source rows (ties, nulls, late rows, duplicates, several files), random windows that
cover [T0, W) -- overlapping, repeated, shuffled -- written through the real DuckDB engine
into a real SQLite file and a real Redis (and, in the ``spark`` variant, read by the Spark
engine in ``local[2]`` and written from its executors, with fewer examples). Then, for every
key and random request times T:

* a PRESENT value equals the brute-force point-in-time row over rows with event_ts < W;
* when T is at or after the stored row's event time, the whole answer (values, nulls and
  status) equals the oracle's; before it, the value is null with OUTSIDE_MAX_AGE;
* the stored records are byte-identical to those of one full run [T0, W).
"""

from __future__ import annotations

import itertools
import os
import random
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore.online.base import ReadRequest
from featurestore.online.codec import KeyEncoder
from featurestore.types import Int64
from tests.conftest import fresh_store, make_repo
from tests.oracle import latest_in_window, pit_oracle
from tests.spark_engine import on_spark
from tests.strategies import BASE, TTL, feature_rows, grid_times, write_timeline

FEATURES_PY = """
from datetime import timedelta
from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Int64, String

user = Entity("user", join_keys=["user_id"])
users = ParquetSource("data/u", timestamp_field="ts", created_timestamp_field="created")
schema = [Field("f_int", Int64), Field("f_str", String)]

u_nottl = FeatureView(name="u_nottl", entities=[user], source=users, schema=schema)
u_ttl = FeatureView(name="u_ttl", entities=[user], source=users, schema=schema,
                    ttl=timedelta(seconds=5))
"""
TTLS = {"u_nottl": None, "u_ttl": TTL}
SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("created", pa.timestamp("us", tz="UTC")),
        ("f_int", pa.int64()),
        ("f_str", pa.string()),
    ]
)
T0 = BASE - timedelta(seconds=1)
KEYS = KeyEncoder({"user_id": Int64})
USERS = [1, 2, 3, 4, 99]
SPARK_EXAMPLES = int(os.environ.get("FEATURESTORE_SPARK_EXAMPLES", "3"))


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("g3"), FEATURES_PY)


@st.composite
def windows(draw: st.DrawFn) -> tuple[Any, list[tuple[Any, Any]]]:
    """A watermark W and shuffled windows whose union is [T0, W), with overlaps and repeats."""
    w = draw(grid_times(max_seconds=22))
    cuts = sorted(set(draw(st.lists(grid_times(max_seconds=22), max_size=4))) | {T0, w})
    cuts = [c for c in cuts if T0 <= c <= w]
    parts = [(a, b) for a, b in itertools.pairwise(cuts) if a < b]
    extra = []
    for _ in range(draw(st.integers(0, 3))):
        a, b = sorted([draw(grid_times(max_seconds=22)), draw(grid_times(max_seconds=22))])
        a, b = max(a, T0), min(b, w)
        if a < b:
            extra.append((a, b))
    repeats = draw(st.lists(st.sampled_from(parts), max_size=2)) if parts else []
    all_windows = parts + extra + repeats
    random.Random(draw(st.integers(0, 2**32))).shuffle(all_windows)
    return w, all_windows


@pytest.mark.parametrize(
    "backend",
    [
        "sqlite",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("redis-cluster", marks=pytest.mark.redis),
    ],
)
@settings(max_examples=25)
@given(
    rows=feature_rows(),
    plan=windows(),
    times=st.lists(grid_times(max_seconds=32), min_size=1, max_size=4),
)
def test_online_reads_equal_point_in_time_rows_below_watermark(
    repo: Path, backend: str, request: pytest.FixtureRequest, rows, plan, times
) -> None:
    check_online_equals_offline(repo, backend, "duckdb", request, rows, plan, times)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
@settings(max_examples=SPARK_EXAMPLES)
@given(
    rows=feature_rows(),
    plan=windows(),
    times=st.lists(grid_times(max_seconds=32), min_size=1, max_size=4),
)
def test_online_reads_equal_point_in_time_rows_below_watermark_on_spark(
    repo: Path, backend: str, request: pytest.FixtureRequest, rows, plan, times
) -> None:
    # The Spark executors write the records (offline/spark/materialize.py), each partition
    # over its own connection to the SQLite file or the Redis.
    check_online_equals_offline(repo, backend, "spark", request, rows, plan, times)


def check_online_equals_offline(
    repo: Path, backend: str, engine: str, request: pytest.FixtureRequest, rows, plan, times
) -> None:
    w, window_list = plan
    write_timeline(repo / "data/u", rows, SCHEMA)
    store = fresh_store(repo, backend, request)
    full = fresh_store(repo, backend, request)
    if engine == "spark":  # materialize through Spark; the one full run stays on DuckDB
        duckdb_store, store = store, on_spark(store)
        duckdb_store.close()
    try:
        for start, end in window_list:
            store.materialize(start, end)
        full.materialize(T0, w)
        below = [r for r in rows if r["event_ts"] is not None and r["event_ts"] < w]
        for view, ttl in TTLS.items():
            if window_list:
                watermark = store.get_feature_view(view).watermark
                assert watermark is not None
                assert watermark <= w
            newest = latest_in_window(rows, T0, w, join_keys=["user_id"])
            for t in times:
                got = store.get_online_features(
                    [f"{view}:f_int", f"{view}:f_str"],
                    {"user_id": USERS},
                    request_time=t,
                )
                expected = pit_oracle(
                    [{"user_id": u, "event_timestamp": t} for u in USERS],
                    below,
                    join_keys=["user_id"],
                    features=["f_int", "f_str"],
                    ttl=ttl,
                )
                values = got.to_dict()
                for i, user in enumerate(USERS):
                    status = got.statuses["f_int"][i]
                    actual = {"f_int": values["f_int"][i], "f_str": values["f_str"][i]}
                    stored = newest.get((user,))
                    if stored is None:
                        assert status == "NOT_FOUND"
                        assert actual == {"f_int": None, "f_str": None} == expected[i]
                    elif t >= stored["event_ts"]:
                        in_ttl = ttl is None or stored["event_ts"] >= t - ttl
                        assert status == ("PRESENT" if in_ttl else "OUTSIDE_MAX_AGE")
                        assert actual == expected[i], (user, t, status)
                        assert got.event_timestamps["f_int"][i] == stored["event_ts"]
                    else:
                        assert status == "OUTSIDE_MAX_AGE"
                        assert actual == {"f_int": None, "f_str": None}
                    if status == "PRESENT":
                        assert actual == expected[i]
            requests = [ReadRequest(k, (view,)) for k in KEYS.encode_columns([USERS])]
            assert store.online.read_records(requests) == full.online.read_records(requests)
    finally:
        store.close()
        full.close()


def test_naive_request_time_means_utc(repo: Path, request: pytest.FixtureRequest) -> None:
    rows = [
        {"user_id": 1, "event_ts": BASE, "created_ts": None, "f_int": 5, "f_str": "x", "file": 0}
    ]
    write_timeline(repo / "data/u", rows, SCHEMA)
    store = fresh_store(repo, "sqlite", request)
    try:
        store.materialize(T0, BASE + timedelta(seconds=1))
        naive = (BASE + TTL).astimezone(UTC).replace(tzinfo=None)
        got = store.get_online_features(["u_ttl:f_int"], [{"user_id": 1}], request_time=naive)
        assert got.to_dict() == {"user_id": [1], "f_int": [5]}
        later = naive + timedelta(microseconds=1)
        got = store.get_online_features(["u_ttl:f_int"], [{"user_id": 1}], request_time=later)
        assert got.statuses["f_int"] == ["OUTSIDE_MAX_AGE"]
    finally:
        store.close()
