"""The statistics of a Parquet entity frame (rows, first and last timestamp) against an oracle.

The planner picks the join strategy and bounds the source scan with them. They are read as
epoch microseconds (a DuckDB timestamp in Python would import zoneinfo: issue 10 item 13);
the oracle computes them from the Python values written.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given
from hypothesis import strategies as st

from featurestore.offline.entity_frame import load_entity

TIMES = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)).map(
    lambda t: t.replace(tzinfo=UTC)
)
OFFSETS = st.sampled_from([timedelta(0), timedelta(hours=5, minutes=30), timedelta(hours=-8)])


@given(times=st.lists(st.none() | TIMES, max_size=12), text=st.booleans(), offset=OFFSETS)
def test_parquet_entity_stats_equal_oracle(tmp_path_factory, times, text, offset):
    """Property: rows counts every row; min and max are those of the non-null timestamps,
    whether the column holds timestamps or ISO 8601 text in any UTC offset."""
    path = tmp_path_factory.mktemp("entity") / "entities.parquet"
    if text:
        zone = timezone(offset)
        texts = [None if t is None else t.astimezone(zone).isoformat() for t in times]
        column = pa.array(texts, pa.string())
    else:
        column = pa.array(times, pa.timestamp("us", tz="UTC"))
    ids = pa.array(range(len(times)), pa.int64())
    pq.write_table(pa.table({"user_id": ids, "event_timestamp": column}), path)
    cursor = duckdb.connect()
    cursor.execute("SET TimeZone = 'UTC'")

    stats = load_entity(cursor, str(path), "event_timestamp").stats

    present = [t for t in times if t is not None]
    assert stats.rows == len(times)
    assert stats.min_ts == (min(present) if present else None)
    assert stats.max_ts == (max(present) if present else None)
    for found in (stats.min_ts, stats.max_ts):
        assert found is None or found.utcoffset() == timedelta(0)
