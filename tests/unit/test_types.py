from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from featurestore.errors import DefinitionError
from featurestore.types import (
    Array,
    Bool,
    Bytes,
    Float32,
    Float64,
    Int32,
    Int64,
    ScalarType,
    String,
    Timestamp,
    dtype_from_arrow,
    dtype_from_name,
    to_arrow,
    to_duckdb,
    to_polars,
)

SCALARS = [Int32, Int64, Float32, Float64, String, Bool, Timestamp, Bytes]
ALL = SCALARS + [Array(t) for t in SCALARS]


@given(st.sampled_from(ALL))
def test_name_roundtrip(dtype):
    assert dtype_from_name(str(dtype)) == dtype


@given(st.sampled_from(ALL))
def test_arrow_roundtrip(dtype):
    assert dtype_from_arrow(to_arrow(dtype)) == dtype


@pytest.mark.parametrize("dtype", ALL)
def test_polars_and_arrow_mappings_agree(dtype):
    series = pl.from_arrow(pa.array([None], type=to_arrow(dtype)))
    assert series.dtype == to_polars(dtype)


def test_duckdb_names():
    assert to_duckdb(Array(Float32)) == "FLOAT[]"
    assert to_duckdb(Timestamp) == "TIMESTAMPTZ"


def test_unknown_type_name_lists_the_known_ones():
    with pytest.raises(DefinitionError, match="Use one of Int32, Int64"):
        dtype_from_name("Int128")


def test_unsupported_arrow_type_has_no_dtype():
    assert dtype_from_arrow(pa.struct([("a", pa.int64())])) is None
    assert isinstance(dtype_from_arrow(pa.int16()), ScalarType)


def test_dtypes_is_the_same_types_under_its_former_name():
    from featurestore import dtypes, types

    for name in dtypes.__all__:
        assert getattr(dtypes, name) is getattr(types, name), name
