"""Materialization rows/s into SQLite and Redis vs raw executemany / pipelined HSET.

    .venv/bin/python benchmarks/bench_materialize.py --entities 1000000

One row per entity, 10 features (5 Int64, 5 Float64). The featurestore figure covers the
whole path (DuckDB newest-row query, encoding, conditional writes); the raw baselines only
write the same rows, already in Python, with no condition: the bar is deliberately high.
"""

from __future__ import annotations

import argparse
import sqlite3
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
from featurestore.repo.config import RedisOnlineStoreConfig, SqliteOnlineStoreConfig

FEATURES_PY = """
from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Float64, Int64
user = Entity("user", join_keys=["user_id"])
wide = FeatureView(name="wide", entities=[user],
    source=ParquetSource("data/wide.parquet", timestamp_field="ts"),
    schema=[Field(f"i{j}", Int64) for j in range(5)] + [Field(f"f{j}", Float64) for j in range(5)])
"""
START = datetime(2026, 1, 1, tzinfo=UTC)


def make_repo(root: Path, n: int) -> pa.Table:
    (root / "data").mkdir(parents=True)
    (root / "featurestore.yaml").write_text("project: bench\n")
    (root / "features.py").write_text(FEATURES_PY)
    ids = pa.array(range(n), pa.int64())
    columns = {
        "user_id": ids,
        "ts": pa.array(
            [START + timedelta(seconds=i % 86400) for i in range(n)], pa.timestamp("us", tz="UTC")
        ),
    }
    for j in range(5):
        columns[f"i{j}"] = pa.array(range(j, n + j), pa.int64())
        columns[f"f{j}"] = pa.array([i * 0.5 + j for i in range(n)], pa.float64())
    table = pa.table(columns)
    pq.write_table(table, root / "data/wide.parquet")
    return table


def timed(fn) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", type=int, default=1_000_000)
    args = parser.parse_args()
    n = args.entities
    root = Path(tempfile.mkdtemp(prefix="bench-mat-")) / "repo"
    table = make_repo(root, n)
    names = ["user_id"] + [f"i{j}" for j in range(5)] + [f"f{j}" for j in range(5)]
    rows = list(zip(*(table.column(c).to_pylist() for c in names), strict=True))
    base = FeatureStore(root)
    base.apply()
    results = {}

    # SQLite
    store = FeatureStore(
        root,
        config=base.config.model_copy(
            update={"online_store": SqliteOnlineStoreConfig(path="data/fs.db")}
        ),
    )
    ours = timed(lambda: store.materialize(START, START + timedelta(days=2)))
    store.close()
    conn = sqlite3.connect(root / "data/raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        f"CREATE TABLE raw (user_id INTEGER PRIMARY KEY, {', '.join(c + ' ' for c in names[1:])})"
    )

    def raw_sqlite() -> None:
        for i in range(0, n, 50_000):
            conn.execute("BEGIN")
            conn.executemany(
                f"INSERT OR REPLACE INTO raw VALUES ({','.join('?' * len(names))})",
                rows[i : i + 50_000],
            )
            conn.execute("COMMIT")

    raw = timed(raw_sqlite)
    results["sqlite"] = (ours, raw)

    # Redis
    with redis_url() as url:
        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        online = RedisOnlineStoreConfig(type="redis", url=url, key_prefix=prefix, timeout_s=10)
        store = FeatureStore(root, config=base.config.model_copy(update={"online_store": online}))
        ours = timed(lambda: store.materialize(START, START + timedelta(days=2)))
        store.close()
        client = redis.Redis.from_url(url)

        def raw_redis() -> None:
            pipe = client.pipeline(transaction=False)
            for count, row in enumerate(rows, 1):
                pipe.hset(
                    f"{prefix}:raw:{row[0]}", mapping=dict(zip(names[1:], row[1:], strict=True))
                )
                if count % 1000 == 0:
                    pipe.execute()
            pipe.execute()

        raw = timed(raw_redis)
        results["redis"] = (ours, raw)
        for key in client.scan_iter(match=f"{prefix}:*", count=10_000):
            client.unlink(key)

    print(f"materialize {n:,} entities x 10 features")
    for backend, (ours, raw) in results.items():
        print(
            f"  {backend:6s} featurestore {n / ours:>10,.0f} rows/s ({ours:6.2f} s)   "
            f"raw {n / raw:>10,.0f} rows/s ({raw:6.2f} s)   ratio {raw / ours:5.0%}"
        )


if __name__ == "__main__":
    main()
