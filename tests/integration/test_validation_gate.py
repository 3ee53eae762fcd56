"""The Great Expectations gate of materialization (issue 12, DESIGN G6), with the real GE package,
on SQLite and on a real redis-server, through GE's pandas engine and its SQL engine on DuckDB
(the path of large windows): a clean window lands; a window with one bad row writes
nothing (the stored records compared byte for byte) and keeps the watermark; ``warn`` writes
and records; a batch-transformed view is checked on its transformed rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from featurestore import FeatureStore
from featurestore.errors import ValidationError
from featurestore.repo.config import RedisOnlineStoreConfig
from featurestore.validation import run
from tests.conftest import make_repo, utc, write_parquet

FEATURES_PY = """
import great_expectations as gx
import great_expectations.expectations as gxe
import polars as pl

from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Float64, Int64

user = Entity("user", join_keys=["user_id"])

stats = FeatureView(
    name="stats",
    entities=[user],
    source=ParquetSource("data/s.parquet", timestamp_field="ts"),
    schema=[Field("amount", Float64), Field("cnt", Int64)],
    expectations=gx.ExpectationSuite(
        name="stats_suite",
        expectations=[
            gxe.ExpectColumnValuesToNotBeNull(column="user_id"),
            gxe.ExpectColumnValuesToNotBeNull(column="cnt"),
            gxe.ExpectColumnValuesToBeBetween(column="amount", min_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="cnt", min_value=0, max_value=100),
        ],
    ),
    on_failure=ON_FAILURE,
)


