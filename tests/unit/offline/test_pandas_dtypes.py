"""Training frames to pandas: nullable dtypes, so an integer feature with nulls stays integer."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from featurestore import FeatureStore
from tests.conftest import make_repo, utc, write_parquet

FEATURES_PY = """
import polars as pl
from featurestore import (Entity, FeatureView, Field, ParquetSource, RequestSource,
                          on_demand_feature_view)
from featurestore.types import Bool, Float64, Int64, String

user = Entity("user", join_keys=["user_id"])
users = FeatureView(
    name="users", entities=[user],
    source=ParquetSource("data/users.parquet", timestamp_field="ts"),
    schema=[Field("visits", Int64), Field("vip", Bool), Field("city", String),
            Field("amount", Float64)],
)
txn = RequestSource("txn", schema=[Field("spent", Int64)])

@on_demand_feature_view(sources=[users, txn], schema=[Field("more", Int64)])
def more(df: pl.DataFrame) -> pl.DataFrame:
    return df.select((pl.col("spent") + pl.col("visits")).alias("more"))
"""
T0 = utc(2026, 1, 1)
ENTITY = pa.table(
    {
        "user_id": pa.array([1, 2, 3], pa.int64()),
        "event_timestamp": pa.array([T0 + timedelta(days=1)] * 3, pa.timestamp("us", tz="UTC")),
        "spent": pa.array([1, 2, 3], pa.int64()),
    }
)


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    make_repo(tmp_path, FEATURES_PY)
    write_parquet(
        tmp_path / "data/users.parquet",
        {
            "user_id": [1, 2],
            "ts": [T0, T0],
            "visits": [19, None],
            "vip": [True, None],
            "city": ["Oslo", None],
            "amount": [2.5, None],
        },
        schema=pa.schema(
            [
                ("user_id", pa.int64()),
                ("ts", pa.timestamp("us", tz="UTC")),
                ("visits", pa.int64()),
                ("vip", pa.bool_()),
                ("city", pa.string()),
                ("amount", pa.float64()),
            ]
        ),
    )
    fs = FeatureStore(tmp_path)
    fs.apply()
    return fs


def test_integer_bool_and_string_features_keep_nullable_dtypes(store: FeatureStore) -> None:
    df = store.get_training_frame(
        ENTITY, ["users:visits", "users:vip", "users:city", "users:amount"]
    ).to_pandas()
    assert {c: str(df[c].dtype) for c in ("visits", "vip", "city", "amount")} == {
        "visits": "Int64",
        "vip": "boolean",
        "city": "string",
        "amount": "float64",
    }
    assert df["visits"].tolist() == [19, pd.NA, pd.NA]  # not 19.0 / NaN


def test_on_demand_frames_convert_the_same_way(store: FeatureStore) -> None:
    df = store.get_training_frame(ENTITY, ["users:visits", "more:more"]).to_pandas()
    assert str(df["visits"].dtype) == "Int64"
    assert str(df["more"].dtype) == "Int64"
    assert df["more"].tolist() == [20, pd.NA, pd.NA]
