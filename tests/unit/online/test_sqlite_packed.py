"""SQLite's bulk write of packed batches behaves exactly like its per-row write."""

from __future__ import annotations

from pathlib import Path
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore.errors import OnlineStoreError
from featurestore.online.base import ReadRequest
from featurestore.online.codec import KeyEncoder, PackedBytes, RecordCodec
from featurestore.online.sqlite import SqliteOnlineStore
from featurestore.types import Int64

KEYS = KeyEncoder({"user_id": Int64})
CODECS = {
    fp: RecordCodec([Int64], fingerprint=fp) for fp in ("00112233445566aa", "0011223344556677")
}
USERS = [-(2**63), -5, -1, 0, 1, 2, 255, 256, 2**40, 2**63 - 1]

Row = tuple[int, int, int | None, str, int]
write = st.tuples(
    st.sampled_from(USERS),
    st.integers(-3, 3),  # event micros: many ties
    st.one_of(st.none(), st.integers(-2, 2)),  # created micros
    st.sampled_from(sorted(CODECS)),
    st.integers(-10, 10),  # the value
)


def _batch(rows: list[Row]) -> tuple[list[bytes], list[bytes]]:
    keys = KEYS.encode_columns([[r[0] for r in rows]])
    records = [CODECS[fp].encode_rows([e], [c], [[v]])[0] for _, e, c, fp, v in rows]
    return keys, records


def _packed(items: list[bytes]) -> PackedBytes:
    return PackedBytes(b"".join(items), len(items[0]))


def _contents(store: SqliteOnlineStore) -> list[bytes | None]:
    requests = [ReadRequest(k, ("v",)) for k in KEYS.encode_columns([USERS])]
    return [row[0] for row in store.read_records(requests)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(write, min_size=1, max_size=12), min_size=1, max_size=5))
def test_packed_batches_store_what_row_batches_store(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[Row]]
) -> None:
    folder = tmp_path_factory.mktemp("packed")
    rows_store = SqliteOnlineStore(folder / "rows.db")
    packed_store = SqliteOnlineStore(folder / "packed.db")
    try:
        for rows in batches:  # unsorted keys, repeated keys within a batch, mixed fingerprints
            keys, records = _batch(rows)
            expected = rows_store.write_records("v", keys, records)
            got = packed_store.write_records("v", _packed(keys), _packed(records))
            assert got == expected
            assert _contents(packed_store) == _contents(rows_store)
    finally:
        rows_store.close()
        packed_store.close()


@settings(max_examples=40, deadline=None)
@given(st.lists(write, min_size=1, max_size=30), st.randoms(use_true_random=False))
def test_packed_writes_keep_the_newest_record_in_any_order(
    tmp_path_factory: pytest.TempPathFactory, rows: list[Row], rnd: Random
) -> None:
    fp = sorted(CODECS)[0]
    # One value per (user, order key), as the offline order guarantees (no ties left).
    rows = [(u, e, c, fp, 10 * e + (c if c is not None else 7)) for u, e, c, _, _ in rows]
    store = SqliteOnlineStore(tmp_path_factory.mktemp("newest") / "online.db")
    try:
        shuffled = rows[:]
        rnd.shuffle(shuffled)
        cut = rnd.randrange(len(shuffled) + 1)
        for part in (shuffled[:cut], shuffled[cut:]):
            if part:
                keys, records = _batch(part)
                store.write_records("v", _packed(keys), _packed(records))
        newest: dict[int, bytes] = {}
        for row, record in zip(rows, _batch(rows)[1], strict=True):
            best = newest.get(row[0])
            if best is None or record[1:17] >= best[1:17]:
                newest[row[0]] = record
        expected = [newest.get(u) for u in USERS]
        assert _contents(store) == expected
    finally:
        store.close()


def test_packed_sequence_behaves_like_a_list() -> None:
    items = [b"ab", b"cd", b"ef"]
    packed = PackedBytes(b"".join(items), 2)
    assert len(packed) == 3
    assert list(packed) == items
    assert [packed[i] for i in range(-3, 3)] == items + items
    assert packed[1:] == items[1:]
    assert packed[::2] == items[::2]
    assert packed[5:9] == []
    with pytest.raises(IndexError):
        packed[3]
    with pytest.raises(ValueError, match="does not hold items"):
        PackedBytes(b"abc", 2)


def test_mismatched_lengths_are_an_error(tmp_path: Path) -> None:
    store = SqliteOnlineStore(tmp_path / "online.db")
    keys, records = _batch([(1, 0, None, sorted(CODECS)[0], 1), (2, 0, None, sorted(CODECS)[0], 2)])
    try:
        with pytest.raises(OnlineStoreError, match="2 entity keys but 1 records"):
            store.write_records("v", _packed(keys), _packed(records[:1]))
        assert store.write_records("v", PackedBytes(b"", 18), PackedBytes(b"", 35)) == 0
    finally:
        store.close()
