"""Running a view's suite with the real Great Expectations: its verdict, unexpected counts and
samples equal a brute-force oracle's on random columns with nulls, NaN, infinities, signed
zeros and boundary values, for both of GE's engines; runs are kept per view and window (issue 12
item 2)."""

from __future__ import annotations

import math
from pathlib import Path

import great_expectations.expectations as gxe
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.errors import DefinitionError, ValidationError
from featurestore.types import Float64, Int64
from featurestore.validation.result import (
    SAMPLE_VALUES,
    ExpectationFailure,
    ValidationLog,
    ValidationResult,
)
from featurestore.validation.run import Engine, validate_table
from tests.conftest import utc

USER = Entity("user", join_keys=["user_id"])
START, END = utc(2026, 1, 1), utc(2026, 1, 2)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def make_view(expectations: object) -> FeatureView:
    return FeatureView(
        "stats",
        entities=[USER],
        source=ParquetSource("data/s.parquet", timestamp_field="ts"),
        schema=[Field("amount", Float64), Field("cnt", Int64)],
        expectations=expectations,
    )


def table(amounts: list[float | None], counts: list[int | None]) -> pa.Table:
    n = len(amounts)
    return pa.table(
        {
            "user_id": pa.array(range(n), pa.int64()),
            "amount": pa.array(amounts, pa.float64()),
            "cnt": pa.array(counts, pa.int64()),
            "ts": pa.array([START] * n, pa.timestamp("us", tz="UTC")),
        }
    )


BOUNDS = st.sampled_from([0.0, -1.0, 1.0, 1e-300, 100.0])
FLOATS = st.one_of(
    st.none(),
    st.sampled_from([0.0, -0.0, -1e-300, 1e-300, math.inf, -math.inf, math.nan, 1e308, -1e308]),
    st.floats(min_value=-1e6, max_value=1e6),
    BOUNDS,  # values equal to a bound: inclusive
)
INTS = st.one_of(
    st.none(),
    st.sampled_from([INT64_MIN, INT64_MAX, 0, -1, 100, 101]),
    st.integers(min_value=-1000, max_value=1000),
)


def out_of(values: list[float | int | None], low: float | None, high: float | None) -> list[object]:
    """Oracle: the values a between-expectation rejects. Null and NaN are missing, not
    unexpected (GE's pandas engine counts NaN as missing); both bounds are inclusive."""
    return [
        v
        for v in values
        if v is not None
        and not (isinstance(v, float) and math.isnan(v))
        and ((low is not None and v < low) or (high is not None and v > high))
    ]


@pytest.mark.parametrize("engine", ["pandas", "sql"])
@settings(deadline=None)
@given(
    amounts=st.lists(FLOATS, min_size=1, max_size=30),
    counts=st.lists(INTS, min_size=30, max_size=30),
    low=BOUNDS,
    high=st.one_of(st.none(), st.sampled_from([100.0, 1e300])),
)
def test_ges_verdict_equals_the_oracle(
    engine: Engine,
    amounts: list[float | None],
    counts: list[int | None],
    low: float,
    high: float | None,
):
    """Both of GE's engines (pandas for small windows, SQL on DuckDB for large ones)."""
    counts = counts[: len(amounts)]
    view = make_view(
        [
            gxe.ExpectColumnValuesToBeBetween(column="amount", min_value=low, max_value=high),
            gxe.ExpectColumnValuesToBeBetween(column="cnt", min_value=0, max_value=100),
            gxe.ExpectColumnValuesToNotBeNull(column="cnt"),
        ]
    )
    result = validate_table(
        view, table(amounts, counts), start=START, end=END, kind="validate", engine=engine
    )
    bad_amounts = out_of(amounts, low, high)
    bad_counts = out_of(counts, 0, 100)
    null_counts = sum(c is None for c in counts)
    expected = {
        "amount": len(bad_amounts),
        "cnt": len(bad_counts),
        "not_null": null_counts,
    }
    got = {"amount": 0, "cnt": 0, "not_null": 0}
    for failure in result.failures:
        name = (
            "not_null"
            if failure.expectation == "expect_column_values_to_not_be_null"
            else failure.kwargs["column"]
        )
        got[name] = failure.unexpected_count or 0
        pool = {"amount": bad_amounts, "cnt": bad_counts, "not_null": [None]}[name]
        assert len(failure.sample) == min(SAMPLE_VALUES, got[name])
        assert all(s in pool for s in failure.sample)
    assert got == expected
    assert result.success == (bad_amounts == bad_counts == [] and null_counts == 0)
    assert (result.rows, result.evaluated) == (len(amounts), 3)


