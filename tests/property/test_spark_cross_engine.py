"""Cross-engine property: the same random data gives identical frames from DuckDB and Spark.

One repo whose sources exercise every part of the scan: nanosecond timestamps (truncated to
microseconds by both), naive timestamps (UTC), a ``field_mapping``, a created timestamp with
nulls, composite keys, several files (the position tie-break) and pushed rows in the push log
(read after the source files). Frames are compared whole, Arrow types included, for both
``point_in_time`` modes with the winning rows' event timestamps; materialization's newest
rows per key are compared for random windows.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore import FeatureStore
from featurestore.definitions import FeatureRef
from tests.conftest import make_repo
from tests.spark_engine import on_spark
from tests.strategies import BASE, entity_rows, feature_rows, grid_times, write_timeline

FEATURES_PY = """
from datetime import timedelta
from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Int64, String

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
"""
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
REFS = [FeatureRef("u", "f_int"), FeatureRef("m", "f_str"), FeatureRef("u", "f_str")]
NAMES = {ref: f"{ref.view}__{ref.feature}" for ref in REFS}


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[FeatureStore, FeatureStore]:
    root = make_repo(tmp_path_factory.mktemp("cross"), FEATURES_PY)
    write_timeline(root / "data/u", [], U_SCHEMA, columns={"int_src": "f_int"})
    write_timeline(root / "data/m", [], M_SCHEMA)
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
    return duckdb_store, on_spark(duckdb_store)


def _frame(store: FeatureStore, entities: pa.Table, point_in_time: str) -> pa.Table:
    requests = [
        (store.get_feature_view("u"), ["f_int", "f_str"]),
        (store.get_feature_view("m"), ["f_str"]),
    ]
    frame = store.offline.training_frame(
        entities,
        requests,
        output_names=NAMES,
        timestamp_column="event_timestamp",
        point_in_time=point_in_time,  # type: ignore[arg-type]
        event_columns={"u": "u_event", "m": "m_event"},
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


@settings(max_examples=EXAMPLES)
@given(
    u_rows=feature_rows(),
    m_rows=feature_rows(composite=True, with_created=False),
    entities=entity_rows(composite=True),
    point_in_time=st.sampled_from(["event", "available"]),
)
def test_spark_training_frames_equal_duckdb(
    stores: tuple[FeatureStore, FeatureStore], u_rows, m_rows, entities, point_in_time
) -> None:
    duckdb_store, spark_store = stores
    write_timeline(
        duckdb_store.repo_root / "data/u", u_rows, U_SCHEMA, columns={"int_src": "f_int"}
    )
    write_timeline(duckdb_store.repo_root / "data/m", m_rows, M_SCHEMA)
    table = _entities(entities)
    expected = _frame(duckdb_store, table, point_in_time)
    got = _frame(spark_store, table, point_in_time)
    assert got.schema == expected.schema
    assert got.to_pylist() == expected.to_pylist()


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
