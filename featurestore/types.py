"""Feature value types and their Arrow, Polars and DuckDB mappings.

A feature's type is a :class:`ScalarType` (``Int64``, ``String``...) or an :class:`Array` of a
scalar type. Types are plain frozen values, so definitions compare and fingerprint by value.
Repo files import them from here: ``from featurestore.types import Float64, Int64``.

Defining types needs no engine: Arrow and Polars are imported by the mapping functions on
first call, so ``import featurestore`` and loading a repo's definitions stay cheap.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from featurestore.errors import DefinitionError

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

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

ScalarName = Literal["Int32", "Int64", "Float32", "Float64", "String", "Bool", "Timestamp", "Bytes"]


@dataclass(frozen=True, slots=True)
class ScalarType:
    """A scalar feature type such as ``Int64``."""

    name: ScalarName

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Array:
    """A list of values of one scalar type, e.g. ``Array(Float32)`` for an embedding."""

    inner: ScalarType

    def __post_init__(self) -> None:
        if not isinstance(self.inner, ScalarType):
            raise DefinitionError(
                f"Array({self.inner!r}) is not a valid type: lists hold scalar types only "
                "(Int32, Int64, Float32, Float64, String, Bool, Timestamp, Bytes)."
            )

    @property
    def name(self) -> str:
        """The type's name as written in code, e.g. ``Array(Float32)``."""
        return f"Array({self.inner.name})"

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return self.name


DType = ScalarType | Array

Int32: Final = ScalarType("Int32")
Int64: Final = ScalarType("Int64")
Float32: Final = ScalarType("Float32")
Float64: Final = ScalarType("Float64")
String: Final = ScalarType("String")
Bool: Final = ScalarType("Bool")
Timestamp: Final = ScalarType("Timestamp")
Bytes: Final = ScalarType("Bytes")

_SCALARS: Final[dict[str, ScalarType]] = {
    t.name: t for t in (Int32, Int64, Float32, Float64, String, Bool, Timestamp, Bytes)
}


@functools.cache
def _arrow_types() -> dict[str, pa.DataType]:
    import pyarrow as pa

    return {
        "Int32": pa.int32(),
        "Int64": pa.int64(),
        "Float32": pa.float32(),
        "Float64": pa.float64(),
        "String": pa.large_string(),
        "Bool": pa.bool_(),
        "Timestamp": pa.timestamp("us", tz="UTC"),
        "Bytes": pa.large_binary(),
    }


@functools.cache
def _polars_types() -> dict[str, pl.DataType]:
    import polars as pl

    return {
        "Int32": pl.Int32(),
        "Int64": pl.Int64(),
        "Float32": pl.Float32(),
        "Float64": pl.Float64(),
        "String": pl.String(),
        "Bool": pl.Boolean(),
        "Timestamp": pl.Datetime("us", "UTC"),
        "Bytes": pl.Binary(),
    }


_DUCKDB: Final[dict[str, str]] = {
    "Int32": "INTEGER",
    "Int64": "BIGINT",
    "Float32": "FLOAT",
    "Float64": "DOUBLE",
    "String": "VARCHAR",
    "Bool": "BOOLEAN",
    "Timestamp": "TIMESTAMPTZ",
    "Bytes": "BLOB",
}


def dtype_from_name(name: str) -> DType:
    """Parse a type name as written by ``str(dtype)``.

    Example:
        >>> dtype_from_name("Array(Float32)")
        Array(Float32)
    """
    if name.startswith("Array(") and name.endswith(")"):
        return Array(_scalar(name[6:-1]))
    return _scalar(name)


def _scalar(name: str) -> ScalarType:
    try:
        return _SCALARS[name]
    except KeyError:
        known = ", ".join(_SCALARS)
        msg = f"Unknown feature type '{name}'. Use one of {known}, or Array(<one of them>)."
        raise DefinitionError(msg) from None


def to_arrow(dtype: DType) -> pa.DataType:
    """The Arrow type that carries values of ``dtype``."""
    arrow = _arrow_types()
    if isinstance(dtype, Array):
        import pyarrow as pa

        return pa.large_list(arrow[dtype.inner.name])
    return arrow[dtype.name]


def to_polars(dtype: DType) -> pl.DataType:
    """The Polars type that carries values of ``dtype``."""
    polars = _polars_types()
    if isinstance(dtype, Array):
        import polars as pl

        return pl.List(polars[dtype.inner.name])
    return polars[dtype.name]


def to_duckdb(dtype: DType) -> str:
    """The DuckDB SQL type that carries values of ``dtype``."""
    if isinstance(dtype, Array):
        return f"{_DUCKDB[dtype.inner.name]}[]"
    return _DUCKDB[dtype.name]


def dtype_from_arrow(arrow_type: pa.DataType) -> DType | None:
    """The feature type for an Arrow type, or None when there is no faithful one.

    Example:
        >>> import pyarrow as pa
        >>> dtype_from_arrow(pa.list_(pa.float32()))
        Array(Float32)
    """
    import pyarrow as pa

    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        inner = dtype_from_arrow(arrow_type.value_type)
        return Array(inner) if isinstance(inner, ScalarType) else None
    if pa.types.is_dictionary(arrow_type):
        return dtype_from_arrow(arrow_type.value_type)
    checks: list[tuple[bool, ScalarType]] = [
        (pa.types.is_int8(arrow_type) or pa.types.is_int16(arrow_type), Int32),
        (pa.types.is_int32(arrow_type) or pa.types.is_uint8(arrow_type), Int32),
        (pa.types.is_uint16(arrow_type), Int32),
        (pa.types.is_int64(arrow_type) or pa.types.is_uint32(arrow_type), Int64),
        (pa.types.is_float16(arrow_type) or pa.types.is_float32(arrow_type), Float32),
        (pa.types.is_float64(arrow_type), Float64),
        (pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type), String),
        (pa.types.is_string_view(arrow_type), String),
        (pa.types.is_boolean(arrow_type), Bool),
        (pa.types.is_timestamp(arrow_type), Timestamp),
        (pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type), Bytes),
    ]
    for matched, dtype in checks:
        if matched:
            return dtype
    return None