def test_a_failure_is_described_in_one_line():
    failure = ExpectationFailure(
        "expect_column_values_to_be_between", {"column": "amount", "min_value": 0}, 2, 10, (-1, -2)
    )
    assert failure.describe() == (
        "expect_column_values_to_be_between(column=amount, min_value=0): "
        "2 of 10 rows unexpected, e.g. [-1, -2]"
    )
    whole = ExpectationFailure(
        "expect_column_mean_to_be_between", {"column": "a"}, None, None, observed=-3.5
    )
    assert whole.describe() == "expect_column_mean_to_be_between(column=a): observed -3.5"


@pytest.mark.parametrize("engine", ["pandas", "sql"])
def test_a_column_expectation_reports_the_observed_value(engine: Engine):
    view = make_view([gxe.ExpectColumnMeanToBeBetween(column="amount", min_value=0)])
    result = validate_table(
        view,
        table([-1.0, -2.0, math.nan], [1, 1, 1]),
        start=START,
        end=END,
        kind="validate",
        engine=engine,
    )
    (failure,) = result.failures
    assert failure.unexpected_count is None
    assert failure.observed == -1.5
    error = result.error()
    assert isinstance(error, ValidationError)
    assert error.failures == (
        "expect_column_mean_to_be_between(column=amount, min_value=0.0): observed -1.5",
    )


def test_runs_are_kept_per_view_and_window(tmp_path: Path):
    log = ValidationLog(tmp_path / "validation")
    view = make_view([gxe.ExpectColumnValuesToBeBetween(column="amount", min_value=0)])
    first = validate_table(view, table([1.0], [1]), start=START, end=END, kind="materialization")
    later = utc(2026, 1, 3)
    second = validate_table(view, table([-1.0], [1]), start=END, end=later, kind="materialization")
    assert log.latest("stats") is None
    log.save(first)
    log.save(second)
    assert log.get("stats", START, END) == first
    assert log.get("stats", END, later) == second
    assert log.latest("stats") == second
    assert log.get("stats", START, later) is None
    assert ValidationResult.from_json(second.to_json()) == second
    assert sorted(p.name for p in (tmp_path / "validation/stats").iterdir()) == [
        "20260101T000000000000Z--20260102T000000000000Z.json",
        "20260102T000000000000Z--20260103T000000000000Z.json",
        "latest.json",
    ]


def test_ge_writes_nothing_to_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    view = make_view([gxe.ExpectColumnValuesToBeBetween(column="amount", min_value=0)])
    validate_table(view, table([1.0], [1]), start=START, end=END, kind="validate")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("expectation", "problem"),
    [
        ({"type": "expect_nothing_like_this", "kwargs": {}}, "expect_nothing_like_this not found"),
        ({"type": "expect_column_values_to_not_be_null", "kwargs": {"serial": 1}}, "column"),
    ],
)
def test_a_suite_ge_cannot_read_is_a_one_line_definition_error(
    expectation: dict[str, object], problem: str
):
    broken = make_view({"name": "stats", "expectations": [expectation]})  # GE's JSON form
    with pytest.raises(DefinitionError, match=problem) as caught:
        validate_table(broken, table([1.0], [1]), start=START, end=END, kind="validate")
    assert "Feature view 'stats' has expectations Great Expectations cannot read" in str(
        caught.value
    )
    assert "\n" not in str(caught.value)
