"""The OnlineStore contract of merge_records and delete_older (aggregation tile blocks use them)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from featurestore.online.base import OnlineStore, ReadRequest
from featurestore.online.codec import KeyEncoder, RecordCodec
from featurestore.online.redis import RedisOnlineStore
from featurestore.online.redis_cluster import RedisClusterOnlineStore
from featurestore.online.sqlite import SqliteOnlineStore
from featurestore.types import Int64

KEYS = KeyEncoder({"user_id": Int64})


def _union(olds: Sequence[bytes | None], news: Sequence[bytes]) -> list[bytes]:
    """A merge: the sorted union of the one-byte tokens of both records."""
    return [bytes(sorted(set(o or b"") | set(n))) for o, n in zip(olds, news, strict=True)]


def _read(store: OnlineStore, view: str, keys: list[bytes]) -> list[bytes | None]:
    return [row[0] for row in store.read_records([ReadRequest(k, (view,)) for k in keys])]


def _twin(store: OnlineStore) -> OnlineStore:
    """A second connection to the same store (another writer)."""
    if isinstance(store, SqliteOnlineStore):
        return SqliteOnlineStore(store.path)
    assert isinstance(store, RedisOnlineStore | RedisClusterOnlineStore)
    return type(store)(store.config, project=store.project)


def test_merge_records_stores_the_merge_of_stored_and_new(online_store: OnlineStore) -> None:
    keys = KEYS.encode_columns([[1, 2, 3]])
    assert online_store.merge_records("v", keys[:2], [b"a", b"b"], _union) == 2
    assert online_store.count_records("v") == 2
    written = online_store.merge_records("v", keys, [b"c", b"b", b"z"], _union)
    assert written == 2  # key 2 already holds b: its merge is the stored record, not written
    assert _read(online_store, "v", keys) == [b"ac", b"b", b"z"]
    assert online_store.count_records("v") == 3
    assert _read(online_store, "other", keys) == [None, None, None]


def test_merge_records_loses_no_concurrent_write(online_store: OnlineStore) -> None:
    """Two writers merge tokens into the same keys at once: every token is kept."""
    keys = KEYS.encode_columns([list(range(20))])
    twin = _twin(online_store)
    errors: list[BaseException] = []

    def write(store: OnlineStore, tokens: range) -> None:
        try:
            for token in tokens:
                store.merge_records("v", keys, [bytes([token])] * len(keys), _union)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(online_store, range(0, 40))),
        threading.Thread(target=write, args=(twin, range(40, 80))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    twin.close()
    assert not errors
    assert _read(online_store, "v", keys) == [bytes(range(80))] * len(keys)
    assert online_store.count_records("v") == len(keys)


def test_delete_older_deletes_records_with_an_older_event_time(online_store: OnlineStore) -> None:
    codec = RecordCodec([Int64], fingerprint="00112233445566aa")
    times = [-5, 10, 19, 20, 30]
    keys = KEYS.encode_columns([list(range(len(times)))])
    records = codec.encode_rows(times, [None] * len(times), [times])
    online_store.write_records("v", keys, records)
    online_store.write_records("w", keys, records)
    assert online_store.delete_older("v", 20) == 3
    assert _read(online_store, "v", keys) == [None, None, None, records[3], records[4]]
    assert _read(online_store, "w", keys) == records  # other views untouched
    assert online_store.count_records("v") == 2
    assert online_store.delete_older("v", 20) == 0


def test_merge_records_merges_a_key_given_twice_twice(online_store: OnlineStore) -> None:
    (key,) = KEYS.encode_columns([[7]])
    online_store.merge_records("v", [key, key], [b"a", b"b"], _union)
    assert _read(online_store, "v", [key]) == [b"ab"]
