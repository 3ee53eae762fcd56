"""The store epoch and per-view deletion, run against SQLite and a real Redis server."""

from __future__ import annotations

from featurestore.online.base import OnlineStore, ReadRequest
from featurestore.online.codec import KeyEncoder, RecordCodec
from featurestore.types import Int64

FP = "00112233445566aa"
KEYS = KeyEncoder({"user_id": Int64})
CODEC = RecordCodec([Int64], fingerprint=FP)


def _write(store: OnlineStore, view: str, users: list[int]) -> int:
    keys = KEYS.encode_columns([users])
    records = CODEC.encode_rows([10] * len(users), [None] * len(users), [users])
    return store.write_records(view, keys, records)


def test_a_new_store_has_no_epoch_until_one_is_ensured(online_store: OnlineStore) -> None:
    assert online_store.read_epoch() is None
    epoch = online_store.ensure_epoch()
    assert len(epoch) == 32
    assert int(epoch, 16) >= 0  # hex digits
    assert online_store.read_epoch() == epoch
    assert online_store.ensure_epoch() == epoch  # kept, never replaced


def test_delete_records_removes_one_view_only(online_store: OnlineStore) -> None:
    assert _write(online_store, "a", [1, 2, 3]) == 3
    assert _write(online_store, "b", [1, 2]) == 2
    epoch = online_store.ensure_epoch()
    assert online_store.delete_records("a") == 3
    assert online_store.count_records("a") == 0
    assert online_store.count_records("b") == 2
    keys = KEYS.encode_columns([[1, 2, 3]])
    rows = online_store.read_records([ReadRequest(k, ("a", "b")) for k in keys])
    assert [row[0] for row in rows] == [None, None, None]
    assert [row[1] is not None for row in rows] == [True, True, False]
    assert online_store.delete_records("a") == 0
    assert online_store.read_epoch() == epoch  # the store's own keys are not records
    assert _write(online_store, "a", [1]) == 1  # and the view can be written again
    assert online_store.count_records("a") == 1


def test_location_names_the_store(online_store: OnlineStore) -> None:
    location = online_store.location
    assert "online.db" in location or "Redis at" in location
    assert "password" not in location
