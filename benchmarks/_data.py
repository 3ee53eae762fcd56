"""Seeded generator of benchmark data: two feature views' Parquet sources and entity frames.

Generated with DuckDB (no Python row objects), so 5M-row sources take seconds. Files are
cached under benchmarks/.data/ by size and seed.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

DATA = Path(__file__).parent / ".data"
DAYS = 90
N_FEATURES = 10


def _ignore_data_dir() -> None:
    DATA.mkdir(parents=True, exist_ok=True)
    (DATA / ".gitignore").write_text("*\n")


def _con() -> duckdb.DuckDBPyConnection:
    _ignore_data_dir()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def write_source(path: Path, *, key: str, prefix: str, n_keys: int, rows: int, seed: int) -> Path:
    """One view's source: ``rows`` rows over ``n_keys`` keys, timestamps over 90 days."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _con()
    con.execute(f"SELECT setseed({seed / 1000})")
    features = ", ".join(f"random() * 100 AS {prefix}{i}" for i in range(N_FEATURES))
    con.execute(
        f"""COPY (
            SELECT CAST(floor(random() * {n_keys}) AS BIGINT) AS {key},
                   TIMESTAMPTZ '2026-08-01 00:00:00+00'
                     + to_microseconds(CAST(floor(random() * {DAYS} * 86400e6) AS BIGINT))
                     AS event_timestamp,
                   TIMESTAMPTZ '2026-08-01 00:00:00+00'
                     + to_microseconds(CAST(floor(random() * {DAYS + 1} * 86400e6) AS BIGINT))
                     AS created,
                   {features}
            FROM range({rows})
        ) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 122880)"""
    )
    con.close()
    return path


def write_entities(path: Path, *, rows: int, n_users: int, n_merchants: int, seed: int) -> Path:
    """An entity frame: user_id, merchant_id, event_timestamp (in the same 90 days), label."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _con()
    con.execute(f"SELECT setseed({seed / 1000})")
    con.execute(
        f"""COPY (
            SELECT CAST(floor(random() * {n_users}) AS BIGINT) AS user_id,
                   CAST(floor(random() * {n_merchants}) AS BIGINT) AS merchant_id,
                   TIMESTAMPTZ '2026-08-01 00:00:00+00'
                     + to_microseconds(CAST(floor(random() * {DAYS} * 86400e6) AS BIGINT))
                     AS event_timestamp,
                   CAST(range % 2 AS BIGINT) AS label
            FROM range({rows})
        ) TO '{path}' (FORMAT parquet)"""
    )
    con.close()
    return path


FEATURES_PY = """
from datetime import timedelta
from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Float64

user = Entity("user", join_keys=["user_id"])
merchant = Entity("merchant", join_keys=["merchant_id"])
user_stats = FeatureView(
    name="user_stats", entities=[user],
    source=ParquetSource("{users}", timestamp_field="event_timestamp",
                         created_timestamp_field="created"),
    schema=[Field(f"u{{i}}", Float64) for i in range(10)],
    ttl=timedelta(days=30),
)
merchant_stats = FeatureView(
    name="merchant_stats", entities=[merchant],
    source=ParquetSource("{merchants}", timestamp_field="event_timestamp",
                         created_timestamp_field="created"),
    schema=[Field(f"m{{i}}", Float64) for i in range(10)],
    ttl=timedelta(days=30),
)
"""


def make_repo(source_rows: int, *, seed: int = 42) -> Path:
    """A feature repo with user_stats and merchant_stats over generated sources (applied)."""
    root = DATA / f"repo_{source_rows}_{seed}"
    users = write_source(
        DATA / f"users_{source_rows}_{seed}.parquet",
        key="user_id",
        prefix="u",
        n_keys=100_000,
        rows=source_rows,
        seed=seed,
    )
    merchants = write_source(
        DATA / f"merchants_{source_rows}_{seed}.parquet",
        key="merchant_id",
        prefix="m",
        n_keys=50_000,
        rows=source_rows,
        seed=seed + 1,
    )
    if not (root / "data" / "registry.json").exists():
        root.mkdir(parents=True, exist_ok=True)
        (root / "featurestore.yaml").write_text(
            "project: bench\nregistry: data/registry.json\n"
            "online_store: {type: sqlite, path: data/online.db}\n"
        )
        text = FEATURES_PY.format(users=users, merchants=merchants)
        (root / "features.py").write_text(text)
    return root
