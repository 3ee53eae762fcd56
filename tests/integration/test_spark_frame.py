"""The Spark engine's own outputs and inputs: a Spark DataFrame as the entity frame,
``to_spark()``, ``to_parquet`` from the executors, the config that selects the engine, and
the CLI materializing an aggregation view with Spark."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from featurestore import FeatureStore
from featurestore._quiet import quiet_pyspark
from featurestore.cli.data_commands import write_frame
from featurestore.cli.main import app, template_files
from featurestore.errors import ConfigError, EntityFrameError
from featurestore.offline.spark.engine import SparkOfflineEngine
from featurestore.repo.config import RepoConfig
from featurestore.sample_data import default_end, generate
from tests.conftest import make_repo
from tests.spark_engine import on_spark
from tests.strategies import BASE

FEATURES_PY = """
from datetime import timedelta
from featurestore import Aggregation, Entity, FeatureView, Field, ParquetSource
from featurestore.types import Int64

user = Entity("user", join_keys=["user_id"])
stats = FeatureView(name="stats", entities=[user],
                    source=ParquetSource("data/s.parquet", timestamp_field="ts"),
                    schema=[Field("n", Int64)])
s = timedelta(seconds=1)
windows = FeatureView(name="windows", entities=[user],
                      source=ParquetSource("data/s.parquet", timestamp_field="ts"),
                      aggregations=[Aggregation("n", "sum", 2 * s), Aggregation(None, "count", 4 * s)])
