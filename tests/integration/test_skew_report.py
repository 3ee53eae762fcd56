"""The skew report end to end (issue 11): served traffic logged, replayed, each cause on purpose.

Traffic goes through the SDK and through HTTP (the app served by uvicorn); the online store is
SQLite, and Redis (a redis-server started by the fixtures).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from featurestore import FeatureStore
from featurestore.cli.main import app as cli
from featurestore.errors import SkewError
from featurestore.repo.config import RedisOnlineStoreConfig
from featurestore.serving.app import create_app
from tests.conftest import make_repo, utc, write_parquet
from tests.integration.test_http_support import running_server

FEATURES_PY = """
from datetime import timedelta
import polars as pl
from featurestore import (Entity, FeatureService, FeatureView, Field, ParquetSource,
                          RequestSource, on_demand_feature_view)
from featurestore import LoggingConfig
from featurestore.types import Float64, Int64

user = Entity("user", join_keys=["user_id"])
stats = FeatureView(
    "stats", entities=[user],
    source=ParquetSource("data/s.parquet", timestamp_field="ts"),
    schema=[Field("cnt", Int64), Field("amount", Float64)],
    ttl=timedelta(days=30),
)

@on_demand_feature_view(
    sources=[stats, RequestSource("txn", schema=[Field("x", Float64)])],
    schema=[Field("ratio", Float64)],
)
def txn(df: pl.DataFrame) -> pl.DataFrame:
    return df.select((pl.col("x") / pl.col("amount")).alias("ratio"))

