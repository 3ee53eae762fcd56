"""Feature value types for feature definitions: ``from featurestore.types import Int64``.

The public face of :mod:`featurestore.dtypes`, named as feature repos import it (DESIGN.md 1).
"""

from __future__ import annotations

from featurestore.dtypes import (
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
]
