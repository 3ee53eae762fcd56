"""The skew report's cell comparison: nulls, NaN, and the G7 tolerance of float aggregates."""

from __future__ import annotations

import math

import polars as pl

from featurestore.consistency.replay import REL_TOLERANCE, _distinct


def test_nulls_and_nan_compare_equal_to_themselves_only() -> None:
    a = pl.Series([None, 1.0, math.nan, None, 2.0], dtype=pl.Float64)
    b = pl.Series([None, 1.0, math.nan, 1.0, None], dtype=pl.Float64)
    assert _distinct(a, b).to_list() == [False, False, False, True, True]


def test_float_aggregates_agree_within_the_relative_tolerance_of_g7() -> None:
    """619.83 summed in another order is 619.8300000000002: equal for a float sum, not else."""
    close = 619.83 * (1 + REL_TOLERANCE / 2)
    far = 619.83 * (1 + REL_TOLERANCE * 4)
    a = pl.Series([619.83, 619.83, 619.83, 0.0, None])
    b = pl.Series([619.8300000000002, close, far, 0.0, 0.0])
    assert _distinct(a, b, tolerant=True).to_list() == [False, False, True, False, True]
    assert _distinct(a, b).to_list() == [True, True, True, False, True]
    ints = pl.Series([3, 4])
    assert _distinct(ints, pl.Series([3, 5]), tolerant=True).to_list() == [False, True]
