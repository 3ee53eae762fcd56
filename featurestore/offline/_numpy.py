"""Integer and timestamp columns between Arrow and numpy, through their buffers.

pyarrow's own ``to_numpy()`` and ``pa.array(ndarray)`` import pandas the first time they run
(a quarter of a second in a fresh process, such as the ``training-frame`` command); these
helpers read and build the buffers directly and never do.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["int64_array", "int64_values", "valid_mask"]

_MICROS_UTC = pa.timestamp("us", tz="UTC")


def _single(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return column


def valid_mask(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """True where the column is not null."""
    array = _single(column)
    if array.null_count == 0:
        return np.ones(len(array), dtype=bool)
    bitmap = np.frombuffer(array.buffers()[0], dtype=np.uint8)
    bits = np.unpackbits(bitmap, count=array.offset + len(array), bitorder="little")
    return bits[array.offset :].astype(bool)


def int64_values(column: pa.ChunkedArray | pa.Array, *, null: int = 0) -> np.ndarray:
    """An integer or timestamp column as a read-only int64 array (timestamps in UTC micros).

    Nulls become ``null``.
    """
    array = _single(column)
    if pa.types.is_timestamp(array.type):
        if array.type != _MICROS_UTC:
            array = array.cast(_MICROS_UTC)
        array = array.view(pa.int64())
    elif array.type != pa.int64():
        array = array.cast(pa.int64())
    if len(array) == 0:
        return np.empty(0, dtype=np.int64)
    data = np.frombuffer(array.buffers()[1], dtype=np.int64)[
        array.offset : array.offset + len(array)
    ]
    if array.null_count:
        return np.where(valid_mask(array), data, np.int64(null))
    return data


def int64_array(values: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    """An Arrow int64 array over ``values`` (no copy), null where ``missing`` is True."""
    values = np.ascontiguousarray(values, dtype=np.int64)
    if missing is None or not missing.any():
        return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])
    validity = np.packbits(~missing, bitorder="little")
    buffers = [pa.py_buffer(validity), pa.py_buffer(values)]
    return pa.Array.from_buffers(pa.int64(), len(values), buffers, null_count=int(missing.sum()))
