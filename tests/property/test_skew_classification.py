"""Property G5: every differing cell of the skew report gets the cause an oracle gives it.

The oracle reads the feature log's Parquet files itself (served value, request time, keys,
request field, logged watermark) and finds each cell's training row by brute force
(:func:`tests.oracle.pit_oracle`, which also gives the row's event timestamp). A differing
cell is ``not_materialized`` when that row's ``event_timestamp >=`` the logged watermark (or
nothing was materialized), else ``mismatch`` (no definition changes here, so never
``stale_definition``).

Materialization windows fall anywhere (not from the first row), interleaved with requests at
any time, before or after the watermark, so both causes occur: rows older than the first
window never go online, lookups in the past, rows newer than the watermark.
"""

from __future__ import annotations

import math
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from hypothesis import event, given, settings
from hypothesis import strategies as st

from featurestore import FeatureStore
from tests.conftest import make_repo, utc, write_parquet
from tests.integration.test_skew_report import FEATURES_PY
from tests.oracle import pit_oracle

T0 = utc(2026, 1, 1)
HOUR = timedelta(hours=1)
FEATURES = ("stats:cnt", "stats:amount", "txn:ratio")


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def _ratio(x: float | None, amount: float | None) -> float | None:
    """The on-demand view's function, as IEEE division (polars') computes it."""
    if x is None or amount is None:
        return None
    if amount == 0:  # the source's zero is +0.0
        return math.nan if x == 0 else math.copysign(math.inf, x)
    return x / amount


def oracle_causes(log_folder: Path, source: list[dict[str, Any]], ttl: timedelta) -> dict:
    """Per feature, the differing cells by cause, from the log files and the source rows."""
    logged = [
        row for path in sorted(log_folder.rglob("*.parquet"))
        for row in pq.ParquetFile(path).read().to_pylist()
    ]  # fmt: skip
    entities = [{"user_id": r["key:user_id"], "event_timestamp": r["request_time"]} for r in logged]
    winners = pit_oracle(
        entities, source, join_keys=["user_id"], features=["cnt", "amount", "event_ts"], ttl=ttl
    )
    counts = {f: {"not_materialized": 0, "mismatch": 0, "stale_definition": 0} for f in FEATURES}
    for row, winner in zip(logged, winners, strict=True):
        offline = {
            "stats:cnt": winner["cnt"],
            "stats:amount": winner["amount"],
            "txn:ratio": _ratio(row["request:x"], winner["amount"]),
        }
        watermark = row["watermark:stats"]
        event = winner["event_ts"]
        late = event is not None and (watermark is None or event >= watermark)
        for feature in FEATURES:
            if not _same(row[f"value:{feature}"], offline[feature]):
                counts[feature]["not_materialized" if late else "mismatch"] += 1
    return counts


def _source(root: Path, rows: list[tuple[int, int, int | None, float | None]]) -> list[dict]:
    """Write the rows (user, hour, cnt, amount) as the view's source; the oracle's rows."""
    write_parquet(
        root / "data/s.parquet",
        {
            "user_id": [r[0] for r in rows],
            "ts": [T0 + r[1] * HOUR for r in rows],
            "cnt": [r[2] for r in rows],
            "amount": [r[3] for r in rows],
        },
    )
    return [
        {"user_id": u, "event_ts": T0 + h * HOUR, "created_ts": None, "file": "s", "row": i,
         "cnt": c, "amount": a}
        for i, (u, h, c, a) in enumerate(rows)
    ]  # fmt: skip


rows = st.lists(
    st.tuples(
        st.integers(1, 3),  # user
        st.integers(0, 48),  # hour of the event (ties likely)
        st.one_of(st.none(), st.integers(-5, 5)),  # cnt
        st.one_of(st.none(), st.sampled_from([-2.5, 0.0, 1.0, 3.25, 1e300])),  # amount
    ),
    min_size=1,
    max_size=20,
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("materialize"), st.integers(0, 50), st.integers(1, 20)),
        st.tuples(
            st.just("request"),
            st.integers(0, 60),  # hour of the request
            st.lists(st.tuples(st.integers(1, 4), st.floats(-10, 10)), min_size=1, max_size=3),
        ),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(rows=rows, steps=steps, last=st.integers(0, 60), ttl_hours=st.sampled_from([1, 12, 720]))
