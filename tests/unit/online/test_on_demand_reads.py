"""Online reads of on-demand views: request field errors name the views, statuses per view."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from featurestore import FeatureStore
from featurestore.errors import EntityFrameError
from tests.conftest import make_repo, utc, write_parquet

FEATURES_PY = """
import polars as pl
from featurestore import (Entity, FeatureView, Field, ParquetSource, RequestSource,
                          on_demand_feature_view)
from featurestore.types import Float64, Int64

user = Entity("user", join_keys=["user_id"])
stats = FeatureView(name="stats", entities=[user],
                    source=ParquetSource("data/stats.parquet", timestamp_field="ts"),
                    schema=[Field("avg", Float64), Field("cnt", Int64)])
txn = RequestSource("txn", schema=[Field("amount", Float64)])


@on_demand_feature_view(sources=[stats[["avg"]], txn],
                        schema=[Field("ratio", Float64), Field("diff", Float64)])
def by_avg(df: pl.DataFrame) -> pl.DataFrame:
    return df.select((pl.col("amount") / pl.col("avg")).alias("ratio"),
                     (pl.col("amount") - pl.col("avg")).alias("diff"))


@on_demand_feature_view(sources=[stats[["cnt"]], txn], schema=[Field("per", Float64)])
def by_cnt(df: pl.DataFrame) -> pl.DataFrame:
    return df.select((pl.col("amount") / pl.col("cnt")).alias("per"))
"""
T = utc(2026, 1, 1, 12)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FeatureStore]:
    root = make_repo(tmp_path / "repo", FEATURES_PY)
    write_parquet(
        root / "data/stats.parquet",
        {"user_id": [1, 2], "ts": [T, T], "avg": [2.0, 4.0], "cnt": [4, None]},
    )
    fs = FeatureStore(root)
    fs.apply()
    fs.materialize(utc(2026, 1, 1), utc(2026, 1, 2))
    yield fs
    fs.close()


FEATURES = ["by_avg:ratio", "by_cnt:per", "by_avg:diff"]


def test_missing_request_field_names_every_view_reading_it(store: FeatureStore) -> None:
    with pytest.raises(EntityFrameError, match=r"Entity row 1 has no request field 'amount'.*"
                       r"'by_avg', 'by_cnt'"):  # fmt: skip
        store.get_online_features(FEATURES, [{"user_id": 1, "amount": 1.0}, {"user_id": 2}])
    with pytest.raises(EntityFrameError, match=r"no request field column 'amount'.*'by_avg'"):
        store.get_online_features(FEATURES, {"user_id": [1]})
    with pytest.raises(EntityFrameError, match=r"'amount' of on-demand feature view\(s\) 'by_a"):
        store.get_online_features(FEATURES, {"user_id": [1], "amount": ["x"]})


def test_outputs_of_one_view_share_its_inputs_statuses(store: FeatureStore) -> None:
    got = store.get_online_features(
        FEATURES, {"user_id": [1, 2, 9], "amount": [8.0, 8.0, 8.0]}, request_time=T
    )
    assert got.to_dict() == {
        "user_id": [1, 2, 9],
        "ratio": [4.0, 2.0, None],
        "per": [2.0, None, None],
        "diff": [6.0, 4.0, None],
    }
    assert got.statuses["ratio"] == got.statuses["diff"] == ["PRESENT", "PRESENT", "NOT_FOUND"]
    assert got.statuses["per"] == ["PRESENT", "PRESENT", "NOT_FOUND"]  # a stored null is PRESENT
    assert got.event_micros["ratio"] == got.event_micros["per"]
    assert got.event_micros["ratio"][2] is None
