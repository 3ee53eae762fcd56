"""Stable, versioned binary encoding of entity keys and online records (docs/online-format.md).

Values are in the codec's canonical Python form: ``int`` for Int32/Int64 and for Timestamp
(microseconds since the epoch, UTC), ``float``, ``bool``, ``str``, ``bytes``, lists of those,
and ``None`` for a null. Conversion to and from datetimes happens at the edges.

A record is one fixed-width head, decoded with a single ``struct`` call, followed by the
payloads of variable-width features (String, Bytes, Array)::

    header  version, event and created order keys, fingerprint, number of features
            (the layout of :mod:`featurestore.online.layout`, the one definition)
    Q*      null bitmap, ceil(n / 64) words; bit i of word i // 64 set = feature i is null
    ...     one slot per feature in schema order: the value for fixed-width types
            (i, q, f, d, ?, q for Timestamp), the payload length (I) for variable-width ones

The order keys (:mod:`featurestore.ordering`) compare bytewise in the order "newer", so the
stores decide a conditional write (:data:`~featurestore.online.layout.REPLACE_RULE`)
without decoding a record.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING, Any, Final, cast, overload

import numpy as np

from featurestore.errors import EntityFrameError, OnlineStoreError
from featurestore.online.layout import (
    BITMAP_FIELD,
    HEAD_FORMAT,
    HEAD_NUMPY_FIELDS,
    RECORD_VERSION,
    created_us_of,
    event_us_of,
)
from featurestore.ordering import created_order_key, event_order_key
from featurestore.types import Array, DType, ScalarType

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

__all__ = [
    "ENTITY_KEY_VERSION",
    "RECORD_VERSION",
    "DecodedHead",
    "KeyEncoder",
    "PackedBytes",
    "RecordCodec",
    "fingerprint_bytes",
]

ENTITY_KEY_VERSION: Final = 1

_FIXED: Final[dict[str, str]] = {
    "Int32": "i",
    "Int64": "q",
    "Float32": "f",
    "Float64": "d",
    "Bool": "?",
    "Timestamp": "q",
}
_VARIABLE: Final = frozenset({"String", "Bytes"})
# The numpy field types of the fixed-width slots (big-endian, like the struct formats).
_NUMPY: Final[dict[str, str]] = {
    "Int32": ">i4",
    "Int64": ">i8",
    "Float32": ">f4",
    "Float64": ">f8",
    "Bool": "?",
    "Timestamp": ">i8",
}
_KEY_NUMPY: Final[dict[str, str]] = {
    "Int32": ">i8",
    "Int64": ">i8",
    "Timestamp": ">i8",
    "Float32": ">f8",
    "Float64": ">f8",
    "Bool": "u1",
}


def _split(buffer: bytes, size: int) -> list[bytes]:
    """Cut a buffer of equal-sized items into one bytes object per item."""
    return [buffer[i : i + size] for i in range(0, len(buffer), size)]


class PackedBytes(Sequence[bytes]):
    """Equal-sized byte strings kept in one buffer (what the numpy encoders produce).

    A read-only sequence of ``bytes`` like a list, so any store can take it; a store that
    can use the buffer directly (SQLite writes a whole batch in one statement) reads
    ``buffer`` and ``itemsize`` instead of making one Python object per item.

    Example:
        >>> packed = PackedBytes(b"aabbcc", 2)
        >>> len(packed), packed[1], packed[1:], list(packed)
        (3, b'bb', [b'bb', b'cc'], [b'aa', b'bb', b'cc'])
    """

    __slots__ = ("buffer", "itemsize")

    def __init__(self, buffer: bytes, itemsize: int) -> None:
        if itemsize <= 0 or len(buffer) % itemsize:
            msg = f"A buffer of {len(buffer)} bytes does not hold items of {itemsize} bytes."
            raise ValueError(msg)
        self.buffer = buffer
        self.itemsize = itemsize

    def __len__(self) -> int:
        return len(self.buffer) // self.itemsize

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        size = self.itemsize
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                return _split(self.buffer[start * size : max(start, stop) * size], size)
            return [self[i] for i in range(start, stop, step)]
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            msg = f"PackedBytes index {index} out of range for {n} items"
            raise IndexError(msg)
        return self.buffer[index * size : (index + 1) * size]

    def __iter__(self) -> Iterator[bytes]:
        return iter(_split(self.buffer, self.itemsize))

    def __repr__(self) -> str:
        return f"PackedBytes({len(self)} items of {self.itemsize} bytes)"


def fingerprint_bytes(fingerprint: str) -> bytes:
    """A view fingerprint (16 hex digits) as the 8 bytes stored in every record."""
    try:
        raw = bytes.fromhex(fingerprint)
    except ValueError:
        raw = b""
    if len(raw) != 8:
        msg = f"View fingerprint {fingerprint!r} is not 16 hex digits; re-run 'featurestore apply'."
        raise OnlineStoreError(msg)
    return raw


# -- entity keys ------------------------------------------------------------------------------

_KEY_TAGS: Final[dict[str, bytes]] = {
    "Int32": b"i",
    "Int64": b"i",
    "Timestamp": b"t",
    "Float32": b"f",
    "Float64": b"f",
    "Bool": b"B",
    "String": b"s",
    "Bytes": b"b",
}
_pack_q = struct.Struct(">q").pack
_pack_d = struct.Struct(">d").pack
_pack_I = struct.Struct(">I").pack


class KeyEncoder:
    """Encodes the join key values of one key set (e.g. ``user_id``) into entity key bytes.

    The encoding is ``0x01`` then, per join key in name order, ``u8 len + name + tag + value``
    (tags: ``i`` i64, ``t`` i64 micros, ``f`` f64, ``B`` u8, ``s``/``b`` u32 len + bytes).
    Int32 and Int64 keys share the tag, so a key value means the same entity in every view.

    Example:
        >>> from featurestore.types import Int64
        >>> KeyEncoder({"user_id": Int64}).encode_columns([[7]])[0].hex()
        '0107757365725f6964690000000000000007'
    """

    def __init__(self, key_dtypes: Mapping[str, DType]) -> None:
        for name, dtype in key_dtypes.items():
            if not isinstance(dtype, ScalarType):
                msg = f"Join key '{name}' has list type {dtype}; join keys must be scalars."
                raise OnlineStoreError(msg)
        self.names: tuple[str, ...] = tuple(key_dtypes)
        self.dtypes: tuple[DType, ...] = tuple(key_dtypes.values())
        order = sorted(range(len(self.names)), key=lambda i: self.names[i])
        self._order: tuple[int, ...] = tuple(order)
        self._prefixes = [
            bytes([len(self.names[i].encode())])
            + self.names[i].encode()
            + _KEY_TAGS[self.dtypes[i].name]
            for i in order
        ]

    def encode_columns(self, columns: Sequence[Sequence[object]]) -> list[bytes]:
        """Entity keys for rows given as one column per join key (in ``names`` order).

        Values must already have the right Python type (see ``lookup`` for validation);
        nulls are not allowed.
        """
        parts: list[list[bytes]] = []
        for slot, i in enumerate(self._order):
            prefix = (b"\x01" if slot == 0 else b"") + self._prefixes[slot]
            parts.append(_encode_key_column(columns[i], self.dtypes[i].name, prefix))
        if len(parts) == 1:
            return parts[0]
        return [b"".join(row) for row in zip(*parts, strict=True)]

    def encode_arrays(self, columns: Sequence[np.ndarray]) -> PackedBytes | None:
        """Like :meth:`encode_columns`, from numpy arrays (no nulls), without per-value work.

        Returns None when a key is not fixed-width (String, Bytes): use ``encode_columns``.
        The bytes are identical to ``encode_columns``', packed in one buffer.
        """
        fields: list[tuple[str, str]] = []
        for slot, i in enumerate(self._order):
            kind = self.dtypes[i].name
            if kind not in _KEY_NUMPY:
                return None
            prefix = (b"\x01" if slot == 0 else b"") + self._prefixes[slot]
            fields += [(f"p{slot}", f"S{len(prefix)}"), (f"v{slot}", _KEY_NUMPY[kind])]
        n = len(columns[0]) if columns else 0
        out = np.empty(n, dtype=np.dtype(fields))
        for slot, i in enumerate(self._order):
            out[f"p{slot}"] = (b"\x01" if slot == 0 else b"") + self._prefixes[slot]
            out[f"v{slot}"] = columns[i]
        return PackedBytes(out.tobytes(), out.dtype.itemsize)


def _encode_key_column(values: Sequence[object], dtype: str, prefix: bytes) -> list[bytes]:
    try:
        if dtype in ("Int32", "Int64", "Timestamp"):
            return [prefix + _pack_q(v) for v in values]
        if dtype in ("Float32", "Float64"):
            return [prefix + _pack_d(v) for v in values]
        if dtype == "Bool":
            return [prefix + (b"\x01" if v else b"\x00") for v in values]
        encoded: list[bytes] = (
            [v.encode() for v in values]  # type: ignore[attr-defined]  # str
            if dtype == "String"
            else list(values)  # type: ignore[arg-type]  # bytes
        )
        return [prefix + _pack_I(len(v)) + v for v in encoded]
    except (struct.error, AttributeError, TypeError) as exc:
        msg = f"A join key value of type {dtype} could not be encoded ({exc}); check the key."
        raise EntityFrameError(msg) from exc


# -- records ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecodedHead:
    """The header of a record: version, timestamps (micros) and fingerprint."""

    version: int
    event_us: int
    created_us: int | None
    fingerprint: bytes


def _words(n: int) -> int:
    return max(1, (n + 63) // 64)


class RecordCodec:
    """Encoder/decoder of the records of one view (its feature types, in schema order).

    Example:
        >>> from featurestore.types import Int64, String
        >>> codec = RecordCodec([Int64, String], fingerprint="00112233445566ff")
        >>> rec = codec.encode_rows([5], [None], [[7], ["hi"]])[0]
        >>> codec.decode(rec)
        [7, 'hi']
    """

    def __init__(self, dtypes: Sequence[DType], *, fingerprint: str) -> None:
        self.dtypes: tuple[DType, ...] = tuple(dtypes)
        self.fingerprint = fingerprint_bytes(fingerprint)
        n = len(self.dtypes)
        if n > 0xFFFF:
            msg = f"A view with {n} features cannot be stored online (at most 65535)."
            raise OnlineStoreError(msg)
        self._n = n
        self._nwords = _words(n)
        slots = "".join(
            _FIXED[t.name] if isinstance(t, ScalarType) and t.name in _FIXED else "I"
            for t in self.dtypes
        )
        self._struct = struct.Struct(HEAD_FORMAT + "Q" * self._nwords + slots)
        self.head_size = self._struct.size
        self._var = tuple(
            i
            for i, t in enumerate(self.dtypes)
            if not (isinstance(t, ScalarType) and t.name in _FIXED)
        )
        self._first_slot = BITMAP_FIELD + self._nwords

    # encoding ---------------------------------------------------------------------------

    def encode_rows(
        self,
        event_us: Sequence[int],
        created_us: Sequence[int | None],
        columns: Sequence[Sequence[object]],
    ) -> list[bytes]:
        """Encode rows given column-wise: one list per feature, in schema order."""
        n_rows = len(event_us)
        if len(columns) != self._n:
            msg = f"Expected {self._n} feature columns, got {len(columns)}."
            raise OnlineStoreError(msg)
        event_keys = [event_order_key(v) for v in event_us]
        created_keys = [created_order_key(v) for v in created_us]
        bitmaps: list[list[int]] = [[0] * n_rows for _ in range(self._nwords)]
        slot_columns: list[Sequence[object]] = []
        payloads: list[list[bytes]] = []
        for j, (dtype, column) in enumerate(zip(self.dtypes, columns, strict=True)):
            words = bitmaps[j // 64]
            bit = 1 << (j % 64)
            has_null = None in column
            if has_null:
                for i, value in enumerate(column):
                    if value is None:
                        words[i] |= bit
            if isinstance(dtype, ScalarType) and dtype.name in _FIXED:
                if has_null:
                    zero: object = False if dtype.name == "Bool" else 0
                    column = [zero if v is None else v for v in column]
                slot_columns.append(column)
            else:
                data = _encode_variable_column(dtype, column)
                payloads.append(data)
                slot_columns.append([len(d) for d in data])
        if self._nwords == 1 and not any(bitmaps[0]):
            bitmap_columns: list[Sequence[int]] = [repeat(0, n_rows)]  # type: ignore[list-item]  # iterable
        else:
            bitmap_columns = bitmaps  # type: ignore[assignment]  # same shape
        pack = self._struct.pack
        try:
            heads = [
                pack(*row)
                for row in zip(
                    repeat(RECORD_VERSION, n_rows),
                    event_keys,
                    created_keys,
                    repeat(self.fingerprint, n_rows),
                    repeat(self._n, n_rows),
                    *bitmap_columns,
                    *slot_columns,
                    strict=True,
                )
            ]
        except (struct.error, OverflowError) as exc:
            msg = f"A feature value does not fit its declared type ({exc})."
            raise OnlineStoreError(msg) from exc
        if not payloads:
            return heads
        return [b"".join(parts) for parts in zip(heads, *payloads, strict=True)]

    def encode_arrays(
        self,
        event_us: np.ndarray,
        created_us: np.ndarray,
        created_null: np.ndarray | None,
        values: Sequence[np.ndarray],
        nulls: Sequence[np.ndarray | None],
    ) -> PackedBytes | None:
        """Like :meth:`encode_rows`, from numpy arrays, without per-value Python work.

        Args:
            event_us: Event timestamps (int64 microseconds).
            created_us: Created timestamps (int64 microseconds; any value where null).
            created_null: Where the created timestamp is null (None: nowhere).
            values: One array per feature in schema order, in the feature's numpy type
                (any value where null).
            nulls: Per feature, where it is null (None: nowhere).

        Returns:
            The records, byte-identical to ``encode_rows``, packed in one buffer; None when
            the view has variable-width features (use ``encode_rows``).
        """
        if self._var:
            return None
        fields = list(HEAD_NUMPY_FIELDS)
        fields += [(f"w{w}", ">u8") for w in range(self._nwords)]
        fields += [(f"s{j}", _NUMPY[t.name]) for j, t in enumerate(self.dtypes)]
        dtype = np.dtype(fields)
        assert dtype.itemsize == self.head_size
        n = len(event_us)
        out = np.zeros(n, dtype=dtype)
        # int64 viewed as uint64 plus the key of 0 wraps modulo 2**64: the order keys.
        out["version"] = RECORD_VERSION
        out["event"] = event_us.astype(np.int64).view(np.uint64) + np.uint64(event_order_key(0))
        created = created_us.astype(np.int64).view(np.uint64) + np.uint64(created_order_key(0))
        if created_null is not None:
            created[created_null] = created_order_key(None)
        out["created"] = created
        out["fingerprint"] = self.fingerprint
        out["count"] = self._n
        for j, (column, null) in enumerate(zip(values, nulls, strict=True)):
            out[f"s{j}"] = column
            if null is not None and null.any():
                out[f"s{j}"][null] = 0
                out[f"w{j // 64}"] |= null.astype(np.uint64) << np.uint64(j % 64)
        return PackedBytes(out.tobytes(), self.head_size)

    # decoding ---------------------------------------------------------------------------

    @staticmethod
    def head(record: bytes) -> DecodedHead:
        """Decode only the header of any record (any view, this version)."""
        version, event_key, created_key, fingerprint, _ = struct.unpack_from(HEAD_FORMAT, record)
        return DecodedHead(version, event_us_of(event_key), created_us_of(created_key), fingerprint)

    @property
    def first_slot(self) -> int:
        """The position of feature 0 in the fields :meth:`unpack_columns` returns."""
        return self._first_slot

    @property
    def bitmap_words(self) -> int:
        """How many null bitmap words follow the header fields (from ``BITMAP_FIELD``)."""
        return self._nwords

    def unpack_columns(self, records: Sequence[bytes | None]) -> list[tuple[Any, ...]] | None:
        """All struct fields of many records at once, column by column (one C call).

        Only for views without variable-width features, whose records all have the same
        size: returns None when that does not hold (the caller decodes record by record).
        Fields are the raw head (version, event order key, created order key, fingerprint,
        feature count), the null bitmap words, then one value per feature in schema order
        (a null's slot holds 0/False: apply the bitmap).
        """
        if self._var or not records or None in records:
            return None
        stored = cast("Sequence[bytes]", records)
        if len(set(map(len, stored))) != 1 or len(stored[0]) != self.head_size:
            return None
        return list(zip(*self._struct.iter_unpack(b"".join(stored)), strict=True))

    def decode(self, record: bytes) -> list[object]:
        """All feature values of one record, in schema order."""
        return self.decode_selected(record, range(self._n))

    def decode_selected(self, record: bytes, indexes: Sequence[int]) -> list[object]:
        """The values of the features at ``indexes`` (schema positions) of one record."""
        if record[0] != RECORD_VERSION:
            msg = (
                f"Online record has version {record[0]}; this featurestore reads {RECORD_VERSION}."
            )
            raise OnlineStoreError(msg)
        fields = self._struct.unpack_from(record)
        values: list[object] = list(fields[self._first_slot :])
        nulls = 0
        for w in range(self._nwords):
            nulls |= fields[BITMAP_FIELD + w] << (64 * w)
        if self._var:
            offset = self.head_size
            for i in self._var:
                length = values[i]
                assert isinstance(length, int)
                if not nulls >> i & 1:
                    values[i] = _decode_variable(self.dtypes[i], record[offset : offset + length])
                offset += length
        if nulls:
            for i in range(self._n):
                if nulls >> i & 1:
                    values[i] = None
        return [values[i] for i in indexes]


def _encode_variable_column(dtype: DType, column: Sequence[object]) -> list[bytes]:
    if isinstance(dtype, Array):
        return [b"" if v is None else _encode_array(dtype.inner, v) for v in column]  # type: ignore[arg-type]  # lists
    if dtype.name == "String":
        return [b"" if v is None else v.encode() for v in column]  # type: ignore[attr-defined]  # str
    return [b"" if v is None else bytes(v) for v in column]  # type: ignore[call-overload]  # bytes


def _encode_array(inner: ScalarType, values: Sequence[object]) -> bytes:
    count = len(values)
    nulls = 0
    for i, v in enumerate(values):
        if v is None:
            nulls |= 1 << i
    bitmap = nulls.to_bytes((count + 7) // 8, "little")
    head = _pack_I(count) + bitmap
    if inner.name in _FIXED:
        zero: object = False if inner.name == "Bool" else 0
        clean = [zero if v is None else v for v in values] if nulls else values
        return head + struct.pack(f">{count}{_FIXED[inner.name]}", *clean)
    if inner.name == "String":
        data = [b"" if v is None else v.encode() for v in values]  # type: ignore[attr-defined]  # str
    else:
        data = [b"" if v is None else bytes(v) for v in values]  # type: ignore[call-overload]  # bytes
    return head + struct.pack(f">{count}I", *(len(d) for d in data)) + b"".join(data)


def _decode_variable(dtype: DType, payload: bytes) -> object:
    if isinstance(dtype, Array):
        return _decode_array(dtype.inner, payload)
    if dtype.name == "String":
        return payload.decode()
    return payload


def _decode_array(inner: ScalarType, payload: bytes) -> list[object]:
    (count,) = struct.unpack_from(">I", payload)
    nbytes = (count + 7) // 8
    nulls = int.from_bytes(payload[4 : 4 + nbytes], "little")
    offset = 4 + nbytes
    values: list[object]
    if inner.name in _FIXED:
        values = list(struct.unpack_from(f">{count}{_FIXED[inner.name]}", payload, offset))
    else:
        lengths = struct.unpack_from(f">{count}I", payload, offset)
        offset += 4 * count
        values = []
        for length in lengths:
            chunk = payload[offset : offset + length]
            values.append(chunk.decode() if inner.name == "String" else chunk)
            offset += length
    if nulls:
        for i in range(count):
            if nulls >> i & 1:
                values[i] = None
    return values
