"""Integer and timestamp columns between Arrow and numpy, through their buffers.

pyarrow's own ``to_numpy()`` and ``pa.array(ndarray)`` import pandas the first time they run
(a quarter of a second in a fresh process, such as the ``training-frame`` command); these
helpers read and build the buffers directly and never do. They also allocate their large
arrays through numpy, which asks the kernel for huge pages: first touches of fresh memory
are a large share of a training frame's time.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["int64_array", "int64_values", "take", "valid_mask"]

_MICROS_UTC = pa.timestamp("us", tz="UTC")


def _chunks(column: pa.ChunkedArray | pa.Array) -> list[pa.Array]:
    return column.chunks if isinstance(column, pa.ChunkedArray) else [column]


def _joined(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    """The parts end to end (no copy for one part)."""
    if not parts:
        return np.empty(0, dtype=dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _valid_chunk(array: pa.Array) -> np.ndarray:
    if array.null_count == 0:
        return np.ones(len(array), dtype=bool)
    bitmap = np.frombuffer(array.buffers()[0], dtype=np.uint8)
    bits = np.unpackbits(bitmap, count=array.offset + len(array), bitorder="little")
    return bits[array.offset :].astype(bool)


def valid_mask(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """True where the column is not null."""
    return _joined([_valid_chunk(c) for c in _chunks(column)], bool)


def _int64_chunk(array: pa.Array, null: int) -> np.ndarray:
    if pa.types.is_timestamp(array.type):
        if array.type != _MICROS_UTC:
            array = array.cast(_MICROS_UTC)
        array = array.view(pa.int64())
    elif array.type != pa.int64():
        array = array.cast(pa.int64())
    if len(array) == 0:
        return np.empty(0, dtype=np.int64)
    data = np.frombuffer(array.buffers()[1], dtype=np.int64)
    data = data[array.offset : array.offset + len(array)]
    if array.null_count:
        return np.where(_valid_chunk(array), data, np.int64(null))
    return data


def int64_values(column: pa.ChunkedArray | pa.Array, *, null: int = 0) -> np.ndarray:
    """An integer or timestamp column as an int64 array (timestamps in UTC microseconds).

    Nulls become ``null``. The result may be a read-only view of the column.
    """
    return _joined([_int64_chunk(c, null) for c in _chunks(column)], np.int64)


def int64_array(values: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    """An Arrow int64 array over ``values`` (no copy), null where ``missing`` is True."""
    values = np.ascontiguousarray(values, dtype=np.int64)
    if missing is None or not missing.any():
        return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])
    validity = np.packbits(~missing, bitorder="little")
    buffers = [pa.py_buffer(validity), pa.py_buffer(values)]
    return pa.Array.from_buffers(pa.int64(), len(values), buffers, null_count=int(missing.sum()))


def _fixed_width(data_type: pa.DataType) -> bool:
    return (
        pa.types.is_integer(data_type)
        or pa.types.is_floating(data_type)
        or pa.types.is_temporal(data_type)
    ) and data_type.bit_width in (8, 16, 32, 64)


def take(
    column: pa.ChunkedArray, positions: np.ndarray, missing: np.ndarray
) -> pa.Array | pa.ChunkedArray:
    """``column[positions]``, null where ``missing`` is True (or the value taken is null).

    Fixed-width numeric and temporal columns are gathered by numpy; others by Arrow.
    """
    data_type = column.type
    if not _fixed_width(data_type):
        return column.take(int64_array(positions, missing))
    width = np.dtype(f"u{data_type.bit_width // 8}")
    chunks = [c for c in column.chunks if len(c)]
    if not chunks:
        return pa.nulls(len(positions), data_type)
    values = _joined(
        [np.frombuffer(c.buffers()[1], dtype=width)[c.offset : c.offset + len(c)] for c in chunks],
        width.type,
    )
    out = values.take(positions)
    valid = ~missing
    if column.null_count:
        valid &= valid_mask(column).take(positions)
    nulls = len(valid) - int(np.count_nonzero(valid))
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    return pa.Array.from_buffers(data_type, len(out), [bitmap, pa.py_buffer(out)], null_count=nulls)
