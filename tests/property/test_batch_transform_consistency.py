"""Property: a feature view's batch transform gives the same values in training and online.

Random source rows (ties, nulls, late rows, several files) whose *raw* columns a transform
turns into the view's features. Through the real DuckDB engine (and, in the ``spark`` variant
with fewer examples, Spark ``local[2]`` running the transform with ``mapInArrow``) and a real
SQLite file:

* the training frame equals the brute-force G1 oracle applied to the transform's output rows
  (computed here in plain Python), for every join strategy;
* after materializing everything, an online read of (key, T) equals the training frame's row
  for the same key and time whenever the stored row is at or before T (G3 through the
  transform), and a PRESENT value always equals it.
"""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore import FeatureStore
from featurestore.offline.join import JoinStrategy
from featurestore.repo.config import SqliteOnlineStoreConfig
from tests.conftest import make_repo
from tests.oracle import latest_in_window, pit_oracle
from tests.spark_engine import on_spark
from tests.strategies import BASE, TTL, entity_rows, feature_rows, write_timeline

FEATURES_PY = """
from datetime import timedelta
import polars as pl
from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Int64, String

user = Entity("user", join_keys=["user_id"])
users = ParquetSource("data/u", timestamp_field="ts", created_timestamp_field="created",
                      field_mapping={"raw_str_src": "raw_str"})
schema = [Field("f_int", Int64), Field("f_str", String), Field("f_sec", Int64),
          Field("f_late", Int64)]


def derive(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(
        (pl.col("raw_int") // 3 - 1).alias("f_int"),
        pl.concat_str([pl.col("raw_str"), pl.lit("!")]).alias("f_str"),
        (pl.col("user_id") * 100 + pl.col("ts").dt.second().cast(pl.Int64)).alias("f_sec"),
        pl.col("created").is_null().cast(pl.Int64).alias("f_late"),
    )


t_nottl = FeatureView(name="t_nottl", entities=[user], source=users, schema=schema,
                      transform=derive)
t_ttl = FeatureView(name="t_ttl", entities=[user], source=users, schema=schema,
                    transform=derive, ttl=timedelta(seconds=5))
"""
TTLS = {"t_nottl": None, "t_ttl": TTL}
FEATURES = ["f_int", "f_str", "f_sec", "f_late"]
SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("created", pa.timestamp("us", tz="UTC")),
        ("raw_int", pa.int64()),
        ("raw_str_src", pa.string()),
    ]
)
USERS = [1, 2, 3, 4, 99]
W = BASE + timedelta(seconds=60)
SPARK_EXAMPLES = int(os.environ.get("FEATURESTORE_SPARK_EXAMPLES", "3"))


def transformed(row: dict[str, Any]) -> dict[str, Any]:
    """The transform, written independently in plain Python (the oracle's input rows)."""
    out = dict(row)
    raw, text, user = row["f_int"], row["f_str"], row["user_id"]
    out["f_int"] = None if raw is None else raw // 3 - 1
    out["f_str"] = None if text is None else text + "!"
    event = row["event_ts"]
    out["f_sec"] = None if user is None or event is None else user * 100 + event.second
    out["f_late"] = int(row["created_ts"] is None)
    return out


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("batch"), FEATURES_PY)


def fresh_store(repo: Path) -> FeatureStore:
    tag = uuid.uuid4().hex[:10]
    config = FeatureStore(repo).config.model_copy(
        update={
            "registry": f"data/registry-{tag}.json",
            "online_store": SqliteOnlineStoreConfig(path=f"data/online-{tag}.db"),
        }
    )
    store = FeatureStore(repo, config=config)
    store.apply()
    return store


@settings(max_examples=25, deadline=None)
@given(
    rows=feature_rows(),
    entities=entity_rows(),
    strategy=st.sampled_from(["asof", "range", "arrays"]),
)
def test_transformed_training_frame_equals_oracle_and_online_reads(
    repo: Path, rows: list[dict[str, Any]], entities: list[dict[str, Any]], strategy: JoinStrategy
) -> None:
    check_transformed(repo, rows, entities, strategy)


@settings(max_examples=SPARK_EXAMPLES, deadline=None)
@given(rows=feature_rows(), entities=entity_rows())
def test_transformed_training_frame_equals_oracle_and_online_reads_on_spark(
    repo: Path, rows: list[dict[str, Any]], entities: list[dict[str, Any]]
) -> None:
    check_transformed(repo, rows, entities, "spark")


def check_transformed(
    repo: Path,
    rows: list[dict[str, Any]],
    entities: list[dict[str, Any]],
    strategy: JoinStrategy | str,
) -> None:
    write_timeline(
        repo / "data/u", rows, SCHEMA, columns={"raw_int": "f_int", "raw_str_src": "f_str"}
    )
    expected_rows = [transformed(r) for r in rows]
    entity_df = pl.DataFrame(
        entities,
        schema={
            "user_id": pl.Int64,
            "event_timestamp": pl.Datetime("us", "UTC"),
            "label": pl.Int64,
        },
    )
    store = fresh_store(repo)
    if strategy == "spark":  # materialization and training frames on Spark
        duckdb_store, store = store, on_spark(store)
        duckdb_store.close()
    options = {} if strategy == "spark" else {"strategy": strategy}
    try:
        store.materialize(BASE - timedelta(seconds=1), W)
        newest = latest_in_window(
            expected_rows, BASE - timedelta(seconds=1), W, join_keys=["user_id"]
        )
        for view, ttl in TTLS.items():
            refs = [f"{view}:{f}" for f in FEATURES]
            frame = store.offline.training_frame(
                entity_df,
                [(store.get_feature_view(view), FEATURES)],
                output_names={r: r.feature for r in store.resolve(refs)},
                timestamp_column="event_timestamp",
                point_in_time="event",
                **options,
            ).to_polars()
            expected = pit_oracle(
                entities, expected_rows, join_keys=["user_id"], features=FEATURES, ttl=ttl
            )
            assert frame.select(FEATURES).to_dicts() == expected
            assert frame["label"].to_list() == [e["label"] for e in entities]
            # G3 through the transform: the online value of (key, T) is the training value.
            for i, entity in enumerate(entities):
                user, t = entity["user_id"], entity["event_timestamp"]
                if user is None or t is None:
                    continue
                got = store.get_online_features(refs, [{"user_id": user}], request_time=t)
                values = {f: got.to_dict()[f][0] for f in FEATURES}
                status = got.statuses["f_int"][0]
                stored = newest.get((user,))
                if status == "PRESENT" or (stored is not None and t >= stored["event_ts"]):
                    assert values == expected[i], (view, user, t, status)
                    if status != "PRESENT":
                        assert all(v is None for v in values.values())
                if stored is None:
                    assert status == "NOT_FOUND"
    finally:
        store.close()
