"""Materialization's numpy encoding gives the same bytes as the per-value encoding."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore.materialization.materializer import _numpy_values, _python_values
from featurestore.online.codec import KeyEncoder, RecordCodec
from featurestore.types import Bool, DType, Float32, Float64, Int32, Int64, String, Timestamp

FP = "00112233445566ff"
MICROS = st.integers(-(2**62), 2**62)
TYPES: list[tuple[DType, pa.DataType, st.SearchStrategy[Any]]] = [
    (Int64, pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    (Int32, pa.int32(), st.integers(-(2**31), 2**31 - 1)),
    (Float64, pa.float64(), st.floats()),
    (Float32, pa.float32(), st.floats(width=32)),
    (Bool, pa.bool_(), st.booleans()),
    (Timestamp, pa.int64(), MICROS),  # cast to timestamp[us, UTC] below
]


def _column(arrow_type: pa.DataType, values: list[Any], dtype: DType) -> pa.ChunkedArray:
    array = pa.array(values, type=arrow_type)
    if dtype == Timestamp:
        array = array.cast(pa.timestamp("us", tz="UTC"))
    return pa.chunked_array([array])


@st.composite
def batches(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(0, 20))
    width = draw(st.integers(1, 6) | st.integers(63, 70))
    kinds = draw(st.lists(st.sampled_from(range(len(TYPES))), min_size=width, max_size=width))
    features = []
    for k in kinds:
        dtype, arrow_type, values = TYPES[k]
        nullable = draw(st.booleans())
        column = draw(st.lists(st.none() | values if nullable else values, min_size=n, max_size=n))
        features.append((dtype, _column(arrow_type, column, dtype)))
    created_kind = draw(st.sampled_from(["none", "some", "all"]))
    created_values = draw(st.lists(st.none() | MICROS, min_size=n, max_size=n))
    if created_kind == "none":
        created_values = [0 if v is None else v for v in created_values]
    created = (
        pa.chunked_array([pa.nulls(n)])
        if created_kind == "all"
        else _column(pa.int64(), created_values, Timestamp)
    )
    events = _column(pa.int64(), draw(st.lists(MICROS, min_size=n, max_size=n)), Timestamp)
    key_kinds = draw(st.lists(st.sampled_from([0, 1, 2, 3, 4, 5]), min_size=1, max_size=3))
    keys = {}
    for i, k in enumerate(key_kinds):
        dtype, arrow_type, values = TYPES[k]
        keys[f"k{i}"] = (
            dtype,
            _column(arrow_type, draw(st.lists(values, min_size=n, max_size=n)), dtype),
        )
    return {"features": features, "created": created, "events": events, "keys": keys}


@settings(max_examples=200, deadline=None)
@given(batches())
def test_numpy_records_equal_per_value_records(batch: dict[str, Any]) -> None:
    dtypes = [dtype for dtype, _ in batch["features"]]
    codec = RecordCodec(dtypes, fingerprint=FP)
    slow = codec.encode_rows(
        _python_values(batch["events"], Timestamp),  # type: ignore[arg-type]  # micros
        _python_values(batch["created"], Timestamp),  # type: ignore[arg-type]  # micros
        [_python_values(column, dtype) for dtype, column in batch["features"]],
    )
    created, created_null = _numpy_values(batch["created"], Timestamp)
    pairs = [_numpy_values(column, dtype) for dtype, column in batch["features"]]
    fast = codec.encode_arrays(
        _numpy_values(batch["events"], Timestamp)[0],
        created,
        created_null,
        [values for values, _ in pairs],
        [nulls for _, nulls in pairs],
    )
    assert fast is not None
    assert list(fast) == slow


@settings(max_examples=200, deadline=None)
@given(batches())
def test_numpy_entity_keys_equal_per_value_keys(batch: dict[str, Any]) -> None:
    keys = batch["keys"]
    encoder = KeyEncoder({name: dtype for name, (dtype, _) in keys.items()})
    slow = encoder.encode_columns([_python_values(c, d) for d, c in keys.values()])
    fast = encoder.encode_arrays([_numpy_values(c, d)[0] for d, c in keys.values()])
    assert fast is not None
    assert list(fast) == slow


def test_variable_width_types_use_the_per_value_path() -> None:
    empty = np.zeros(0, dtype=np.int64)
    codec = RecordCodec([Int64, String], fingerprint=FP)
    assert codec.encode_arrays(empty, empty, None, [empty, empty], [None, None]) is None
    assert KeyEncoder({"name": String}).encode_arrays([]) is None
