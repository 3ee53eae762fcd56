"""Redis read connections: reused across reads, replaced after a restart, dropped on errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from featurestore.errors import OnlineStoreError, OnlineStoreUnavailableError
from featurestore.online.base import ReadRequest
from featurestore.online.redis import RedisOnlineStore
from featurestore.repo.config import RedisOnlineStoreConfig
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis

RECORD = b"\x01" + bytes(range(40))


def test_reads_survive_a_restart_and_fail_while_down(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    config = RedisOnlineStoreConfig(type="redis", url=server.url, timeout_s=1)
    store = RedisOnlineStore(config, project="p")
    try:
        store.write_records("v", [b"k1", b"k2"], [RECORD, RECORD])
        requests = [ReadRequest(b"k1", ("v", "w")), ReadRequest(b"k3", ("v",))]
        assert store.read_records(requests) == [[RECORD, None], [None]]
        assert store.read_records(requests) == [[RECORD, None], [None]]  # reused connection
        server.stop()
        server.start()
        store.write_records("v", [b"k2"], [RECORD])
        # The idle read connection is stale: it is replaced, not reported as an error.
        assert store.read_records([ReadRequest(b"k2", ("v",))]) == [[RECORD]]
        server.stop()
        with pytest.raises(OnlineStoreUnavailableError, match="unreachable"):
            store.read_records(requests)
    finally:
        store.close()
        server.stop()


def test_an_error_reply_drops_the_connection_and_later_reads_are_in_sync(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    config = RedisOnlineStoreConfig(type="redis", url=server.url, timeout_s=1)
    store = RedisOnlineStore(config, project="p")
    try:
        store.write_records("v", [b"k1"], [RECORD])
        # A key of another type under our prefix makes its HMGET fail (WRONGTYPE) while the
        # other replies of the same exchange are still unread.
        redis.Redis(port=server.port).set(f"{config.key_prefix}:p:bad".encode(), b"x")
        with pytest.raises(OnlineStoreError, match="failed"):
            store.read_records([ReadRequest(b"bad", ("v",)), ReadRequest(b"k1", ("v",))])
        # k2 is absent: on a connection kept after the error, this read would get k1's
        # unread reply from the failed exchange instead.
        assert store.read_records([ReadRequest(b"k2", ("v",))]) == [[None]]
        assert store.read_records([ReadRequest(b"k1", ("v",))]) == [[RECORD]]
    finally:
        store.close()
        server.stop()


@pytest.mark.parametrize("lone", [False, True])
def test_an_async_read_larger_than_the_send_buffer_gets_its_replies(
    tmp_path: Path, lone: bool
) -> None:
    """Redis answers the first commands of a large read while the rest is still being
    written: those replies belong to the read (nothing is dropped as out of step), whether
    it then waits round the loop or, as the server's only request, on its socket."""
    import asyncio
    import socket

    from featurestore._busy import counted_requests

    server = RedisServer(tmp_path)
    config = RedisOnlineStoreConfig(type="redis", url=server.url, timeout_s=5)
    store = RedisOnlineStore(config, project="p")
    keys = [b"k%d" % i for i in range(20_000)]
    store.write_records("v", keys[::2], [RECORD] * len(keys[::2]))
    requests = [ReadRequest(key, ("v", "w")) for key in keys]

    async def read_with_a_small_send_buffer() -> list[list[bytes | None]]:
        small = socket.socket  # every socket of this read: a 4 KB send buffer

        class SmallSendBuffer(small):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, **kwargs)  # type: ignore[arg-type]
                self.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

        if lone:
            counted_requests(asyncio.get_running_loop()).value = 1
        socket.socket = SmallSendBuffer  # type: ignore[misc]
        try:
            return await store.aread_records(requests)
        finally:
            socket.socket = small  # type: ignore[misc]
            await store.aclose()

    try:
        assert asyncio.run(read_with_a_small_send_buffer()) == store.read_records(requests)
    finally:
        store.close()
        server.stop()