svc = FeatureService("svc", features=[stats, txn], logging=LoggingConfig(sample_rate=1.0))
"""

W = utc(2026, 1, 10)


def _write_source(root: Path, extra: dict[str, list[object]] | None = None) -> None:
    data: dict[str, list[object]] = {
        "user_id": [1, 2, 3, 1],
        "ts": [utc(2026, 1, 1), utc(2026, 1, 2), utc(2026, 1, 3), utc(2026, 1, 5)],
        "cnt": [1, 2, None, 4],
        "amount": [10.0, 20.0, 30.0, 40.0],
    }
    for name, values in (extra or {}).items():
        data[name] = data[name] + values
    write_parquet(root / "data/s.parquet", data)


def _open(root: Path, redis_url: str | None, prefix: str = "") -> FeatureStore:
    if redis_url is None:
        return FeatureStore(root)
    base = FeatureStore(root).config
    online = RedisOnlineStoreConfig(type="redis", url=redis_url, key_prefix=prefix)
    return FeatureStore(root, config=base.model_copy(update={"online_store": online}))


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FeatureStore]:
    root = make_repo(tmp_path / f"repo{request.param}", FEATURES_PY)
    _write_source(root)
    url = request.getfixturevalue("redis_server_url") if request.param == "redis" else None
    fs = _open(root, url, request.getfixturevalue("redis_key_prefix"))
    fs.apply()
    fs.materialize(utc(2026, 1, 1), W)
    yield fs
    fs.close()


def _serve(store: FeatureStore, at: object, rows: list[dict[str, object]]) -> None:
    store.get_online_features("svc", rows, request_time=at)  # type: ignore[arg-type]


def test_served_traffic_replays_with_no_mismatch_sdk_and_http(store: FeatureStore) -> None:
    _serve(store, utc(2026, 1, 11), [{"user_id": u, "x": 2.0 * u} for u in (1, 2, 3, 4)])
    _serve(store, utc(2026, 1, 12, 12), [{"user_id": 1, "x": 5.0}, {"user_id": 2, "x": 0.5}])
    with running_server(create_app(store)) as url:
        reply = httpx.post(
            f"{url}/get-online-features",
            json={"feature_service": "svc", "entities": {"user_id": [1, 3], "x": [7.0, 9.0]}},
            headers={"Authorization": "Bearer not-logged"},
        )
        assert reply.status_code == 200, reply.text
    report = store.skew_report("svc")
    assert report.rows == 8
    assert report.cause_counts() == {"stale_definition": 0, "not_materialized": 0, "mismatch": 0}
    ratio = report.features["txn:ratio"]
    assert ratio.cells == 8
    assert ratio.equal + ratio.both_null == 8
    assert report.features["stats:cnt"].both_null >= 1  # user 3's null count, user 4 unknown
    assert report.passes()
    logs = list((store.repo_root / "data/feature_logs/service=svc").rglob("*.parquet"))
    assert logs
    assert all(b"not-logged" not in p.read_bytes() for p in logs)


def _overwrite_cnt(store: FeatureStore, *, user: int, value: int) -> None:
    """Overwrite a user's stats record behind the store's back (no materialization)."""
    from featurestore._time import to_micros
    from featurestore.online.codec import KeyEncoder, RecordCodec
    from featurestore.types import Int64

    record = store.get_feature_view("stats")
    codec = RecordCodec([f.dtype for f in record.view.schema], fingerprint=record.fingerprint)
    # Same event time, a created time (the materialized row has none): it replaces the row.
    at = to_micros(utc(2026, 1, 2))
    overwritten = codec.encode_rows([at], [at], [[value], [20.0]])
    key = KeyEncoder({"user_id": Int64}).encode_columns([[user]])
    assert store.online.write_records("stats", key, overwritten) == 1


def test_value_written_out_of_band_is_a_mismatch(store: FeatureStore) -> None:
    _overwrite_cnt(store, user=2, value=99)
    _serve(store, utc(2026, 1, 11), [{"user_id": 2, "x": 1.0}, {"user_id": 1, "x": 1.0}])
    report = store.skew_report("svc")
    assert report.features["stats:cnt"].causes["mismatch"] == 1
    assert report.features["stats:cnt"].max_abs_error == 97.0
    assert report.features["stats:amount"].causes["mismatch"] == 0
    assert not report.passes()
    sample = next(s for s in report.samples if s.feature == "stats:cnt")
    assert (sample.online_value, sample.offline_value, sample.keys) == (99, 2, {"user_id": 2})
    assert sample.online_event_timestamp == utc(2026, 1, 2)


def test_newer_source_row_is_not_materialized(store: FeatureStore) -> None:
    _write_source(
        store.repo_root,
        {"user_id": [2], "ts": [utc(2026, 1, 10, 12)], "cnt": [7], "amount": [70.0]},
    )
    _serve(store, utc(2026, 1, 11), [{"user_id": 2, "x": 1.0}, {"user_id": 1, "x": 1.0}])
    report = store.skew_report("svc")
    assert report.features["stats:cnt"].causes == {
        "stale_definition": 0,
        "not_materialized": 1,
        "mismatch": 0,
    }
    assert report.features["txn:ratio"].causes["not_materialized"] == 1
    assert report.lag.counts[report.lag.labels().index("<= 1 d")] == 3  # 1 day behind, 3 cells
    assert report.passes()


def test_edited_view_applied_but_not_materialized_is_stale_definition(
    store: FeatureStore,
) -> None:
    features = (store.repo_root / "features.py").read_text()
    edited = features.replace('Field("cnt", Int64)', 'Field("cnt", Int32)')
    (store.repo_root / "features.py").write_text(
        edited.replace("import Float64,", "import Int32, Float64,")
    )
    store.apply()
    _serve(store, utc(2026, 1, 11), [{"user_id": 2, "x": 1.0}])
    report = store.skew_report("svc")
    for name in ("stats:cnt", "stats:amount", "txn:ratio"):
        assert report.features[name].causes["stale_definition"] == 1, name
        assert report.features[name].null_online_only == 1
    assert report.passes()


def test_request_field_varying_per_request_replays_exactly(store: FeatureStore) -> None:
    for i in range(5):
        _serve(store, utc(2026, 1, 11, i), [{"user_id": 1, "x": float(i)}, {"user_id": 2, "x": -i}])
    report = store.skew_report("svc")
    assert report.features["txn:ratio"].equal == 10
    assert report.cause_counts()["mismatch"] == 0


def test_since_until_select_requests(store: FeatureStore) -> None:
    _serve(store, utc(2026, 1, 11), [{"user_id": 1, "x": 1.0}])
    _serve(store, utc(2026, 1, 12), [{"user_id": 1, "x": 1.0}])
    assert store.skew_report("svc", since=utc(2026, 1, 12)).rows == 1
    assert store.skew_report("svc", until=utc(2026, 1, 12)).rows == 1


def test_a_log_replayed_in_chunks_of_one_file_gives_the_report_of_one_chunk(
    store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks (here one per log file) add up: counts, causes, errors, lag and samples."""
    from featurestore.consistency import replay

    _overwrite_cnt(store, user=2, value=99)
    _write_source(
        store.repo_root,
        {"user_id": [3], "ts": [utc(2026, 1, 10, 12)], "cnt": [7], "amount": [70.0]},
    )
    for day in (11, 12, 13):
        _serve(store, utc(2026, 1, day), [{"user_id": u, "x": 1.0 * u} for u in (1, 2, 3, 4)])
        store.feature_logger.flush()
    assert len(list((store.repo_root / "data/feature_logs").rglob("*.parquet"))) == 3
    whole = store.skew_report("svc", since=utc(2026, 1, 11, 12)).to_dict()
    monkeypatch.setattr(replay, "CHUNK_BYTES", 1)
    chunked = store.skew_report("svc", since=utc(2026, 1, 11, 12)).to_dict()
    assert chunked == whole
    assert (whole["rows"], whole["files"]) == (8, 3)
    assert whole["causes"] == {"stale_definition": 0, "not_materialized": 6, "mismatch": 2}


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)  # the CLI reads the repo's yaml
def test_cli_skew_report_json_text_html_and_exit_code(store: FeatureStore, tmp_path: Path) -> None:
    _serve(store, utc(2026, 1, 11), [{"user_id": 1, "x": 1.0}, {"user_id": 2, "x": 1.0}])
    store.close()
    runner = CliRunner()
    repo = ["--repo", str(store.repo_root), "skew-report", "--service", "svc"]
    ok = runner.invoke(cli, [*repo, "--json"])
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert (data["causes"]["mismatch"], data["passed"], data["rows"]) == (0, True, 2)
    text = runner.invoke(cli, repo)
    assert text.exit_code == 0
    assert "PASS" in text.stdout
    # A value overwritten behind the store's back: exit 1, unless the threshold allows it.
    with FeatureStore(store.repo_root) as fs:
        _overwrite_cnt(fs, user=2, value=99)
        _serve(fs, utc(2026, 1, 11), [{"user_id": 2, "x": 1.0}])
    page = tmp_path / "skew.html"
    failed = runner.invoke(cli, [*repo, "--html", str(page)])
    assert failed.exit_code == 1, failed.output
    assert "FAIL" in failed.stdout
    assert "<svg" in page.read_text()
    allowed = runner.invoke(cli, [*repo, "--max-mismatch-rate", "0.5"])
    assert allowed.exit_code == 0, allowed.output


def test_service_without_log_says_how_to_turn_logging_on(store: FeatureStore) -> None:
    with pytest.raises(SkewError, match="no request was logged yet"):
        store.skew_report("svc")
