"""featurestore.sample_data: the example's seeded data generator (used by `init` and feature_repo)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from featurestore.sample_data import generate, merchant_id

END = datetime(2026, 11, 27, 12, tzinfo=UTC)
FILES = [
    "user_stats.parquet",
    "merchant_stats.parquet",
    "user_merchant_stats.parquet",
    "transactions.parquet",
    "entities.parquet",
]


def test_same_seed_and_end_give_identical_files(tmp_path: Path):
    a = generate(tmp_path / "a", rows=500, days=5, entity_rows=50, end=END)
    b = generate(tmp_path / "b", rows=500, days=5, entity_rows=50, end=END)
    c = generate(tmp_path / "c", rows=500, days=5, entity_rows=50, end=END, seed=7)
    for name in FILES:
        assert pq.read_table(a.files[name]).equals(pq.read_table(b.files[name])), name
    assert not pq.read_table(a.files["user_stats.parquet"]).equals(
        pq.read_table(c.files["user_stats.parquet"])
    )


def test_sizes_keys_and_time_range(tmp_path: Path):
    data = generate(tmp_path, rows=1_000, days=10, entity_rows=200, end=END)
    assert data.users == 100
    assert data.merchants == 50
    assert data.start == END - timedelta(days=10)
    assert data.rows == {
        "user_stats.parquet": 1_000,
        "merchant_stats.parquet": 50 * 10 * 4,
        "user_merchant_stats.parquet": 100 * 2 * 3,
        "transactions.parquet": 100 * 10 * 2,
        "entities.parquet": 200,
    }
    users = pq.read_table(data.files["user_stats.parquet"])
    assert users.schema.field("user_id").type == "int64"
    assert sorted(set(users.column("user_id").to_pylist())) == list(range(100))
    for name in FILES:
        table = pq.read_table(data.files[name])
        times = table.column("event_timestamp")
        assert str(times.type) == "timestamp[us, tz=UTC]"
        assert pc.min(times).as_py() >= data.start
        assert pc.max(times).as_py() < END
        if "created" in table.column_names:
            assert pc.all(pc.greater(table.column("created"), times)).as_py()
    merchants = (
        pq.read_table(data.files["merchant_stats.parquet"]).column("merchant_id").to_pylist()
    )
    assert set(merchants) == {merchant_id(i) for i in range(50)}


def test_values_are_plausible_and_nulls_mean_no_transactions(tmp_path: Path):
    data = generate(tmp_path, rows=3_000, days=10, entity_rows=10, end=END)
    users = pq.read_table(data.files["user_stats.parquet"]).to_pylist()
    for row in users:
        assert row["txn_count_7d"] >= 0
        assert (row["avg_amount_7d"] is None) == (row["txn_count_7d"] == 0)
        if row["avg_amount_7d"] is not None:
            assert 0 < row["avg_amount_7d"] <= row["max_amount_7d"]
        assert 0 <= row["distinct_merchants_30d"] <= row["txn_count_7d"]
    rates = pq.read_table(data.files["merchant_stats.parquet"]).column("merchant_fraud_rate_30d")
    assert 0.0 <= pc.min(rates).as_py() <= pc.max(rates).as_py() <= 1.0


def test_entities_are_sorted_labelled_transactions_with_some_unknown_users(tmp_path: Path):
    data = generate(tmp_path, rows=3_000, days=10, entity_rows=2_000, end=END)
    entities = pq.read_table(data.files["entities.parquet"])
    assert entities.column_names == [
        "user_id",
        "merchant_id",
        "event_timestamp",
        "amount",
        "is_fraud",
    ]
    times = entities.column("event_timestamp").to_pylist()
    assert times == sorted(times)
    assert times[0] >= data.start + timedelta(days=5)
    unknown = sum(u >= data.users for u in entities.column("user_id").to_pylist())
    assert 0 < unknown < 0.05 * 2_000
    # Most transactions are at one of the user's regular merchants, which have pair features.
    pairs = pq.read_table(data.files["user_merchant_stats.parquet"]).select(
        ["user_id", "merchant_id"]
    )
    known_pairs = set(zip(*(pairs.column(c).to_pylist() for c in pairs.column_names), strict=True))
    regular = sum(
        (u, m) in known_pairs
        for u, m in zip(
            entities.column("user_id").to_pylist(),
            entities.column("merchant_id").to_pylist(),
            strict=True,
        )
    )
    assert regular > 0.5 * 2_000


def test_small_chunks_bound_memory_and_write_row_groups(tmp_path: Path):
    seen: list[tuple[str, int]] = []
    data = generate(
        tmp_path,
        rows=2_000,
        days=10,
        entity_rows=10,
        end=END,
        chunk_rows=300,
        progress=lambda name, done: seen.append((name, done)),
    )
    meta = pq.ParquetFile(data.files["user_stats.parquet"]).metadata
    assert meta.num_rows == 2_000
    assert meta.num_row_groups == 7  # 30 users (300 rows) per chunk, 200 users
    user_progress = [done for name, done in seen if name == "user_stats.parquet"]
    assert user_progress == sorted(user_progress)
    assert user_progress[-1] == 2_000


def test_invalid_sizes_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="rows >= 1"):
        generate(tmp_path, rows=0)
