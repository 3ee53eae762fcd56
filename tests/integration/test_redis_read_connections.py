"""Redis read connections: reused across reads, replaced after a restart, dropped on errors."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

from featurestore.errors import OnlineStoreError, OnlineStoreUnavailableError
from featurestore.online.base import ReadRequest
from featurestore.online.redis import RedisOnlineStore
from featurestore.repo.config import RedisOnlineStoreConfig

pytestmark = pytest.mark.redis

RECORD = b"\x01" + bytes(range(40))


def _start(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not on PATH")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    pytest.fail("private redis-server did not start")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_reads_survive_a_restart_and_fail_while_down(tmp_path: Path) -> None:
    port = _free_port()
    proc = _start(port, tmp_path)
    config = RedisOnlineStoreConfig(type="redis", url=f"redis://127.0.0.1:{port}/0", timeout_s=1)
    store = RedisOnlineStore(config, project="p")
    try:
        store.write_records("v", [b"k1", b"k2"], [RECORD, RECORD])
        requests = [ReadRequest(b"k1", ("v", "w")), ReadRequest(b"k3", ("v",))]
        assert store.read_records(requests) == [[RECORD, None], [None]]
        assert store.read_records(requests) == [[RECORD, None], [None]]  # reused connection
        _stop(proc)
        proc = _start(port, tmp_path)
        store.write_records("v", [b"k2"], [RECORD])
        # The idle read connection is stale: it is replaced, not reported as an error.
        assert store.read_records([ReadRequest(b"k2", ("v",))]) == [[RECORD]]
        _stop(proc)
        with pytest.raises(OnlineStoreUnavailableError, match="unreachable"):
            store.read_records(requests)
    finally:
        store.close()
        _stop(proc)


def test_an_error_reply_drops_the_connection_and_later_reads_are_in_sync(tmp_path: Path) -> None:
    port = _free_port()
    proc = _start(port, tmp_path)
    config = RedisOnlineStoreConfig(type="redis", url=f"redis://127.0.0.1:{port}/0", timeout_s=1)
    store = RedisOnlineStore(config, project="p")
    try:
        store.write_records("v", [b"k1"], [RECORD])
        # A key of another type under our prefix makes its HMGET fail (WRONGTYPE) while the
        # other replies of the same exchange are still unread.
        redis.Redis(port=port).set(f"{config.key_prefix}:p:bad".encode(), b"x")
        with pytest.raises(OnlineStoreError, match="failed"):
            store.read_records([ReadRequest(b"bad", ("v",)), ReadRequest(b"k1", ("v",))])
        assert store.read_records([ReadRequest(b"k1", ("v",))]) == [[RECORD]]
    finally:
        store.close()
        _stop(proc)
