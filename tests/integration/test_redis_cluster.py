"""The Redis Cluster store under resharding and failover, with reads and writes running.

Each key is written with increasing versions (the version is the record's event time and its
value). A read may return any version from the newest one acknowledged before it started to
the newest one sent; never an older one, never one not written. Slot moves (``ASK``,
``MOVED``, ``TRYAGAIN`` for a write script on a half-moved slot) must cost no request; a
killed master may fail requests with OnlineStoreUnavailableError (503) until its replica
takes over, never anything else, and afterwards every acknowledged write is there.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import httpx
import pytest
import redis
from redis.crc import key_slot

from featurestore.errors import (
    ConfigError,
    OnlineStoreError,
    OnlineStoreIntegrityError,
    OnlineStoreUnavailableError,
)
from featurestore.online.base import ReadRequest
from featurestore.online.codec import KeyEncoder, RecordCodec
from featurestore.online.factory import open_online_store
from featurestore.online.redis_cluster import RedisClusterOnlineStore
from featurestore.repo.config import RedisOnlineStoreConfig
from featurestore.serving.app import create_app
from featurestore.store import FeatureStore
from featurestore.types import Int64
from tests.integration.test_http_support import build_repo, running_server
from tests.redis_cluster import RedisCluster

pytestmark = pytest.mark.redis

CODEC = RecordCodec([Int64], fingerprint="00112233445566aa")
USERS = list(range(24))
KEYS = KeyEncoder({"user_id": Int64}).encode_columns([USERS])
VIEW = "v"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    """A cluster of this test's own: it is resharded or loses a master."""
    with RedisCluster(tmp_path / "cluster") as own:
        yield own


def _store(cluster: RedisCluster, timeout_s: float) -> RedisClusterOnlineStore:
    config = RedisOnlineStoreConfig(
        type="redis",
        url=cluster.url,
        cluster=True,
        startup_nodes=tuple(f"127.0.0.1:{port}" for port in cluster.ports[1:]),
        timeout_s=timeout_s,
        key_prefix="t",
    )
    return RedisClusterOnlineStore(config, project="p")


@dataclass
class Ledger:
    """What was sent and what was acknowledged, per key (guarded by ``lock``)."""

    sent: list[int] = field(default_factory=lambda: [0] * len(KEYS))
    acked: list[int] = field(default_factory=lambda: [0] * len(KEYS))
    lock: threading.Lock = field(default_factory=threading.Lock)
    errors: list[BaseException] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    reads: int = 0

    def check(self, floor: list[int], rows: list[list[bytes | None]]) -> None:
        """Each read version lies between what was acked before the read and what was sent."""
        with self.lock:
            self.reads += 1
            for i, (record,) in enumerate(rows):
                version = 0 if record is None else cast("int", CODEC.decode(record)[0])
                if not floor[i] <= version <= self.sent[i]:
                    self.wrong.append(
                        f"key {i}: read {version}, acked {floor[i]}, sent {self.sent[i]}"
                    )


def _writer(store: RedisClusterOnlineStore, ledger: Ledger, stop: threading.Event) -> None:
    version = 0
    while not stop.is_set():
        version += 1
        with ledger.lock:
            ledger.sent = [version] * len(KEYS)
        records = CODEC.encode_rows(
            [version] * len(KEYS), [None] * len(KEYS), [[version] * len(KEYS)]
        )
        try:
            store.write_records(VIEW, KEYS, records)
        except OnlineStoreUnavailableError as exc:
            ledger.errors.append(exc)
            continue
        with ledger.lock:
            ledger.acked = [version] * len(KEYS)


def _reader(store: RedisClusterOnlineStore, ledger: Ledger, stop: threading.Event) -> None:
    requests = [ReadRequest(k, (VIEW,)) for k in KEYS]
    while not stop.is_set():
        with ledger.lock:
            floor = list(ledger.acked)
        try:
            rows = store.read_records(requests)
        except OnlineStoreUnavailableError as exc:
            ledger.errors.append(exc)
            continue
        ledger.check(floor, rows)


def _areader(store: RedisClusterOnlineStore, ledger: Ledger, stop: threading.Event) -> None:
    requests = [ReadRequest(k, (VIEW,)) for k in KEYS]

    async def loop() -> None:
        try:
            while not stop.is_set():
                with ledger.lock:
                    floor = list(ledger.acked)
                try:
                    rows = await store.aread_records(requests)
                except OnlineStoreUnavailableError as exc:
                    ledger.errors.append(exc)
                    await asyncio.sleep(0.01)
                    continue
                ledger.check(floor, rows)
        finally:
            await store.aclose()

    asyncio.run(loop())


