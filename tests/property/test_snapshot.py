"""Property: a snapshot at T equals the brute-force G1 oracle with every row at T, the training
frame of the same keys all at T, and online reads at T after materializing up to T + 1 us.

A real repo on disk, sources over several Parquet files (the position tie-break matters), ttl
boundaries on a whole-second grid with +-1 us neighbours, ties, null keys and null values,
composite keys, keys present in only one view, and both ``point_in_time`` modes.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore import FeatureStore
from featurestore.errors import EntityFrameError
from featurestore.repo.config import RedisOnlineStoreConfig, SqliteOnlineStoreConfig
from tests.conftest import make_repo
from tests.oracle import pit_oracle
from tests.strategies import BASE, TTL, entity_rows, feature_rows, grid_times, write_timeline

FEATURES_PY = """
from datetime import timedelta
import polars as pl
from featurestore import (Entity, FeatureView, Field, ParquetSource, RequestSource,
                          on_demand_feature_view)
from featurestore.types import Int64, String

user = Entity("user", join_keys=["user_id"])
merchant = Entity("merchant", join_keys=["merchant"])
users = ParquetSource("data/u", timestamp_field="ts", created_timestamp_field="created")
others = ParquetSource("data/v", timestamp_field="ts", created_timestamp_field="created")
schema = [Field("f_int", Int64), Field("f_str", String)]

u_nottl = FeatureView(name="u_nottl", entities=[user], source=users, schema=schema)
u_zero = FeatureView(name="u_zero", entities=[user], source=users, schema=schema,
                     ttl=timedelta(0))
u_ttl = FeatureView(name="u_ttl", entities=[user], source=users, schema=schema,
                    ttl=timedelta(seconds=5))
v_ttl = FeatureView(name="v_ttl", entities=[user], source=others, schema=schema,
                    ttl=timedelta(seconds=5))
m_ttl = FeatureView(name="m_ttl", entities=[user, merchant],
                    source=ParquetSource("data/m", timestamp_field="ts"),
                    schema=schema, ttl=timedelta(seconds=5))

@on_demand_feature_view(
    sources=[u_ttl[["f_int"]], RequestSource("req", schema=[Field("bump", Int64)])],
    schema=[Field("bumped", Int64)],
)
def u_plus(df: pl.DataFrame) -> pl.DataFrame:
    return df.select((pl.col("f_int") + pl.col("bump")).alias("bumped"))

@on_demand_feature_view(
    sources=[RequestSource("req2", schema=[Field("bump", Int64)])],
    schema=[Field("doubled", Int64)],
)
def doubled(df: pl.DataFrame) -> pl.DataFrame:
    return df.select((pl.col("bump") * 2).alias("doubled"))
