"""Property: every derived form of the order "newer" and of the ttl window agrees with the one
definition (``featurestore.ordering.OrderKey``, ``featurestore.window.in_window``).

Forms checked here: packed order-key bytes, row ids (Python and DuckDB SQL), the numpy sort,
the DuckDB order struct with its ASOF probe, the numpy window, the datetime pruning bound
and the DuckDB window condition. Values include ties (small pools), null created
timestamps, negative times and the extremes of DuckDB's and Python's timestamp ranges.
The SQLite and Lua forms are checked in the online tests.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from featurestore._time import from_micros, to_micros
from featurestore.ordering import (
    FILE_ROW_BITS,
    NULL_CREATED_US,
    OrderKey,
    newer_lexsort,
    newest_first_sql,
    newest_probe_sql,
    order_key_sql,
    pack_order_key,
    row_id,
    row_id_sql,
)
from featurestore.window import (
    INT64_MIN,
    MAX_TTL_US,
    in_window,
    in_window_array,
    lower_bound,
    lower_bound_array,
    lower_bound_datetime,
    ttl_micros,
    window_sql,
)
from tests.oracle import newer_key

DUCKDB_MIN_US = -(2**63) + 2
DUCKDB_MAX_US = 2**63 - 2
PY_MIN_US = to_micros(datetime.min.replace(tzinfo=UTC))
PY_MAX_US = to_micros(datetime.max.replace(tzinfo=UTC))
INT64_MAX = 2**63 - 1


def _times(lo: int, hi: int) -> st.SearchStrategy[int]:
    """Microsecond times in [lo, hi]: the extremes, near zero, and anywhere."""
    return st.one_of(
        st.sampled_from([lo, lo + 1, -1, 0, 1, hi - 1, hi]),
        st.integers(-10, 10),
        st.integers(lo, hi),
    )


# A small pool per test case makes ties on every component likely.
def _pool(values: st.SearchStrategy[Any]) -> st.SearchStrategy[st.SearchStrategy[Any]]:
    return st.lists(values, min_size=1, max_size=4).map(st.sampled_from)


@st.composite
def order_keys(
    draw: st.DrawFn, *, lo: int = DUCKDB_MIN_US, hi: int = DUCKDB_MAX_US
) -> list[OrderKey]:
    events = draw(_pool(_times(lo, hi)))
    createds = draw(_pool(st.one_of(st.none(), _times(lo, hi))))
    files = draw(_pool(st.integers(1, 2**23 - 1)))
    rows = draw(_pool(st.integers(0, 2**FILE_ROW_BITS - 1)))
    size = draw(st.integers(1, 30))
    return [OrderKey(draw(events), draw(createds), draw(files), draw(rows)) for _ in range(size)]


def _sign(a: Any, b: Any) -> int:
    return int(a > b) - int(a < b)


def _duckdb() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


# -- the order ------------------------------------------------------------------------------


def test_order_key_null_created_is_lowest_and_components_compare_in_order() -> None:
    assert OrderKey(0, None, 9, 9) < OrderKey(0, INT64_MIN, 1, 0)
    assert OrderKey(0, 5, 9, 9) < OrderKey(1, None, 1, 0)
    assert OrderKey(0, 5, 1, 9) < OrderKey(0, 5, 2, 0)
    assert OrderKey(0, 5, 1, 1) > OrderKey(0, 5, 1, 0)
    assert OrderKey(0, None, 1, 1) == OrderKey(0, None, 1, 1)


@given(order_keys(lo=INT64_MIN, hi=INT64_MAX - 1))  # created = INT64_MAX has no key
def test_packed_bytes_compare_like_event_then_created(keys: list[OrderKey]) -> None:
    for a in keys:
        for b in keys:
            head_a = OrderKey(a.event_us, a.created_us, 0, 0)
            head_b = OrderKey(b.event_us, b.created_us, 0, 0)
            packed_a = pack_order_key(a.event_us, a.created_us)
            packed_b = pack_order_key(b.event_us, b.created_us)
            assert len(packed_a) == 16
            assert _sign(packed_a, packed_b) == _sign(head_a, head_b)


@given(order_keys())
def test_row_ids_compare_like_file_then_row(keys: list[OrderKey]) -> None:
    for a in keys:
        for b in keys:
            ids = (row_id(a.file_rank, a.row), row_id(b.file_rank, b.row))
            assert _sign(*ids) == _sign((a.file_rank, a.row), (b.file_rank, b.row))
            assert 0 <= ids[0] <= INT64_MAX


@given(order_keys())
def test_numpy_sort_orders_like_order_key(keys: list[OrderKey]) -> None:
    event = np.array([k.event_us for k in keys], dtype=np.int64)
    created = np.array(
        [NULL_CREATED_US if k.created_us is None else k.created_us for k in keys],
        dtype=np.int64,
    )
    ids = np.array([row_id(k.file_rank, k.row) for k in keys], dtype=np.int64)
    order = newer_lexsort(event, created, ids)
    assert [keys[i] for i in order] == sorted(keys)


@given(order_keys(lo=PY_MIN_US, hi=PY_MAX_US))
def test_the_oracles_order_is_order_key(keys: list[OrderKey]) -> None:
    """tests/oracle.py states the order again for the brute-force join; it must be this one."""

    def row(key: OrderKey) -> dict[str, Any]:
        created = None if key.created_us is None else from_micros(key.created_us)
        # File paths sort like their ranks when zero-padded.
        file = f"part-{key.file_rank:08d}.parquet"
        return {
            "event_ts": from_micros(key.event_us),
            "created_ts": created,
            "file": file,
            "row": key.row,
        }

    by_oracle = sorted(keys, key=lambda k: newer_key(row(k)))
    assert by_oracle == sorted(keys)


def _key_table(keys: list[OrderKey]) -> pa.Table:
    return pa.table(
        {
            "i": pa.array(range(len(keys)), pa.int64()),
            "e": pa.array([k.event_us for k in keys], pa.int64()),
            "c": pa.array([k.created_us for k in keys], pa.int64()),
            "f": pa.array([k.file_rank for k in keys], pa.int32()),
            "r": pa.array([k.row for k in keys], pa.int64()),
        }
    )


_TYPED = (
    "SELECT i, CAST(make_timestamp(e) AS TIMESTAMPTZ) AS e, "
    "CAST(make_timestamp(c) AS TIMESTAMPTZ) AS c, f, r FROM keys"
)


@given(order_keys(), _times(PY_MIN_US, PY_MAX_US))
def test_duckdb_order_struct_and_probe_agree_with_order_key(keys: list[OrderKey], t: int) -> None:
    con = _duckdb()
    con.register("keys", _key_table(keys))
    key_sql = order_key_sql("e", "c", "f", "r")
    ids = con.sql(
        f"SELECT i, {row_id_sql('f', 'r')} FROM ({_TYPED}) ORDER BY {key_sql}, i"
    ).fetchall()
    assert [keys[i] for i, _ in ids] == sorted(keys)  # ties: any order, same keys
    assert [rid for i, rid in ids] == [row_id(keys[i].file_rank, keys[i].row) for i, _ in ids]
    newest = con.sql(f"SELECT arg_max(i, {key_sql}) FROM ({_TYPED})").fetchall()[0][0]
    assert keys[newest] == max(keys)
    newest_first = newest_first_sql("e", "c", "f", "r")
    ids = con.sql(f"SELECT i FROM ({_TYPED}) ORDER BY {newest_first}, i").fetchall()
    assert [keys[i] for (i,) in ids] == sorted(keys, reverse=True)
    probe = newest_probe_sql("CAST(make_timestamp(?::BIGINT) AS TIMESTAMPTZ)")
    below = con.sql(
        f"SELECT i, {probe} >= {key_sql} FROM ({_TYPED}) ORDER BY i", params=[t]
    ).fetchall()
    assert [b for _, b in below] == [k.event_us <= t for k in keys]


# -- the window -----------------------------------------------------------------------------


def _with_bounds(
    pairs: list[tuple[int, int]], ttl_us: int | None, lo: int
) -> list[tuple[int, int]]:
    """``pairs`` plus, for each t, events exactly at and just past both window bounds."""
    extra = []
    for _, t in pairs:
        edges = [t, t + 1] if ttl_us is None else [t, t + 1, t - ttl_us, t - ttl_us - 1]
        extra += [(e, t) for e in edges if lo <= e <= DUCKDB_MAX_US]
    return pairs + extra


ttls_us = st.one_of(
    st.none(),
    st.sampled_from([1, 5, 10, MAX_TTL_US]),
    st.integers(1, MAX_TTL_US),
)


@given(
    st.lists(st.tuples(_times(INT64_MIN, INT64_MAX), _times(INT64_MIN, INT64_MAX)), max_size=20),
    ttls_us,
)
def test_numpy_window_agrees_with_in_window(
    pairs: list[tuple[int, int]], ttl_us: int | None
) -> None:
    pairs = _with_bounds(pairs, ttl_us, INT64_MIN)
    event = np.array([e for e, _ in pairs], dtype=np.int64)
    t = np.array([t for _, t in pairs], dtype=np.int64)
    got = in_window_array(event, t, ttl_us)
    assert got.tolist() == [in_window(e, t, ttl_us) for e, t in pairs]
    if ttl_us is not None:
        bounds = lower_bound_array(t, ttl_us).tolist()
        assert bounds == [lower_bound(ti, ttl_us) for _, ti in pairs]
        assert all(b >= INT64_MIN for b in bounds)


def test_numpy_window_clamps_instead_of_overflowing() -> None:
    t = np.array([INT64_MIN, INT64_MIN + 3, 0], dtype=np.int64)
    assert lower_bound_array(t, MAX_TTL_US).tolist() == [INT64_MIN, INT64_MIN, -MAX_TTL_US]
    assert in_window_array(np.full(3, INT64_MIN, dtype=np.int64), t, 5).tolist() == [
        True,
        True,
        False,
    ]


ttls = st.one_of(
    st.none(),
    st.just(timedelta(0)),
    st.just(timedelta.max),
    st.sampled_from([timedelta(microseconds=1), timedelta(seconds=5), timedelta(days=365)]),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta.max),
)


def _raw_rule(event_us: int, t_us: int, ttl: timedelta | None) -> bool:
    """DESIGN G1 word for word on Python integers, the ttl uncapped."""
    if not ttl:
        return event_us <= t_us
    return t_us - ttl // timedelta(microseconds=1) <= event_us <= t_us


@given(_times(PY_MIN_US, PY_MAX_US), _times(PY_MIN_US, PY_MAX_US), ttls)
def test_ttl_cap_changes_nothing_for_datetimes(event: int, t: int, ttl: timedelta | None) -> None:
    assert in_window(event, t, ttl_micros(ttl)) == _raw_rule(event, t, ttl)


@given(_times(PY_MIN_US, PY_MAX_US), _times(PY_MIN_US, PY_MAX_US), ttls)
def test_datetime_bound_keeps_exactly_the_window(event: int, t: int, ttl: timedelta | None) -> None:
    bound = lower_bound_datetime(from_micros(t), ttl)
    kept = bound is None or from_micros(event) >= bound
    ttl_us = ttl_micros(ttl)
    assert kept == (ttl_us is None or event >= t - ttl_us)


@given(
    st.lists(
        st.tuples(_times(DUCKDB_MIN_US, DUCKDB_MAX_US), _times(PY_MIN_US, PY_MAX_US)), max_size=20
    ),
    ttls,
)
def test_duckdb_window_agrees_with_in_window(
    pairs: list[tuple[int, int]], ttl: timedelta | None
) -> None:
    pairs = _with_bounds(pairs, ttl_micros(ttl), DUCKDB_MIN_US)
    con = _duckdb()
    table = pa.table(
        {
            "i": pa.array(range(len(pairs)), pa.int64()),
            "e": pa.array([e for e, _ in pairs], pa.int64()),
            "t": pa.array([t for _, t in pairs], pa.int64()),
        }
    )
    con.register("pairs", table)
    condition, params = window_sql("e", "t", ttl)
    got = con.sql(
        f"SELECT {condition} FROM (SELECT i, CAST(make_timestamp(e) AS TIMESTAMPTZ) AS e, "
        "CAST(make_timestamp(t) AS TIMESTAMPTZ) AS t FROM pairs) ORDER BY i",
        params=list(params),
    ).fetchall()
    ttl_us = ttl_micros(ttl)
    assert [row[0] for row in got] == [in_window(e, t, ttl_us) for e, t in pairs]


@pytest.mark.parametrize("ttl", [None, timedelta(0)])
def test_unlimited_ttl_has_no_lower_bound(ttl: timedelta | None) -> None:
    assert ttl_micros(ttl) is None
    assert lower_bound(INT64_MIN, None) is None
    assert lower_bound_datetime(datetime(2026, 1, 1, tzinfo=UTC), ttl) is None
    assert window_sql("e", "t", ttl) == ("e <= t", ())
