"""Async reads (``AsyncReads``, what the server awaits on its event loop) against blocking reads.

Redis implements them: the same records, epoch and errors as ``read_records``/``read_epoch``.
SQLite does not (a local file, read inline); for both stores ``aget_online_features`` answers
exactly what ``get_online_features`` answers.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from featurestore import FeatureStore
from featurestore._busy import counted_requests
from featurestore.errors import OnlineStoreIntegrityError
from featurestore.online.base import AsyncReads, OnlineStore, ReadRequest
from featurestore.online.codec import KeyEncoder, RecordCodec
from featurestore.online.sqlite import SqliteOnlineStore
from featurestore.repo.config import RedisOnlineStoreConfig
from featurestore.types import Int64
from tests.conftest import make_repo, utc, write_parquet

KEYS = KeyEncoder({"user_id": Int64})
CODEC = RecordCodec([Int64], fingerprint="00112233445566aa")


async def _aread(store: Any, requests: list[ReadRequest], *, lone: bool = False) -> tuple[Any, Any]:
    """Both async reads; with ``lone``, as the server's only request (read on the socket)."""
    if lone:
        counted_requests(asyncio.get_running_loop()).value = 1
    try:
        return await store.aread_records(requests), await store.aread_epoch()
    finally:
        await store.aclose()


async def _aread_epoch(store: Any) -> Any:
    try:
        return await store.aread_epoch()
    finally:
        await store.aclose()


def test_sqlite_is_read_inline(tmp_path: Path) -> None:
    store = SqliteOnlineStore(tmp_path / "online.db")
    try:
        assert not isinstance(store, AsyncReads)
    finally:
        store.close()


@pytest.mark.redis
@given(
    stored=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 9)), max_size=15),
    asked=st.lists(st.integers(0, 12), max_size=10),
    with_epoch=st.booleans(),
    lone=st.booleans(),
)
def test_async_reads_return_what_blocking_reads_return(
    online_store: OnlineStore,
    stored: list[tuple[int, int]],
    asked: list[int],
    with_epoch: bool,
    lone: bool,
) -> None:
    if not isinstance(online_store, AsyncReads):
        return  # SQLite: read inline (test_sqlite_is_read_inline)
    views = [f"v_{uuid.uuid4().hex[:8]}" for _ in range(3)]
    for view, user in stored:
        record = CODEC.encode_rows([user], [None], [[user * 10 + view]])
        online_store.write_records(views[view], KEYS.encode_columns([[user]]), record)
    if with_epoch:
        online_store.ensure_epoch()
    requests = [ReadRequest(KEYS.encode_columns([[u]])[0], tuple(views[u % 3 :])) for u in asked]
    records, epoch = asyncio.run(_aread(online_store, requests, lone=lone))
    assert records == online_store.read_records(requests)
    assert epoch == online_store.read_epoch()


@pytest.mark.redis
def test_a_foreign_key_fails_async_reads_as_blocking_reads(
    redis_server_url: str, redis_key_prefix: str
) -> None:
    from featurestore.online.redis import RedisOnlineStore

    config = RedisOnlineStoreConfig(type="redis", url=redis_server_url, key_prefix=redis_key_prefix)
    store = RedisOnlineStore(config, project="contract")
    client = redis.Redis.from_url(redis_server_url)
    key = KEYS.encode_columns([[3]])[0]
    client.set(f"{redis_key_prefix}:contract:".encode() + key, "not ours")
    client.hset(f"{redis_key_prefix}:contract:__epoch__", "a", "b")
    try:
        requests = [ReadRequest(KEYS.encode_columns([[u]])[0], ("v",)) for u in (1, 3)]
        with pytest.raises(OnlineStoreIntegrityError) as blocking:
            store.read_records(requests)
        with pytest.raises(OnlineStoreIntegrityError) as awaited:
            asyncio.run(_aread(store, requests))
        assert str(awaited.value) == str(blocking.value)
        assert "is a string" in str(awaited.value)
        with pytest.raises(OnlineStoreIntegrityError) as epoch:
            asyncio.run(_aread_epoch(store))
        assert "__epoch__' is a hash" in str(epoch.value)
    finally:
        for name in client.scan_iter(match=f"{redis_key_prefix}:*"):
            client.delete(name)
        store.close()


FEATURES_PY = """
from datetime import timedelta
from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Int64

user = Entity("user", join_keys=["user_id"])
stats = FeatureView(name="stats", entities=[user], ttl=timedelta(days=2),
                    source=ParquetSource("data/s.parquet", timestamp_field="ts"),
                    schema=[Field("cnt", Int64)])
"""


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("redis-cluster", marks=pytest.mark.redis),
    ]
)
def feature_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FeatureStore]:
    root = make_repo(tmp_path / "repo", FEATURES_PY)
    write_parquet(
        root / "data/s.parquet",
        {
            "user_id": [1, 2, 3, 1],
            "ts": [utc(2026, 1, 1), utc(2026, 1, 2), utc(2026, 1, 3), utc(2026, 1, 4)],
            "cnt": [5, None, 7, 8],
        },
    )
    store = FeatureStore(root)
    if request.param != "sqlite":
        cluster = request.param == "redis-cluster"
        url = request.getfixturevalue("redis_cluster_url" if cluster else "redis_server_url")
        online = RedisOnlineStoreConfig(
            type="redis",
            url=url,
            key_prefix=request.getfixturevalue("redis_key_prefix"),
            cluster=cluster,
        )
        store = FeatureStore(root, config=store.config.model_copy(update={"online_store": online}))
    store.apply()
    store.materialize(utc(2026, 1, 1), utc(2026, 1, 5))
    yield store
    store.close()


@given(
    users=st.lists(st.integers(0, 4), max_size=8),
    day=st.integers(1, 8),
)
def test_aget_online_features_answers_what_get_online_features_answers(
    feature_store: FeatureStore, users: list[int], day: int
) -> None:
    # Days 1..8 cross every status: too new, in the 2-day ttl, too old; users 0 and 4 unknown.
    at = utc(2026, 1, day)

    async def lookup() -> dict[str, Any]:
        try:
            got = await feature_store.aget_online_features(
                ["stats:cnt"], {"user_id": users}, request_time=at
            )
            return got.to_dict(include_statuses=True)
        finally:
            await feature_store.aclose_connections()

    expected = feature_store.get_online_features(["stats:cnt"], {"user_id": users}, request_time=at)
    assert asyncio.run(lookup()) == expected.to_dict(include_statuses=True)
