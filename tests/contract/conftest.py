"""One OnlineStore fixture parametrized over every store: SQLite, a real Redis and a Redis Cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from featurestore.online.base import OnlineStore
from featurestore.online.sqlite import SqliteOnlineStore
from featurestore.repo.config import RedisOnlineStoreConfig


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("redis-cluster", marks=pytest.mark.redis),
    ]
)
def online_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    if request.param == "sqlite":
        store: OnlineStore = SqliteOnlineStore(tmp_path / "online.db")
        yield store
        store.close()
        return
    if request.param == "redis-cluster":
        from featurestore.online.redis_cluster import RedisClusterOnlineStore

        cluster = request.getfixturevalue("redis_cluster")
        prefix = request.getfixturevalue("redis_key_prefix")
        config = RedisOnlineStoreConfig(
            type="redis", url=cluster.url, key_prefix=prefix, cluster=True
        )
        cluster_store = RedisClusterOnlineStore(config, project="contract")
        yield cluster_store
        cluster.delete_prefix(f"{prefix}:")
        cluster_store.close()
        return
    from featurestore.online.redis import RedisOnlineStore

    url = request.getfixturevalue("redis_server_url")
    prefix = request.getfixturevalue("redis_key_prefix")
    redis_store = RedisOnlineStore(
        RedisOnlineStoreConfig(type="redis", url=url, key_prefix=prefix), project="contract"
    )
    yield redis_store
    client = redis_store._client
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    redis_store.close()
