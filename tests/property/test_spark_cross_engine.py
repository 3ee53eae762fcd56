"""Cross-engine property: the same random data gives identical frames from DuckDB and Spark.

One repo whose sources exercise every part of the scan: nanosecond timestamps (truncated to
microseconds by both), naive timestamps (UTC), a ``field_mapping``, a created timestamp with
nulls, composite keys, several files (the position tie-break) and pushed rows in the push log
(read after the source files), and an aggregation view (G7) over random events beside the
plain views in the same frame, with an on-demand view over both. Frames are compared whole,
Arrow types included, for both ``point_in_time`` modes with the winning rows' event
timestamps: every value equal, except the float sums, means and standard deviations of
aggregations, which agree within 1e-9 relative (DESIGN G7: the engines add in other orders).
Materialization's newest rows per key are compared for random windows.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore import FeatureStore
from featurestore._time import to_micros
from featurestore.definitions import FeatureRef
from tests.agg_cases import SCHEMA as A_SCHEMA
from tests.agg_cases import events, scale_of
from tests.conftest import make_repo
from tests.spark_engine import on_spark
from tests.strategies import BASE, entity_rows, feature_rows, grid_times, write_timeline

FEATURES_PY = """
from datetime import timedelta
import polars as pl
from featurestore import (Aggregation, Entity, FeatureView, Field, ParquetSource,
                          on_demand_feature_view)
from featurestore.types import Float64, Int64, String

user = Entity("user", join_keys=["user_id"])
merchant = Entity("merchant", join_keys=["merchant"])
u = FeatureView(
    name="u", entities=[user],
    source=ParquetSource("data/u", timestamp_field="ts", created_timestamp_field="created",
                         field_mapping={"int_src": "f_int"}),
    schema=[Field("f_int", Int64), Field("f_str", String)], ttl=timedelta(seconds=5))
m = FeatureView(
    name="m", entities=[user, merchant],
    source=ParquetSource("data/m", timestamp_field="ts"),
    schema=[Field("f_int", Int64), Field("f_str", String)])
s = timedelta(seconds=1)
a = FeatureView(
    name="a", entities=[user],
    source=ParquetSource("data/a", timestamp_field="ts", created_timestamp_field="created"),
    aggregations=[
        Aggregation(None, "count", 2 * s),
        Aggregation("amount", "count", 6 * s),
        Aggregation("amount", "sum", 4 * s),
        Aggregation("amount", "mean", 4 * s),
        Aggregation("amount", "min", 2 * s),
        Aggregation("amount", "max", 6 * s),
        Aggregation("amount", "last", 4 * s),
        Aggregation("amount", "stddev", 6 * s),
    ],
    hop=s)

@on_demand_feature_view(sources=[a[["amount_max_6s"]], u[["f_int"]]],
                        schema=[Field("max_plus_int", Float64)])
def mixed(df: pl.DataFrame) -> pl.DataFrame:
    return df.select((pl.col("amount_max_6s") + pl.col("f_int")).alias("max_plus_int"))
