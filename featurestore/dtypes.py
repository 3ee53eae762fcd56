"""Former name of :mod:`featurestore.types`, kept importable for existing imports.

``featurestore.types`` is the one module for feature value types. This name stays only because
code written against 0.1 imports ``featurestore.dtypes`` (featurestore itself no longer does); it holds
no definitions of its own, so both names give the very same objects.
"""

from __future__ import annotations

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
    dtype_from_arrow,
    dtype_from_name,
    to_arrow,
    to_duckdb,
    to_polars,
)

__all__ = [
    "Array",
    "Bool",
    "Bytes",
    "DType",
    "Float32",
    "Float64",
    "Int32",
    "Int64",
    "ScalarType",
    "String",
    "Timestamp",
    "dtype_from_arrow",
    "dtype_from_name",
    "to_arrow",
    "to_duckdb",
    "to_polars",
]
