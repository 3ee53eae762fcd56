"""The ``arrays`` strategy's outputs: ``to_parquet`` (pyarrow writer), CSV, and one thread.

The join itself is checked against the G1 oracle in tests/property/test_training_frame.py;
these cases check that every way out of an ``arrays`` frame yields the same rows as the
``range`` strategy, over two views (run concurrently) with nulls and unmatched rows.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from featurestore import FeatureStore
from featurestore.definitions import output_names
from featurestore.errors import SourceError
from featurestore.offline.join import arrays
from featurestore.offline.training_frame import TrainingFrame
from tests.conftest import make_repo, utc, write_parquet

FEATURES_PY = """
from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Float64, Int64, String

user = Entity("user", join_keys=["user_id"])
shop = Entity("shop", join_keys=["shop"])
users = FeatureView(
    name="users", entities=[user],
    source=ParquetSource("data/users.parquet", timestamp_field="ts"),
    schema=[Field("amount", Float64), Field("city", String)],
)
shops = FeatureView(
    name="shops", entities=[shop],
    source=ParquetSource("data/shops.parquet", timestamp_field="ts"),
    schema=[Field("visits", Int64)],
)
"""
_TS = pa.timestamp("us", tz="UTC")


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    make_repo(tmp_path, FEATURES_PY)
    start = utc(2026, 1, 1)
    write_parquet(
        tmp_path / "data/users.parquet",
        {
            "user_id": [i % 4 for i in range(40)],
            "ts": [start + timedelta(hours=i) for i in range(40)],
            "amount": [None if i % 5 == 0 else i / 2 for i in range(40)],
            "city": [None if i % 3 == 0 else f"c{i}" for i in range(40)],
        },
        schema=pa.schema(
            [("user_id", pa.int64()), ("ts", _TS), ("amount", pa.float64()), ("city", pa.string())]
        ),
    )
    write_parquet(
        tmp_path / "data/shops.parquet",
        {
            "shop": [f"s{i % 3}" for i in range(30)],
            "ts": [start + timedelta(hours=2 * i) for i in range(30)],
            "visits": [None if i % 7 == 0 else i for i in range(30)],
        },
        schema=pa.schema([("shop", pa.string()), ("ts", _TS), ("visits", pa.int64())]),
    )
    fs = FeatureStore(tmp_path)
    fs.apply()
    return fs


def _entity() -> pa.Table:
    start = utc(2026, 1, 1)
    return pa.table(
        {
            "user_id": pa.array([None if i % 9 == 0 else i % 5 for i in range(50)], pa.int64()),
            "shop": [f"s{i % 4}" for i in range(50)],
            "event_timestamp": pa.array(
                [start + timedelta(minutes=47 * i - 30) for i in range(50)], _TS
            ),
        }
    )


def _frame(store: FeatureStore, strategy: str) -> TrainingFrame:
    refs = store.resolve(["users:amount", "shops:visits", "users:city"])
    return store.offline.training_frame(
        _entity(),
        [
            (store.get_feature_view("users"), ["amount", "city"]),
            (store.get_feature_view("shops"), ["visits"]),
        ],
        output_names=dict(zip(refs, output_names(refs, full_feature_names=False), strict=True)),
        timestamp_column="event_timestamp",
        point_in_time="event",
        strategy=strategy,  # type: ignore[arg-type]
    )


def test_arrays_outputs_equal_range(store: FeatureStore, tmp_path: Path) -> None:
    expected = _frame(store, "range").to_arrow()
    frame = _frame(store, "arrays")
    assert frame.to_arrow().equals(expected)
    written = pq.read_table(frame.to_parquet(tmp_path / "out" / "a.parquet"))
    assert written.schema.equals(expected.schema)
    assert written.equals(expected)
    csv = pacsv.read_csv(frame.to_csv(tmp_path / "out" / "a.csv"))
    assert csv.num_rows == expected.num_rows
    rows: list[dict[str, Any]] = expected.to_pylist()
    assert any(r["amount"] is not None for r in rows)
    assert any(r["visits"] is None for r in rows)
    assert any(r["user_id"] is None for r in rows)


def test_arrays_one_thread_equals_concurrent(
    store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    concurrent = _frame(store, "arrays").to_arrow()
    join = arrays.arrays_join

    def one_thread(*args: Any, **kwargs: Any) -> pa.Table:
        return join(*args, **{**kwargs, "threads": 1})

    monkeypatch.setattr(arrays, "arrays_join", one_thread)
    assert _frame(store, "arrays").to_arrow().equals(concurrent)


def test_arrays_to_parquet_unwritable_path(store: FeatureStore, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()  # the target path is a directory
    with pytest.raises(SourceError, match="Cannot write the training frame"):
        _frame(store, "arrays").to_parquet(taken)