def double_minus_ten(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(amount=pl.col("raw") * 2 - 10)


shifted = FeatureView(
    name="shifted",
    entities=[user],
    source=ParquetSource("data/t.parquet", timestamp_field="ts"),
    schema=[Field("amount", Float64)],
    transform=double_minus_ten,
    expectations=[gxe.ExpectColumnValuesToBeBetween(column="amount", min_value=0)],
)
"""

DAY1, DAY2, DAY3 = utc(2026, 1, 1), utc(2026, 1, 2), utc(2026, 1, 3)


def write_rows(root: Path, rows: list[tuple[int, object, float, int | None]]) -> None:
    write_parquet(
        root / "data/s.parquet",
        {
            "user_id": [r[0] for r in rows],
            "ts": [r[1] for r in rows],
            "amount": [r[2] for r in rows],
            "cnt": [r[3] for r in rows],
        },
    )


CLEAN = [(1, DAY1, 10.0, 1), (2, DAY1, 20.0, 2)]
BAD_DAY2 = [*CLEAN, (1, DAY2, 11.0, 3), (2, DAY2, -7.5, 4)]


def make_store(
    root: Path, backend: str, request: pytest.FixtureRequest, on_failure: str
) -> FeatureStore:
    make_repo(root, FEATURES_PY.replace("ON_FAILURE", repr(on_failure)))
    write_rows(root, CLEAN)
    write_parquet(root / "data/t.parquet", {"user_id": [1], "ts": [DAY1], "raw": [6.0]})
    if backend == "sqlite":
        return FeatureStore(root)
    url = request.getfixturevalue("redis_server_url")
    prefix = request.getfixturevalue("redis_key_prefix")
    base = FeatureStore(root).config
    online = RedisOnlineStoreConfig(type="redis", url=url, timeout_s=5, key_prefix=prefix)
    return FeatureStore(root, config=base.model_copy(update={"online_store": online}))


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["pandas", "sql"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """GE's engine the windows run on: the size threshold moved so these small windows take it."""
    monkeypatch.setattr(run, "SQL_MIN_ROWS", 0 if request.param == "sql" else 10**12)
    return str(request.param)


@pytest.fixture
def store(
    tmp_path: Path, backend: str, engine: str, request: pytest.FixtureRequest
) -> Iterator[FeatureStore]:
    fs = make_store(tmp_path / "repo", backend, request, "block")
    fs.apply()
    yield fs
    fs.close()


def raw_records(store: FeatureStore) -> list[tuple[object, ...]]:
    """Every record the online store holds, as stored (bytes), in a stable order."""
    store.online.ensure_epoch()  # the store exists (SQLite: the file and its tables)
    config = store.config.online_store
    if isinstance(config, RedisOnlineStoreConfig):
        client = redis.Redis.from_url(config.url)
        try:
            found: list[tuple[object, ...]] = []
            for key in sorted(client.scan_iter(match=f"{config.key_prefix}:*".encode())):
                kind = client.type(key)
                if kind == b"hash":
                    found.append((key, sorted(client.hgetall(key).items())))
                else:
                    found.append((key, client.get(key)))
            return found
        finally:
            client.close()
    path = store.repo_root / "data/online.db"
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT * FROM online_records ORDER BY 1, 2").fetchall()


def amounts(store: FeatureStore, users: list[int]) -> list[object]:
    got = store.get_online_features(["stats:amount"], {"user_id": users}, request_time=DAY3)
    return got.to_dict()["amount"]


def test_a_clean_window_passes_and_lands(store: FeatureStore) -> None:
    (run,) = store.materialize(DAY1, DAY2, views=["stats"]).views
    assert run.written == 2
    assert amounts(store, [1, 2]) == [10.0, 20.0]
    result = store.validation_result("stats")
    assert result is not None
    assert result.success
    assert (result.start, result.end, result.rows, result.evaluated) == (DAY1, DAY2, 2, 4)
    assert result.gx_result["success"] is True  # GE's own result is kept
    assert store.validation_log.get("stats", DAY1, DAY2) == result


def test_a_window_with_one_bad_row_writes_nothing(store: FeatureStore) -> None:
    store.materialize(DAY1, DAY2, views=["stats"])
    before = raw_records(store)
    watermark = store.get_feature_view("stats").watermark
    assert before
    assert watermark == DAY2
    write_rows(store.repo_root, BAD_DAY2)

    with pytest.raises(ValidationError) as caught:
        store.materialize(DAY2, DAY3, views=["stats"])

    err = caught.value
    assert err.view == "stats"
    assert err.window == f"[{DAY2.isoformat()}, {DAY3.isoformat()})"
    (failure,) = err.failures
    assert "expect_column_values_to_be_between(column=amount, min_value=0.0)" in failure
    assert "1 of 2 rows unexpected, e.g. [-7.5]" in failure
    assert "Feature view 'stats'" in str(err)
    assert "nothing was written" in str(err)
    assert raw_records(store) == before  # byte for byte, user 1's good row included
    assert store.refresh().feature_views["stats"].watermark == watermark
    assert amounts(store, [1, 2]) == [10.0, 20.0]
    result = store.validation_result("stats")
    assert result is not None
    assert not result.success
    assert (result.start, result.end) == (DAY2, DAY3)
    assert result.failures[0].unexpected_count == 1
    assert list(result.failures[0].sample) == [-7.5]


def test_a_blocked_incremental_run_keeps_the_watermark_and_retries_the_window(
    store: FeatureStore,
) -> None:
    store.materialize(DAY1, DAY2, views=["stats"])
    write_rows(store.repo_root, BAD_DAY2)
    with pytest.raises(ValidationError):
        store.materialize_incremental(DAY3, views=["stats"])
    assert store.refresh().feature_views["stats"].watermark == DAY2
    write_rows(store.repo_root, [*CLEAN, (1, DAY2, 11.0, 3), (2, DAY2, 7.5, 4)])  # fixed
    (run,) = store.materialize_incremental(DAY3, views=["stats"]).views
    assert (run.start, run.end, run.written) == (DAY2, DAY3, 2)
    assert amounts(store, [1, 2]) == [11.0, 7.5]


def test_a_null_feature_value_is_stopped(store: FeatureStore) -> None:
    write_rows(store.repo_root, [*CLEAN, (3, DAY1, 5.0, None)])
    before = raw_records(store)
    with pytest.raises(ValidationError, match=r"expect_column_values_to_not_be_null\(column=cnt\)"):
        store.materialize(DAY1, DAY2, views=["stats"])
    assert raw_records(store) == before


def test_warn_writes_and_records(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    with make_store(tmp_path / "repo", backend, request, "warn") as fs:
        fs.apply()
        write_rows(fs.repo_root, BAD_DAY2)
        (run,) = fs.materialize(DAY2, DAY3, views=["stats"]).views
        assert run.written == 2
        assert amounts(fs, [1, 2]) == [11.0, -7.5]
        assert fs.refresh().feature_views["stats"].watermark == DAY3
        result = fs.validation_result("stats")
        assert result is not None
        assert not result.success
        assert result.on_failure == "warn"
        assert "on_failure=warn: written anyway" in caplog.text


def test_a_transformed_view_is_validated_on_its_transformed_rows(store: FeatureStore) -> None:
    # raw 6.0 -> amount 2.0: the raw column is not what the suite sees.
    (run,) = store.materialize(DAY1, DAY2, views=["shifted"]).views
    assert run.written == 1
    # raw 4.0 (a fine raw value) -> amount -2.0, which breaks amount >= 0.
    write_parquet(
        store.repo_root / "data/t.parquet",
        {"user_id": [1, 1], "ts": [DAY1, DAY2], "raw": [6.0, 4.0]},
    )
    before = raw_records(store)
    with pytest.raises(ValidationError, match=r"e\.g\. \[-2\.0\]"):
        store.materialize(DAY2, DAY3, views=["shifted"])
    assert raw_records(store) == before


def test_on_demand_validate_writes_nothing(store: FeatureStore) -> None:
    write_rows(store.repo_root, BAD_DAY2)
    before = raw_records(store)
    result = store.validate("stats", DAY1, DAY3)
    assert not result.success
    assert result.kind == "validate"
    assert result.rows == 2  # the newest row per key, as materialization would write
    assert raw_records(store) == before
    assert store.refresh().feature_views["stats"].watermark is None
    assert store.validate("stats", DAY1, DAY2).success
    assert store.validation_result("stats") == store.validation_log.get("stats", DAY1, DAY2)
