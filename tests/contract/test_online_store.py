"""The OnlineStore contract, run against SQLite and a real Redis server."""

from __future__ import annotations

import math
import uuid

from hypothesis import given
from hypothesis import strategies as st

from featurestore.online.base import OnlineStore, ReadRequest
from featurestore.online.codec import RECORD_VERSION, KeyEncoder, RecordCodec
from featurestore.types import (
    Array,
    Bool,
    Bytes,
    DType,
    Float32,
    Float64,
    Int32,
    Int64,
    ScalarType,
    String,
    Timestamp,
)

FP_A = "00112233445566aa"
FP_B = "00112233445566bb"
SCALARS = [Int32, Int64, Float32, Float64, Bool, String, Bytes, Timestamp]
KEYS = KeyEncoder({"user_id": Int64})


def _scalar_values(dtype: ScalarType) -> st.SearchStrategy[object]:
    return {
        "Int32": st.integers(-(2**31), 2**31 - 1),
        "Int64": st.integers(-(2**63), 2**63 - 1),
        "Float32": st.floats(width=32),
        "Float64": st.floats(),
        "Bool": st.booleans(),
        "String": st.text(max_size=20),
        "Bytes": st.binary(max_size=20),
        "Timestamp": st.integers(-(2**62), 2**62),
    }[dtype.name]


def _values(dtype: DType) -> st.SearchStrategy[object]:
    if isinstance(dtype, Array):
        return st.none() | st.lists(st.none() | _scalar_values(dtype.inner), max_size=6)
    return st.none() | _scalar_values(dtype)


dtypes_st = st.lists(
    st.sampled_from(SCALARS) | st.sampled_from(SCALARS).map(Array), min_size=1, max_size=70
)


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[DType], list[list[object]], list[int], list[int | None]]:
    dtypes = draw(dtypes_st)
    n = draw(st.integers(1, 5))
    columns = [draw(st.lists(_values(t), min_size=n, max_size=n)) for t in dtypes]
    events = draw(st.lists(st.integers(-(2**60), 2**60), min_size=n, max_size=n))
    created = draw(st.lists(st.none() | st.integers(-(2**60), 2**60), min_size=n, max_size=n))
    return dtypes, columns, events, created


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _view() -> str:
    return f"v_{uuid.uuid4().hex[:8]}"


@given(table=tables())
def test_records_roundtrip_through_the_store(online_store: OnlineStore, table) -> None:
    dtypes, columns, events, created = table
    view = _view()
    codec = RecordCodec(dtypes, fingerprint=FP_A)
    n = len(events)
    keys = KEYS.encode_columns([list(range(n))])
    records = codec.encode_rows(events, created, columns)
    assert online_store.write_records(view, keys, records) == n
    stored = online_store.read_records([ReadRequest(k, (view,)) for k in keys])
    for i, (got,) in enumerate(stored):
        assert got is not None
        head = RecordCodec.head(got)
        assert (head.event_us, head.created_us) == (events[i], created[i])
        decoded = codec.decode(got)
        expected = [c[i] for c in columns]
        assert all(_same(e, d) for e, d in zip(expected, decoded, strict=True)), (
            expected,
            decoded,
        )


def _write(
    store: OnlineStore,
    view: str,
    user: int,
    event: int,
    created: int | None,
    value: int,
    fingerprint: str = FP_A,
) -> int:
    codec = RecordCodec([Int64], fingerprint=fingerprint)
    record = codec.encode_rows([event], [created], [[value]])
    return store.write_records(view, KEYS.encode_columns([[user]]), record)


def _read_value(store: OnlineStore, view: str, user: int) -> object:
    (got,) = store.read_records([ReadRequest(KEYS.encode_columns([[user]])[0], (view,))])[0:1]
    record = got[0]
    return None if record is None else RecordCodec([Int64], fingerprint=FP_A).decode(record)[0]


def test_older_record_never_replaces_newer(online_store: OnlineStore) -> None:
    view = _view()
    assert _write(online_store, view, 1, event=100, created=None, value=1) == 1
    assert _write(online_store, view, 1, event=99, created=10**9, value=2) == 0
    assert _read_value(online_store, view, 1) == 1
    # Same event time: a null created timestamp is lowest.
    assert _write(online_store, view, 1, event=100, created=5, value=3) == 1
    assert _write(online_store, view, 1, event=100, created=None, value=4) == 0
    assert _write(online_store, view, 1, event=100, created=4, value=5) == 0
    assert _read_value(online_store, view, 1) == 3
    assert _write(online_store, view, 1, event=101, created=None, value=6) == 1
    assert _read_value(online_store, view, 1) == 6


