"""A lost or replaced SQLite online store is detected, reported and rebuilt (issue 10 item 2).

Every test starts from the reproduction: materialize, then lose the store's contents (delete
or replace the file), then look at status, reads and incremental runs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from featurestore import FeatureStore
from featurestore.errors import OnlineStoreIntegrityError
from featurestore.online.lookup import OnlineReader
from featurestore.online.sqlite import SqliteOnlineStore
from featurestore.repo.config import SqliteOnlineStoreConfig
from tests.conftest import utc, write_parquet
from tests.unit.materialization.conftest import ROWS

AT = utc(2026, 2, 1)


def cnt(store: FeatureStore, users: list[int], view: str = "stats") -> list[object]:
    got = store.get_online_features([f"{view}:cnt"], {"user_id": users}, request_time=AT)
    return got.to_dict()["cnt"]


def delete_files(db: Path) -> None:
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        path.unlink(missing_ok=True)


def online_db(store: FeatureStore) -> Path:
    return store.repo_root / "data/online.db"


def test_first_materialization_writes_the_epoch_and_records_it_with_the_watermark(
    store: FeatureStore,
) -> None:
    assert store.online.read_epoch() is None
    store.materialize(utc(2026, 1, 1), utc(2026, 1, 10))
    epoch = store.online.read_epoch()
    assert epoch is not None
    assert store.get_feature_view("stats").epoch == epoch
    assert store.get_feature_view("archive").epoch is None  # offline only: never written
    saved = json.loads(store.registry.path.read_text())
    assert saved["feature_views"]["stats"]["epoch"] == epoch
    assert store.online_problem() is None
    assert all(s.problem is None for s in store.online_status())


def test_a_replaced_file_is_reported_and_incremental_rebuilds_it(store: FeatureStore) -> None:
    store.materialize(utc(2026, 1, 1), utc(2026, 1, 10))
    store.close()
    delete_files(online_db(store))  # the reproduction: a new, empty online.db

    with FeatureStore(store.repo_root) as fresh:
        status = {s.name: s for s in fresh.online_status()}
        assert status["stats"].watermark == utc(2026, 1, 10)
        assert status["stats"].records == 0
        assert status["stats"].problem is not None
        assert "'stats'" in status["stats"].problem
        assert "no epoch" in status["stats"].problem
        assert "materialize-incremental" in status["stats"].problem
        assert status["archive"].problem is None
        problem = fresh.online_problem()
        assert problem is not None
        assert "'recent'" in problem
        assert "'stats'" in problem
        with pytest.raises(OnlineStoreIntegrityError, match=r"'stats'.*materialize-incremental"):
            cnt(fresh, [1])

        report = fresh.materialize_incremental(utc(2026, 1, 10))
        runs = {v.view: v for v in report.views}
        assert runs["stats"].rebuilt
        assert runs["recent"].rebuilt
        assert runs["stats"].start == utc(2026, 1, 1)  # from the first row, not the watermark
        assert runs["stats"].rows == 3
        assert cnt(fresh, [1, 2, 3]) == [11, 20, 30]
        assert fresh.online_problem() is None
        assert fresh.get_feature_view("stats").epoch == fresh.online.read_epoch()
        assert fresh.get_feature_view("stats").watermark == utc(2026, 1, 10)


def test_a_window_into_a_lost_store_rebuilds_the_view_and_moves_the_watermark(
    store: FeatureStore,
) -> None:
    store.materialize(utc(2026, 1, 1), utc(2026, 1, 10), views=["stats"])
    store.close()
    delete_files(online_db(store))
    with FeatureStore(store.repo_root) as fresh:
        (run,) = fresh.materialize(utc(2026, 1, 3), utc(2026, 1, 12), views=["stats"]).views
        assert run.rebuilt
        # As a first run: the window chose where history starts.
        assert fresh.get_feature_view("stats").watermark == utc(2026, 1, 12)
        assert fresh.online_problem() is None
        assert cnt(fresh, [1, 2, 3]) == [11, None, 30]


def test_a_file_deleted_under_an_open_store_is_refused_then_the_new_file_is_read(
    store: FeatureStore,
) -> None:
    store.materialize(utc(2026, 1, 1), utc(2026, 1, 10))
    assert cnt(store, [1]) == [11]
    delete_files(online_db(store))  # the open connection still reads the deleted inode
    store.refresh()  # a new reader checks the epoch at once
    with pytest.raises(OnlineStoreIntegrityError, match="deleted or moved while open"):
        cnt(store, [1])
    problem = store.online_problem()
    assert problem is not None
    assert "deleted" in problem

    rows = dict(ROWS, cnt=[10, 99, 20, 30])  # the source moved on meanwhile
    write_parquet(store.repo_root / "data/stats.parquet", rows)
    with FeatureStore(store.repo_root) as other:
        assert other.materialize_incremental(utc(2026, 1, 10)).views[0].rebuilt
    store.refresh()
    assert cnt(store, [1]) == [99]  # the new file, not the deleted one's 11
    assert store.online_problem() is None


def test_switching_to_another_store_rebuilds_and_a_renamed_file_is_reopened(
    store: FeatureStore, tmp_path: Path
) -> None:
    store.materialize(utc(2026, 1, 1), utc(2026, 1, 10))
    other_path = tmp_path / "other.db"
    config = store.config.model_copy(
        update={"online_store": SqliteOnlineStoreConfig(type="sqlite", path=str(other_path))}
    )
    with FeatureStore(store.repo_root, config=config) as switched:
        assert "'stats'" in (switched.online_problem() or "")
        report = switched.materialize_incremental(utc(2026, 1, 10))
        assert all(v.rebuilt for v in report.views)
        new_epoch = switched.online.read_epoch()
    store.refresh()
    with pytest.raises(OnlineStoreIntegrityError, match="epoch"):  # the registry moved on
        cnt(store, [1])
    shutil.copyfile(other_path, tmp_path / "copy.db")
    delete_files(online_db(store))  # a replaced file goes with its -wal and -shm
    (tmp_path / "copy.db").replace(online_db(store))
    store.refresh()
    assert cnt(store, [1, 2, 3]) == [11, 20, 30]
    assert store.online.read_epoch() == new_epoch


def test_rebuild_online_deletes_the_views_records_and_materializes_again(
    store: FeatureStore,
) -> None:
    store.materialize(utc(2026, 1, 1), utc(2026, 1, 10))
    # User 2's rows are removed upstream: conditional writes never delete, a rebuild does.
    rows = {k: [v for i, v in enumerate(col) if i != 2] for k, col in ROWS.items()}
    write_parquet(store.repo_root / "data/stats.parquet", rows)
    store.materialize_incremental(utc(2026, 1, 11))
    assert cnt(store, [1, 2, 3]) == [11, 20, 30]

    report = store.rebuild_online(["stats"], end=utc(2026, 1, 11))
    (run,) = report.views
    assert run.rebuilt
    assert run.start == utc(2026, 1, 1)
    assert cnt(store, [1, 2, 3]) == [11, None, 30]
    assert store.online.count_records("stats") == 2
    assert store.online.count_records("recent") > 0  # other views untouched
    assert store.get_feature_view("stats").watermark == utc(2026, 1, 11)


def test_rebuild_runs_at_least_to_the_previous_watermark(store: FeatureStore) -> None:
    store.materialize(utc(2026, 1, 1), utc(2026, 1, 10), views=["stats"])
    (run,) = store.rebuild_online(["stats"], end=utc(2026, 1, 6)).views
    assert run.end == utc(2026, 1, 10)
    assert cnt(store, [3]) == [30]  # the Jan 9 row, above the asked end, is still there
    assert store.get_feature_view("stats").watermark == utc(2026, 1, 10)


def test_rebuild_online_without_views_rebuilds_every_online_view(store: FeatureStore) -> None:
    store.materialize(utc(2026, 1, 1), utc(2026, 1, 10))
    report = store.rebuild_online(end=utc(2026, 1, 10))
    assert {v.view for v in report.views} == {"stats", "recent"}
    assert all(v.rebuilt for v in report.views)


def test_a_watermark_recorded_before_epochs_existed_is_trusted(store: FeatureStore) -> None:
    store.materialize(utc(2026, 1, 1), utc(2026, 1, 10))
    store.close()
    data = json.loads(store.registry.path.read_text())
    for view in data["feature_views"].values():
        del view["epoch"]  # a registry written by 0.1
    store.registry.path.write_text(json.dumps(data))
    with FeatureStore(store.repo_root) as old:
        assert old.get_feature_view("stats").epoch is None
        assert old.online_problem() is None
        assert cnt(old, [1]) == [11]
        (run, *_) = old.materialize_incremental(utc(2026, 1, 11)).views
        assert not run.rebuilt
        assert run.start == utc(2026, 1, 10)
        assert old.get_feature_view("stats").epoch == old.online.read_epoch()


class CountingStore(SqliteOnlineStore):
    """A real SQLite store that counts epoch reads."""

    epoch_reads = 0

    def read_epoch(self) -> str | None:
        self.epoch_reads += 1
        return super().read_epoch()


@pytest.mark.parametrize(("interval_s", "reads"), [(3600.0, 1), (0.0, 3)])
def test_readers_read_the_epoch_once_per_interval(
    store: FeatureStore, tmp_path: Path, interval_s: float, reads: int
) -> None:
    store.materialize(utc(2026, 1, 1), utc(2026, 1, 10))
    store.close()
    counting = CountingStore(online_db(store))
    reader = OnlineReader(store.refresh(), counting, epoch_check_s=interval_s)
    for _ in range(3):
        got = reader.get_online_features(["stats:cnt"], {"user_id": [1]}, request_time=AT)
        assert got.to_dict()["cnt"] == [11]
    assert counting.epoch_reads == reads
    counting.close()


def test_a_reader_refuses_a_lost_view_but_serves_the_others(store: FeatureStore) -> None:
    store.materialize(utc(2026, 1, 1), utc(2026, 1, 10), views=["stats"])
    store.close()
    delete_files(online_db(store))
    with FeatureStore(store.repo_root) as fresh:
        fresh.materialize(utc(2026, 1, 1), utc(2026, 1, 10), views=["recent"])  # new epoch
        assert cnt(fresh, [1], view="recent") == [None]  # ttl 1 day: expired at AT
        with pytest.raises(OnlineStoreIntegrityError, match="'stats'"):
            cnt(fresh, [1])
