"""The gate of pushed rows (issue 12 item 2, DESIGN G6/G8) with the real Great Expectations: a
clean push passes, a failing one is refused on a blocking view and let through with a warning on
a warning one; columns the suite does not know (the push log's) are not shown to it; the run is
kept as the view's latest run only."""

from __future__ import annotations

import logging
from pathlib import Path

import great_expectations.expectations as gxe
import pyarrow as pa
import pytest

from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.errors import ValidationError
from featurestore.types import Float64
from featurestore.validation.gate import check_pushed_rows, rows_time_range
from featurestore.validation.result import ValidationLog
from tests.conftest import utc

USER = Entity("user", join_keys=["user_id"])
T1, T2 = utc(2026, 1, 1), utc(2026, 1, 2, 3)


def make_view(on_failure: str = "block", *, expectations: bool = True) -> FeatureView:
    return FeatureView(
        "stats",
        entities=[USER],
        source=ParquetSource("data/s.parquet", timestamp_field="ts"),
        schema=[Field("amount", Float64)],
        expectations=[
            gxe.ExpectColumnValuesToBeBetween(column="amount", min_value=0),
            gxe.ExpectTableColumnsToMatchSet(column_set=["user_id", "amount", "ts"]),
        ]
        if expectations
        else None,
        on_failure=on_failure,  # type: ignore[arg-type]
    )


def pushed(amounts: list[float | None]) -> pa.Table:
    n = len(amounts)
    return pa.table(
        {
            "user_id": pa.array(range(n), pa.int64()),
            "amount": pa.array(amounts, pa.float64()),
            "ts": pa.array([T2 if i % 2 else T1 for i in range(n)], pa.timestamp("us", tz="UTC")),
            "push_time": pa.array([T2] * n, pa.timestamp("us", tz="UTC")),
        }
    )


def test_a_clean_push_passes_and_is_kept_as_the_latest_run_only(tmp_path: Path):
    log = ValidationLog(tmp_path / "validation")
    result = check_pushed_rows(make_view(), pushed([0.0, 2.5, None]), log=log)
    assert result is not None
    assert result.success  # push_time was not shown to the suite: the column set matches
    assert (result.kind, result.rows, result.evaluated) == ("push", 3, 2)
    assert (result.start, result.end) == (T1, T2.replace(microsecond=1))
    assert log.latest("stats") == result
    assert [p.name for p in (tmp_path / "validation/stats").iterdir()] == ["latest.json"]


def test_a_failing_push_is_refused_on_a_blocking_view():
    with pytest.raises(ValidationError) as caught:
        check_pushed_rows(make_view(), pushed([1.0, -2.0, -3.0]))
    error = caught.value
    assert error.kind == "push"
    assert error.failures == (
        "expect_column_values_to_be_between(column=amount, min_value=0.0): 2 of 3 rows "
        "unexpected, e.g. [-2.0, -3.0]",
    )
    assert str(error).startswith(
        "Rows pushed to feature view 'stats' failed its expectations; none was written:\n"
    )
    assert "then push again ('featurestore validation-result stats'" in str(error)


def test_a_failing_push_to_a_warning_view_is_let_through_and_logged(
    caplog: pytest.LogCaptureFixture,
):
    with caplog.at_level(logging.WARNING, logger="featurestore.validation.gate"):
        result = check_pushed_rows(make_view("warn"), pushed([-1.0]))
    assert result is not None
    assert not result.success
    assert "on_failure=warn: written anyway" in caplog.text
    assert "1 of 1 rows unexpected, e.g. [-1.0]" in caplog.text


def test_a_view_without_expectations_is_not_checked():
    assert check_pushed_rows(make_view(expectations=False), pushed([-1.0])) is None


def test_the_time_range_of_rows():
    naive = pa.table({"ts": pa.array([T2.replace(tzinfo=None), None], pa.timestamp("us"))})
    assert rows_time_range(naive, "ts") == (T2, T2.replace(microsecond=1))
    for table in (pa.table({"ts": pa.array([], pa.timestamp("us"))}), pa.table({"x": [1]})):
        start, end = rows_time_range(table, "ts")  # no timestamps: now, now
        assert start == end
        assert start.tzinfo is not None
