"""Training frames in notebooks: ``repr`` and ``_repr_html_`` show the plan without computing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from featurestore import FeatureStore
from featurestore.frames import Frame
from tests.conftest import make_repo, utc, write_parquet

FEATURES_PY = """
import polars as pl
from featurestore import (Entity, FeatureView, Field, ParquetSource, RequestSource,
                          on_demand_feature_view)
from featurestore.types import Float64, Int64

user = Entity("user", join_keys=["user_id"])
users = FeatureView(
    name="users", entities=[user],
    source=ParquetSource("data/users.parquet", timestamp_field="ts"),
    schema=[Field("amount", Float64), Field("visits", Int64)],
)
txn = RequestSource("txn", schema=[Field("spent", Float64)])

@on_demand_feature_view(sources=[users, txn], schema=[Field("share", Float64)])
def shares(df: pl.DataFrame) -> pl.DataFrame:
    return df.select((pl.col("spent") / pl.col("amount")).alias("share"))
"""
T0 = utc(2026, 1, 1)


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    make_repo(tmp_path, FEATURES_PY)
    write_parquet(
        tmp_path / "data/users.parquet",
        {"user_id": [1, 2], "ts": [T0, T0], "amount": [2.0, 4.0], "visits": [3, None]},
        schema=pa.schema(
            [
                ("user_id", pa.int64()),
                ("ts", pa.timestamp("us", tz="UTC")),
                ("amount", pa.float64()),
                ("visits", pa.int64()),
            ]
        ),
    )
    fs = FeatureStore(tmp_path)
    fs.apply()
    return fs


ENTITY = pa.table(
    {
        "user_id": pa.array([1, 2, 3], pa.int64()),
        "event_timestamp": pa.array([T0 + timedelta(days=1)] * 3, pa.timestamp("us", tz="UTC")),
        "spent": pa.array([1.0, 1.0, 1.0]),
    }
)


def test_repr_shows_the_plan_and_computes_nothing(store: FeatureStore, tmp_path: Path) -> None:
    frame = store.get_training_frame(ENTITY, ["users:amount", "users:visits"])
    (tmp_path / "data/users.parquet").unlink()  # computing now would fail
    text = repr(frame)
    assert text.splitlines() == [
        "TrainingFrame",
        "  entity rows: 3",
        "  point in time: event",
        "  join strategy: range",
        "  views: users (amount, visits)",
        "  columns: user_id, event_timestamp, spent, amount, visits",
        "  computed: on each to_* call (lazy)",
    ]
    page = frame._repr_html_()
    assert page.startswith("<table>")
    assert (
        "<th style='text-align:left'>views</th><td style='text-align:left'>users (amount, visits)</td>"
        in page
    )


def test_on_demand_repr_names_its_views_and_only_the_output_columns(store: FeatureStore) -> None:
    frame = store.get_training_frame(ENTITY, ["shares:share"])
    lines = repr(frame).splitlines()
    assert lines[0] == "OnDemandTrainingFrame"
    assert "  on-demand views: shares (share)" in lines
    assert "  columns: user_id, event_timestamp, spent, share" in lines
    assert "<td style='text-align:left'>shares (share)</td>" in frame._repr_html_()


def test_training_frames_are_frames(store: FeatureStore) -> None:
    assert isinstance(store.get_training_frame(ENTITY, ["users:amount"]), Frame)
    assert isinstance(store.get_training_frame(ENTITY, ["shares:share"]), Frame)
