"""The ``arrays`` join strategy's own paths: key encodings, the 62-bit fallback, strategy choice.

Each case compares ``arrays`` with the ``range`` strategy (itself checked against the G1
oracle in tests/property/test_training_frame.py) on a real repo.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from featurestore import FeatureStore
from featurestore.definitions import output_names
from featurestore.errors import SourceError
from featurestore.offline.join import EntityStats, ViewRequest, arrays, choose_strategy
from featurestore.offline.join.arrays import memory_limit_bytes
from featurestore.offline.sql import Query
from tests.conftest import make_repo, utc, write_parquet

FEATURES_PY = """
from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Float64, String

user = Entity("user", join_keys=["user_id"])
stats = FeatureView(
    name="stats", entities=[user],
    source=ParquetSource("data/stats.parquet", timestamp_field="ts",
                         created_timestamp_field="created"),
    schema=[Field("amount", Float64), Field("city", String)],
)
"""


def _store(root: Path, user_ids: list[int], times: list[datetime]) -> FeatureStore:
    make_repo(root, FEATURES_PY)
    n = len(user_ids)
    write_parquet(
        root / "data/stats.parquet",
        {
            "user_id": list[object](user_ids),
            "ts": list[object](times),
            "created": [None if i % 3 == 0 else times[i] + timedelta(seconds=i) for i in range(n)],
            "amount": [None if i % 4 == 0 else float(i) for i in range(n)],
            "city": [None if i % 5 == 0 else f"c{i}" for i in range(n)],
        },
        schema=pa.schema(
            [
                ("user_id", pa.int64()),
                ("ts", pa.timestamp("us", tz="UTC")),
                ("created", pa.timestamp("us", tz="UTC")),
                ("amount", pa.float64()),
                ("city", pa.string()),
            ]
        ),
    )
    store = FeatureStore(root)
    store.apply()
    return store


def _frame(store: FeatureStore, entity: pa.Table, strategy: str, pit: str) -> list[dict[str, Any]]:
    refs = store.resolve(["stats:amount", "stats:city"])
    frame = store.offline.training_frame(
        entity,
        [(store.get_feature_view("stats"), ["amount", "city"])],
        output_names=dict(zip(refs, output_names(refs, full_feature_names=False), strict=True)),
        timestamp_column="event_timestamp",
        point_in_time=pit,  # type: ignore[arg-type]
        strategy=strategy,  # type: ignore[arg-type]
    )
    rows: list[dict[str, Any]] = frame.to_arrow().to_pylist()
    return rows


@pytest.mark.parametrize("pit", ["event", "available"])
@pytest.mark.parametrize(
    ("ids", "span"),
    [
        ([1, 2, 3], timedelta(seconds=1)),  # small integer keys: used as codes directly
        ([-(2**62), 0, 2**62], timedelta(seconds=1)),  # huge key range: polars codes
        (list(range(20)), timedelta(days=365 * 5000)),  # 5 + 58 bits: DuckDB fallback
    ],
)
def test_arrays_equals_range(
    tmp_path: Path,
    ids: list[int],
    span: timedelta,
    pit: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    start = utc(2026, 1, 1)
    user_ids = [ids[i % len(ids)] for i in range(30)]
    times = [start + span * (i % 7) / 7 for i in range(30)]
    store = _store(tmp_path, user_ids, times)
    probes = [start + span * k / 9 + timedelta(seconds=s) for k in range(10) for s in (0, 3)]
    entity = pa.table(
        {
            "user_id": pa.array(
                [ids[i % len(ids)] if i % 11 else None for i in range(20)], pa.int64()
            ),
            "event_timestamp": pa.array(probes, pa.timestamp("us", tz="UTC")),
        }
    )
    expected = _frame(store, entity, "range", pit)
    with caplog.at_level("INFO", logger="featurestore.offline.join.planner"):
        assert _frame(store, entity, "arrays", pit) == expected
    fell_back = "arrays strategy does not apply" in caplog.text
    assert fell_back == (len(ids) == 20)
    assert any(r["amount"] is not None for r in expected)


def test_memory_limit_parsed() -> None:
    con = duckdb.connect(config={"memory_limit": "2GB"})
    limit = memory_limit_bytes(con)
    assert limit is not None
    assert 1.5e9 < limit <= 2e9


@pytest.mark.parametrize("pit", ["event", "available"])
def test_source_rewritten_between_the_two_scans_is_refused(
    tmp_path: Path, pit: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The features scan must find every winner of the keys scan; a rewrite is an error."""
    start = utc(2026, 1, 1)
    store = _store(tmp_path, [1, 2, 3], [start, start, start])
    search = arrays._search

    def rewrite_then_search(*args: Any) -> Any:  # runs between the two scans
        later = [start + timedelta(hours=1)] * 3
        _store(tmp_path / "other", [1, 2, 3], later)
        (tmp_path / "other/data/stats.parquet").replace(tmp_path / "data/stats.parquet")
        return search(*args)

    monkeypatch.setattr(arrays, "_search", rewrite_then_search)
    entity = pa.table(
        {
            "user_id": pa.array([1, 2, 3], pa.int64()),
            "event_timestamp": pa.array(
                [start + timedelta(days=1)] * 3, pa.timestamp("us", tz="UTC")
            ),
        }
    )
    with pytest.raises(SourceError, match=r"source of feature view 'stats' changed"):
        _frame(store, entity, "arrays", pit)


@pytest.mark.parametrize(
    ("rows", "fits", "pit", "expected"),
    [
        (10_000, True, "event", "range"),  # small: range whatever the source
        (40_000, True, "event", "range"),  # <= 1 % of the 5M-row source
        (60_000, True, "event", "arrays"),  # > 1 %: arrays when it fits
        (60_000, False, "event", "range"),  # ... else range up to 5 %
        (300_000, False, "event", "asof"),  # ... and the ASOF JOIN beyond
        (300_000, False, "available", "range"),  # which cannot compute "available"
        (300_000, True, "available", "arrays"),
    ],
)
def test_auto_strategy_by_frame_size_and_memory(
    rows: int, fits: bool, pit: str, expected: str
) -> None:
    source = ViewRequest(
        record=None,  # type: ignore[arg-type]  # choose_strategy reads sizes only
        features=[],
        output_columns=[],
        scan=Query(),
        source_rows=5_000_000,
    )
    stats = EntityStats(rows=rows, min_ts=None, max_ts=None)
    chosen = choose_strategy(stats, [source], point_in_time=pit, arrays_fit=fits)  # type: ignore[arg-type]
    assert chosen == expected
