"""The conditional write decided by SQLite's upsert and by the Redis Lua script, both
generated from featurestore.online.layout, equals the one rule (``replaces``), and the rule
equals the order "newer" of featurestore.ordering on random records: ties, null created
timestamps, negative and extreme timestamps, other fingerprints and format versions."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from featurestore.online.base import OnlineStore, ReadRequest
from featurestore.online.codec import PackedBytes, RecordCodec
from featurestore.online.layout import (
    FINGERPRINT_SLICE,
    HEAD_SIZE,
    ORDER_SLICE,
    RECORD_VERSION,
    VERSION_SLICE,
    created_us_of,
    event_us_of,
    replaces,
)
from featurestore.online.sqlite import SqliteOnlineStore
from featurestore.ordering import OrderKey
from featurestore.repo.config import RedisOnlineStoreConfig
from featurestore.types import Int64

FINGERPRINTS = ["00112233445566aa", "00112233445566ab", "ff00000000000000"]
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
EXTREMES = [I64_MIN, I64_MIN + 1, -1, 0, 1, I64_MAX - 2, I64_MAX - 1]
events = st.sampled_from([*EXTREMES, I64_MAX]) | st.integers(I64_MIN, I64_MAX) | st.integers(-3, 3)
# The largest created timestamp has no order key (created_us + 2**63 + 1 > 2**64 - 1).
createds = (
    st.none() | st.sampled_from(EXTREMES) | st.integers(I64_MIN, I64_MAX - 2) | st.integers(-3, 3)
)


@st.composite
def records(draw: st.DrawFn) -> bytes:
    codec = RecordCodec([Int64], fingerprint=draw(st.sampled_from(FINGERPRINTS)))
    (record,) = codec.encode_rows([draw(events)], [draw(createds)], [[draw(st.integers(0, 9))]])
    version = draw(st.sampled_from([RECORD_VERSION, RECORD_VERSION, RECORD_VERSION + 1]))
    return bytes([version]) + record[1:]


@st.composite
def pairs(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """An old and a new record, often sharing parts (ties) of their header."""
    old, new = draw(records()), draw(records())
    for part in (VERSION_SLICE, ORDER_SLICE, FINGERPRINT_SLICE):
        if draw(st.booleans()):
            new = new[: part.start] + old[part] + new[part.stop :]
    if draw(st.booleans()):  # same event time, created differs (or not)
        new = new[:1] + old[1:9] + new[9:]
    return old, new


def oracle(new: bytes, old: bytes) -> bool:
    """The rule from its meaning: another version or definition, else not older by "newer"."""
    if new[VERSION_SLICE] != old[VERSION_SLICE] or new[FINGERPRINT_SLICE] != old[FINGERPRINT_SLICE]:
        return True

    def key(record: bytes) -> OrderKey:
        head = RecordCodec.head(record)
        return OrderKey(head.event_us, head.created_us, 0, 0)

    return key(new) >= key(old)


@given(pairs())
def test_replaces_is_the_order_newer(pair: tuple[bytes, bytes]) -> None:
    old, new = pair
    assert replaces(new, old) == oracle(new, old)
    assert replaces(new, None)


def test_header_decoding_inverts_the_order_keys() -> None:
    for event, created in itertools.product(EXTREMES, [None, *EXTREMES]):
        codec = RecordCodec([Int64], fingerprint=FINGERPRINTS[0])
        (record,) = codec.encode_rows([event], [created], [[1]])
        head = RecordCodec.head(record)
        assert (head.event_us, head.created_us) == (event, created)
        assert event_us_of(int.from_bytes(record[1:9], "big")) == event
        assert created_us_of(int.from_bytes(record[9:17], "big")) == created
        assert len(record) > HEAD_SIZE


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    if request.param == "sqlite":
        sqlite_store = SqliteOnlineStore(tmp_path / "online.db")
        yield sqlite_store
        sqlite_store.close()
        return
    from featurestore.online.redis import RedisOnlineStore

    prefix = request.getfixturevalue("redis_key_prefix")
    config = RedisOnlineStoreConfig(
        type="redis", url=request.getfixturevalue("redis_server_url"), key_prefix=prefix
    )
    redis_store = RedisOnlineStore(config, project="layout")
    yield redis_store
    redis_store.delete_records("v")
    redis_store.close()


_keys = itertools.count()


@given(pair=pairs(), packed=st.booleans())
def test_the_stores_decide_like_the_rule(
    store: OnlineStore, pair: tuple[bytes, bytes], packed: bool
) -> None:
    old, new = pair
    key = next(_keys).to_bytes(8, "big")
    assert store.write_records("v", [key], [old]) == 1
    if packed and len(new) == len(old):  # SQLite: the one-statement bulk upsert
        written = store.write_records("v", PackedBytes(key, 8), PackedBytes(new, len(new)))
    else:
        written = store.write_records("v", [key], [new])
    (stored,) = store.read_records([ReadRequest(key, ("v",))])[0]
    expected = replaces(new, old)
    assert stored == (new if expected else old)
    assert written == int(expected)
