"""The feature log writer (issue 11): sampling, the bounded queue, files, flush, no secrets."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from featurestore import FeatureStore, LoggingConfig
from featurestore.consistency.log_writer import FeatureLogger, render_metrics
from featurestore.definitions import FeatureService
from featurestore.errors import DefinitionError
from featurestore.repo.config import FeatureLoggingConfig
from featurestore.types import Float64
from tests.conftest import make_repo, utc, write_parquet

FEATURES_PY = """
from featurestore import Entity, FeatureService, FeatureView, Field, ParquetSource
from featurestore import LoggingConfig
from featurestore.types import Int64

user = Entity("user", join_keys=["user_id"])
stats = FeatureView("stats", entities=[user],
                    source=ParquetSource("data/s.parquet", timestamp_field="ts"),
                    schema=[Field("cnt", Int64)])
logged = FeatureService("logged", features=[stats], logging=LoggingConfig(sample_rate=RATE))
quiet = FeatureService("quiet", features=[stats])
"""


def _store(tmp_path: Path, rate: float = 1.0, yaml_extra: str = "") -> FeatureStore:
    root = make_repo(
        tmp_path / "repo",
        FEATURES_PY.replace("RATE", repr(rate)),
        yaml="project: test\nonline_store: {type: sqlite, path: data/online.db}\n" + yaml_extra,
    )
    write_parquet(root / "data/s.parquet", {"user_id": [1, 2], "ts": [utc(2026, 1, 1)] * 2,
                                            "cnt": [5, 6]})  # fmt: skip
    store = FeatureStore(root)
    store.apply()
    store.materialize(utc(2026, 1, 1), utc(2026, 1, 2))
    return store


def _logged_rows(store: FeatureStore, service: str = "logged") -> int:
    files = (store.repo_root / "data/feature_logs").glob(f"service={service}/date=*/*.parquet")
    return sum(pq.read_metadata(f).num_rows for f in files)


def test_logging_config_checks_its_rate() -> None:
    assert LoggingConfig().sample_rate == 1.0
    for bad in (-0.1, 1.5, "all", True):
        with pytest.raises(DefinitionError, match="sample_rate"):
            LoggingConfig(sample_rate=bad)  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="logging=LoggingConfig"):
        FeatureService("s", features=["v:f"], logging=0.5)  # type: ignore[arg-type]


def test_logging_config_survives_the_registry(tmp_path: Path) -> None:
    store = _store(tmp_path, rate=0.25)
    assert store.refresh().feature_services["logged"].logging == LoggingConfig(0.25)
    assert store.snapshot.feature_services["quiet"].logging is None
    store.close()


def test_every_request_of_a_logging_service_is_written_on_close(tmp_path: Path) -> None:
    store = _store(tmp_path)
    for _ in range(3):
        store.get_online_features("logged", [{"user_id": 1}, {"user_id": 2}],
                                  request_time=utc(2026, 1, 3))  # fmt: skip
    store.get_online_features("quiet", [{"user_id": 1}], request_time=utc(2026, 1, 3))
    store.get_online_features(["stats:cnt"], [{"user_id": 1}], request_time=utc(2026, 1, 3))
    store.close()
    assert _logged_rows(store) == 6
    assert not (store.repo_root / "data/feature_logs/service=quiet").exists()
    table = pq.read_table(next((store.repo_root / "data/feature_logs").rglob("*.parquet")))
    assert set(table.column_names) == {
        "request_id", "request_time", "service", "key:user_id", "value:stats:cnt",
        "status:stats:cnt", "event_timestamp:stats:cnt", "fingerprint:stats", "watermark:stats",
    }  # fmt: skip
    assert table.column("value:stats:cnt").to_pylist()[:2] == [5, 6]
    assert table.column("watermark:stats").to_pylist()[0] == utc(2026, 1, 2)
    folder = next((store.repo_root / "data/feature_logs/service=logged").iterdir())
    assert folder.name == "date=2026-01-03"


def test_sample_rate_zero_logs_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path, rate=0.0)
    store.get_online_features("logged", [{"user_id": 1}], request_time=utc(2026, 1, 3))
    store.close()
    assert _logged_rows(store) == 0


def test_sample_rate_logs_whole_requests_about_that_share(tmp_path: Path) -> None:
    store = _store(tmp_path, rate=0.5)
    store.feature_logger._random.seed(7)
    for _ in range(200):
        store.get_online_features("logged", [{"user_id": 1}, {"user_id": 2}],
                                  request_time=utc(2026, 1, 3))  # fmt: skip
    store.close()
    rows = _logged_rows(store)
    assert rows % 2 == 0  # a request is logged whole
    assert 120 <= rows <= 280  # 400 rows at 0.5 (seeded)


def test_full_queue_drops_and_counts_but_answers(tmp_path: Path) -> None:
    store = _store(tmp_path, yaml_extra="feature_logging: {queue_size: 1, batch_rows: 1}\n")
    writer = store.feature_logger
    blocked = threading.Event()
    release = threading.Event()
    original = writer._write

    def slow(pending):  # the writer thread stalls on its first file: the queue fills up
        blocked.set()
        release.wait(10)
        return original(pending)

    writer._write = slow  # type: ignore[method-assign]
    answers = []
    for i in range(10):
        got = store.get_online_features("logged", [{"user_id": 1}], request_time=utc(2026, 1, 3))
        answers.append(got.to_dict()["cnt"])
        if i == 0:
            assert blocked.wait(10)
    stats = writer.stats()
    assert answers == [[5]] * 10
    assert (stats.accepted_rows, stats.dropped_rows) == (2, 8)  # one being written, one queued
    assert 'featurestore_feature_log_rows_total{outcome="dropped"} 8' in render_metrics(stats)
    assert "featurestore_feature_log_queue_depth 1" in render_metrics(stats)
    release.set()
    store.close()
    assert _logged_rows(store) == 2  # nothing accepted is lost


def test_writers_side_by_side_never_clobber(tmp_path: Path) -> None:
    store = _store(tmp_path)
    config = FeatureLoggingConfig(batch_rows=1)
    root = store.repo_root / "data/feature_logs"
    writers = [FeatureLogger(root, config) for _ in range(3)]
    log = writers[0].plan(store.snapshot, "logged")
    assert log is not None
    for _ in range(4):
        for writer in writers:
            response = store.get_online_features(["stats:cnt"], [{"user_id": 1}],
                                                 request_time=utc(2026, 1, 3))  # fmt: skip
            writer.submit(log, request_time_us=0, entity_rows=[{"user_id": 1}], response=response)
    for writer in writers:
        writer.close()
    files = list(root.rglob("*.parquet"))
    assert len(files) == 12
    assert sum(pq.read_metadata(f).num_rows for f in files) == 12
    assert not list(root.rglob(".*.tmp"))
    store.close()


def test_a_request_whose_fields_cannot_be_converted_is_dropped_alone(tmp_path: Path) -> None:
    store = _store(tmp_path, yaml_extra="feature_logging: {flush_interval_s: 3600}\n")
    writer = store.feature_logger
    plan = writer.plan(store.snapshot, "logged")
    assert plan is not None
    log = dataclasses.replace(plan, request_fields={"x": Float64})
    response = store.get_online_features(["stats:cnt"], [{"user_id": 1}],
                                         request_time=utc(2026, 1, 3))  # fmt: skip
    for x in (1.5, "not a number", 2):
        writer.submit(log, request_time_us=0, entity_rows=[{"user_id": 1, "x": x}],
                      response=response)  # fmt: skip
    store.close()
    assert _logged_rows(store) == 2
    assert writer.stats().dropped_rows == 1
    table = pq.read_table(next((store.repo_root / "data/feature_logs").rglob("*.parquet")))
    assert table.column("request:x").to_pylist() == [1.5, 2.0]


def test_flush_writes_what_was_queued(tmp_path: Path) -> None:
    store = _store(tmp_path, yaml_extra="feature_logging: {flush_interval_s: 3600}\n")
    store.get_online_features("logged", [{"user_id": 1}], request_time=utc(2026, 1, 3))
    assert store.feature_logger.flush()
    assert _logged_rows(store) == 1
    store.close()


def test_a_file_holds_batch_rows_at_most(tmp_path: Path) -> None:
    """A take of more rows than a file is split into files of even size, none larger."""
    store = _store(
        tmp_path, yaml_extra="feature_logging: {batch_rows: 4, flush_interval_s: 3600}\n"
    )
    writer = store.feature_logger
    log = writer.plan(store.snapshot, "logged")
    assert log is not None
    blocked, release = threading.Event(), threading.Event()
    original = writer._write

    def first_stalls(batches):  # the first take waits until the second is queued whole
        blocked.set()
        release.wait(10)
        return original(batches)

    writer._write = first_stalls  # type: ignore[method-assign]

    def submit(users: list[int]) -> None:
        rows = [{"user_id": 1 + u % 2} for u in users]
        response = store.get_online_features(["stats:cnt"], rows, request_time=utc(2026, 1, 3))
        writer.submit(log, request_time_us=0, entity_rows=rows, response=response)

    submit([0, 1, 2, 3])  # a file's rows: taken at once
    assert blocked.wait(10)
    for user in range(5):  # 5 rows, taken together after the first file
        submit([user])
    release.set()
    store.close()
    files = list((store.repo_root / "data/feature_logs").rglob("*.parquet"))
    sizes = sorted(pq.read_metadata(f).num_rows for f in files)
    assert sum(sizes) == 9
    assert max(sizes) <= 4
    assert sizes == [2, 3, 4]  # 5 rows as 3 + 2, not 4 + 1


def test_a_queue_smaller_than_a_file_is_written_before_it_fills(tmp_path: Path) -> None:
    """Half a queue is a reason to write, not only a file's rows or the interval: else a
    queue of fewer requests than a file's rows fills and drops between two intervals."""
    store = _store(
        tmp_path,
        yaml_extra="feature_logging: {queue_size: 10, batch_rows: 50000, flush_interval_s: 3600}\n",
    )
    for _ in range(5):
        store.get_online_features("logged", [{"user_id": 1}], request_time=utc(2026, 1, 3))
    deadline = time.monotonic() + 30
    while store.feature_logger.stats().written_rows < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    stats = store.feature_logger.stats()
    assert (stats.written_rows, stats.dropped_rows) == (5, 0)
    store.close()


def test_flush_after_close_returns_at_once_with_everything_written(tmp_path: Path) -> None:
    store = _store(tmp_path, yaml_extra="feature_logging: {flush_interval_s: 3600}\n")
    writer = store.feature_logger
    store.get_online_features("logged", [{"user_id": 1}], request_time=utc(2026, 1, 3))
    writer.close()
    assert writer.flush(timeout_s=30)
    assert writer.stats().written_rows == 1
    store.close()