def _traffic(
    cluster: RedisCluster, ledger: Ledger, timeout_s: float
) -> tuple[threading.Event, list[threading.Thread], list[RedisClusterOnlineStore]]:
    """A writer, a blocking reader and an event-loop reader, each with a store of its own."""
    stop = threading.Event()
    stores, threads = [], []
    roles: list[Callable[[RedisClusterOnlineStore, Ledger, threading.Event], None]] = [
        _writer,
        _reader,
        _areader,
    ]
    for role in roles:
        store = _store(cluster, timeout_s)
        stores.append(store)
        threads.append(threading.Thread(target=role, args=(store, ledger, stop), daemon=True))
    for thread in threads:
        thread.start()
    return stop, threads, stores


def _wait_reads(ledger: Ledger, reads: int) -> None:
    for _ in range(2400):
        if ledger.reads >= reads:
            return
        threading.Event().wait(0.05)
    pytest.fail(f"only {ledger.reads} reads succeeded; errors: {ledger.errors[-3:]}")


def _settle(cluster: RedisCluster, ledger: Ledger) -> None:
    """Every key holds the newest acknowledged version once the traffic has stopped."""
    store = _store(cluster, 5)
    try:
        rows = store.read_records([ReadRequest(k, (VIEW,)) for k in KEYS])
        versions = [cast("int", CODEC.decode(r)[0]) if r else 0 for (r,) in rows]
        assert all(a <= v <= s for a, v, s in zip(ledger.acked, versions, ledger.sent, strict=True))
        assert store.count_records(VIEW) == len(KEYS)
    finally:
        store.close()


def test_reads_and_writes_run_through_a_resharding(cluster: RedisCluster) -> None:
    ledger = Ledger()
    stop, threads, stores = _traffic(cluster, ledger, timeout_s=10)
    try:
        masters = list(cluster.masters())
        slots = sorted({key_slot(b"t:p:" + k) for k in KEYS})
        for turn in range(2):  # every key's slot moves to another master, twice
            for slot in slots:
                owner = cluster.master_of(slot)
                target = masters[(masters.index(owner) + 1 + turn) % len(masters)]
                cluster.move_slot(slot, target)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        for store in stores:
            store.close()
    assert ledger.wrong == []
    assert ledger.errors == []  # a moving slot is retried, never failed
    assert ledger.reads > 0
    _settle(cluster, ledger)


def test_a_killed_master_fails_requests_until_its_replica_takes_over(
    cluster: RedisCluster,
) -> None:
    ledger = Ledger()
    stop, threads, stores = _traffic(cluster, ledger, timeout_s=2)
    try:
        victim = cluster.master_of(key_slot(b"t:p:" + KEYS[0]))
        _wait_reads(ledger, 20)  # traffic is flowing
        cluster.kill(victim)
        cluster.wait_healthy()
        errors_at_recovery = len(ledger.errors)
        reads_at_recovery = ledger.reads
        _wait_reads(ledger, reads_at_recovery + 20)  # and flows again
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        for store in stores:
            store.close()
    assert ledger.wrong == []
    assert all(isinstance(e, OnlineStoreUnavailableError) for e in ledger.errors)
    # Requests sent once the cluster had recovered may only fail while their store learnt
    # the new map: a request each at most (its budget spent on the dead node).
    assert len(ledger.errors) - errors_at_recovery <= len(threads)
    _settle(cluster, ledger)


def test_startup_nodes_find_the_cluster_when_the_url_node_is_down(
    cluster: RedisCluster,
) -> None:
    dead = cluster.ports[0]
    others = [f"127.0.0.1:{p}" for p in cluster.ports[1:]]
    config = RedisOnlineStoreConfig(
        type="redis", url=f"redis://127.0.0.1:{dead}", cluster=True, startup_nodes=tuple(others)
    )
    cluster.kill(dead)
    cluster.wait_healthy()
    store = open_online_store(config, repo_root=Path(), project="p")
    try:
        assert isinstance(store, RedisClusterOnlineStore)
        assert store.write_records(VIEW, KEYS[:1], CODEC.encode_rows([1], [None], [[1]])) == 1
        assert store.read_records([ReadRequest(KEYS[0], (VIEW,))])[0][0] is not None
    finally:
        store.close()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"key_prefix": "a{b}"}, "must not contain"),
        ({"url": "redis://127.0.0.1:7000/2"}, "only database 0"),
        ({"startup_nodes": ("no-port",)}, "not host:port"),
        ({"cluster": False, "startup_nodes": ("h:1",)}, "add 'cluster: true'"),
    ],
)
def test_invalid_cluster_settings_name_the_setting(
    settings: dict[str, object], message: str
) -> None:
    config = RedisOnlineStoreConfig(**{"type": "redis", "cluster": True, **settings})
    with pytest.raises(ConfigError, match=message):
        open_online_store(config, repo_root=Path(), project="p")


