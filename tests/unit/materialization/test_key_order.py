"""Materialization reads the newest rows in join-key order and writes them in packed batches."""

from __future__ import annotations

import random
from pathlib import Path

from featurestore import FeatureStore
from tests.conftest import make_repo, utc, write_parquet

FEATURES_PY = """
from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Float64, Int64
user = Entity("user", join_keys=["user_id"])
stats = FeatureView(name="stats", entities=[user],
                    source=ParquetSource("data/stats.parquet", timestamp_field="ts"),
                    schema=[Field("cnt", Int64), Field("amount", Float64)])
"""


def _repo(tmp_path: Path, users: list[int]) -> FeatureStore:
    root = make_repo(tmp_path / "repo", FEATURES_PY)
    n = len(users)
    columns: dict[str, list[object]] = {
        "user_id": list(users),
        "ts": [utc(2026, 1, 1 + i % 20) for i in range(n)],
        "cnt": list(range(n)),
        "amount": [None if i % 7 == 0 else i / 4 for i in range(n)],
    }
    write_parquet(root / "data/stats.parquet", columns)
    fs = FeatureStore(root)
    fs.apply()
    return fs


def test_ordered_latest_rows_follow_the_join_keys_across_batches(tmp_path: Path) -> None:
    users = [u for u in range(-50, 250) for _ in range(2)]
    random.Random(3).shuffle(users)
    fs = _repo(tmp_path, users)
    try:
        record = fs.get_feature_view("stats")
        window = (utc(2026, 1, 1), utc(2026, 2, 1))
        ordered = list(fs.offline.latest_rows(record, *window, batch_size=7, ordered=True))
        keys = [k for b in ordered for k in b.column("user_id").to_pylist()]
        assert keys == sorted(set(users))
        plain = list(fs.offline.latest_rows(record, *window, batch_size=7))
        rows = sorted((r for b in plain for r in b.to_pylist()), key=lambda r: r["user_id"])
        assert [r for b in ordered for r in b.to_pylist()] == rows
    finally:
        fs.close()


def test_materialized_records_equal_per_row_writes(tmp_path: Path) -> None:
    """Packed, key-ordered writes over overlapping windows (negative keys too) read back."""
    users = list(range(-300, 300))
    random.Random(5).shuffle(users)
    fs = _repo(tmp_path, users)
    try:
        fs.materialize(utc(2026, 1, 1), utc(2026, 1, 10))
        fs.materialize(utc(2026, 1, 5), utc(2026, 2, 1))  # overlapping second window
        response = fs.get_online_features(["stats:cnt", "stats:amount"], {"user_id": users})
        got = response.to_dict()
        expected = [(i, None if i % 7 == 0 else i / 4) for i in range(len(users))]
        assert list(zip(got["cnt"], got["amount"], strict=True)) == expected
        assert fs.online.count_records("stats") == len(users)
    finally:
        fs.close()
