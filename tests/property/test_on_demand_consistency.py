"""G2 with G3: on-demand features are the same in training frames, online reads and over HTTP.

One repo with a polars-mode view, a python-mode view and a view reading another view's
outputs, over stored features with nulls (and a Timestamp). Random entity rows (known and
unknown users, random request fields incl. nulls) are answered by the training frame (whole,
and in record batches of one row), by ``get_online_features`` (the whole batch and each row
alone) and by the HTTP server; every on-demand output must be equal everywhere.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore import FeatureStore
from featurestore.serving.app import create_app
from tests.conftest import make_repo, write_parquet
from tests.integration.test_http_support import running_server

FEATURES_PY = """
import polars as pl
from featurestore import (Entity, FeatureService, FeatureView, Field, ParquetSource,
                          RequestSource, on_demand_feature_view)
from featurestore.types import Bool, Float64, Int64, String, Timestamp

user = Entity("user", join_keys=["user_id"])
user_stats = FeatureView(
    name="user_stats",
    entities=[user],
    source=ParquetSource(path="data/user_stats.parquet", timestamp_field="event_timestamp"),
    schema=[Field("avg_amount", Float64), Field("txn_count", Int64), Field("segment", String),
            Field("last_seen", Timestamp)],
)
txn = RequestSource("txn", schema=[Field("amount", Float64), Field("channel", String)])


@on_demand_feature_view(
    sources=[user_stats, txn],
    schema=[Field("amount_vs_avg", Float64), Field("is_big", Bool), Field("label", String),
            Field("seen_plus_day", Timestamp)],
)
def txn_features(df: pl.DataFrame) -> pl.DataFrame:
    return df.select(
        (pl.col("amount") / pl.col("avg_amount")).alias("amount_vs_avg"),
        (pl.col("amount") > 100).alias("is_big"),
        pl.concat_str([pl.col("segment"), pl.col("channel")], separator="/").alias("label"),
        (pl.col("last_seen") + pl.duration(days=1)).alias("seen_plus_day"),
    )


@on_demand_feature_view(
    sources=[user_stats[["txn_count"]], txn],
    schema=[Field("per_txn", Float64)],
    mode="python",
)
def per_txn(row: dict) -> dict:
    if row["amount"] is None or row["txn_count"] is None:
        return {"per_txn": None}
    return {"per_txn": row["amount"] / (row["txn_count"] + 1)}


@on_demand_feature_view(sources=[txn_features, per_txn], schema=[Field("score", Float64)])
def score(df: pl.DataFrame) -> pl.DataFrame:
    return df.select((pl.col("amount_vs_avg") * 2 + pl.col("per_txn")).alias("score"))


