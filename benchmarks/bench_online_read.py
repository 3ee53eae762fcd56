"""Online read latency p50/p99 in-process vs a raw pipelined HMGET / SQL query of the same keys.

    .venv/bin/python benchmarks/bench_online_read.py --iterations 2000

Cases: 1 entity x 10 features (1 view), and 100 entities x 5 views x 10 features. The
featurestore figure includes validation, the round trip, decoding, ttl/status checks and
building the columnar response; the raw one only fetches the bytes.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._redis import redis_url
from featurestore import FeatureStore
from featurestore.online.codec import KeyEncoder
from featurestore.repo.config import RedisOnlineStoreConfig, SqliteOnlineStoreConfig
from featurestore.types import Int64

VIEWS = 5
ENTITIES = 10_000
FEATURES_PY = """
from datetime import timedelta
from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Float64, Int64
user = Entity("user", join_keys=["user_id"])
""" + "".join(
    f"""
v{v} = FeatureView(name="v{v}", entities=[user],
    source=ParquetSource("data/v{v}.parquet", timestamp_field="ts"), ttl=timedelta(days=30),
    schema=[Field(f"i{v}_{{j}}", Int64) for j in range(5)] + [Field(f"f{v}_{{j}}", Float64) for j in range(5)])
"""
    for v in range(VIEWS)
)
NOW = datetime(2026, 1, 2, tzinfo=UTC)


def make_repo(root: Path) -> None:
    (root / "data").mkdir(parents=True)
    (root / "featurestore.yaml").write_text("project: bench\n")
    (root / "features.py").write_text(FEATURES_PY)
    for v in range(VIEWS):
        columns = {
            "user_id": pa.array(range(ENTITIES), pa.int64()),
            "ts": pa.array([NOW - timedelta(hours=1)] * ENTITIES, pa.timestamp("us", tz="UTC")),
        }
        for j in range(5):
            columns[f"i{v}_{j}"] = pa.array(range(ENTITIES), pa.int64())
            columns[f"f{v}_{j}"] = pa.array([i * 0.25 for i in range(ENTITIES)], pa.float64())
        pq.write_table(pa.table(columns), root / f"data/v{v}.parquet")


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e3, ordered[int(len(ordered) * 0.99) - 1] * 1e3


def measure(fn, iterations: int) -> tuple[float, float]:
    for _ in range(min(100, iterations)):
        fn()
    samples = []
    for _ in range(iterations):
        began = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - began)
    return percentiles(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-read-")) / "repo"
    make_repo(root)
    base = FeatureStore(root)
    base.apply()
    one_features = [
        f"v0:{f}" for f in [*(f"i0_{j}" for j in range(5)), *(f"f0_{j}" for j in range(5))]
    ]
    all_features = [f"v{v}:{k}{v}_{j}" for v in range(VIEWS) for k in "if" for j in range(5)]
    rng = random.Random(7)
    keys = KeyEncoder({"user_id": Int64})
    lines = []
    with redis_url() as url:
        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        backends = {
            "sqlite": SqliteOnlineStoreConfig(path="data/online.db"),
            "redis": RedisOnlineStoreConfig(type="redis", url=url, key_prefix=prefix, timeout_s=5),
        }
        for name, online in backends.items():
            store = FeatureStore(
                root, config=base.config.model_copy(update={"online_store": online})
            )
            store.materialize(NOW - timedelta(days=1), NOW)
            one = [{"user_id": rng.randrange(ENTITIES)}]
            hundred = {"user_id": rng.sample(range(ENTITIES), 100)}
            cases = {
                "1 entity x 10 features": (one_features, one, ["v0"]),
                "100 entities x 5 views x 10 features": (
                    all_features,
                    hundred,
                    [f"v{v}" for v in range(VIEWS)],
                ),
            }
            for case, (features, rows, views) in cases.items():
                ours = measure(
                    lambda f=features, r=rows, s=store: s.get_online_features(
                        f, r, request_time=NOW
                    ),
                    args.iterations,
                )
                ids = [r["user_id"] for r in rows] if isinstance(rows, list) else rows["user_id"]
                encoded = keys.encode_columns([ids])
                if name == "redis":
                    client = redis.Redis.from_url(url)
                    hashes = [f"{prefix}:bench:".encode() + k for k in encoded]

                    def raw(h=hashes, v=views, c=client) -> None:
                        pipe = c.pipeline(transaction=False)
                        for key in h:
                            pipe.hmget(key, v)
                        pipe.execute()
                else:
                    conn = sqlite3.connect(root / "data/online.db")
                    pairs = [(v, k) for k in encoded for v in views]
                    sql = (
                        f"WITH w(view, entity_key) AS (VALUES {','.join(['(?,?)'] * len(pairs))}) "
                        "SELECT r.view, r.entity_key, r.record FROM w JOIN online_records r "
                        "ON r.view = w.view AND r.entity_key = w.entity_key"
                    )
                    params = [x for p in pairs for x in p]

                    def raw(s=sql, p=params, c=conn) -> None:
                        c.execute(s, p).fetchall()

                raw_p = measure(raw, args.iterations)
                lines.append(
                    f"  {name:6s} {case:38s} featurestore p50 {ours[0]:6.3f} ms p99 {ours[1]:6.3f} ms"
                    f" | raw p50 {raw_p[0]:6.3f} ms p99 {raw_p[1]:6.3f} ms | p99 ratio {ours[1] / raw_p[1]:4.2f}x"
                )
            store.close()
        client = redis.Redis.from_url(url)
        for key in client.scan_iter(match=f"{prefix}:*", count=10_000):
            client.unlink(key)
    print(f"online read latency, {args.iterations} iterations each")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
