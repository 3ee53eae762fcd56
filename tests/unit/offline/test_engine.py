"""OfflineEngine through FeatureStore on a real repo: inputs, validation errors, outputs."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore import FeatureStore
from featurestore.errors import EntityFrameError, SourceError
from tests.conftest import make_repo, utc, write_parquet
from tests.oracle import latest_in_window
from tests.strategies import BASE, feature_rows, write_timeline

FEATURES_PY = """
from datetime import timedelta
from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Float64, Int64, String

user = Entity("user", join_keys=["user_id"])
stats = FeatureView(
    name="stats", entities=[user],
    source=ParquetSource("data/stats.parquet", timestamp_field="ts",
                         created_timestamp_field="created",
                         field_mapping={"amount_raw": "amount"}),
    schema=[Field("count", Int64), Field("amount", Float64), Field("city", String)],
    ttl=timedelta(days=1),
)
"""


def write_stats(root: Path) -> None:
    write_parquet(
        root / "data/stats.parquet",
        {
            "user_id": [1, 1, 2],
            "ts": [utc(2026, 1, 1), utc(2026, 1, 2), utc(2026, 1, 1)],
            "created": [None, None, None],
            "count": pa.array([1, 2, 3], pa.int32()),  # int32 source for an Int64 feature
            "amount_raw": [1.5, 2.5, 3.5],
            "city": ["a", "b", "c"],
        },
        schema=pa.schema(
            [
                ("user_id", pa.int64()),
                ("ts", pa.timestamp("us", tz="UTC")),
                ("created", pa.timestamp("us", tz="UTC")),
                ("count", pa.int32()),
                ("amount_raw", pa.float64()),
                ("city", pa.string()),
            ]
        ),
    )


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    root = make_repo(tmp_path / "repo", FEATURES_PY)
    write_stats(root)
    fs = FeatureStore(root)
    fs.apply()
    return fs


ENTITIES: dict[str, list[Any]] = {
    "user_id": [1, 2, 1, 3],
    "event_timestamp": [
        datetime(2026, 1, 2, 12),
        datetime(2026, 1, 3),
        datetime(2026, 1, 1),
        datetime(2026, 1, 2),
    ],
    "label": [True, False, True, False],
}
EXPECTED_COUNT = [2, None, 1, None]
FEATURES = ["stats:count", "stats:amount", "stats:city"]


def check(frame_table: pa.Table) -> None:
    assert frame_table.column_names == [
        "user_id",
        "event_timestamp",
        "label",
        "count",
        "amount",
        "city",
    ]
    assert frame_table.schema.field("count").type == pa.int64()
    assert frame_table.schema.field("event_timestamp").type == pa.timestamp("us", tz="UTC")
    assert frame_table.column("count").to_pylist() == EXPECTED_COUNT
    assert frame_table.column("amount").to_pylist() == [2.5, None, 1.5, None]
    assert frame_table.column("label").to_pylist() == ENTITIES["label"]


def test_accepts_polars(store: FeatureStore) -> None:
    check(store.get_training_frame(pl.DataFrame(ENTITIES), FEATURES).to_arrow())


def test_accepts_pandas_and_returns_pandas(store: FeatureStore) -> None:
    frame = store.get_training_frame(pd.DataFrame(ENTITIES), FEATURES)
    check(frame.to_arrow())
    df = frame.to_pandas()
    assert list(df["count"].astype("Int64")) == [2, pd.NA, 1, pd.NA]


def test_accepts_arrow_table(store: FeatureStore) -> None:
    check(store.get_training_frame(pa.table(ENTITIES), FEATURES).to_arrow())


def test_accepts_parquet_path(store: FeatureStore, tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "entities.parquet", dict(ENTITIES))
    check(store.get_training_frame(str(path), FEATURES).to_arrow())
    check(store.get_training_frame(path, FEATURES).to_arrow())


@pytest.mark.parametrize("strategy", ["range", "asof", "arrays"])
def test_parquet_directory_keeps_file_name_then_row_order(
    store: FeatureStore, tmp_path: Path, strategy: str
) -> None:
    """Rows of a multi-file entity frame come back ordered by file name, then row in file."""
    parts = {
        "part-2.parquet": [3],
        "part-0.parquet": [0, 1],
        "part-1.parquet": [],
        "x.parquet": [2],
    }
    for name, rows in parts.items():  # written out of name order, of different sizes
        write_parquet(
            tmp_path / "entities" / name,
            {column: [values[i] for i in rows] for column, values in ENTITIES.items()},
            schema=pa.schema(
                [
                    ("user_id", pa.int64()),
                    ("event_timestamp", pa.timestamp("us")),
                    ("label", pa.bool_()),
                ]
            ),
        )
    expected = [0, 1, 3, 2]  # part-0, part-1 (empty), part-2, x
    refs = store.resolve(FEATURES)
    record = store.get_feature_view("stats")
    for entity_input in (tmp_path / "entities", str(tmp_path / "entities" / "*.parquet")):
        table = store.offline.training_frame(
            entity_input,
            [(record, [r.feature for r in refs])],
            output_names={r: r.feature for r in refs},
            timestamp_column="event_timestamp",
            point_in_time="event",
            strategy=strategy,  # type: ignore[arg-type]
        ).to_arrow()
        assert table.column("user_id").to_pylist() == [ENTITIES["user_id"][i] for i in expected]
        assert table.column("count").to_pylist() == [EXPECTED_COUNT[i] for i in expected]


def test_accepts_sql_query(store: FeatureStore, tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "entities.parquet", dict(ENTITIES))
    query = f"SELECT * FROM read_parquet('{path}') ORDER BY label DESC, event_timestamp DESC"
    table = store.get_training_frame(query, FEATURES).to_arrow()
    assert table.column("count").to_pylist() == [2, 1, None, None]


def test_iso_string_timestamps_and_tz_aware_input_are_normalized(store: FeatureStore) -> None:
    entities = dict(ENTITIES)
    entities["event_timestamp"] = [
        "2026-01-02T13:00:00+01:00",
        "2026-01-03T00:00:00Z",
        "2026-01-01",
        "2026-01-02T00:00:00",
    ]
    check(store.get_training_frame(pl.DataFrame(entities), FEATURES).to_arrow())


def test_full_feature_names_and_polars_output(store: FeatureStore) -> None:
    frame = store.get_training_frame(
        pl.DataFrame(ENTITIES), ["stats:city"], full_feature_names=True
    ).to_polars()
    assert frame.columns == ["user_id", "event_timestamp", "label", "stats__city"]
    assert frame["stats__city"].to_list() == ["b", None, "a", None]


def test_missing_join_key_column_is_refused(store: FeatureStore) -> None:
    entities = pl.DataFrame(ENTITIES).drop("user_id")
    with pytest.raises(EntityFrameError, match=r"lacks join key column.*user_id.*'stats'"):
        store.get_training_frame(entities, FEATURES)


def test_missing_timestamp_column_is_refused(store: FeatureStore) -> None:
    with pytest.raises(EntityFrameError, match=r"no timestamp column 'ts'.*timestamp_column"):
        store.get_training_frame(pl.DataFrame(ENTITIES), FEATURES, timestamp_column="ts")


def test_string_key_for_int_key_is_refused(store: FeatureStore) -> None:
    entities = pl.DataFrame(ENTITIES).with_columns(pl.col("user_id").cast(pl.String))
    with pytest.raises(EntityFrameError, match=r"'user_id' has type VARCHAR.*Int64"):
        store.get_training_frame(entities, FEATURES)


def test_int32_key_and_integral_float_key_are_cast(store: FeatureStore) -> None:
    entities = pl.DataFrame(ENTITIES).with_columns(pl.col("user_id").cast(pl.Int32))
    check(store.get_training_frame(entities, FEATURES).to_arrow())
    floats = pd.DataFrame(ENTITIES).astype({"user_id": "float64"})
    assert store.get_training_frame(floats, FEATURES).to_arrow().column("count").to_pylist() == (
        EXPECTED_COUNT
    )
    fractional = pd.DataFrame(ENTITIES).assign(user_id=[1.5, 2.0, 1.0, 3.0])
    with pytest.raises(EntityFrameError, match="'user_id' has type DOUBLE"):
        store.get_training_frame(fractional, FEATURES)


def test_unparsable_timestamp_is_refused(store: FeatureStore, tmp_path: Path) -> None:
    entities = dict(ENTITIES)
    entities["event_timestamp"] = ["2026-01-02", "yesterday", None, "2026-01-01"]
    with pytest.raises(EntityFrameError, match="yesterday"):
        store.get_training_frame(pl.DataFrame(entities), FEATURES)
    path = write_parquet(tmp_path / "bad.parquet", entities)
    with pytest.raises(EntityFrameError, match="1 values that are not ISO 8601"):
        store.get_training_frame(str(path), FEATURES)


def test_numeric_timestamp_column_is_refused(store: FeatureStore) -> None:
    entities = pl.DataFrame(ENTITIES).with_columns(event_timestamp=pl.lit(5))
    with pytest.raises(EntityFrameError, match="'event_timestamp' must hold timestamps"):
        store.get_training_frame(entities, FEATURES)


def test_null_keys_and_timestamps_give_null_features(store: FeatureStore) -> None:
    entities = pl.DataFrame(
        {"user_id": [None, 1], "event_timestamp": [datetime(2026, 1, 2), None]},
        schema={"user_id": pl.Int64, "event_timestamp": pl.Datetime("us")},
    )
    table = store.get_training_frame(entities, FEATURES).to_arrow()
    assert table.column("count").to_pylist() == [None, None]


def test_entity_column_clashing_with_feature_is_refused(store: FeatureStore) -> None:
    entities = pl.DataFrame(ENTITIES).with_columns(city=pl.lit("x"))
    with pytest.raises(EntityFrameError, match=r"'city'.*full_feature_names=True"):
        store.get_training_frame(entities, FEATURES)


def test_missing_source_is_refused(store: FeatureStore) -> None:
    (store.repo_root / "data/stats.parquet").unlink()
    with pytest.raises(SourceError, match=r"'stats'.*does not exist.*ParquetSource"):
        store.get_training_frame(pl.DataFrame(ENTITIES), FEATURES)


def test_off_schema_source_is_refused_at_apply(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", FEATURES_PY)
    write_parquet(
        root / "data/stats.parquet",
        {
            "user_id": [1],
            "ts": [utc(2026, 1, 1)],
            "created": [utc(2026, 1, 1)],
            "count": ["not a number"],
            "amount_raw": [1.0],
            "city": ["a"],
        },
    )
    with pytest.raises(SourceError, match=r"'stats'.*column 'count' has type string.*Int64"):
        FeatureStore(root).apply()


def test_source_missing_a_column_is_refused_at_apply(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", FEATURES_PY)
    write_parquet(
        root / "data/stats.parquet",
        {"user_id": [1], "ts": [utc(2026, 1, 1)], "created": [None], "count": [1], "city": ["a"]},
    )
    with pytest.raises(SourceError, match=r"no feature column 'amount'.*'amount_raw'"):
        FeatureStore(root).apply()


def test_source_with_string_timestamp_is_refused_at_apply(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", FEATURES_PY)
    write_parquet(
        root / "data/stats.parquet",
        {
            "user_id": [1],
            "ts": ["2026-01-01"],
            "created": [None],
            "count": [1],
            "amount_raw": [1.0],
            "city": ["a"],
        },
    )
    with pytest.raises(SourceError, match="timestamp_field 'ts' has type string"):
        FeatureStore(root).apply()


def test_to_parquet_and_to_csv_write_every_row(store: FeatureStore, tmp_path: Path) -> None:
    frame = store.get_training_frame(pl.DataFrame(ENTITIES), FEATURES)
    written = frame.to_parquet(tmp_path / "out" / "train.parquet")
    check(pq.read_table(written))
    csv_path = frame.to_csv(tmp_path / "train.csv")
    with csv_path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["count"] for r in rows] == ["2", "", "1", ""]


def test_record_batches_stream_in_order(store: FeatureStore) -> None:
    frame = store.get_training_frame(pl.DataFrame(ENTITIES), FEATURES)
    batches = list(frame.record_batches(batch_size=1))
    assert sum(b.num_rows for b in batches) == 4
    check(pa.Table.from_batches(batches))


def test_training_frame_larger_than_memory_limit_streams_to_parquet(tmp_path: Path) -> None:
    yaml = (
        "project: test\nregistry: data/registry.json\n"
        "offline_store: {type: duckdb, memory_limit: 100MB, threads: 1, "
        "temp_directory: data/spill}\n"
        "online_store: {type: sqlite, path: data/online.db}\n"
    )
    root = make_repo(tmp_path / "repo", FEATURES_PY, yaml=yaml)
    write_stats(root)
    fs = FeatureStore(root)
    fs.apply()
    n = 300_000
    entities = pa.table(
        {
            "user_id": pa.array([1] * n, pa.int64()),
            "event_timestamp": pa.array([datetime(2026, 1, 2, 12)] * n, pa.timestamp("us")),
            "pad": pa.array(["x" * 200] * n),  # ~60 MB of payload, more than half the limit
        }
    )
    path = fs.get_training_frame(entities, FEATURES).to_parquet(tmp_path / "big.parquet")
    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows == n
    assert pq.read_table(path, columns=["count"]).column("count").unique().to_pylist() == [2]


# -- latest_rows ------------------------------------------------------------------------------

LATEST_PY = """
from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Int64, String
user = Entity("user", join_keys=["user_id"])
u = FeatureView(name="u", entities=[user],
                source=ParquetSource("data/u", timestamp_field="ts", created_timestamp_field="created"),
                schema=[Field("f_int", Int64), Field("f_str", String)])
