"""An on-demand training frame's outputs: Parquet and CSV hold what ``to_arrow`` returns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from featurestore import FeatureStore
from tests.conftest import make_repo, write_parquet

BASE = datetime(2026, 1, 1, tzinfo=UTC)

FEATURES_PY = """
import polars as pl
from featurestore import (Entity, FeatureView, Field, ParquetSource, RequestSource,
                          on_demand_feature_view)
from featurestore.types import Float64

user = Entity("user", join_keys=["user_id"])
user_stats = FeatureView(
    name="user_stats",
    entities=[user],
    source=ParquetSource(path="data/user_stats.parquet", timestamp_field="event_timestamp"),
    schema=[Field("avg_amount", Float64)],
)
txn = RequestSource("txn", schema=[Field("amount", Float64)])

@on_demand_feature_view(sources=[user_stats, txn], schema=[Field("ratio", Float64)])
def txn_features(df: pl.DataFrame) -> pl.DataFrame:
    return df.select((pl.col("amount") / pl.col("avg_amount")).alias("ratio"))
"""


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    repo = make_repo(tmp_path / "repo", FEATURES_PY)
    write_parquet(
        repo / "data" / "user_stats.parquet",
        {"user_id": [1, 2], "event_timestamp": [BASE, BASE], "avg_amount": [10.0, 4.0]},
        pa.schema(
            [
                ("user_id", pa.int64()),
                ("event_timestamp", pa.timestamp("us", tz="UTC")),
                ("avg_amount", pa.float64()),
            ]
        ),
    )
    fs = FeatureStore(repo)
    fs.apply()
    return fs


@pytest.mark.parametrize("rows", [3, 0])
def test_to_parquet_and_to_csv_hold_the_frame(
    store: FeatureStore, tmp_path: Path, rows: int
) -> None:
    entities = pl.DataFrame(
        {
            "user_id": [1, 2, 3][:rows],
            "event_timestamp": [BASE + timedelta(hours=1)] * rows,
            "amount": [5.0, 6.0, 7.0][:rows],
        },
        schema={
            "user_id": pl.Int64,
            "event_timestamp": pl.Datetime("us", "UTC"),
            "amount": pl.Float64,
        },
    )
    frame = store.get_training_frame(entities, ["user_stats:avg_amount", "txn_features:ratio"])
    expected = frame.to_arrow()
    assert expected.column("ratio").to_pylist() == [0.5, 1.5, None][:rows]
    written = pq.read_table(frame.to_parquet(tmp_path / "out" / "frame.parquet"))
    assert written.equals(expected)
    csv = pacsv.read_csv(frame.to_csv(tmp_path / "out" / "frame.csv"))
    assert csv.column_names == expected.column_names
    assert csv.num_rows == rows
    if rows:
        assert csv.column("ratio").to_pylist() == expected.column("ratio").to_pylist()