"""
MIXED = ["stats:n", "windows:n_sum_2s", "windows:count_4s"]
"""A plain view and an aggregation view (G7) of the same source, in one frame."""


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[FeatureStore, FeatureStore]:
    root = make_repo(tmp_path_factory.mktemp("spark_frame"), FEATURES_PY)
    (root / "data").mkdir()
    seconds = [0, 1, 2, 3, 4, 5]
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array([1, 2, 1, 2, 1, 3], pa.int64()),
                "ts": pa.array(
                    [BASE + timedelta(seconds=s) for s in seconds], pa.timestamp("us", tz="UTC")
                ),
                "n": pa.array([10, 20, 11, 21, 12, 30], pa.int64()),
            }
        ),
        root / "data/s.parquet",
    )
    store = FeatureStore(root)
    store.apply()
    return store, on_spark(store)


def _entities() -> pa.Table:
    times = [BASE + timedelta(seconds=s) for s in (3, 0, 9, 3, 1)]
    return pa.table(
        {
            "user_id": pa.array([1, 2, 3, 1, 4], pa.int64()),
            "event_timestamp": pa.array(times, pa.timestamp("us", tz="UTC")),
            "label": pa.array([0, 1, 2, 3, 4], pa.int64()),
        }
    )


def test_spark_store_uses_the_spark_engine(stores: tuple[FeatureStore, FeatureStore]) -> None:
    duckdb_store, spark_store = stores
    assert isinstance(spark_store.offline, SparkOfflineEngine)
    assert spark_store.offline.local is not spark_store.offline
    assert duckdb_store.offline.local is duckdb_store.offline


def test_spark_dataframe_entity_frame_equals_arrow_one(
    stores: tuple[FeatureStore, FeatureStore],
) -> None:
    duckdb_store, spark_store = stores
    expected = duckdb_store.get_training_frame(_entities(), MIXED).to_arrow()
    assert expected.column("count_4s").to_pylist() == [2, 0, 1, 2, 0]
    spark = spark_store.offline.spark  # type: ignore[attr-defined]
    with quiet_pyspark():  # PySpark warns about pandas 3 on conversions
        entity_df = spark.createDataFrame(_entities()).coalesce(1)
    got = spark_store.get_training_frame(entity_df, MIXED).to_arrow()
    assert got.select(expected.column_names).to_pylist() == expected.to_pylist()


def test_to_spark_and_to_parquet_keep_rows_in_order(
    stores: tuple[FeatureStore, FeatureStore], tmp_path: Path
) -> None:
    duckdb_store, spark_store = stores
    expected = duckdb_store.get_training_frame(_entities(), ["stats:n"]).to_arrow().to_pylist()
    frame = spark_store.get_training_frame(_entities(), ["stats:n"])
    rows = [row.asDict() for row in frame.to_spark().collect()]  # type: ignore[attr-defined]
    assert [r["label"] for r in rows] == [r["label"] for r in expected]
    assert [r["n"] for r in rows] == [r["n"] for r in expected]
    out = frame.to_parquet(tmp_path / "frame.parquet")
    parts = sorted(out.glob("part-*.parquet"))
    assert parts
    written = pa.concat_tables([pq.read_table(p) for p in parts])
    assert [r["label"] for r in written.to_pylist()] == [r["label"] for r in expected]
    rows, columns = write_frame(frame, tmp_path / "cli.parquet", ".parquet")  # the CLI's writer
    assert (rows, columns) == (len(expected), list(expected[0]))


def test_spark_entity_frame_without_join_key_names_the_view(
    stores: tuple[FeatureStore, FeatureStore],
) -> None:
    _, spark_store = stores
    spark = spark_store.offline.spark  # type: ignore[attr-defined]
    with quiet_pyspark():
        entity_df = spark.createDataFrame(_entities().drop_columns(["user_id"]))
    with pytest.raises(EntityFrameError, match=r"lacks join key column.*user_id.*'stats'"):
        spark_store.get_training_frame(entity_df, ["stats:n"])


def test_spark_config_reads_master_and_conf() -> None:
    config = RepoConfig(
        project="p",
        offline_store={"type": "spark", "master": "local[2]", "conf": {"spark.x": 4, "b": True}},
    )
    assert config.offline_store.type == "spark"
    assert config.offline_store.conf == {"spark.x": "4", "b": "true"}  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match=r"'offline_store.conf' must be a mapping"):
        RepoConfig(project="p", offline_store={"type": "spark", "conf": ["x"]})


def test_cli_materialize_of_an_aggregation_view_on_spark_serves_the_training_values(
    tmp_path: Path,
) -> None:
    """`featurestore materialize-incremental` on a repo whose offline store is Spark: the
    example repo's aggregation view gets its tiles from Spark, and online reads at the
    watermark equal the training frame of either engine there (G3 for G7)."""
    root = tmp_path / "fraud"
    root.mkdir()
    for name, text in template_files().items():
        (root / name).write_text(text)
    generate(root / "data", end=default_end(), rows=300, days=10, entity_rows=40)
    duckdb_yaml = (root / "featurestore.yaml").read_text()
    spark_yaml = duckdb_yaml.replace(
        "offline_store:\n  type: duckdb\n",
        "offline_store:\n  type: spark\n  master: local[2]\n"
        "  conf: {spark.sql.shuffle.partitions: 2, spark.ui.enabled: false}\n",
    )
    assert spark_yaml != duckdb_yaml
    (root / "featurestore.yaml").write_text(spark_yaml)
    runner = CliRunner()
    for command in (["apply"], ["materialize-incremental"]):
        result = runner.invoke(app, ["--repo", str(root), *command])
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    spark_store = FeatureStore(root)
    assert isinstance(spark_store.offline, SparkOfflineEngine)
    record = spark_store.get_feature_view("user_txn_windows")
    assert record.watermark is not None
    t = record.watermark - timedelta(microseconds=1)
    features = [f"user_txn_windows:{name}" for name in record.view.feature_names]
    users = list(range(1, 31))
    entities = pa.table(
        {"user_id": pa.array(users, pa.int64()), "event_timestamp": pa.array([t] * len(users))}
    )
    on_spark_frame = spark_store.get_training_frame(entities, features).to_arrow().to_pydict()
    (root / "featurestore.yaml").write_text(duckdb_yaml)
    duckdb_frame = FeatureStore(root).get_training_frame(entities, features).to_arrow().to_pydict()
    online = spark_store.get_online_features(features, {"user_id": users}, request_time=t)
    assert set(online.statuses[record.view.feature_names[0]]) == {"PRESENT"}
    served = online.to_dict()
    assert sum(on_spark_frame["count_7d"]) > 0
    for name in record.view.feature_names:
        assert _close(served[name], on_spark_frame[name]), name
        assert _close(on_spark_frame[name], duckdb_frame[name]), name


def _close(a: list[float | None], b: list[float | None]) -> bool:
    """Equal lists, floats within 1e-9 relative (sums are added in other orders)."""
    return len(a) == len(b) and all(
        x == y if x is None or y is None else math.isclose(x, y, rel_tol=1e-9)
        for x, y in zip(a, b, strict=True)
    )