fraud = FeatureService("fraud", features=[user_stats[["avg_amount"]], txn_features, per_txn, score])
"""

ON_DEMAND = ["amount_vs_avg", "is_big", "label", "seen_plus_day", "per_txn", "score"]
BASE = datetime(2026, 1, 1, tzinfo=UTC)
USERS = list(range(1, 9))


def _write_source(repo: Path) -> None:
    rng = random.Random(5)
    rows: dict[str, list[Any]] = {
        "user_id": [],
        "event_timestamp": [],
        "avg_amount": [],
        "txn_count": [],
        "segment": [],
        "last_seen": [],
    }
    for user in USERS:
        for step in range(3):
            rows["user_id"].append(user)
            rows["event_timestamp"].append(BASE + timedelta(hours=user * 3 + step))
            rows["avg_amount"].append(rng.choice([None, 0.5, 12.25, 80.0, 1234.5]))
            rows["txn_count"].append(rng.choice([None, 0, 3, 41]))
            rows["segment"].append(rng.choice([None, "gold", "basic"]))
            rows["last_seen"].append(rng.choice([None, BASE - timedelta(days=3)]))
    ts = pa.timestamp("us", tz="UTC")
    schema = pa.schema(
        [
            ("user_id", pa.int64()),
            ("event_timestamp", ts),
            ("avg_amount", pa.float64()),
            ("txn_count", pa.int64()),
            ("segment", pa.string()),
            ("last_seen", ts),
        ]
    )
    write_parquet(repo / "data" / "user_stats.parquet", rows, schema)


class Env:
    def __init__(self, store: FeatureStore, url: str) -> None:
        self.store = store
        self.http = httpx.Client(base_url=url, timeout=10)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    online = "{type: sqlite, path: data/online.db}"
    if request.param == "redis":
        url = request.getfixturevalue("redis_server_url")
        prefix = f"fsodfv{tmp_path_factory.mktemp('k').name[-6:]}"
        online = f"{{type: redis, url: '{url}', key_prefix: {prefix}}}"
    yaml = f"project: odfv\nregistry: data/registry.json\nonline_store: {online}\n"
    repo = make_repo(tmp_path_factory.mktemp("odfv") / "repo", FEATURES_PY, yaml=yaml)
    _write_source(repo)
    store = FeatureStore(repo)
    store.apply()
    store.materialize(BASE - timedelta(days=1), BASE + timedelta(days=2))
    with running_server(create_app(repo_path=repo)) as url:
        env = Env(store, url)
        yield env
        env.http.close()
    store.close()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return bool(a == b)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


amounts = st.one_of(st.none(), st.sampled_from([0.0, 1.5, 99.0, 100.0, 250.75, -3.0]))
channels = st.one_of(st.none(), st.sampled_from(["web", "pos", ""]))
rows_strategy = st.lists(
    st.tuples(st.sampled_from([*USERS, 404]), amounts, channels), min_size=1, max_size=12
)


@settings(max_examples=25)
@given(rows=rows_strategy)
def test_on_demand_outputs_equal_in_training_online_and_http(env: Env, rows: list[Any]) -> None:
    now = datetime.now(tz=UTC)
    entity_df = pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "event_timestamp": [now] * len(rows),
            "amount": [r[1] for r in rows],
            "channel": [r[2] for r in rows],
        },
        schema={
            "user_id": pl.Int64,
            "event_timestamp": pl.Datetime("us", "UTC"),
            "amount": pl.Float64,
            "channel": pl.String,
        },
    )
    frame = env.store.get_training_frame(entity_df, "fraud")
    offline = frame.to_polars()
    assert offline.columns == [
        "user_id",
        "event_timestamp",
        "amount",
        "channel",
        "avg_amount",
        *ON_DEMAND,
    ]
    batched = pl.concat([pl.from_arrow(b) for b in frame.record_batches(1)])  # type: ignore[misc]
    assert batched.equals(offline)

    entity_rows = [{"user_id": u, "amount": a, "channel": c} for u, a, c in rows]
    online = env.store.get_online_features("fraud", entity_rows, request_time=now)
    online_dict = online.to_dict()
    assert online.to_arrow().schema.field("score").type == pa.float64()
    for name in ON_DEMAND:
        assert online.to_polars().get_column(name).dtype == offline.get_column(name).dtype
    body = {
        "entities": {
            "user_id": [r[0] for r in rows],
            "amount": [r[1] for r in rows],
            "channel": [r[2] for r in rows],
        },
        "feature_service": "fraud",
    }
    response = env.http.post("/get-online-features", json=body)
    assert response.status_code == 200, response.text
    wire = response.json()
    names = wire["metadata"]["feature_names"]
    for index, row in enumerate(rows):
        alone = env.store.get_online_features(
            "fraud", [entity_rows[index]], request_time=now
        ).to_dict()
        for name in ON_DEMAND:
            expected = offline.get_column(name)[index]
            assert _same(online_dict[name][index], expected), (name, row)
            assert _same(alone[name][0], expected), (name, row)
            http_value = wire["results"][names.index(name)]["values"][index]
            assert _same(http_value, _json_value(expected)), (name, row, http_value)


def test_on_demand_status_follows_stored_inputs(env: Env) -> None:
    response = env.store.get_online_features(
        ["txn_features:amount_vs_avg", "user_stats:avg_amount"],
        [
            {"user_id": 1, "amount": 5.0, "channel": "web"},
            {"user_id": 404, "amount": 5.0, "channel": "web"},
        ],
    )
    statuses = response.to_dict(include_statuses=True, include_event_timestamps=True)
    assert statuses["amount_vs_avg__status"] == ["PRESENT", "NOT_FOUND"]
    assert statuses["amount_vs_avg__event_timestamp"][0] == BASE + timedelta(hours=5)
    assert statuses["amount_vs_avg__event_timestamp"][1] is None
    assert list(response.features) == ["amount_vs_avg", "avg_amount"]


def test_request_field_missing_is_an_entity_frame_error_on_both_paths(env: Env) -> None:
    from featurestore.errors import EntityFrameError

    with pytest.raises(EntityFrameError, match="request field 'channel'"):
        env.store.get_online_features("fraud", [{"user_id": 1, "amount": 5.0}])
    entity_df = pl.DataFrame({"user_id": [1], "event_timestamp": [BASE], "amount": [1.0]})
    with pytest.raises(EntityFrameError, match="'channel'"):
        env.store.get_training_frame(entity_df, "fraud")
    response = env.http.post(
        "/get-online-features",
        json={"entities": {"user_id": [1], "amount": [1.0]}, "features": ["per_txn:per_txn"]},
    )
    assert response.status_code == 422
    assert "channel" in response.text