"""


@pytest.fixture(scope="module")
def latest_store(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    from tests.property.test_training_frame import U_SCHEMA

    root = make_repo(tmp_path_factory.mktemp("latest"), LATEST_PY)
    write_timeline(root / "data/u", [], U_SCHEMA)
    fs = FeatureStore(root)
    fs.apply()
    return fs


def st_seconds() -> st.SearchStrategy[int]:
    return st.integers(min_value=0, max_value=25)


@settings(max_examples=40)
@given(rows=feature_rows(), start_s=st_seconds(), width_s=st_seconds())
def test_latest_rows_equals_oracle(latest_store: FeatureStore, rows, start_s, width_s) -> None:
    from tests.property.test_training_frame import U_SCHEMA

    write_timeline(latest_store.repo_root / "data/u", rows, U_SCHEMA)
    record = latest_store.get_feature_view("u")
    start = BASE + timedelta(seconds=start_s)
    end = start + timedelta(seconds=width_s)
    batches = list(latest_store.offline.latest_rows(record, start, end, batch_size=2))
    got = {r["user_id"]: r for b in batches for r in b.to_pylist()}
    expected = latest_in_window(rows, start, end, join_keys=["user_id"])
    assert {
        k[0]: (r["f_int"], r["f_str"], r["event_ts"], r["created_ts"]) for k, r in expected.items()
    } == {
        k: (r["f_int"], r["f_str"], r["__fs_event_ts"], r["__fs_created_ts"])
        for k, r in got.items()
    }
    assert latest_store.offline.count_keys(record, start, end) == len(expected)
    if batches:
        assert batches[0].schema.names == [
            "user_id",
            "f_int",
            "f_str",
            "__fs_event_ts",
            "__fs_created_ts",
        ]
        assert batches[0].schema.field("f_str").type == pa.large_string()
    candidates = [
        r["event_ts"] for r in rows if r["event_ts"] is not None and r["user_id"] is not None
    ]
    expected_range = (min(candidates), max(candidates)) if candidates else None
    assert latest_store.offline.source_time_range(record) == expected_range
