"""Materialization from the Spark executors: a failed partition keeps the watermark (G3).

The property test of online reads against the oracle runs on Spark in
``test_online_offline.py`` (SQLite and Redis). Here: an online store that refuses one key's
write part-way through the job (a real SQLite trigger; a real Redis key of another type)
fails the materialization; the watermark stays, every key serves its old value or its new
one, and a rerun once the store accepts the write stores exactly what one DuckDB run does.
Each store's :meth:`opener`, which the executors use, pickles and opens the same store.
"""

from __future__ import annotations

import functools
import pickle
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pytest
import redis

from featurestore.errors import MaterializationError, OnlineStoreError
from featurestore.online.base import ReadRequest
from featurestore.online.codec import KeyEncoder
from featurestore.repo.config import SqliteOnlineStoreConfig
from featurestore.types import Int64
from tests.conftest import fresh_store, make_repo, write_parquet
from tests.spark_engine import on_spark
from tests.strategies import BASE

if TYPE_CHECKING:
    from collections.abc import Callable

    from featurestore import FeatureStore

FEATURES_PY = """
from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Int64

user = Entity("user", join_keys=["user_id"])
users = ParquetSource("data/u/*.parquet", timestamp_field="ts")
u = FeatureView(name="u", entities=[user], source=users, schema=[Field("f_int", Int64)])
"""
KEYS = KeyEncoder({"user_id": Int64})
OLD_KEYS = list(range(60))
REFUSED = 60
"""A key with a row in the second window only; the store refuses its write."""
T0, MID, END = BASE, BASE + timedelta(seconds=2), BASE + timedelta(seconds=4)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_repo(tmp_path_factory.mktemp("spark_mat"), FEATURES_PY)
    schema = pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC"))])
    schema = schema.append(pa.field("f_int", pa.int64()))
    rows: list[tuple[str, datetime, list[int], int]] = [
        ("old", BASE + timedelta(seconds=1), OLD_KEYS, 0),
        ("new", BASE + timedelta(seconds=3), [*OLD_KEYS, REFUSED], 1000),
    ]
    for name, event, keys, value in rows:
        write_parquet(
            root / f"data/u/{name}.parquet",
            {"user_id": [*keys], "ts": [event] * len(keys), "f_int": [k + value for k in keys]},
            schema,
        )
    return root


def refuse(store: FeatureStore, key: int) -> Callable[[], None]:
    """Make ``store`` refuse writes of ``key``; returns what makes it accept them again."""
    entity_key = KEYS.encode_columns([[key]])[0]
    config = store.config.online_store
    if isinstance(config, SqliteOnlineStoreConfig):
        path = store.repo_root / config.path
        with sqlite3.connect(path) as conn:
            conn.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON online_records "
                f"WHEN NEW.entity_key = X'{entity_key.hex()}' "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        return functools.partial(_run_sql, path, "DROP TRIGGER refuse")
    client = redis.Redis.from_url(config.url)
    name = f"{config.key_prefix}:{store.config.project}:".encode() + entity_key
    client.set(name, b"not a hash: refused by the test")
    return functools.partial(_delete, client, name)


def _run_sql(path: Path, sql: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(sql)


def _delete(client: redis.Redis, name: bytes) -> None:
    client.delete(name)
    client.close()


def f_int(store: FeatureStore, keys: list[int]) -> list[int | None]:
    got = store.get_online_features(["u:f_int"], {"user_id": keys}, request_time=END)
    values: list[int | None] = got.to_dict()["f_int"]
    return values


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def test_failed_partition_keeps_watermark_and_old_values(
    repo: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    duckdb_store = fresh_store(repo, backend, request)
    store = on_spark(duckdb_store)
    duckdb_store.close()
    full = fresh_store(repo, backend, request)
    try:
        store.materialize(T0, MID)
        assert store.get_feature_view("u").watermark == MID
        assert f_int(store, OLD_KEYS) == OLD_KEYS

        accept = refuse(store, REFUSED)
        # SQLite: the trigger's message; Redis: the store's error about a key not its own.
        refused = r"on a Spark executor: featurestore\.errors\.OnlineStore\w*Error: "
        refused += r".*(refused by the test|is a string)"
        with pytest.raises(MaterializationError, match=refused):
            store.materialize(MID, END)
        assert store.get_feature_view("u").watermark == MID
        # Partitions that finished wrote valid records; the others' keys keep their old ones.
        values = f_int(store, OLD_KEYS)
        assert all(v in (k, k + 1000) for k, v in zip(OLD_KEYS, values, strict=True)), values
        accept()
        assert f_int(store, [REFUSED]) == [None]

        report = store.materialize(MID, END)
        assert report.rows == len(OLD_KEYS) + 1
        assert store.get_feature_view("u").watermark == END
        assert f_int(store, [*OLD_KEYS, REFUSED]) == [k + 1000 for k in [*OLD_KEYS, REFUSED]]
        full.materialize(T0, END)
        requests = [ReadRequest(k, ("u",)) for k in KEYS.encode_columns([[*OLD_KEYS, REFUSED]])]
        assert store.online.read_records(requests) == full.online.read_records(requests)
    finally:
        store.close()
        full.close()


@pytest.mark.parametrize(
    "backend",
    [
        "sqlite",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("redis-cluster", marks=pytest.mark.redis),
    ],
)
def test_opener_pickles_and_opens_the_same_store(
    repo: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    store = fresh_store(repo, backend, request)
    try:
        store.materialize(T0, MID)
        opened = pickle.loads(pickle.dumps(store.online.opener()))()
        try:
            assert opened.read_epoch() == store.online.read_epoch() is not None
            assert opened.count_records("u") == len(OLD_KEYS)
        finally:
            opened.close()
    finally:
        store.close()


def test_sqlite_opener_refuses_another_machine_or_file(
    repo: Path, request: pytest.FixtureRequest
) -> None:
    """Only the very file is reopened: not on another machine, and not another file at the
    same path here (a container with the same hostname, a replaced file), never created."""
    store = fresh_store(repo, "sqlite", request)
    try:
        opener = store.online.opener()
        assert isinstance(opener, functools.partial)
        path, timeout_s, (host, device, inode) = opener.args
        elsewhere = functools.partial(
            opener.func, path, timeout_s, ("another-machine", device, inode)
        )
        with pytest.raises(OnlineStoreError, match=r"file on another-machine.*Redis online store"):
            elsewhere()
        another_file = functools.partial(opener.func, path, timeout_s, (host, device, inode + 1))
        with pytest.raises(OnlineStoreError, match=r"another file at .* here"):
            another_file()
        missing = functools.partial(
            opener.func, path.with_name("gone.db"), timeout_s, (host, device, inode)
        )
        with pytest.raises(OnlineStoreError, match=r"another file at"):
            missing()
        assert not path.with_name("gone.db").exists()
        opener().close()  # the file itself opens
    finally:
        store.close()