def test_writes_resume_once_a_dead_replica_is_marked_failed(cluster: RedisCluster) -> None:
    """A write counts once a replica holds it; a dead replica stops counting once failed."""
    store = _store(cluster, timeout_s=1)
    records = CODEC.encode_rows([1] * len(KEYS), [None] * len(KEYS), [[1] * len(KEYS)])
    try:
        assert store.write_records(VIEW, KEYS, records) == len(KEYS)
        masters = cluster.masters()
        cluster.kill(next(p for p in cluster.ports if p not in masters))
        failures = 0
        while True:  # fails while the replica is not yet marked failed, then succeeds
            try:
                assert store.write_records(VIEW, KEYS, records) == len(KEYS)
                break
            except OnlineStoreUnavailableError:
                failures += 1
                assert failures < 60, "writes never resumed"
        rows = store.read_records([ReadRequest(k, (VIEW,)) for k in KEYS])
        assert [row[0] for row in rows] == records
    finally:
        store.close()


async def _aread_and_close(
    store: RedisClusterOnlineStore, requests: list[ReadRequest]
) -> list[list[bytes | None]]:
    try:
        return await store.aread_records(requests)
    finally:
        await store.aclose()


def test_a_key_not_ours_is_named_by_writes_reads_and_async_reads(
    redis_cluster: RedisCluster, redis_key_prefix: str
) -> None:
    config = RedisOnlineStoreConfig(
        type="redis", url=redis_cluster.url, cluster=True, key_prefix=redis_key_prefix
    )
    store = RedisClusterOnlineStore(config, project="p")
    bad = KEYS[3]
    port = redis_cluster.master_of(key_slot(f"{redis_key_prefix}:p:".encode() + bad))
    with redis.Redis(port=port) as client:
        client.set(f"{redis_key_prefix}:p:".encode() + bad, b"not ours")
    record = CODEC.encode_rows([1], [None], [[1]])[0]
    requests = [ReadRequest(k, (VIEW,)) for k in KEYS]
    try:
        failures = []
        for attempt in (
            lambda: store.write_records(VIEW, KEYS, [record] * len(KEYS)),
            lambda: store.read_records(requests),
            lambda: asyncio.run(_aread_and_close(store, requests)),
        ):
            with pytest.raises(OnlineStoreIntegrityError) as caught:
                attempt()
            failures.append(str(caught.value))
        assert all("is a string" in message for message in failures)
        assert len(set(failures)) == 1
    finally:
        redis_cluster.delete_prefix(f"{redis_key_prefix}:")
        store.close()


def test_cluster_true_on_a_single_redis_says_so(redis_server_url: str) -> None:
    config = RedisOnlineStoreConfig(type="redis", url=redis_server_url, cluster=True)
    store = RedisClusterOnlineStore(config, project="p")
    try:
        with pytest.raises(OnlineStoreError, match="remove 'cluster: true'"):
            store.read_epoch()
    finally:
        store.close()


def test_the_server_reads_a_cluster_and_answers_503_when_it_is_gone(
    cluster: RedisCluster, tmp_path: Path
) -> None:
    online = f"{{type: redis, cluster: true, url: '{cluster.url}', timeout_s: 0.5}}"
    repo, _ = build_repo(tmp_path / "repo", online=online)
    body = {"entities": {"user_id": [1, 2, 99]}, "features": ["user_stats:txn_count"]}
    with FeatureStore(repo) as store:
        direct = store.get_online_features(["user_stats:txn_count"], {"user_id": [1, 2, 99]})
        expected = direct.to_dict()["txn_count"]
    assert any(value is not None for value in expected)
    with running_server(create_app(repo_path=repo)) as url, httpx.Client(base_url=url) as client:
        answer = client.post("/get-online-features", json=body)
        assert answer.status_code == 200
        assert answer.json()["results"][1]["values"] == expected
        assert client.get("/ready").status_code == 200
        cluster.stop()
        down = client.post("/get-online-features", json=body, timeout=10)
        assert down.status_code == 503
        assert "unavailable" in down.json()["detail"]
        assert client.get("/ready", timeout=10).status_code == 503
        assert client.get("/health").status_code == 200