"""
A_FEATURES = [
    "count_2s",
    "amount_count_6s",
    "amount_sum_4s",
    "amount_mean_4s",
    "amount_min_2s",
    "amount_max_6s",
    "amount_last_4s",
    "amount_stddev_6s",
]
ROUNDED = {
    f"{prefix}amount_{f}" for prefix in ("", "a__") for f in ("sum_4s", "mean_4s", "stddev_6s")
}
"""Float aggregates the engines add in other orders (compared within 1e-9 relative)."""
U_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("ts", pa.timestamp("ns", tz="UTC")),
        ("created", pa.timestamp("us", tz="UTC")),
        ("int_src", pa.int64()),
        ("f_str", pa.string()),
    ]
)
M_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("merchant", pa.string()),
        ("ts", pa.timestamp("us")),  # naive: means UTC
        ("f_int", pa.int64()),
        ("f_str", pa.string()),
    ]
)
EXAMPLES = int(os.environ.get("FEATURESTORE_SPARK_EXAMPLES", "4"))
REFS = [
    FeatureRef("u", "f_int"),
    FeatureRef("m", "f_str"),
    FeatureRef("u", "f_str"),
    *(FeatureRef("a", f) for f in A_FEATURES),
]
NAMES = {ref: f"{ref.view}__{ref.feature}" for ref in REFS}


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[FeatureStore, FeatureStore]:
    root = make_repo(tmp_path_factory.mktemp("cross"), FEATURES_PY)
    write_timeline(root / "data/u", [], U_SCHEMA, columns={"int_src": "f_int"})
    write_timeline(root / "data/m", [], M_SCHEMA)
    write_timeline(root / "data/a", [], A_SCHEMA)
    duckdb_store = FeatureStore(root)
    duckdb_store.apply()
    # Pushed rows tie with source rows on time: the push log ranks after the source files.
    pushed = {
        "user_id": [1, 2, 1],
        "ts": [BASE + timedelta(seconds=3), BASE + timedelta(seconds=3), BASE],
        "created": [None, BASE, None],
        "f_int": [70, 71, 72],
        "f_str": ["p0", None, "p2"],
    }
    duckdb_store.push("u", pushed, to="offline")
    # ... and pushed events rank after the aggregation view's files for its "last".
    events_pushed = {k: pushed[k] for k in ("user_id", "ts", "created")}
    duckdb_store.push("a", {**events_pushed, "amount": [7.0, None, 8.5]}, to="offline")
    return duckdb_store, on_spark(duckdb_store)


def _frame(store: FeatureStore, entities: pa.Table, point_in_time: str) -> pa.Table:
    requests = [
        (store.get_feature_view("u"), ["f_int", "f_str"]),
        (store.get_feature_view("m"), ["f_str"]),
        (store.get_feature_view("a"), A_FEATURES),
    ]
    frame = store.offline.training_frame(
        entities,
        requests,
        output_names=NAMES,
        timestamp_column="event_timestamp",
        point_in_time=point_in_time,  # type: ignore[arg-type]
        event_columns={"u": "u_event", "m": "m_event", "a": "a_event"},
    )
    return frame.to_arrow()


def _entities(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array([r["user_id"] for r in rows], pa.int64()),
            "merchant": pa.array([r["merchant"] for r in rows], pa.string()),
            "event_timestamp": pa.array(
                [r["event_timestamp"] for r in rows], pa.timestamp("us", tz="UTC")
            ),
            "label": pa.array([r["label"] for r in rows], pa.int64()),
        }
    )


def _same_frames(got: pa.Table, expected: pa.Table, scale: float) -> None:
    """Equal schemas and values; :data:`ROUNDED` columns within 1e-9 relative."""
    assert got.schema == expected.schema
    assert got.num_rows == expected.num_rows
    for name in expected.column_names:
        pairs = zip(got.column(name).to_pylist(), expected.column(name).to_pylist(), strict=True)
        for i, (x, y) in enumerate(pairs):
            if name in ROUNDED and x is not None and y is not None:
                assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9 * scale), (name, i, x, y)
            else:
                assert x == y, (name, i, x, y)


def _write_sources(root: Any, u_rows, m_rows, a_rows) -> None:
    write_timeline(root / "data/u", u_rows, U_SCHEMA, columns={"int_src": "f_int"})
    write_timeline(root / "data/m", m_rows, M_SCHEMA)
    write_timeline(root / "data/a", a_rows, A_SCHEMA)


@settings(max_examples=EXAMPLES)
@given(
    u_rows=feature_rows(),
    m_rows=feature_rows(composite=True, with_created=False),
    a_rows=events(),
    entities=entity_rows(composite=True),
    point_in_time=st.sampled_from(["event", "available"]),
)
def test_spark_training_frames_equal_duckdb(
    stores: tuple[FeatureStore, FeatureStore], u_rows, m_rows, a_rows, entities, point_in_time
) -> None:
    duckdb_store, spark_store = stores
    _write_sources(duckdb_store.repo_root, u_rows, m_rows, a_rows)
    table = _entities(entities)
    expected = _frame(duckdb_store, table, point_in_time)
    got = _frame(spark_store, table, point_in_time)
    _same_frames(got, expected, scale_of([*a_rows, {"amount": 8.5 + 7.0}]))


@settings(max_examples=EXAMPLES)
@given(
    u_rows=feature_rows(),
    a_rows=events(),
    entities=entity_rows(composite=True),
    point_in_time=st.sampled_from(["event", "available"]),
)
def test_spark_frames_mixing_aggregation_plain_and_on_demand_views_equal_duckdb(
    stores: tuple[FeatureStore, FeatureStore], u_rows, a_rows, entities, point_in_time
) -> None:
    duckdb_store, spark_store = stores
    _write_sources(duckdb_store.repo_root, u_rows, [], a_rows)
    features = ["a:count_2s", "u:f_str", "mixed:max_plus_int", "a:amount_sum_4s"]
    table = _entities(entities)
    expected = duckdb_store.get_training_frame(table, features, point_in_time=point_in_time)
    got = spark_store.get_training_frame(table, features, point_in_time=point_in_time)
    _same_frames(got.to_arrow(), expected.to_arrow(), scale_of([*a_rows, {"amount": 15.5}]))


@settings(max_examples=EXAMPLES)
@given(
    a_rows=events(),
    lo=grid_times(max_seconds=10),
    length=st.integers(min_value=1, max_value=20),
    wanted=st.one_of(
        st.none(), st.lists(st.tuples(st.integers(1, 5), st.integers(0, 20)), max_size=6)
    ),
)
def test_spark_tiles_equal_duckdb(
    stores: tuple[FeatureStore, FeatureStore], a_rows, lo, length, wanted
) -> None:
    duckdb_store, spark_store = stores
    write_timeline(duckdb_store.repo_root / "data/a", a_rows, A_SCHEMA)
    record = duckdb_store.get_feature_view("a")
    hi = lo + timedelta(seconds=length)
    tiles = None
    if wanted is not None:  # as a push asks: some (key, tile start) pairs
        tiles = pa.table(
            {
                "user_id": pa.array([k for k, _ in wanted], pa.int64()),
                "__fs_tile": pa.array(
                    [to_micros(BASE) + s * 1_000_000 for _, s in wanted], pa.int64()
                ),
            }
        )
    expected = _rows(duckdb_store.offline.tiles(record, lo, hi, wanted=tiles))
    got = _rows(spark_store.offline.tiles(record, lo, hi, wanted=tiles))
    assert [schema for schema, _ in got[:1]] == [schema for schema, _ in expected[:1]]
    assert len(got) == len(expected)
    scale = scale_of([*a_rows, {"amount": 15.5}])
    for (_, g), (_, e) in zip(got, expected, strict=True):
        assert g.keys() == e.keys()
        for name, y in e.items():
            x = g[name]
            if name.endswith(("_sum", "_m2")) and x is not None and y is not None:
                slack = scale ** (2 if name.endswith("_m2") else 1) * len(a_rows)
                assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9 * slack), (name, x, y)
            else:
                assert x == y, (name, x, y)


@settings(max_examples=EXAMPLES)
@given(
    rows=feature_rows(composite=True, with_created=False),
    start=grid_times(max_seconds=10),
    length=st.integers(min_value=1, max_value=20),
)
def test_spark_latest_rows_equal_duckdb(
    stores: tuple[FeatureStore, FeatureStore], rows, start, length
) -> None:
    duckdb_store, spark_store = stores
    write_timeline(duckdb_store.repo_root / "data/m", rows, M_SCHEMA)
    end = start + timedelta(seconds=length)
    record = duckdb_store.get_feature_view("m")
    expected = _rows(duckdb_store.offline.latest_rows(record, start, end, ordered=True))
    got = _rows(spark_store.offline.latest_rows(record, start, end, ordered=True))
    assert got == expected
    assert spark_store.offline.count_keys(record, start, end) == len(expected)
    assert spark_store.offline.source_time_range(record) == duckdb_store.offline.source_time_range(
        record
    )


def _rows(batches: Iterable[pa.RecordBatch]) -> list[tuple[pa.Schema, list[dict[str, Any]]]]:
    """Each batch's schema and rows (empty batches dropped: engines batch differently)."""
    return [(b.schema, r) for b in batches for r in b.to_pylist()]