def test_equal_record_replaces(online_store: OnlineStore) -> None:
    view = _view()
    _write(online_store, view, 1, event=100, created=7, value=1)
    assert _write(online_store, view, 1, event=100, created=7, value=2) == 1
    assert _read_value(online_store, view, 1) == 2


def test_negative_and_extreme_times_order_correctly(online_store: OnlineStore) -> None:
    view = _view()
    _write(online_store, view, 1, event=-(10**15), created=None, value=1)
    assert _write(online_store, view, 1, event=-1, created=None, value=2) == 1
    assert _write(online_store, view, 1, event=-(10**15) - 1, created=10**15, value=3) == 0
    assert _read_value(online_store, view, 1) == 2


def test_record_of_another_definition_is_replaced_even_if_older(online_store: OnlineStore) -> None:
    view = _view()
    _write(online_store, view, 1, event=100, created=None, value=1, fingerprint=FP_B)
    assert _write(online_store, view, 1, event=50, created=None, value=2) == 1
    assert _read_value(online_store, view, 1) == 2


def test_record_of_another_format_version_is_replaced_even_if_older(
    online_store: OnlineStore,
) -> None:
    view = _view()
    newer = RecordCodec([Int64], fingerprint=FP_A).encode_rows([100], [None], [[1]])[0]
    other_version = bytes([RECORD_VERSION + 1]) + newer[1:]  # same fingerprint and order key
    assert online_store.write_records(view, KEYS.encode_columns([[1]]), [other_version]) == 1
    assert _write(online_store, view, 1, event=50, created=None, value=2) == 1
    assert _read_value(online_store, view, 1) == 2


def test_read_many_views_and_entities_with_missing_keys(online_store: OnlineStore) -> None:
    views = [_view() for _ in range(3)]
    for j, view in enumerate(views):
        for user in range(0, 20, j + 1):  # view j holds every (j+1)-th user
            _write(online_store, view, user, event=1, created=None, value=user * 10 + j)
    users = [*range(25), 7]  # 20..24 exist nowhere; 7 repeated
    requests = [ReadRequest(KEYS.encode_columns([[u]])[0], tuple(views)) for u in users]
    results = online_store.read_records(requests)
    assert len(results) == len(users)
    codec = RecordCodec([Int64], fingerprint=FP_A)
    for user, row in zip(users, results, strict=True):
        assert len(row) == 3
        for j, record in enumerate(row):
            if user < 20 and user % (j + 1) == 0:
                assert record is not None
                assert codec.decode(record) == [user * 10 + j]
            else:
                assert record is None
    assert online_store.read_records([]) == []


def test_count_records_counts_entities_per_view(online_store: OnlineStore) -> None:
    view, other = _view(), _view()
    assert online_store.count_records(view) == 0
    for user in range(5):
        _write(online_store, view, user, event=1, created=None, value=0)
    _write(online_store, view, 0, event=2, created=None, value=0)  # replaces, not a new record
    _write(online_store, other, 0, event=1, created=None, value=0)
    assert online_store.count_records(view) == 5
    assert online_store.count_records(other) == 1


def test_composite_and_string_keys_do_not_collide(online_store: OnlineStore) -> None:
    view = _view()
    pair = KeyEncoder({"user_id": Int64, "merchant": String})
    keys = pair.encode_columns([[1, 1, 2], ["a", "b", "a"]])
    assert len(set(keys)) == 3
    codec = RecordCodec([Int64], fingerprint=FP_A)
    online_store.write_records(view, keys, codec.encode_rows([1, 1, 1], [None] * 3, [[10, 11, 12]]))
    swapped = KeyEncoder({"merchant": String, "user_id": Int64}).encode_columns([["b"], [1]])
    assert swapped[0] == keys[1]  # join key order does not matter
    (row,) = online_store.read_records([ReadRequest(swapped[0], (view,))])
    assert row[0] is not None
    assert codec.decode(row[0]) == [11]
