"""On-demand views at apply and read time: skew check, type errors on both paths, edited code."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from featurestore import FeatureStore
from featurestore.cli.main import app
from featurestore.errors import DefinitionError, RegistryConflictError, TransformationError
from tests.conftest import make_repo, write_parquet

BASE = datetime(2026, 1, 1, tzinfo=UTC)

HEADER = """
import polars as pl
from featurestore import (Entity, FeatureView, Field, ParquetSource, RequestSource,
                          on_demand_feature_view)
from featurestore.types import Float64, Int64, String

user = Entity("user", join_keys=["user_id"])
user_stats = FeatureView(
    name="user_stats",
    entities=[user],
    source=ParquetSource(path="data/user_stats.parquet", timestamp_field="event_timestamp"),
    schema=[Field("avg_amount", Float64)],
)
txn = RequestSource("txn", schema=[Field("amount", Float64), Field("channel", String)])
"""

ROW_WISE = """
@on_demand_feature_view(sources=[user_stats, txn], schema=[Field("ratio", Float64)])
def txn_features(df: pl.DataFrame) -> pl.DataFrame:
    return df.select((pl.col("amount") / pl.col("avg_amount")).alias("ratio"))
"""

COLUMN_MEAN = """
@on_demand_feature_view(sources=[user_stats, txn], schema=[Field("centered", Float64)])
def txn_features(df: pl.DataFrame) -> pl.DataFrame:
    return df.select((pl.col("avg_amount") - pl.col("avg_amount").mean()).alias("centered"))
"""

SOMETIMES_STRING = """
@on_demand_feature_view(sources=[user_stats, txn], schema=[Field("ratio", Float64)],
                        mode="python")
def txn_features(row: dict) -> dict:
    if row["channel"] == "weird":
        return {"ratio": "not a number"}
    return {"ratio": None if row["amount"] is None else row["amount"] * 2}
"""


def _repo(tmp_path: Path, body: str) -> Path:
    repo = make_repo(tmp_path / "repo", HEADER + body)
    write_parquet(
        repo / "data" / "user_stats.parquet",
        {
            "user_id": [1, 2, 3, 1],
            "event_timestamp": [BASE, BASE, BASE, BASE + timedelta(hours=1)],
            "avg_amount": [10.0, None, 2.5, 20.0],
        },
        pa.schema(
            [
                ("user_id", pa.int64()),
                ("event_timestamp", pa.timestamp("us", tz="UTC")),
                ("avg_amount", pa.float64()),
            ]
        ),
    )
    return repo


def _entity_df(channel: str = "web") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": [1, 2],
            "event_timestamp": [BASE + timedelta(days=1)] * 2,
            "amount": [5.0, 7.0],
            "channel": [channel, channel],
        }
    )


def test_apply_refuses_a_function_that_is_not_row_wise(tmp_path: Path) -> None:
    store = FeatureStore(_repo(tmp_path, COLUMN_MEAN))
    with pytest.raises(DefinitionError, match="not row-wise") as info:
        store.apply()
    message = str(info.value)
    assert "'txn_features'" in message
    assert "'centered'" in message
    assert "training frame and an online request would get different values" in message
    assert store.refresh().serial == 0  # nothing was applied


def test_apply_accepts_a_row_wise_function_and_cli_reports_per_feature(tmp_path: Path) -> None:
    repo = _repo(tmp_path, ROW_WISE)
    FeatureStore(repo).apply()
    result = CliRunner().invoke(app, ["--repo", str(repo), "check-transforms", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows == [
        {
            "view": "txn_features",
            "feature": "ratio",
            "rows": 4,
            "mismatches": 0,
            "ok": True,
            "example": None,
        }
    ]


def test_cli_check_transforms_exits_1_on_a_non_row_wise_function(tmp_path: Path) -> None:
    repo = _repo(tmp_path, COLUMN_MEAN)
    result = CliRunner().invoke(app, ["--repo", str(repo), "check-transforms", "--sample", "50"])
    assert result.exit_code == 1
    assert "SKEW" in result.stdout
    assert "not row-wise" in result.stderr


def test_type_mismatch_is_caught_on_both_paths(tmp_path: Path) -> None:
    store = FeatureStore(_repo(tmp_path, SOMETIMES_STRING))
    store.apply()  # the random sample never sends channel="weird"
    store.materialize(BASE, BASE + timedelta(days=1))
    good = store.get_training_frame(_entity_df(), ["txn_features:ratio"]).to_polars()
    assert good.get_column("ratio").to_list() == [10.0, 14.0]
    pattern = r"'txn_features' feature 'ratio' is declared Float64 but the function returned str"
    with pytest.raises(TransformationError, match=pattern):
        store.get_training_frame(_entity_df("weird"), ["txn_features:ratio"]).to_polars()
    with pytest.raises(TransformationError, match=pattern):
        store.get_online_features(
            ["txn_features:ratio"], [{"user_id": 1, "amount": 1.0, "channel": "weird"}]
        )


def test_edited_function_is_detected_until_applied(tmp_path: Path) -> None:
    repo = _repo(tmp_path, ROW_WISE)
    FeatureStore(repo).apply()
    (repo / "features.py").write_text(
        HEADER + ROW_WISE.replace('pl.col("avg_amount"))', 'pl.col("avg_amount") + 1)')
    )
    store = FeatureStore(repo)
    changes = {c.name: c for c in store.plan().changes}
    assert changes["txn_features"].action == "change"
    with pytest.raises(RegistryConflictError, match="'txn_features' changed since the last apply"):
        store.get_online_features(
            ["txn_features:ratio"], [{"user_id": 1, "amount": 1.0, "channel": "web"}]
        )
    with pytest.raises(RegistryConflictError, match="run 'featurestore apply'"):
        store.get_training_frame(_entity_df(), ["txn_features:ratio"])
    # Stored features stay readable: only reads of the edited view refuse.
    store.get_online_features(["user_stats:avg_amount"], [{"user_id": 1}])
    store.apply()
    frame = store.get_training_frame(_entity_df(), ["txn_features:ratio"]).to_polars()
    assert frame.get_column("ratio").to_list() == [5.0 / 20.0 + 1, None]
