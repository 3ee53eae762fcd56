"""Field: a named, typed column of a feature view or request source."""

from __future__ import annotations

from dataclasses import dataclass

from featurestore.definitions._names import check_name
from featurestore.errors import DefinitionError
from featurestore.types import Array, DType, ScalarType


@dataclass(frozen=True, slots=True)
class Field:
    """A feature (or request field) name with its type.

    Example:
        >>> from featurestore.types import Int64
        >>> Field("txn_count_7d", Int64)
        Field(name='txn_count_7d', dtype=Int64, description='')
    """

    name: str
    dtype: DType
    description: str = ""

    def __post_init__(self) -> None:
        check_name(self.name, kind="Field")
        if not isinstance(self.dtype, ScalarType | Array):
            msg = (
                f"Field '{self.name}' has type {self.dtype!r}, which is not a feature type; "
                "use one from featurestore.types, e.g. Field('x', Int64)."
            )
            raise DefinitionError(msg)
