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
