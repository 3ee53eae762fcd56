"""Online reads: entity row validation, output shape and types, ttl boundaries, statuses."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from featurestore import FeatureStore
from featurestore.errors import (
    DefinitionError,
    EntityFrameError,
    FeatureNotFoundError,
    OnlineStoreUnavailableError,
)
from featurestore.repo.config import RedisOnlineStoreConfig
from tests.conftest import make_repo, utc, write_parquet

FEATURES_PY = """
from datetime import timedelta
from featurestore import Entity, FeatureService, FeatureView, Field, ParquetSource
from featurestore.types import Array, Bool, Float32, Int64, String, Timestamp

user = Entity("user", join_keys=["user_id"])
merchant = Entity("merchant", join_keys=["merchant"])
profile = FeatureView(
    name="profile", entities=[user],
    source=ParquetSource("data/profile.parquet", timestamp_field="ts"),
    schema=[Field("age", Int64), Field("score", Float32), Field("name", String),
            Field("vip", Bool), Field("seen", Timestamp), Field("tags", Array(String))],
    ttl=timedelta(hours=1),
)
pair = FeatureView(
    name="pair", entities=[user, merchant],
    source=ParquetSource("data/pair.parquet", timestamp_field="ts"),
    schema=[Field("age", Int64)],
)
svc = FeatureService("svc", features=[profile[["age", "name"]], pair])
"""
T = utc(2026, 1, 1, 12)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FeatureStore]:
    root = make_repo(tmp_path / "repo", FEATURES_PY)
    write_parquet(
        root / "data/profile.parquet",
        {
            "user_id": [1, 2, 3],
            "ts": [T, T - timedelta(minutes=30), T + timedelta(minutes=1)],
            "age": [30, None, 50],
            "score": [0.5, 1.25, None],
            "name": ["ann", "bob", None],
            "vip": [True, None, False],
            "seen": [utc(2025, 5, 1), None, utc(2025, 5, 3)],
            "tags": [["a", None], [], None],
        },
    )
    write_parquet(
        root / "data/pair.parquet",
        {"user_id": [1, 1], "merchant": ["m1", "m2"], "ts": [T, T], "age": [7, 8]},
    )
    fs = FeatureStore(root)
    fs.apply()
    fs.materialize(utc(2026, 1, 1), utc(2026, 1, 2))
    yield fs
    fs.close()


ALL = [f"profile:{f}" for f in ("age", "score", "name", "vip", "seen", "tags")]


def test_values_statuses_and_join_keys_first(store: FeatureStore) -> None:
    got = store.get_online_features(
        ALL, [{"user_id": 1}, {"user_id": 2}, {"user_id": 9}, {"user_id": 1}], request_time=T
    )
    out = got.to_dict()
    assert list(out) == ["user_id", "age", "score", "name", "vip", "seen", "tags"]
    assert out["user_id"] == [1, 2, 9, 1]
    assert out["age"] == [30, None, None, 30]
    assert out["score"] == [0.5, 1.25, None, 0.5]
    assert out["vip"] == [True, None, None, True]
    assert out["seen"] == [utc(2025, 5, 1), None, None, utc(2025, 5, 1)]
    assert out["tags"] == [["a", None], [], None, ["a", None]]
    assert got.statuses["age"] == ["PRESENT", "PRESENT", "NOT_FOUND", "PRESENT"]
    assert got.event_timestamps["age"] == [T, T - timedelta(minutes=30), None, T]


def test_ttl_is_inclusive_and_future_rows_are_not_served(store: FeatureStore) -> None:
    edge = T - timedelta(minutes=30) + timedelta(hours=1)
    got = store.get_online_features(["profile:age"], {"user_id": [2, 3]}, request_time=edge)
    assert got.statuses["age"] == ["PRESENT", "PRESENT"]
    later = edge + timedelta(microseconds=1)
    got = store.get_online_features(["profile:age"], {"user_id": [2, 3]}, request_time=later)
    assert got.statuses["age"] == ["OUTSIDE_MAX_AGE", "PRESENT"]
    # User 3's row is one minute after T: at T it did not exist yet.
    got = store.get_online_features(["profile:age"], {"user_id": [3]}, request_time=T)
    assert got.statuses["age"] == ["OUTSIDE_MAX_AGE"]
    assert got.to_dict()["age"] == [None]
    got = store.get_online_features(
        ["profile:age"], {"user_id": [3]}, request_time=T + timedelta(minutes=1)
    )
    assert got.to_dict(include_statuses=True) == {
        "user_id": [3],
        "age": [50],
        "age__status": ["PRESENT"],
    }


def test_service_composite_keys_and_full_names(store: FeatureStore) -> None:
    with pytest.raises(DefinitionError, match="full_feature_names=True"):
        store.get_online_features("svc", [{"user_id": 1, "merchant": "m1"}])
    got = store.get_online_features(
        "svc",
        {"user_id": [1, 1, 2], "merchant": ["m2", "m1", "m1"]},
        full_feature_names=True,
        request_time=T,
    )
    assert got.to_dict() == {
        "user_id": [1, 1, 2],
        "merchant": ["m2", "m1", "m1"],
        "profile__age": [30, 30, None],
        "profile__name": ["ann", "ann", "bob"],
        "pair__age": [8, 7, None],
    }
    assert got.statuses["pair__age"] == ["PRESENT", "PRESENT", "NOT_FOUND"]


def test_output_types_match_the_training_frame(store: FeatureStore) -> None:
    online = store.get_online_features(ALL, {"user_id": [1, 2]}, request_time=T).to_polars()
    entity = pl.DataFrame({"user_id": [1, 2], "event_timestamp": [T, T]})
    training = store.get_training_frame(entity, ALL).to_polars().drop("event_timestamp")
    assert online.schema == training.schema
    assert online.to_dicts() == training.to_dicts()
    pandas = store.get_online_features(ALL, {"user_id": [1, 2]}, request_time=T).to_pandas()
    expected = store.get_training_frame(entity, ALL).to_pandas().drop(columns="event_timestamp")
    assert list(pandas.dtypes) == list(expected.dtypes)


def test_feature_columns_follow_the_request_order(store: FeatureStore) -> None:
    # Refs of one view around a ref of another: the response keeps the refs' order, as the
    # training frame does (docs/serving.md), not one view's features after the other's.
    features = ["profile:age", "pair:age", "profile:name"]
    rows = {"user_id": [1], "merchant": ["m1"]}
    got = store.get_online_features(features, rows, full_feature_names=True, request_time=T)
    columns = ["user_id", "merchant", "profile__age", "pair__age", "profile__name"]
    assert list(got.to_dict()) == columns
    assert list(got.statuses) == list(got.event_micros) == columns[2:]
    assert got.to_dict() == {
        "user_id": [1],
        "merchant": ["m1"],
        "profile__age": [30],
        "pair__age": [7],
        "profile__name": ["ann"],
    }
    entity = pl.DataFrame({**rows, "event_timestamp": [T]})
    training = store.get_training_frame(entity, features, full_feature_names=True).to_polars()
    assert [c for c in training.columns if c != "event_timestamp"] == columns


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"user": 1}], "Entity row 0 has no join key 'user_id'"),
        ({"uid": [1]}, "no join key column 'user_id'"),
        ([{"user_id": "7"}], "must be Int64, but got '7'"),
        ([{"user_id": 7.5}], "must be Int64, but got 7.5"),
        ([{"user_id": True}], "must be Int64, but got True"),
        ([{"user_id": None}], "is null"),
        ([{"user_id": 2**64}], "outside the 64-bit range"),
        ({"user_id": [1, 2], "amount": [1.0]}, "different lengths"),
        ("user_id=1", "list of dicts"),
    ],
)
def test_bad_entity_rows_fail_before_any_lookup(tmp_path: Path, rows, message: str) -> None:
    # The online store is an unreachable Redis: validation must fail first, without I/O.
    root = make_repo(tmp_path / "repo", FEATURES_PY)
    write_parquet(
        root / "data/profile.parquet",
        {
            "user_id": [1],
            "ts": [T],
            "age": [1],
            "score": [1.0],
            "name": ["a"],
            "vip": [True],
            "seen": [T],
            "tags": [["x"]],
        },
    )
    write_parquet(
        root / "data/pair.parquet", {"user_id": [1], "merchant": ["m"], "ts": [T], "age": [1]}
    )
    store = FeatureStore(root)
    store.apply()
    dead = RedisOnlineStoreConfig(type="redis", url="redis://127.0.0.1:1/0", timeout_s=0.2)
    store = FeatureStore(root, config=store.config.model_copy(update={"online_store": dead}))
    with pytest.raises(EntityFrameError, match=message):
        store.get_online_features(["profile:age"], rows)
    with pytest.raises(OnlineStoreUnavailableError, match="unreachable"):
        store.get_online_features(["profile:age"], [{"user_id": 1}])
    store.close()


def test_unknown_feature_names_the_closest(store: FeatureStore) -> None:
    with pytest.raises(FeatureNotFoundError, match="Did you mean 'profile:age'"):
        store.get_online_features(["profile:agee"], [{"user_id": 1}])


def test_empty_request_returns_empty_columns(store: FeatureStore) -> None:
    got = store.get_online_features(["profile:age"], {"user_id": []})
    assert got.to_dict() == {"user_id": [], "age": []}
    assert len(got) == 0
