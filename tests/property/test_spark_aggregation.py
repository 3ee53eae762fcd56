"""Property G7 on Spark: aggregation views' training frames and tiles, against the oracle and DuckDB.

* Training frames computed by the Spark engine equal the brute-force oracle
  (``tests/agg_oracle.py``) on the random events of ``tests/agg_cases.py`` (ties on event and
  created time across files, nulls in the column, null keys and times, events exactly on
  hop and window boundaries), for a derived and a declared hop, both ``point_in_time`` modes.
* Materialization windows run on Spark leave the online store as the same windows run on
  DuckDB: the same tiles (integers exactly, floats within rounding) and the same reads,
  statuses included, before, at and after the watermark (the DuckDB side is checked against
  the oracle by ``test_aggregation_online.py``).
* The Spark form of the window start equals :func:`featurestore.window.agg_start`.

``FEATURESTORE_SPARK_EXAMPLES=100`` runs them longer (default 4, for CI's time).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from featurestore import FeatureStore
from featurestore.offline.spark.aggregation import agg_start_column
from featurestore.online.base import ReadRequest
from featurestore.online.codec import KeyEncoder
from featurestore.online.tiles import TileBlocks
from featurestore.types import Int64
from featurestore.window import agg_start
from tests.agg_cases import AGGS, FEATURES_PY, HOPS, SCHEMA, events, scale_of
from tests.agg_oracle import agg_oracle, close
from tests.conftest import fresh_store, make_repo
from tests.property.test_aggregation_online import USERS, live_tiles, windows
from tests.property.test_aggregation_training import entity_frames
from tests.spark_engine import on_spark
from tests.strategies import grid_times, write_timeline

EXAMPLES = int(os.environ.get("FEATURESTORE_SPARK_EXAMPLES", "4"))
KEYS = KeyEncoder({"user_id": Int64})


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_repo(tmp_path_factory.mktemp("g7-spark"), FEATURES_PY)
    write_timeline(root / "data/events", [], SCHEMA)
    return root


@pytest.fixture(scope="module")
def spark_store(repo: Path) -> Any:
    store = FeatureStore(repo)
    store.apply()
    yield on_spark(store)
    store.close()


@settings(max_examples=EXAMPLES, deadline=None)
@given(rows=events(), entity=entity_frames(), available=st.booleans())
def test_spark_training_frame_aggregates_equal_oracle(
    spark_store: FeatureStore,
    rows: list[dict[str, Any]],
    entity: list[dict[str, Any]],
    available: bool,
) -> None:
    write_timeline(spark_store.repo_root / "data/events", rows, SCHEMA)
    table = pa.table(
        {
            "user_id": pa.array([r["user_id"] for r in entity], pa.int64()),
            "event_timestamp": pa.array(
                [r["event_timestamp"] for r in entity], pa.timestamp("us", tz="UTC")
            ),
        }
    )
    mode = "available" if available else "event"
    for view, hop in HOPS.items():
        frame = spark_store.get_training_frame(
            table, features=[f"{view}:{a.name}" for a in AGGS], point_in_time=mode
        ).to_arrow()
        assert frame.column_names == ["user_id", "event_timestamp", *(a.name for a in AGGS)]
        got = frame.to_pylist()
        expected = agg_oracle(
            entity, rows, join_keys=["user_id"], aggs=AGGS, hop=hop, point_in_time=mode
        )
        assert len(got) == len(expected)
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            assert g["user_id"] == entity[i]["user_id"]
            for agg in AGGS:
                assert close(g[agg.name], e[agg.name], scale=scale_of(rows)), (
                    view,
                    i,
                    agg.name,
                    g[agg.name],
                    e[agg.name],
                )


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    rows=events(),
    plan=windows(),
    times=st.lists(grid_times(max_seconds=32), min_size=1, max_size=3),
)
def test_spark_materialization_leaves_the_tiles_and_reads_of_duckdb(
    repo: Path, request: pytest.FixtureRequest, rows, plan, times
) -> None:
    note(f"events={rows!r} windows={plan!r} times={times!r}")
    w, window_list = plan
    if not window_list:
        return
    write_timeline(repo / "data/events", rows, SCHEMA)
    duckdb_store = fresh_store(repo, "sqlite", request)
    applied = fresh_store(repo, "sqlite", request)  # its own registry and online store
    spark_store = on_spark(applied)
    try:
        for start, end in window_list:
            duckdb_store.materialize(start, end)
            spark_store.materialize(start, end)
        scale = scale_of(rows)
        for view in HOPS:
            assert spark_store.get_feature_view(view).watermark == (
                duckdb_store.get_feature_view(view).watermark
            )
            features = [f"{view}:{a.name}" for a in AGGS]
            for t in [*times, w]:
                got = spark_store.get_online_features(features, {"user_id": USERS}, request_time=t)
                want = duckdb_store.get_online_features(
                    features, {"user_id": USERS}, request_time=t
                )
                assert got.statuses == want.statuses, (view, t)
                for name, values in want.to_dict().items():
                    for x, y in zip(got.to_dict()[name], values, strict=True):
                        assert close(x, y, scale=scale), (view, t, name, x, y)
            record = spark_store.get_feature_view(view)
            blocks = TileBlocks(record.view, record.fingerprint)
            reads = [ReadRequest(k, (view,)) for k in KEYS.encode_columns([USERS])]
            pairs = zip(
                spark_store.online.read_records(reads),
                duckdb_store.online.read_records(reads),
                strict=True,
            )
            for (a,), (b,) in pairs:
                tiles = [live_tiles(blocks, x, -(2**63)) for x in (a, b)]
                assert len(tiles[0]) == len(tiles[1])
                for name in blocks.dtype.names or ():
                    slack = scale ** (2 if name.endswith("_m2") else 1) * len(rows)
                    for x, y in zip(tiles[0][name].tolist(), tiles[1][name].tolist(), strict=True):
                        assert close(x, y, scale=slack), (view, name, x, y)
    finally:
        for store in (duckdb_store, applied, spark_store):
            store.close()


DAY_US = 86_400_000_000


@settings(max_examples=EXAMPLES * 5, deadline=None)
@given(
    hop=st.one_of(st.sampled_from([1, 1_000_000, DAY_US]), st.integers(1, DAY_US)),
    multiple=st.integers(1, 400),
    times=st.lists(
        st.one_of(st.integers(-(6 * 10**16), 6 * 10**16), st.integers(-5, 5)),
        min_size=1,
        max_size=20,
    ),
    on_boundary=st.booleans(),
)
def test_spark_window_start_equals_agg_start(
    spark_store: FeatureStore, hop: int, multiple: int, times: list[int], on_boundary: bool
) -> None:
    from pyspark.sql import functions as F

    if on_boundary:  # the boundary itself and its neighbours
        times = [t * hop + d for t in times[:5] for d in (-1, 0, 1) if abs(t * hop) < 6 * 10**16]
    window = hop * multiple
    spark = spark_store.offline.spark  # type: ignore[attr-defined]
    df = spark.createDataFrame([(i, t) for i, t in enumerate(times)], "i BIGINT, t BIGINT")
    rows = df.select("i", agg_start_column(F.col("t"), hop, window).alias("s")).collect()
    got = [r["s"] for r in sorted(rows, key=lambda r: r["i"])]
    assert got == [agg_start(t, hop, window) for t in times]
