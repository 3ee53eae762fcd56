"""``newest_per_key`` (the rows one push writes online) against the oracle's order "newer"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from featurestore.materialization.push import newest_per_key
from tests.oracle import newer_key

BASE = datetime(2026, 1, 1, tzinfo=UTC)
times = st.integers(0, 3).map(lambda s: BASE + timedelta(seconds=s))
row = st.fixed_dictionaries(
    {"a": st.integers(0, 2), "b": st.sampled_from(["x", "y"]), "event_ts": times,
     "created_ts": st.one_of(st.none(), times)}
)  # fmt: skip


@given(st.lists(row, max_size=15))
def test_newest_per_key_keeps_each_keys_newest_row_later_rows_winning_ties(rows) -> None:
    for number, r in enumerate(rows):
        r.update(file="push", row=number)
    utc = pa.timestamp("us", tz="UTC")
    table = pa.table(
        {
            "a": pa.array([r["a"] for r in rows], pa.int64()),
            "b": pa.array([r["b"] for r in rows], pa.string()),
            "__fs_event_ts": pa.array([r["event_ts"] for r in rows], utc),
            "__fs_created_ts": pa.array([r["created_ts"] for r in rows], utc),
            "row": pa.array([r["row"] for r in rows], pa.int64()),
        }
    )
    newest: dict[tuple[int, str], dict] = {}
    for r in rows:
        key = (r["a"], r["b"])
        if key not in newest or newer_key(r) > newer_key(newest[key]):
            newest[key] = r
    got = newest_per_key(table, ["a", "b"]).column("row").to_pylist()
    assert sorted(got) == sorted(r["row"] for r in newest.values())
