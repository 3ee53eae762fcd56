"""Materialization windows, watermarks, incremental runs and stale definitions."""

from __future__ import annotations

import pytest

from featurestore import FeatureStore
from featurestore.errors import FeatureViewNotFoundError, MaterializationError
from tests.conftest import utc, write_parquet
from tests.unit.materialization.conftest import ROWS


def read(store: FeatureStore, view: str, users: list[int], at=None):
    return store.get_online_features(
        [f"{view}:cnt"], {"user_id": users}, request_time=at or utc(2026, 2, 1)
    )


def test_window_writes_newest_row_per_key_and_sets_watermark(store: FeatureStore) -> None:
    report = store.materialize(utc(2026, 1, 1), utc(2026, 1, 9))
    assert {v.view for v in report.views} == {"stats", "recent"}  # archive is offline only
    stats = next(v for v in report.views if v.view == "stats")
    assert (stats.rows, stats.written) == (2, 2)
    assert store.get_feature_view("stats").watermark == utc(2026, 1, 9)
    got = read(store, "stats", [1, 2, 3])
    assert got.to_dict() == {"user_id": [1, 2, 3], "cnt": [11, 20, None]}
    assert got.statuses["cnt"] == ["PRESENT", "PRESENT", "NOT_FOUND"]  # 3's row is at END


def test_gap_window_is_written_but_does_not_move_the_watermark(store: FeatureStore) -> None:
    store.materialize(utc(2026, 1, 1), utc(2026, 1, 3), views=["stats"])
    store.materialize(utc(2026, 1, 8), utc(2026, 1, 10), views=["stats"])
    assert store.get_feature_view("stats").watermark == utc(2026, 1, 3)
    assert read(store, "stats", [3]).to_dict()["cnt"] == [30]
    store.materialize(utc(2026, 1, 2), utc(2026, 1, 8), views=["stats"])  # fills the gap
    assert store.get_feature_view("stats").watermark == utc(2026, 1, 8)


def test_older_window_after_newer_one_keeps_newer_values(store: FeatureStore) -> None:
    store.materialize(utc(2026, 1, 3), utc(2026, 1, 6), views=["stats"])
    store.materialize(utc(2026, 1, 1), utc(2026, 1, 3), views=["stats"])
    assert read(store, "stats", [1]).to_dict()["cnt"] == [11]
    assert store.get_feature_view("stats").watermark == utc(2026, 1, 6)


def test_incremental_first_run_starts_at_end_minus_ttl(store: FeatureStore) -> None:
    report = store.materialize_incremental(utc(2026, 1, 5, 12), views=["recent"])
    (run,) = report.views
    assert run.start == utc(2026, 1, 4, 12)
    # Only user 1's row of Jan 5 lies in [Jan 4 12:00, Jan 5 12:00).
    got = read(store, "recent", [1, 2], at=utc(2026, 1, 5, 12))
    assert got.to_dict()["cnt"] == [11, None]
    assert got.statuses["cnt"] == ["PRESENT", "NOT_FOUND"]


def test_incremental_unlimited_ttl_starts_at_earliest_row_then_continues(
    store: FeatureStore,
) -> None:
    (first,) = store.materialize_incremental(utc(2026, 1, 3), views=["stats"]).views
    assert first.start == utc(2026, 1, 1)
    assert read(store, "stats", [1, 2]).to_dict()["cnt"] == [10, 20]
    (second,) = store.materialize_incremental(utc(2026, 1, 10), views=["stats"]).views
    assert second.start == utc(2026, 1, 3)
    assert read(store, "stats", [1, 3]).to_dict()["cnt"] == [11, 30]
    (third,) = store.materialize_incremental(utc(2026, 1, 10), views=["stats"]).views
    assert third.start is None
    assert third.rows == 0


def test_progress_reports_done_and_total(store: FeatureStore) -> None:
    calls: list[tuple[str, int, int | None]] = []
    store.materialize(
        utc(2026, 1, 1), utc(2026, 2, 1), views=["stats"], progress=lambda *a: calls.append(a)
    )
    assert calls[0] == ("stats", 0, 3)
    assert calls[-1] == ("stats", 3, 3)


def test_bad_windows_and_views_are_refused(store: FeatureStore) -> None:
    with pytest.raises(MaterializationError, match="START must be before END"):
        store.materialize(utc(2026, 1, 2), utc(2026, 1, 2))
    with pytest.raises(MaterializationError, match="online=False"):
        store.materialize(utc(2026, 1, 1), utc(2026, 1, 2), views=["archive"])
    with pytest.raises(FeatureViewNotFoundError, match="Did you mean 'stats'"):
        store.materialize(utc(2026, 1, 1), utc(2026, 1, 2), views=["stat"])


def test_online_status_reports_watermarks_and_counts(store: FeatureStore) -> None:
    store.materialize(utc(2026, 1, 1), utc(2026, 2, 1), views=["stats"])
    status = {s.name: s for s in store.online_status()}
    assert status["stats"].records == 3
    assert status["stats"].watermark == utc(2026, 2, 1)
    assert status["recent"].records == 0
    assert status["recent"].watermark is None
    assert status["archive"].online is False


def test_changed_view_is_stale_until_rematerialized(store: FeatureStore) -> None:
    store.materialize(utc(2026, 1, 1), utc(2026, 2, 1), views=["stats"])
    features = store.repo_root / "features.py"
    features.write_text(
        features.read_text().replace(
            'Field("amount", Float64)])', 'Field("amount", Float64), Field("cnt2", Int64)])'
        )
    )
    write_parquet(store.repo_root / "data/stats.parquet", {**ROWS, "cnt2": [0, 0, 0, 0]})
    plan = store.apply()
    assert any(c.name == "stats" and c.needs_materialization for c in plan.changes)
    assert store.get_feature_view("stats").watermark is None
    got = store.get_online_features(["stats:cnt", "stats:amount"], [{"user_id": 1}])
    assert got.statuses == {"cnt": ["STALE_DEFINITION"], "amount": ["STALE_DEFINITION"]}
    assert got.to_dict()["cnt"] == [None]
    # A partial re-materialization fixes only the keys it wrote.
    store.materialize(utc(2026, 1, 1), utc(2026, 1, 3), views=["stats"])
    got = read(store, "stats", [1, 2, 3])
    assert got.statuses["cnt"] == ["PRESENT", "PRESENT", "STALE_DEFINITION"]
    assert got.to_dict()["cnt"] == [10, 20, None]  # older row replaces the stale newer one
    store.materialize_incremental(utc(2026, 2, 1), views=["stats"])
    got = read(store, "stats", [1, 2, 3])
    assert got.statuses["cnt"] == ["PRESENT"] * 3
    assert got.to_dict()["cnt"] == [11, 20, 30]


def test_incremental_first_run_with_a_ttl_longer_than_history_starts_at_earliest_row(
    tmp_path,
) -> None:
    """A ttl reaching before the first representable time (timedelta.max) excludes nothing."""
    from tests.conftest import make_repo
    from tests.unit.materialization.conftest import FEATURES_PY

    huge = FEATURES_PY.replace("ttl=timedelta(days=1)", "ttl=timedelta.max")
    root = make_repo(tmp_path / "repo", huge)
    write_parquet(root / "data/stats.parquet", ROWS)
    with FeatureStore(root) as fs:
        fs.apply()
        (run,) = fs.materialize_incremental(utc(2026, 1, 3), views=["recent"]).views
        assert run.start == utc(2026, 1, 1)
        got = read(fs, "recent", [1, 2], at=utc(2026, 1, 3))
        assert got.to_dict()["cnt"] == [10, 20]
