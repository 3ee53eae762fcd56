"""Entity: the thing features describe, identified by one or several join keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from featurestore.definitions._names import check_name, check_unique
from featurestore.errors import DefinitionError

if TYPE_CHECKING:
    from collections.abc import Sequence


@dataclass(frozen=True)
class Entity:
    """A business object features are about (a user, a merchant), keyed by join keys.

    Several join keys make a composite key. Key types are inferred from the sources at apply
    time and must agree across every feature view that uses the entity.

    Example:
        >>> user = Entity("user", join_keys=["user_id"])
        >>> user.join_keys
        ('user_id',)
    """

    name: str
    join_keys: Sequence[str] = field(kw_only=True)
    description: str = field(default="", kw_only=True)
    tags: dict[str, str] = field(default_factory=dict, kw_only=True, compare=False)

    def __post_init__(self) -> None:
        check_name(self.name, kind="Entity")
        if isinstance(self.join_keys, str):
            object.__setattr__(self, "join_keys", (self.join_keys,))
        keys = tuple(self.join_keys)
        if not keys:
            msg = f"Entity '{self.name}' has no join keys; pass join_keys=['{self.name}_id']."
            raise DefinitionError(msg)
        for key in keys:
            check_name(key, kind=f"Join key of entity '{self.name}'")
        check_unique(list(keys), what="join key", owner=f"Entity '{self.name}'")
        object.__setattr__(self, "join_keys", keys)
        object.__setattr__(self, "tags", dict(self.tags))

    def __hash__(self) -> int:
        return hash((self.name, self.join_keys))
