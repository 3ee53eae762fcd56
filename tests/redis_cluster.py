"""A private Redis Cluster for tests: 3 masters and 3 replicas on free loopback ports.

Started with ``redis-server --cluster-enabled yes`` and ``redis-cli --cluster create``, stopped
by the fixture. Tests may kill a master (its replica takes over) or move slots between
masters. Without ``redis-server``/``redis-cli`` a test fails in CI (``CI`` set) and is
skipped locally, as with tests/redis_server.py.
"""

from __future__ import annotations

import random
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest
import redis

from tests.redis_server import redis_binary

NODE_TIMEOUT_MS = 1000
"""cluster-node-timeout: a master unreachable this long is failed over (fast for tests)."""


def _free_cluster_port(taken: set[int]) -> int:
    """A port free on 127.0.0.1 whose cluster bus port (port + 10000) is free too."""
    rng = random.Random()
    while True:
        port = rng.randrange(20000, 55000)
        if port in taken or port + 10000 in taken:
            continue
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        taken.update((port, port + 10000))
        return port


class RedisCluster:
    """A Redis Cluster of ``masters`` masters with ``replicas`` replicas each, on loopback."""

    def __init__(self, workdir: Path, *, masters: int = 3, replicas: int = 1) -> None:
        self.workdir = workdir
        taken: set[int] = set()
        self.ports = [_free_cluster_port(taken) for _ in range(masters * (1 + replicas))]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        server = redis_binary("redis-server")
        cli = redis_binary("redis-cli")
        try:
            for port in self.ports:
                node_dir = workdir / str(port)
                node_dir.mkdir(parents=True, exist_ok=True)
                self.procs[port] = subprocess.Popen(
                    [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--dir", str(node_dir), "--cluster-enabled", "yes",
                     "--cluster-config-file", "nodes.conf",
                     "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                     "--repl-diskless-sync-delay", "0"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
            for port in self.ports:
                self._wait_listening(port)
            subprocess.run(
                [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                 "--cluster-replicas", str(replicas), "--cluster-yes"],
                check=True,
                capture_output=True,
                timeout=60,
            )  # fmt: skip
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        """The URL of one node (any node serves as the entry point)."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def client(self, port: int) -> redis.Redis:
        """A plain client of one node, its replies unparsed (as Redis sends them)."""
        client = redis.Redis(port=port, socket_timeout=5)
        client.response_callbacks.clear()
        return client

    def alive(self) -> list[int]:
        """The ports of the running nodes."""
        return [p for p, proc in self.procs.items() if proc.poll() is None]

    def masters(self) -> dict[int, list[tuple[int, int]]]:
        """Port of each master -> its slot ranges (as a running node sees the cluster)."""
        owner: dict[int, list[tuple[int, int]]] = {}
        with self.client(self.alive()[0]) as client:
            for start, end, master, *_ in client.execute_command("CLUSTER SLOTS"):
                owner.setdefault(int(master[1]), []).append((int(start), int(end)))
        return owner

    def master_of(self, slot: int) -> int:
        """The port of the master serving ``slot``."""
        return next(
            port for port, ranges in self.masters().items()
            if any(start <= slot <= end for start, end in ranges)
        )  # fmt: skip

    def node_id(self, port: int) -> str:
        with self.client(port) as client:
            return str(client.execute_command("CLUSTER MYID").decode())

    def wait_healthy(self, timeout_s: float = 60) -> None:
        """Wait until every running node sees the cluster as ok with one slot map, every
        slot served by a running master, and every replica in sync with its master."""
        deadline = time.monotonic() + timeout_s
        while True:
            views = []
            try:
                for port in self.alive():
                    with self.client(port) as client:
                        info = client.execute_command("CLUSTER INFO").decode()
                        slots = client.execute_command("CLUSTER SLOTS")
                        replication = client.execute_command("INFO", "replication").decode()
                    # A replica must be in sync to take over when its master dies.
                    ok = "cluster_state:ok" in info and "master_link_status:down" not in replication
                    views.append((ok, sorted((int(s), int(e), int(m[1])) for s, e, m, *_ in slots)))
            except redis.RedisError:
                views = []
            if views and all(ok for ok, _ in views) and len({str(v) for _, v in views}) == 1:
                covered = sum(e - s + 1 for s, e, _ in views[0][1])
                if covered == 16384 and all(m in self.alive() for _, _, m in views[0][1]):
                    return
            if time.monotonic() > deadline:
                pytest.fail(f"the Redis Cluster on {self.ports} did not become healthy")
            time.sleep(0.1)

    @staticmethod
    def _wait_listening(port: int) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"redis-server did not start on port {port}")

    def kill(self, port: int) -> None:
        """Kill a node at once (SIGKILL: no goodbye to the cluster)."""
        proc = self.procs[port]
        proc.kill()
        proc.wait(timeout=10)

    def move_slot(self, slot: int, target: int) -> None:
        """Move ``slot`` to master ``target`` as ``redis-cli --cluster reshard`` does.

        IMPORTING on the target, MIGRATING on the source, MIGRATE of its keys in batches,
        then SETSLOT NODE on both and on every other master.
        """
        source = self.master_of(slot)
        if source == target:
            return
        target_id, source_id = self.node_id(target), self.node_id(source)
        with self.client(target) as dst, self.client(source) as src:
            dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source_id)
            src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target_id)
            while True:
                keys = src.execute_command("CLUSTER GETKEYSINSLOT", slot, 10)
                if not keys:
                    break
                src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys)
            dst.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
            src.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
        for port in self.masters():
            if port not in (source, target):
                with self.client(port) as other:
                    other.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)

    def delete_prefix(self, prefix: str) -> None:
        """Delete every key starting with ``prefix`` from every master."""
        for port in self.masters():
            with redis.Redis(port=port, socket_timeout=5) as client:
                names = list(client.scan_iter(match=f"{prefix}*", count=1000))
                for name in names:
                    client.delete(name)

    def stop(self) -> None:
        """Stop every node."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> RedisCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """The session's Redis Cluster (3 masters, 3 replicas); tests must not break it."""
    with RedisCluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_cluster_url(redis_cluster: RedisCluster) -> str:
    """The URL of one node of the session's Redis Cluster."""
    return redis_cluster.url