def test_each_differing_cell_gets_the_oracles_cause(rows, steps, last, ttl_hours) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = make_repo(Path(tmp) / "repo", FEATURES_PY.replace("days=30", f"hours={ttl_hours}"))
        source = _source(root, rows)
        with FeatureStore(root) as store:
            store.apply()
            served = 0
            for step in [*steps, ("request", last, [(u, 1.5) for u in (1, 2, 3, 4)])]:
                if step[0] == "materialize":
                    store.materialize(T0 + step[1] * HOUR, T0 + (step[1] + step[2]) * HOUR)
                else:
                    entities = [{"user_id": u, "x": x} for u, x in step[2]]
                    store.get_online_features("svc", entities, request_time=T0 + step[1] * HOUR)
                    served += len(entities)
            report = store.skew_report("svc")
        expected = oracle_causes(root / "data/feature_logs", source, timedelta(hours=ttl_hours))
        for cause in ("not_materialized", "mismatch"):
            event(f"{cause}: {any(expected[f][cause] for f in FEATURES)}")
        assert report.rows == served
        assert {f: report.features[f].causes for f in FEATURES} == expected, report.to_text()


def test_newer_row_with_the_values_of_an_older_one_hidden_by_the_ttl_is_not_materialized(
    tmp_path: Path,
) -> None:
    """The corner case a classification from values got wrong (a mismatch before).

    Online holds the row of 00:00 (materialized through 01:00), expired at 03:30 by the
    1-hour ttl; training answers the row of 03:00, past the watermark, whose values are
    exactly the older row's: the view's values at the watermark and at the request are the
    same, yet the training row was not online.
    """
    root = make_repo(tmp_path / "repo", FEATURES_PY.replace("days=30", "hours=1"))
    _source(root, [(1, 0, 5, 2.0), (1, 3, 5, 2.0)])
    with FeatureStore(root) as store:
        store.apply()
        store.materialize(T0, T0 + HOUR)
        response = store.get_online_features(
            "svc", [{"user_id": 1, "x": 1.0}], request_time=T0 + 3.5 * HOUR
        )
        assert response.statuses["cnt"][0].value == "OUTSIDE_MAX_AGE"
        report = store.skew_report("svc")
    for feature in FEATURES:
        causes = report.features[feature].causes
        assert causes == {"stale_definition": 0, "not_materialized": 1, "mismatch": 0}, feature
    sample = next(s for s in report.samples if s.feature == "stats:cnt")
    assert (sample.online_value, sample.offline_value) == (None, 5)
    assert sample.offline_event_timestamp == T0 + 3 * HOUR
    assert report.passes()


def test_a_pushed_row_counts_as_online_from_its_push_time(tmp_path: Path) -> None:
    """DESIGN G8: a pushed row is online from its push time, whatever the watermark.

    Served before the push, a value that training now answers from the pushed row (older
    than the watermark) is ``not_materialized``, not a mismatch; served after it, the pushed
    value is the training value. A pushed row newer than the watermark, online since before
    the request, overwritten online behind the store's back, is a ``mismatch`` (the watermark
    alone would have called it ``not_materialized``).
    """
    from featurestore._time import to_micros, utc_now
    from featurestore.online.codec import KeyEncoder, RecordCodec
    from featurestore.types import Int64

    root = make_repo(tmp_path / "repo", FEATURES_PY.replace("days=30", "days=3650"))
    _source(root, [(2, 24, 2, 20.0), (3, 48, 3, 30.0)])
    watermark = T0 + 9 * 24 * HOUR
    with FeatureStore(root) as store:
        store.apply()
        store.materialize(T0, watermark)
        before = T0 + 10 * 24 * HOUR  # a request time before the pushes (they happen now)
        store.get_online_features("svc", [{"user_id": 2, "x": 1.0}], request_time=before)
        store.push("stats", [{"user_id": 2, "ts": T0 + 3 * 24 * HOUR, "cnt": 7, "amount": 70.0}])
        store.push("stats", [{"user_id": 3, "ts": T0 + 19 * 24 * HOUR, "cnt": 9, "amount": 90.0}])
        store.get_online_features("svc", [{"user_id": 2, "x": 1.0}], request_time=before)
        record = store.get_feature_view("stats")
        codec = RecordCodec([f.dtype for f in record.view.schema], fingerprint=record.fingerprint)
        event = to_micros(T0 + 19 * 24 * HOUR)
        key = KeyEncoder({"user_id": Int64}).encode_columns([[3]])
        written = codec.encode_rows([event], [to_micros(utc_now())], [[99], [90.0]])
        assert store.online.write_records("stats", key, written) == 1
        after = utc_now() + timedelta(days=1)
        store.get_online_features("svc", [{"user_id": 3, "x": 1.0}], request_time=after)
        report = store.skew_report("svc")
    assert report.rows == 3
    cnt = report.features["stats:cnt"]
    assert cnt.causes == {"stale_definition": 0, "not_materialized": 1, "mismatch": 1}
    assert cnt.equal == 1  # user 2 served after the push: the pushed value
    assert report.features["stats:amount"].causes == {
        "stale_definition": 0,
        "not_materialized": 1,
        "mismatch": 0,
    }
    late = next(s for s in report.samples if s.feature == "stats:cnt" and s.keys["user_id"] == 2)
    assert (late.cause, late.online_value, late.offline_value) == ("not_materialized", 2, 7)
