"""AppliedFunctions: the repo's functions are imported once, checked, and shared by every path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

from featurestore import FeatureStore
from featurestore.errors import RegistryConflictError
from featurestore.repo import functions
from tests.conftest import make_repo, write_parquet

BASE = datetime(2026, 1, 1, tzinfo=UTC)

REPO = """
import polars as pl
from featurestore import (Entity, FeatureView, Field, ParquetSource, RequestSource,
                          on_demand_feature_view)
from featurestore.types import Float64

user = Entity("user", join_keys=["user_id"])

def to_dollars(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns((pl.col("cents") / 100).alias("amount"))

user_stats = FeatureView(
    name="user_stats",
    entities=[user],
    source=ParquetSource(path="data/user_stats.parquet", timestamp_field="event_timestamp"),
    schema=[Field("amount", Float64)],
    transform=to_dollars,
)
txn = RequestSource("txn", schema=[Field("spent", Float64)])

@on_demand_feature_view(sources=[user_stats, txn], schema=[Field("ratio", Float64)])
def txn_features(df: pl.DataFrame) -> pl.DataFrame:
    return df.select((pl.col("spent") / pl.col("amount")).alias("ratio"))
"""

ENTITY = pl.DataFrame(
    {"user_id": [1, 2], "event_timestamp": [BASE + timedelta(days=1)] * 2, "spent": [5.0, 7.0]}
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "repo", REPO)
    write_parquet(
        root / "data" / "user_stats.parquet",
        {"user_id": [1, 2], "event_timestamp": [BASE, BASE], "cents": [1000.0, 200.0]},
        pa.schema(
            [
                ("user_id", pa.int64()),
                ("event_timestamp", pa.timestamp("us", tz="UTC")),
                ("cents", pa.float64()),
            ]
        ),
    )
    FeatureStore(root).apply()
    return root


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every import of the repo by AppliedFunctions, in order."""
    calls: list[Path] = []
    real = functions.load_repo

    def counting(root: Path) -> Any:
        calls.append(root)
        return real(root)

    monkeypatch.setattr(functions, "load_repo", counting)
    return calls


def test_every_path_shares_one_load_of_the_repo(repo: Path, loads: list[Path]) -> None:
    store = FeatureStore(repo)
    stored = store.get_training_frame(ENTITY, ["user_stats:amount"]).to_polars()
    both = store.get_training_frame(ENTITY, ["txn_features:ratio", "user_stats:amount"])
    store.materialize(BASE, BASE + timedelta(days=1))
    online = store.get_online_features(
        ["txn_features:ratio"], {"user_id": [1, 2], "spent": [5.0, 7.0]}
    )
    store.get_online_features(["txn_features:ratio"], {"user_id": [1], "spent": [1.0]})
    assert stored["amount"].to_list() == [10.0, 2.0]
    assert both.to_polars()["ratio"].to_list() == [0.5, 3.5]
    assert online.to_dict()["ratio"] == [0.5, 3.5]
    assert loads == [repo]


def test_an_applied_edit_is_loaded_once_more(repo: Path, loads: list[Path]) -> None:
    store = FeatureStore(repo)
    assert store.get_training_frame(ENTITY, ["txn_features:ratio"]).to_polars()[
        "ratio"
    ].to_list() == [
        0.5,
        3.5,
    ]
    (repo / "features.py").write_text(REPO.replace('pl.col("spent") /', 'pl.col("spent") * 2 /'))
    store.apply()
    frame = store.get_training_frame(ENTITY, ["txn_features:ratio"]).to_polars()
    assert frame["ratio"].to_list() == [1.0, 7.0]
    store.get_training_frame(ENTITY, ["txn_features:ratio"]).to_polars()
    assert loads == [repo, repo]


def test_an_unapplied_edit_of_a_batch_transform_is_refused(repo: Path) -> None:
    (repo / "features.py").write_text(REPO.replace("/ 100", "/ 10"))
    store = FeatureStore(repo)
    with pytest.raises(RegistryConflictError, match=r"'user_stats' changed since the last apply"):
        store.get_training_frame(ENTITY, ["user_stats:amount"])
