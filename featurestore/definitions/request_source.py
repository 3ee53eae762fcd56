"""RequestSource: fields that arrive with a request (online) or as entity-frame columns (offline)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from featurestore.definitions._names import check_name, check_unique
from featurestore.definitions.field import Field
from featurestore.errors import DefinitionError

if TYPE_CHECKING:
    from collections.abc import Sequence


@dataclass(frozen=True)
class RequestSource:
    """Values known only at request time, such as a transaction's amount.

    Example:
        >>> from featurestore.types import Float64
        >>> RequestSource("txn", schema=[Field("amount", Float64)]).field_names
        ('amount',)
    """

    name: str
    schema: Sequence[Field] = field(kw_only=True)

    def __post_init__(self) -> None:
        check_name(self.name, kind="Request source")
        schema = tuple(self.schema)
        if not schema or not all(isinstance(f, Field) for f in schema):
            msg = f"Request source '{self.name}' needs schema=[Field(...), ...]."
            raise DefinitionError(msg)
        check_unique([f.name for f in schema], what="field", owner=f"Request source '{self.name}'")
        object.__setattr__(self, "schema", schema)

    @property
    def field_names(self) -> tuple[str, ...]:
        """The names of the request fields."""
        return tuple(f.name for f in self.schema)
