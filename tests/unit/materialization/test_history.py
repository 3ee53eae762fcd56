"""The materialization history: every window that ran, newest first, read from the tail."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore import FeatureStore
from featurestore.materialization.history import _TAIL_BYTES, MaterializationHistory
from featurestore.materialization.materializer import ViewMaterialization
from tests.conftest import utc


def test_each_window_that_ran_is_recorded_newest_first(store: FeatureStore) -> None:
    first = store.materialize(utc(2026, 1, 1), utc(2026, 1, 3), views=["stats"])
    second = store.materialize_incremental(utc(2026, 1, 10), views=["stats"])
    nothing = store.materialize_incremental(utc(2026, 1, 10), views=["stats"])
    assert nothing.views[0].start is None  # nothing to do: not a run worth listing
    runs = store.materialization_history.recent("stats")
    expected = [second.views[0], first.views[0]]
    assert [(r.start, r.end, r.rows, r.written) for r in runs] == [
        (v.start, v.end, v.rows, v.written) for v in expected
    ]
    assert runs[0].watermark == store.get_feature_view("stats").watermark
    assert runs[0].finished_at >= runs[1].finished_at
    assert store.materialization_history.recent("recent") == []  # never materialized


def test_a_rebuild_is_marked(store: FeatureStore) -> None:
    store.materialize_incremental(utc(2026, 1, 10), views=["stats"])
    store.rebuild_online(["stats"], end=utc(2026, 1, 10))
    assert [r.rebuilt for r in store.materialization_history.recent("stats")] == [True, False]


@settings(max_examples=15, deadline=None)
@given(
    runs=st.lists(st.integers(min_value=0, max_value=10**12), min_size=0, max_size=900),
    limit=st.integers(min_value=1, max_value=1000),
)
def test_recent_is_the_last_runs_reversed_even_past_the_tail(
    tmp_path_factory, runs: list[int], limit: int
) -> None:
    history = MaterializationHistory(Path(tmp_path_factory.mktemp("history")))
    start = utc(2026, 1, 1)
    for i, rows in enumerate(runs):
        end = start + timedelta(hours=i + 1)
        history.record(ViewMaterialization("v", start, end, rows, rows // 2, 0.5, end))
    got = [r.rows for r in history.recent("v", limit)]
    size = history._path("v").stat().st_size if runs else 0
    if size <= _TAIL_BYTES:
        assert got == runs[::-1][:limit]
    else:  # the tail holds the newest runs, whole lines only
        assert got == runs[::-1][: len(got)]
        assert len(got) <= limit
        assert len(got) >= min(limit, 200)  # a line is under 330 bytes
