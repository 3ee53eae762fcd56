"""G7 through HTTP: a real server answers an aggregation view's features as the oracle does.

Random events of the last eight days (nulls in the column, equal times, events on hour
boundaries, keys without events), materialized into SQLite or Redis; a service mixes the
aggregation view with a plain view and an on-demand view that reads an aggregate. The server
computes at its own clock, so each answer is compared with the brute-force oracle at the
time the request was sent, when no hour boundary passed during the request (the window is
then the same at every instant of it).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from featurestore.serving.app import create_app
from tests.agg_oracle import Agg, agg_oracle, close, window_start
from tests.conftest import fresh_store, make_repo, write_parquet
from tests.integration.test_http_support import running_server
from tests.strategies import write_timeline

FEATURES_PY = """
from datetime import timedelta
import polars as pl
from featurestore import (Aggregation, Entity, FeatureService, FeatureView, Field,
                          ParquetSource, RequestSource, on_demand_feature_view)
from featurestore.types import Float64, Int64

user = Entity("user", join_keys=["user_id"])
h, d = timedelta(hours=1), timedelta(days=1)
windows = FeatureView("windows", entities=[user],
    source=ParquetSource("data/events", timestamp_field="ts", created_timestamp_field="created"),
    aggregations=[Aggregation(None, "count", h), Aggregation("amount", "sum", d),
                  Aggregation("amount", "mean", 7 * d), Aggregation("amount", "last", d),
                  Aggregation("amount", "stddev", 7 * d), Aggregation("amount", "max", 7 * d)])
profile = FeatureView("profile", entities=[user],
    source=ParquetSource("data/profile.parquet", timestamp_field="ts"),
    schema=[Field("tier", Int64)])

@on_demand_feature_view(
    sources=[windows[["amount_sum_1d"]], RequestSource("txn", schema=[Field("amount", Float64)])],
    schema=[Field("amount_minus_day", Float64)])
def vs_day(df: pl.DataFrame) -> pl.DataFrame:
    return df.select((pl.col("amount") - pl.col("amount_sum_1d")).alias("amount_minus_day"))

svc = FeatureService("svc", features=[windows, profile, vs_day])
"""
H, D = timedelta(hours=1), timedelta(days=1)
AGGS = [
    Agg("count_1h", None, "count", H),
    Agg("amount_sum_1d", "amount", "sum", D),
    Agg("amount_mean_7d", "amount", "mean", 7 * D),
    Agg("amount_last_1d", "amount", "last", D),
    Agg("amount_stddev_7d", "amount", "stddev", 7 * D),
    Agg("amount_max_7d", "amount", "max", 7 * D),
]
SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("created", pa.timestamp("us", tz="UTC")),
        ("amount", pa.float64()),
    ]
)
USERS = [1, 2, 3, 4]  # 4 never has an event
AMOUNTS = [10.0, 2.5, 7.25, 100.0]
ANCHOR = window_start(datetime.now(UTC), H, 2 * H)
"""Events sit up to 8 days before this hour boundary (two hours ago when the module loaded)."""


@st.composite
def events(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Events at whole minutes (often on the hour), ties, nulls; 3 files."""
    minute = st.one_of(st.integers(0, 8 * 24).map(lambda h: h * 60), st.integers(0, 8 * 24 * 60))
    rows = []
    for _ in range(draw(st.integers(0, 25))):
        ts = ANCHOR - timedelta(minutes=draw(minute))
        rows.append(
            {
                "user_id": draw(st.sampled_from([1, 2, 3, None])),
                "event_ts": ts,
                "created_ts": draw(st.sampled_from([None, ts])),
                "amount": draw(st.one_of(st.none(), st.sampled_from([1.0, 3.5, 20.0, 0.25]))),
                "file": draw(st.integers(0, 2)),
            }
        )
    return rows


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_repo(tmp_path_factory.mktemp("g7-http"), FEATURES_PY)
    write_parquet(
        root / "data/profile.parquet",
        {"user_id": [1, 2, 3, 4], "ts": [ANCHOR - 9 * D] * 4, "tier": [1, 2, 3, 4]},
    )
    return root


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
@settings(max_examples=6, deadline=None)
@given(rows=events())
def test_http_serves_the_oracle_aggregates(
    repo: Path, backend: str, request: pytest.FixtureRequest, rows: list[dict[str, Any]]
) -> None:
    write_timeline(repo / "data/events", rows, SCHEMA)
    store = fresh_store(repo, backend, request)
    try:
        store.materialize(ANCHOR - 10 * D, datetime.now(UTC))
        body = {"entities": {"user_id": USERS, "amount": AMOUNTS}, "feature_service": "svc"}
        with running_server(create_app(store)) as url:
            sent = datetime.now(UTC)
            answer = httpx.post(f"{url}/get-online-features", json=body, timeout=30).json()
            received = datetime.now(UTC)
        assume(window_start(sent, H, H) == window_start(received, H, H))
        names = answer["metadata"]["feature_names"]
        columns = dict(zip(names, answer["results"], strict=True))
        expected = agg_oracle(
            [{"user_id": u, "event_timestamp": sent} for u in USERS],
            rows,
            join_keys=["user_id"],
            aggs=AGGS,
            hop=H,
        )
        for agg in AGGS:
            assert columns[agg.name]["statuses"] == ["PRESENT"] * len(USERS), agg.name
            for i, value in enumerate(columns[agg.name]["values"]):
                assert close(value, expected[i][agg.name], scale=200.0), (agg.name, i, value)
        assert columns["tier"]["values"] == [1, 2, 3, 4]
        for i, value in enumerate(columns["amount_minus_day"]["values"]):
            day = expected[i]["amount_sum_1d"]
            assert close(value, None if day is None else AMOUNTS[i] - day, scale=200.0)
        # The SDK at the same instant gives the same answer.
        direct = store.get_online_features("svc", body["entities"], request_time=sent).to_dict()
        for agg in AGGS:
            assert direct[agg.name] == columns[agg.name]["values"], agg.name
        # And the training frame at that time, the on-demand view included.
        entity = pa.table(
            {
                "user_id": USERS,
                "amount": AMOUNTS,
                "event_timestamp": pa.array([sent] * len(USERS), pa.timestamp("us", tz="UTC")),
            }
        )
        frame = store.get_training_frame(entity, "svc").to_arrow().to_pydict()
        for name in [*(a.name for a in AGGS), "tier", "amount_minus_day"]:
            for got, served in zip(frame[name], columns[name]["values"], strict=True):
                assert close(got, served, scale=200.0), name
    finally:
        store.close()
