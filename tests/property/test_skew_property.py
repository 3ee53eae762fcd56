"""Property G5: log every request, replay it, and the skew report finds no mismatch.

Random source rows (ties on event time, nulls, several users), random materialization windows
written in random order after a first one from the first row (overlapping, with gaps, or none), random request times at or after the
last window, random request fields for an on-demand view. Every request is logged and
replayed through the training path: no cell may be a ``mismatch`` or ``stale_definition``;
differences are only ``not_materialized``, and when the windows cover every row up to the
request times there are none at all.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore import FeatureStore
from tests.conftest import make_repo, utc, write_parquet
from tests.integration.test_skew_report import FEATURES_PY

T0 = utc(2026, 1, 1)
HOUR = timedelta(hours=1)

rows = st.lists(
    st.tuples(
        st.integers(1, 3),  # user
        st.integers(0, 48),  # hour of the event (ties likely)
        st.one_of(st.none(), st.integers(-5, 5)),  # cnt
        st.one_of(st.none(), st.sampled_from([-2.5, 0.0, 1.0, 3.25, 1e300])),  # amount
    ),
    min_size=1,
    max_size=25,
)
windows = st.lists(st.tuples(st.integers(0, 50), st.integers(1, 20)), max_size=4)
requests = st.lists(
    st.tuples(
        st.integers(0, 30),  # hours after the last window
        st.lists(
            st.tuples(st.integers(1, 4), st.floats(-10, 10, allow_nan=False)),
            min_size=1,
            max_size=4,
        ),
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=25, deadline=None)
@given(rows=rows, windows=windows, requests=requests, ttl_hours=st.sampled_from([1, 12, 720]))
def test_logged_traffic_replays_with_no_mismatch(rows, windows, requests, ttl_hours) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = make_repo(Path(tmp) / "repo", FEATURES_PY.replace("days=30", f"hours={ttl_hours}"))
        write_parquet(
            root / "data/s.parquet",
            {
                "user_id": [r[0] for r in rows],
                "ts": [T0 + r[1] * HOUR for r in rows],
                "cnt": [r[2] for r in rows],
                "amount": [r[3] for r in rows],
            },
        )
        with FeatureStore(root) as store:
            store.apply()
            last = T0
            # The first window starts at the first row (as an incremental first run over an
            # unlimited ttl does): a watermark then means every row below it is online.
            for start, length in [(0, windows[0][1]), *windows[1:]] if windows else []:
                store.materialize(T0 + start * HOUR, T0 + (start + length) * HOUR)
                last = max(last, T0 + (start + length) * HOUR)
            served = 0
            for offset, entities in requests:
                at = last + offset * HOUR
                store.get_online_features(
                    "svc", [{"user_id": u, "x": x} for u, x in entities], request_time=at
                )
                served += len(entities)
            report = store.skew_report("svc")
        assert report.rows == served
        causes = report.cause_counts()
        assert causes["mismatch"] == 0, report.to_text()
        assert causes["stale_definition"] == 0
        watermark = store.get_feature_view("stats").watermark
        latest_request = max(last + o * HOUR for o, _ in requests)
        covered = watermark is not None and all(
            T0 + r[1] * HOUR < watermark for r in rows if T0 + r[1] * HOUR <= latest_request
        )
        if covered:
            assert causes["not_materialized"] == 0, report.to_text()
            for feature in report.features.values():
                assert feature.equal + feature.both_null == feature.cells
