"""A small repo with an online view, a ttl view and an offline-only view."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from featurestore import FeatureStore
from tests.conftest import make_repo, utc, write_parquet

FEATURES_PY = """
from datetime import timedelta
from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Float64, Int64

user = Entity("user", join_keys=["user_id"])
src = ParquetSource("data/stats.parquet", timestamp_field="ts")
stats = FeatureView(name="stats", entities=[user], source=src,
                    schema=[Field("cnt", Int64), Field("amount", Float64)])
recent = FeatureView(name="recent", entities=[user], source=src,
                     schema=[Field("cnt", Int64)], ttl=timedelta(days=1))
archive = FeatureView(name="archive", entities=[user], source=src,
                      schema=[Field("cnt", Int64)], online=False)
"""

ROWS = {
    "user_id": [1, 1, 2, 3],
    "ts": [utc(2026, 1, 1), utc(2026, 1, 5), utc(2026, 1, 2), utc(2026, 1, 9)],
    "cnt": [10, 11, 20, 30],
    "amount": [1.0, 1.5, 2.0, None],
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FeatureStore]:
    root = make_repo(tmp_path / "repo", FEATURES_PY)
    write_parquet(root / "data/stats.parquet", ROWS)
    fs = FeatureStore(root)
    fs.apply()
    yield fs
    fs.close()
