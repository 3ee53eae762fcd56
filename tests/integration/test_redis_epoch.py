"""Redis losing its data (FLUSHDB, a restart without persistence) and foreign keys under the
prefix (WRONGTYPE): detected, reported with a reason, and rebuilt (issue 10 items 2 and 5)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from featurestore import FeatureStore
from featurestore.errors import OnlineStoreIntegrityError
from featurestore.online.codec import KeyEncoder
from featurestore.repo.config import RedisOnlineStoreConfig
from featurestore.serving.app import create_app
from featurestore.types import Int64
from tests.conftest import make_repo, utc, write_parquet
from tests.integration.test_http_support import running_server
from tests.integration.test_redis_failures import FEATURES_PY
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis

AT = utc(2026, 2, 1)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path) as started:
        yield started


def open_store(root: Path, url: str) -> FeatureStore:
    base = FeatureStore(root).config
    online = RedisOnlineStoreConfig(type="redis", url=url, timeout_s=2, key_prefix="fs")
    return FeatureStore(root, config=base.model_copy(update={"online_store": online}))


@pytest.fixture
def store(tmp_path: Path, server: RedisServer) -> Iterator[FeatureStore]:
    root = make_repo(tmp_path / "repo", FEATURES_PY)
    write_parquet(
        root / "data/s.parquet",
        {"user_id": [1, 2, 1], "ts": [utc(2026, 1, 1)] * 2 + [utc(2026, 1, 2)], "cnt": [5, 6, 7]},
    )
    fs = open_store(root, server.url)
    fs.apply()
    fs.materialize(utc(2026, 1, 1), utc(2026, 1, 3))
    yield fs
    fs.close()


def cnt(store: FeatureStore, users: list[int]) -> list[object]:
    got = store.get_online_features(["stats:cnt"], {"user_id": users}, request_time=AT)
    return got.to_dict()["cnt"]


def assert_lost_then_rebuilt(store: FeatureStore) -> None:
    store.refresh()  # a new reader checks the epoch at once
    (status,) = store.online_status()
    assert status.watermark == utc(2026, 1, 3)
    assert status.records == 0
    assert status.problem is not None
    assert "no epoch" in status.problem
    assert "materialize-incremental" in status.problem
    assert "Redis at redis://127.0.0.1" in (store.online_problem() or "")
    with pytest.raises(OnlineStoreIntegrityError, match="'stats'"):
        cnt(store, [1])
    (run,) = store.materialize_incremental(utc(2026, 1, 3)).views
    assert run.rebuilt
    assert run.rows == 2
    assert cnt(store, [1, 2]) == [7, 6]
    assert store.online_problem() is None
    assert store.online_status()[0].records == 2


def test_flushdb_is_reported_and_incremental_rebuilds(store: FeatureStore) -> None:
    assert cnt(store, [1, 2]) == [7, 6]
    redis.Redis.from_url(store.config.online_store.url).flushdb()  # type: ignore[union-attr]
    assert_lost_then_rebuilt(store)


def test_restart_without_persistence_is_reported_and_rebuilt(
    store: FeatureStore, server: RedisServer
) -> None:
    server.stop()
    server.start()  # --save "" --appendonly no: an empty server on the same port
    assert_lost_then_rebuilt(store)


def test_switching_from_sqlite_to_redis_rebuilds(tmp_path: Path, server: RedisServer) -> None:
    root = make_repo(tmp_path / "repo", FEATURES_PY)
    write_parquet(root / "data/s.parquet", {"user_id": [1], "ts": [utc(2026, 1, 1)], "cnt": [5]})
    with FeatureStore(root) as sqlite_store:  # the default SQLite store, as in the quickstart
        sqlite_store.apply()
        sqlite_store.materialize(utc(2026, 1, 1), utc(2026, 1, 3))
    with open_store(root, server.url) as redis_store:
        assert "'stats'" in (redis_store.online_problem() or "")
        (run,) = redis_store.materialize_incremental(utc(2026, 1, 3)).views
        assert run.rebuilt
        assert cnt(redis_store, [1]) == [5]


def foreign_key(store: FeatureStore, user: int) -> bytes:
    """A string value at the key of ``user``'s hash, as another program might write it."""
    key = b"fs:test:" + KeyEncoder({"user_id": Int64}).encode_columns([[user]])[0]
    redis.Redis.from_url(store.config.online_store.url).set(key, "not ours")  # type: ignore[union-attr]
    return key


def test_a_foreign_key_under_the_prefix_is_an_integrity_error_naming_it(
    store: FeatureStore,
) -> None:
    key = foreign_key(store, 2)
    shown = repr(key.decode("utf-8", "backslashreplace"))
    with pytest.raises(OnlineStoreIntegrityError) as read_error:
        cnt(store, [1, 2])
    assert shown in str(read_error.value)
    assert "is a string" in str(read_error.value)
    assert "key_prefix" in str(read_error.value)
    with pytest.raises(OnlineStoreIntegrityError) as write_error:
        store.materialize(utc(2026, 1, 1), utc(2026, 1, 3))
    assert shown in str(write_error.value)
    assert cnt(store, [1]) == [7]  # the other keys still answer
    redis.Redis.from_url(store.config.online_store.url).delete(key)  # type: ignore[union-attr]
    (run,) = store.rebuild_online().views
    assert run.rebuilt
    assert cnt(store, [1, 2]) == [7, 6]


def test_http_answers_503_for_a_foreign_key_and_for_a_lost_store(store: FeatureStore) -> None:
    foreign_key(store, 2)
    body = {"entities": {"user_id": [1, 2]}, "features": ["stats:cnt"]}
    with (
        running_server(create_app(store)) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        answer = client.post("/get-online-features", json=body)
        assert answer.status_code == 503
        assert "request_id" in answer.json()
        assert client.get("/ready").status_code == 200  # the store itself is intact
        redis.Redis.from_url(store.config.online_store.url).flushdb()  # type: ignore[union-attr]
        not_ready = client.get("/ready")
        assert not_ready.status_code == 503
        assert "'stats'" in not_ready.json()["checks"]["online_store"]
        assert "materialize-incremental" in not_ready.json()["checks"]["online_store"]
