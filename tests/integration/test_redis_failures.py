"""Redis going away: reads and writes fail with OnlineStoreUnavailableError, state is kept."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from featurestore import FeatureStore
from featurestore._busy import counted_requests
from featurestore.errors import OnlineStoreUnavailableError
from featurestore.repo.config import RedisOnlineStoreConfig
from tests.conftest import make_repo, utc, write_parquet
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis

FEATURES_PY = """
from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Int64

user = Entity("user", join_keys=["user_id"])
stats = FeatureView(name="stats", entities=[user],
                    source=ParquetSource("data/s.parquet", timestamp_field="ts"),
                    schema=[Field("cnt", Int64)])
"""


@pytest.fixture
def redis_and_store(tmp_path: Path) -> Iterator[tuple[RedisServer, FeatureStore]]:
    server = RedisServer(tmp_path)
    root = make_repo(tmp_path / "repo", FEATURES_PY)
    write_parquet(
        root / "data/s.parquet",
        {"user_id": [1, 2, 1], "ts": [utc(2026, 1, 1)] * 2 + [utc(2026, 1, 2)], "cnt": [5, 6, 7]},
    )
    base = FeatureStore(root).config
    online = RedisOnlineStoreConfig(type="redis", url=server.url, timeout_s=0.5)
    store = FeatureStore(root, config=base.model_copy(update={"online_store": online}))
    store.apply()
    yield server, store
    store.close()
    server.stop()


def test_read_after_redis_stops_is_unavailable_error(redis_and_store) -> None:
    server, store = redis_and_store
    store.materialize(utc(2026, 1, 1), utc(2026, 1, 2))
    assert store.get_online_features(["stats:cnt"], {"user_id": [1]}).to_dict()["cnt"] == [5]
    server.stop()
    with pytest.raises(OnlineStoreUnavailableError, match="unreachable"):
        store.get_online_features(["stats:cnt"], {"user_id": [1, 2]})
    with pytest.raises(OnlineStoreUnavailableError):
        store.online_status()


def test_materialize_after_redis_stops_keeps_the_watermark(redis_and_store) -> None:
    server, store = redis_and_store
    store.materialize(utc(2026, 1, 1), utc(2026, 1, 2))
    server.stop()
    with pytest.raises(OnlineStoreUnavailableError):
        store.materialize(utc(2026, 1, 2), utc(2026, 1, 3))
    assert store.refresh().feature_views["stats"].watermark == utc(2026, 1, 2)


def test_unresponsive_redis_times_out(tmp_path: Path, redis_and_store) -> None:
    server, store = redis_and_store
    store.materialize(utc(2026, 1, 1), utc(2026, 1, 2))
    server.proc.send_signal(signal.SIGSTOP)  # the socket accepts but nothing answers
    try:
        with pytest.raises(OnlineStoreUnavailableError, match=r"within 0\.5 s"):
            store.get_online_features(["stats:cnt"], {"user_id": [1]})
    finally:
        server.proc.send_signal(signal.SIGCONT)


def test_unresponsive_redis_times_out_async_reads(redis_and_store) -> None:
    """The event-loop read of a stalled Redis fails within its deadline; once Redis answers
    again, the next read gets its own reply (the late one was never read)."""
    server, store = redis_and_store
    store.materialize(utc(2026, 1, 1), utc(2026, 1, 2))

    async def read() -> list[object]:
        response = await store.aget_online_features(["stats:cnt"], {"user_id": [1, 2]})
        return response.to_dict()["cnt"]

    async def stalled_then_back() -> list[object]:
        server.proc.send_signal(signal.SIGSTOP)  # the socket accepts but nothing answers
        try:
            with pytest.raises(OnlineStoreUnavailableError, match=r"within 0\.5 s"):
                await read()
        finally:
            server.proc.send_signal(signal.SIGCONT)
        return await read()

    async def both() -> tuple[list[object], list[object]]:
        first = await read()  # an idle connection of this loop, reused by the stalled read
        try:
            return first, await stalled_then_back()
        finally:
            await store.aclose_connections()

    first, after = asyncio.run(both())
    assert first == after == [5, 6]


def test_a_lone_read_of_a_stalled_redis_leaves_the_loop_running(redis_and_store) -> None:
    """The server's only request waits for Redis on its socket for a moment only, then on the
    loop: while the stalled read waits out its timeout, other tasks of the loop keep running
    (a read that blocked the loop until its timeout would not let the ticker run at all)."""
    server, store = redis_and_store
    store.materialize(utc(2026, 1, 1), utc(2026, 1, 2))

    async def stalled_read_beside_a_ticker() -> tuple[int, int]:
        counted_requests(asyncio.get_running_loop()).value = 1  # as the server's only request
        await store.aget_online_features(["stats:cnt"], {"user_id": [1]})  # a connection
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticking = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        before = ticks
        server.proc.send_signal(signal.SIGSTOP)  # the socket accepts but nothing answers
        try:
            with pytest.raises(OnlineStoreUnavailableError, match=r"within 0\.5 s"):
                await store.aget_online_features(["stats:cnt"], {"user_id": [1]})
        finally:
            server.proc.send_signal(signal.SIGCONT)
            ticking.cancel()
            await store.aclose_connections()
        return before, ticks

    before, after = asyncio.run(stalled_read_beside_a_ticker())
    assert after > before  # the ticker ran while the read waited
