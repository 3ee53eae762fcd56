"""Shared helpers of the HTTP tests: a small applied-and-materialized repo, a real uvicorn server.

No tests here; the test_http_* modules and tests/fuzz import these helpers.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from featurestore.store import FeatureStore
from tests.conftest import make_repo, write_parquet
from tests.redis_server import free_port

FEATURES_PY = """
from datetime import timedelta

from featurestore import Entity, FeatureService, FeatureView, Field, ParquetSource
from featurestore.types import Bool, Float64, Int64, String, Timestamp

user = Entity("user", join_keys=["user_id"])
merchant = Entity("merchant", join_keys=["merchant_id"])

user_stats = FeatureView(
    name="user_stats",
    entities=[user],
    source=ParquetSource(path="data/user_stats.parquet", timestamp_field="event_timestamp"),
    schema=[
        Field("txn_count", Int64),
        Field("avg_amount", Float64),
        Field("segment", String),
        Field("is_vip", Bool),
        Field("last_seen", Timestamp),
    ],
    ttl=timedelta(days=2),
)

merchant_stats = FeatureView(
    name="merchant_stats",
    entities=[merchant],
    source=ParquetSource(path="data/merchant_stats.parquet", timestamp_field="event_timestamp"),
    schema=[Field("fraud_rate", Float64), Field("txn_count", Int64)],
)

pair_stats = FeatureView(
    name="pair_stats",
    entities=[user, merchant],
    source=ParquetSource(path="data/pair_stats.parquet", timestamp_field="event_timestamp"),
    schema=[Field("pair_txn_count", Int64)],
)

fraud_v1 = FeatureService(
    "fraud_v1",
    features=[user_stats[["txn_count", "avg_amount"]], merchant_stats[["fraud_rate"]], pair_stats],
)
"""

USER_FEATURES = [
    "user_stats:txn_count",
    "user_stats:avg_amount",
    "user_stats:segment",
    "user_stats:is_vip",
    "user_stats:last_seen",
]


def now_utc() -> datetime:
    return datetime.now(tz=UTC).replace(microsecond=0)


def write_data(repo: Path, now: datetime) -> None:
    """User 1 fresh; user 2 with a null avg; user 3 expired (older than the 2-day ttl)."""
    ts = pa.timestamp("us", tz="UTC")
    write_parquet(
        repo / "data/user_stats.parquet",
        {
            "user_id": [1, 1, 2, 3],
            "event_timestamp": [
                now - timedelta(days=1),
                now - timedelta(hours=1, microseconds=-123456),
                now - timedelta(hours=2),
                now - timedelta(days=5),
            ],
            "txn_count": [1, 43, 6, 9],
            "avg_amount": [10.0, 12.0, None, 3.5],
            "segment": ["a", "gold", None, "c"],
            "is_vip": [False, True, False, None],
            "last_seen": [now, now - timedelta(minutes=5), None, now],
        },
        schema=pa.schema(
            [
                ("user_id", pa.int64()),
                ("event_timestamp", ts),
                ("txn_count", pa.int64()),
                ("avg_amount", pa.float64()),
                ("segment", pa.string()),
                ("is_vip", pa.bool_()),
                ("last_seen", ts),
            ]
        ),
    )
    write_parquet(
        repo / "data/merchant_stats.parquet",
        {
            "merchant_id": ["m0", "m1"],
            "event_timestamp": [now - timedelta(hours=3), now - timedelta(days=30)],
            "fraud_rate": [0.25, float("nan")],
            "txn_count": [100, 7],
        },
        schema=pa.schema(
            [
                ("merchant_id", pa.string()),
                ("event_timestamp", ts),
                ("fraud_rate", pa.float64()),
                ("txn_count", pa.int64()),
            ]
        ),
    )
    write_parquet(
        repo / "data/pair_stats.parquet",
        {
            "user_id": [1, 2],
            "merchant_id": ["m0", "m1"],
            "event_timestamp": [now - timedelta(hours=4), now - timedelta(hours=5)],
            "pair_txn_count": [3, 6],
        },
        schema=pa.schema(
            [
                ("user_id", pa.int64()),
                ("merchant_id", pa.string()),
                ("event_timestamp", ts),
                ("pair_txn_count", pa.int64()),
            ]
        ),
    )


def repo_yaml(
    *,
    online: str = "{type: sqlite, path: data/online.db}",
    serving: str = "{registry_refresh_s: 0.2}",
) -> str:
    return (
        "project: httptest\nregistry: data/registry.json\n"
        f"online_store: {online}\nserving: {serving}\n"
    )


def build_repo(
    root: Path,
    *,
    online: str = "{type: sqlite, path: data/online.db}",
    serving: str = "{registry_refresh_s: 0.2}",
    features_py: str = FEATURES_PY,
) -> tuple[Path, datetime]:
    """Create, apply and materialize the test repo; returns (repo path, the data's 'now')."""
    now = now_utc()
    repo = make_repo(root, features_py, yaml=repo_yaml(online=online, serving=serving))
    write_data(repo, now)
    with FeatureStore(repo) as store:
        store.apply()
        store.materialize(now - timedelta(days=60), now + timedelta(seconds=1))
    return repo, now


def poll(check: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    """Whether ``check`` becomes true within ``timeout_s`` (a bounded wait; no timing asserted)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def serve_command(repo: Path, port: int, *options: str) -> list[str]:
    """``featurestore serve`` of ``repo`` on loopback ``port``, in a new interpreter."""
    return [
        sys.executable, "-m", "featurestore", "--repo", str(repo), "serve", *options,
        "--port", str(port),
    ]  # fmt: skip


@contextlib.contextmanager
def running_server(app: object, *, port: int | None = None) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a thread; yields the base URL."""
    import uvicorn

    port = port or free_port()
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]  # an ASGI app
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive():
            msg = "uvicorn exited during startup"
            raise RuntimeError(msg)
        if time.monotonic() > deadline:
            msg = "uvicorn did not start within 20 s"
            raise RuntimeError(msg)
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
