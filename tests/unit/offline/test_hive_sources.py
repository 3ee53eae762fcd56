"""Sources laid out as hive-partitioned directories and globs read like one file."""

from __future__ import annotations

import polars as pl

from featurestore import FeatureStore
from tests.conftest import make_repo, utc, write_parquet

FEATURES_PY = """
from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Float64, String

user = Entity("user", join_keys=["user_id"])
stats = FeatureView(
    name="stats", entities=[user],
    source=ParquetSource("data/stats", timestamp_field="ts"),
    schema=[Field("amount", Float64), Field("region", String)],
)
by_glob = FeatureView(
    name="by_glob", entities=[user],
    source=ParquetSource("data/stats/region=eu/*.parquet", timestamp_field="ts"),
    schema=[Field("amount", Float64)],
)
"""


def test_hive_partition_columns_are_features_and_globs_select_partitions(tmp_path):
    root = make_repo(tmp_path, FEATURES_PY)
    write_parquet(
        root / "data/stats/region=eu/part-0.parquet",
        {"user_id": [1, 2], "ts": [utc(2026, 1, 1), utc(2026, 1, 1)], "amount": [1.0, 2.0]},
    )
    write_parquet(
        root / "data/stats/region=us/part-0.parquet",
        {"user_id": [1], "ts": [utc(2026, 1, 2)], "amount": [9.0]},
    )
    store = FeatureStore(root)
    store.apply()
    entities = pl.DataFrame(
        {
            "user_id": [1, 1, 2],
            "event_timestamp": [utc(2026, 1, 1), utc(2026, 1, 3), utc(2026, 1, 3)],
        }
    )
    frame = store.get_training_frame(
        entities,
        ["stats:amount", "stats:region", "by_glob:amount"],
        full_feature_names=True,
    ).to_polars()
    assert frame["stats__amount"].to_list() == [1.0, 9.0, 2.0]
    assert frame["stats__region"].to_list() == ["eu", "us", "eu"]
    assert frame["by_glob__amount"].to_list() == [1.0, 1.0, 2.0]