"""

TTLS = {"u_nottl": None, "u_zero": None, "u_ttl": TTL, "v_ttl": TTL}
SOURCE_OF = {"u_nottl": "u", "u_zero": "u", "u_ttl": "u", "v_ttl": "v"}
U_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("created", pa.timestamp("us", tz="UTC")),
        ("f_int", pa.int64()),
        ("f_str", pa.string()),
    ]
)
M_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("merchant", pa.string()),
        ("ts", pa.timestamp("us")),  # naive on purpose: means UTC
        ("f_int", pa.int64()),
        ("f_str", pa.string()),
    ]
)
USERS = [1, 2, 3, 4, 99]
STAMP = pa.timestamp("us", tz="UTC")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_repo(tmp_path_factory.mktemp("snapshot"), FEATURES_PY)
    for name, schema in (("u", U_SCHEMA), ("v", U_SCHEMA), ("m", M_SCHEMA)):
        write_timeline(root / "data" / name, [], schema)
    return root


@pytest.fixture(scope="module")
def store(repo: Path) -> FeatureStore:
    fs = FeatureStore(repo)
    fs.apply()
    return fs


def candidate(row: dict[str, Any], t: Any, ttl: timedelta | None, point_in_time: str) -> bool:
    """Whether a source row is a candidate at ``t`` (G1, written out again)."""
    e = row["event_ts"]
    if e is None or row["user_id"] is None or e > t or (ttl and e < t - ttl):
        return False
    created = row["created_ts"]
    return point_in_time == "event" or created is None or created <= t


def keys_frame(users: list[int | None], t: Any) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array(users, pa.int64()),
            "event_timestamp": pa.array([t] * len(users), STAMP),
        }
    )


@settings(max_examples=40)
@given(
    u_rows=feature_rows(),
    v_rows=feature_rows(),
    t=grid_times(max_seconds=28),
    views=st.lists(st.sampled_from(sorted(TTLS)), min_size=1, max_size=3, unique=True),
    point_in_time=st.sampled_from(["event", "available"]),
)
def test_snapshot_of_every_key_equals_oracle_and_training_frame(
    store: FeatureStore, u_rows, v_rows, t, views, point_in_time
) -> None:
    write_timeline(store.repo_root / "data/u", u_rows, U_SCHEMA)
    write_timeline(store.repo_root / "data/v", v_rows, U_SCHEMA)
    rows_of = {"u": u_rows, "v": v_rows}
    features = [f"{v}:{f}" for v in views for f in ("f_int", "f_str")]
    snap = store.get_snapshot(
        features, t, full_feature_names=True, point_in_time=point_in_time
    ).to_arrow()

    users = sorted(
        {
            r["user_id"]
            for v in views
            for r in rows_of[SOURCE_OF[v]]
            if candidate(r, t, TTLS[v], point_in_time)
        }
    )
    expected = [{"user_id": u, "event_timestamp": t} for u in users]
    for view in views:
        values = pit_oracle(
            expected,
            rows_of[SOURCE_OF[view]],
            join_keys=["user_id"],
            features=["f_int", "f_str"],
            ttl=TTLS[view],
            point_in_time=point_in_time,
        )
        for row, vals in zip(expected, values, strict=True):
            row.update({f"{view}__{k}": v for k, v in vals.items()})
    assert snap.to_pylist() == expected

    train = store.get_training_frame(
        keys_frame(users, t), features, full_feature_names=True, point_in_time=point_in_time
    ).to_arrow()
    assert snap.schema == train.schema
    assert snap.equals(train)


@settings(max_examples=40)
@given(
    u_rows=feature_rows(),
    m_rows=feature_rows(composite=True, with_created=False),
    entities=entity_rows(composite=True),
    t=grid_times(max_seconds=28),
)
def test_snapshot_of_given_composite_keys_equals_oracle_and_training_frame(
    store: FeatureStore, u_rows, m_rows, entities, t
) -> None:
    write_timeline(store.repo_root / "data/u", u_rows, U_SCHEMA)
    write_timeline(store.repo_root / "data/m", m_rows, M_SCHEMA)
    keys = pa.table(
        {
            "user_id": pa.array([e["user_id"] for e in entities], pa.int64()),
            "merchant": pa.array([e["merchant"] for e in entities], pa.string()),
            "label": pa.array([e["label"] for e in entities], pa.int64()),
        }
    )
    features = ["m_ttl:f_str", "u_nottl:f_int", "m_ttl:f_int"]
    snap = store.get_snapshot(features, t, keys=keys, full_feature_names=True).to_arrow()

    at_t = [{**e, "event_timestamp": t} for e in entities]
    expected = [
        {
            "user_id": e["user_id"],
            "merchant": e["merchant"],
            "label": e["label"],
            "event_timestamp": t,
        }
        for e in entities
    ]
    m_vals = pit_oracle(
        at_t, m_rows, join_keys=["user_id", "merchant"], features=["f_int", "f_str"], ttl=TTL
    )
    u_vals = pit_oracle(at_t, u_rows, join_keys=["user_id"], features=["f_int"])
    for row, m, u in zip(expected, m_vals, u_vals, strict=True):
        row.update(
            {"m_ttl__f_str": m["f_str"], "u_nottl__f_int": u["f_int"], "m_ttl__f_int": m["f_int"]}
        )
    assert snap.to_pylist() == expected

    entity = keys.append_column("event_timestamp", pa.array([t] * keys.num_rows, STAMP))
    train = store.get_training_frame(entity, features, full_feature_names=True).to_arrow()
    assert snap.equals(train)


@settings(max_examples=25)
@given(
    u_rows=feature_rows(),
    t=grid_times(max_seconds=28),
    bump=st.integers(min_value=-5, max_value=5),
    as_column=st.booleans(),
)
def test_on_demand_snapshot_equals_training_frame(
    store: FeatureStore, u_rows, t, bump, as_column
) -> None:
    write_timeline(store.repo_root / "data/u", u_rows, U_SCHEMA)
    features = ["u_plus:bumped", "u_ttl:f_int"]
    if as_column:
        keys = pa.table(
            {"user_id": pa.array(USERS, pa.int64()), "bump": pa.array([bump] * 5, pa.int64())}
        )
        snap = store.get_snapshot(features, t, keys=keys).to_arrow()
    else:
        snap = store.get_snapshot(features, t, request={"bump": bump}).to_arrow()
    users = snap.column("user_id").to_pylist()
    if not as_column:
        assert users == sorted({r["user_id"] for r in u_rows if candidate(r, t, TTL, "event")})
    entity = pa.table(
        {
            "user_id": pa.array(users, pa.int64()),
            "event_timestamp": pa.array([t] * len(users), STAMP),
            "bump": pa.array([bump] * len(users), pa.int64()),
        }
    )
    if as_column:  # the keys frame's columns come first, then the time
        entity = entity.select(["user_id", "bump", "event_timestamp"])
    train = store.get_training_frame(entity, features).to_arrow()
    assert snap.equals(train)
    f_int = pit_oracle(
        [{"user_id": u, "event_timestamp": t} for u in users],
        u_rows,
        join_keys=["user_id"],
        features=["f_int"],
        ttl=TTL,
    )
    assert snap.column("f_int").to_pylist() == [v["f_int"] for v in f_int]
    assert snap.column("bumped").to_pylist() == [
        None if v["f_int"] is None else v["f_int"] + bump for v in f_int
    ]


def fresh_store(repo: Path, backend: str, request: pytest.FixtureRequest) -> FeatureStore:
    """A FeatureStore on ``repo`` with its own registry and an empty online store."""
    tag = uuid.uuid4().hex[:10]
    base = FeatureStore(repo).config
    if backend == "sqlite":
        online: Any = SqliteOnlineStoreConfig(path=f"data/online-{tag}.db")
    else:
        url = request.getfixturevalue("redis_server_url")
        online = RedisOnlineStoreConfig(type="redis", url=url, key_prefix=f"fstest-snap-{tag}")
    config = base.model_copy(
        update={"registry": f"data/registry-{tag}.json", "online_store": online}
    )
    fs = FeatureStore(repo, config=config)
    fs.apply()
    return fs


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
@settings(max_examples=15)
@given(u_rows=feature_rows(), t=grid_times(max_seconds=28))
def test_snapshot_equals_online_reads_after_materializing_through_t(
    repo: Path, backend: str, request: pytest.FixtureRequest, u_rows, t
) -> None:
    write_timeline(repo / "data/u", u_rows, U_SCHEMA)
    fs = fresh_store(repo, backend, request)
    try:
        fs.materialize(BASE - timedelta(seconds=1), t + timedelta(microseconds=1))
        for view in ("u_ttl", "u_nottl"):
            features = [f"{view}:f_int", f"{view}:f_str"]
            snap = fs.get_snapshot(features, t).to_arrow().to_pylist()
            by_user = {r["user_id"]: (r["f_int"], r["f_str"]) for r in snap}
            online = fs.get_online_features(features, {"user_id": USERS}, request_time=t).to_dict()
            got = dict(zip(USERS, zip(online["f_int"], online["f_str"], strict=True), strict=True))
            assert got == {u: by_user.get(u, (None, None)) for u in USERS}
            assert set(by_user) <= set(USERS)
    finally:
        fs.close()


def test_on_demand_view_of_request_fields_only_needs_keys(store: FeatureStore) -> None:
    with pytest.raises(EntityFrameError, match="no keys to list"):
        store.get_snapshot(["doubled:doubled"], BASE, request={"bump": 2})
    keys = pa.table({"user_id": pa.array([7, None], pa.int64())})
    snap = store.get_snapshot(["doubled:doubled"], BASE, keys=keys, request={"bump": 2})
    assert snap.to_arrow().to_pylist() == [
        {"user_id": 7, "event_timestamp": BASE, "bump": 2, "doubled": 4},
        {"user_id": None, "event_timestamp": BASE, "bump": 2, "doubled": 4},
    ]
