"""LogBatch (issue 11): requests gathered column by column and converted in blocks and steps.

Whatever the gathering chunks, conversion budgets and block size, the rows are those of a
per-request oracle, and a request with a request field of the wrong type is dropped whole.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore.consistency import log_schema
from featurestore.consistency.log_schema import LogBatch, ServiceLog
from featurestore.definitions import FeatureRef
from featurestore.online.base import FieldStatus
from featurestore.online.response import OnlineResponse
from featurestore.types import DType, Float64, Int64, String
from tests.conftest import utc

LOG = ServiceLog(
    service="svc",
    sample_rate=1.0,
    refs=(FeatureRef("v", "n"), FeatureRef("v", "name")),
    request_fields={"x": Float64},
    views={"v": ("fp", utc(2026, 1, 2))},
)
DTYPES: dict[str, DType] = {"user_id": Int64, "n": Int64, "name": String}
BASE_US = 1_767_225_600_000_000  # 2026-01-01

cell = st.tuples(
    st.none() | st.integers(-(2**40), 2**40),
    st.none() | st.text(max_size=3),
    st.sampled_from(list(FieldStatus)),
    st.none() | st.integers(0, 10**9),
)
row = st.tuples(st.integers(0, 50), st.none() | st.floats(allow_nan=False) | st.just("bad"), cell)
request = st.tuples(st.integers(0, 10**9), st.lists(row, min_size=0, max_size=3))  # 0: no row


def _response(rows: list[Any]) -> OnlineResponse:
    names = ("n", "name")
    return OnlineResponse(
        join_keys={"user_id": [r[0] for r in rows]},
        features={name: [r[2][i] for r in rows] for i, name in enumerate(names)},
        statuses={name: [r[2][2] for r in rows] for name in names},
        event_micros={name: [r[2][3] for r in rows] for name in names},
        dtypes=DTYPES,
    )


def _oracle(requests: list[Any]) -> list[dict[str, Any]]:
    out = []
    for i, (offset, rows) in enumerate(requests):
        if any(r[1] == "bad" for r in rows):
            continue
        for user, x, (n, name, status, event) in rows:
            out.append({
                "request_id": f"tok-{i}",
                "request_time": BASE_US + offset,
                "key:user_id": user,
                "request:x": x,
                "value:v:n": n,
                "value:v:name": name,
                "status:v:n": status.value,
                "status:v:name": status.value,
                "event_timestamp:v:n": event,
                "event_timestamp:v:name": event,
            })  # fmt: skip
    return out


def _micros(value: Any) -> Any:
    if value is None or not hasattr(value, "timestamp"):
        return value
    return round(value.timestamp() * 1_000_000)


@settings(max_examples=60, deadline=None)
@given(
    requests=st.lists(request, min_size=1, max_size=25),
    chunks=st.lists(st.integers(1, 6), min_size=1, max_size=10),
    budgets=st.lists(st.integers(0, 40), min_size=1, max_size=10),
    block_rows=st.integers(1, 12),
)
def test_rows_are_the_oracle_whatever_the_chunks_budgets_and_blocks(
    requests: list[Any], chunks: list[int], budgets: list[int], block_rows: int
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(log_schema, "_BLOCK_ROWS", block_rows)
        batch = LogBatch(LOG, "tok")
        logged = [
            (LOG, BASE_US + offset, {"user_id": [r[0] for r in rows], "x": [r[1] for r in rows]},
             _response(rows), len(rows))
            for offset, rows in requests
        ]  # fmt: skip
        start = turn = 0
        while start < len(logged):
            size = chunks[turn % len(chunks)]
            batch.add(logged[start : start + size], start)
            batch.step(budgets[turn % len(budgets)])
            start, turn = start + size, turn + 1
        # Rows of requests already found bad are no longer counted.
        assert batch.rows >= len(_oracle(requests))
        table, dropped = batch.finish()
    expected = _oracle(requests)
    assert dropped == batch_rows_dropped(requests)
    assert batch.rows == 0
    if not expected:
        assert table is None
        return
    assert table is not None
    got = [
        {name: _micros(value) for name, value in r.items() if name not in DROPPED_COLUMNS}
        for r in table.to_pylist()
    ]
    assert got == expected
    assert set(table.column("service").to_pylist()) == {"svc"}
    assert set(table.column("fingerprint:v").to_pylist()) == {"fp"}
    assert set(table.column("watermark:v").to_pylist()) == {utc(2026, 1, 2)}


DROPPED_COLUMNS = {"service", "fingerprint:v", "watermark:v"}


def batch_rows_dropped(requests: list[Any]) -> int:
    return sum(len(rows) for _, rows in requests if any(r[1] == "bad" for r in rows))


def test_an_empty_batch_finishes_with_no_table() -> None:
    assert LogBatch(LOG, "tok").finish() == (None, 0)


def test_a_served_request_never_checks_a_badly_typed_block_row_by_row() -> None:
    """A block with a request field value not of its type is left by the serving thread's
    steps (a check per row would hold the request); the writer's thorough step drops the bad
    request alone."""
    rows = [
        (1, 2.5, (3, "a", FieldStatus.PRESENT, 5)),
        (2, "bad", (4, "b", FieldStatus.PRESENT, 6)),
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(log_schema, "_BLOCK_ROWS", 2)
        batch = LogBatch(LOG, "tok")
        batch.add(
            [(LOG, BASE_US, {"user_id": [r[0]], "x": [r[1]]}, _response([r]), 1) for r in rows],
            0,
        )
        assert batch.converting
        batch.step(10**6)
        assert batch.converting  # left for a thorough step
        table, dropped = batch.finish()
    assert dropped == 1
    assert table is not None
    assert table.column("key:user_id").to_pylist() == [1]
