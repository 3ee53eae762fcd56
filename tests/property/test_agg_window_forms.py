"""Property: the numpy and DuckDB forms of the aggregation window start (G7) agree with
:func:`featurestore.window.agg_start`, and it agrees with datetime arithmetic.

Times include negatives (floor, not truncation, before the epoch), multiples of the hop
(the boundary itself) and their neighbours.
"""

from __future__ import annotations

from datetime import timedelta

import duckdb
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from featurestore._time import from_micros, to_micros
from featurestore.window import agg_start, agg_start_array, agg_start_sql, floor_to
from tests.agg_oracle import window_start

DAY_US = 86_400_000_000
hops = st.one_of(st.sampled_from([1, 2, 1_000_000, 3_600_000_000, DAY_US]), st.integers(1, DAY_US))


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[int], int, int]:
    hop = draw(hops)
    window = hop * draw(st.integers(1, 400))
    # Within ~1,900 years of the epoch, so the datetime form (years 1-9999) holds them too.
    near = st.integers(-(10**6), 10**6).map(lambda k: k * hop).filter(lambda t: abs(t) < 6 * 10**16)
    times = st.one_of(
        near,
        near.map(lambda t: t + 1),
        near.map(lambda t: t - 1),
        st.integers(-(6 * 10**16), 6 * 10**16),
    )
    return draw(st.lists(times, min_size=1, max_size=20)), hop, window


@given(case=cases())
def test_agg_start_forms_agree(case: tuple[list[int], int, int]) -> None:
    times, hop, window = case
    expected = [agg_start(t, hop, window) for t in times]
    for t, start in zip(times, expected, strict=True):
        assert floor_to(t, hop) <= t < floor_to(t, hop) + hop
        assert floor_to(t, hop) % hop == 0
        as_datetime = window_start(
            from_micros(t), timedelta(microseconds=hop), timedelta(microseconds=window)
        )
        assert to_micros(as_datetime) == start
    array = agg_start_array(np.array(times, dtype=np.int64), hop, window)
    assert array.tolist() == expected
    con = duckdb.connect()
    rows = con.sql(
        f"SELECT {agg_start_sql('epoch_us(make_timestamptz(t))', hop, window)} "
        "FROM unnest(?::BIGINT[]) WITH ORDINALITY AS u(t, i) ORDER BY i",
        params=[times],
    ).fetchall()
    assert [r[0] for r in rows] == expected
