"""FeatureView: a set of features of some entities, read from one source, with a ttl."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, cast

from featurestore.definitions._names import check_name, check_unique
from featurestore.definitions.entity import Entity
from featurestore.definitions.field import Field
from featurestore.definitions.source import ParquetSource
from featurestore.errors import DefinitionError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import polars as pl


@dataclass(frozen=True)
class FeatureViewProjection:
    """A selection of some features of a view, written ``view[["f1", "f2"]]``."""

    view: str
    features: tuple[str, ...]


@dataclass(frozen=True)
class FeatureView:
    """Features of one or more entities, read from a source, valid for ``ttl`` after their event.

    Args:
        name: Unique name of the view in the repo.
        entities: The entities whose join keys identify a row (several = composite key).
        source: Where the rows live.
        schema: The features, with their types.
        ttl: How long a value stays valid after its event timestamp; None or zero = forever.
        online: Whether materialization writes this view to the online store.
        transform: Optional batch transformation, ``DataFrame -> DataFrame``, applied to the
            source rows (after ``field_mapping``) before the training join and before
            materialization. It receives the join keys, the timestamp columns and every
            other source column, and returns the declared features (other columns are
            ignored), one row per input row in input order. It must be row-wise (checked at
            apply). Its source code is part of the view's fingerprint.
        description, owner, tags: Metadata shown by the catalog.

    Example:
        >>> from featurestore.types import Int64
        >>> user = Entity("user", join_keys=["user_id"])
        >>> view = FeatureView(
        ...     name="user_stats",
        ...     entities=[user],
        ...     source=ParquetSource("data/u.parquet", timestamp_field="ts"),
        ...     schema=[Field("txn_count_7d", Int64)],
        ...     ttl=timedelta(days=2),
        ... )
        >>> view.join_keys
        ('user_id',)
    """

    name: str
    entities: Sequence[Entity] = field(kw_only=True)
    source: ParquetSource = field(kw_only=True)
    schema: Sequence[Field] = field(kw_only=True)
    ttl: timedelta | None = field(default=None, kw_only=True)
    online: bool = field(default=True, kw_only=True)
    description: str = field(default="", kw_only=True)
    owner: str = field(default="", kw_only=True)
    tags: dict[str, str] = field(default_factory=dict, kw_only=True, compare=False)
    transform: Callable[[pl.DataFrame], pl.DataFrame] | None = field(
        default=None, kw_only=True, compare=False
    )
    """Compared through its source fingerprint by the registry, not by identity."""

    def __post_init__(self) -> None:
        check_name(self.name, kind="Feature view")
        entities = tuple(self.entities)
        if not entities or not all(isinstance(e, Entity) for e in entities):
            msg = (
                f"Feature view '{self.name}' needs entities=[...] of Entity objects, "
                f"got {self.entities!r}."
            )
            raise DefinitionError(msg)
        check_unique([e.name for e in entities], what="entity", owner=f"Feature view '{self.name}'")
        if not isinstance(self.source, ParquetSource):
            msg = (
                f"Feature view '{self.name}' needs source=ParquetSource(...), got {self.source!r}."
            )
            raise DefinitionError(msg)
        schema = tuple(self.schema)
        if not schema or not all(isinstance(f, Field) for f in schema):
            msg = (
                f"Feature view '{self.name}' needs schema=[Field(...), ...] with at least one "
                "feature."
            )
            raise DefinitionError(msg)
        owner = f"Feature view '{self.name}'"
        check_unique([f.name for f in schema], what="feature", owner=owner)
        keys = [k for e in entities for k in e.join_keys]
        check_unique(keys, what="join key", owner=owner)
        reserved = {*keys, self.source.timestamp_field, self.source.created_timestamp_field}
        for f in schema:
            if f.name in reserved:
                msg = (
                    f"Feature view '{self.name}' declares feature '{f.name}', which is also its "
                    "join key or timestamp column; remove it from the schema."
                )
                raise DefinitionError(msg)
        if self.ttl is not None and (
            not isinstance(ttl := cast("object", self.ttl), timedelta) or ttl < timedelta(0)
        ):
            msg = (
                f"Feature view '{self.name}' has ttl={self.ttl!r}; use a non-negative timedelta, "
                "or None for unlimited."
            )
            raise DefinitionError(msg)
        if self.transform is not None and not callable(self.transform):
            msg = (
                f"Feature view '{self.name}' has transform={self.transform!r}; pass a function "
                "taking and returning a polars DataFrame, or None."
            )
            raise DefinitionError(msg)
        object.__setattr__(self, "entities", entities)
        object.__setattr__(self, "schema", schema)
        object.__setattr__(self, "tags", dict(self.tags))

    def __hash__(self) -> int:
        return hash(self.name)

    @property
    def join_keys(self) -> tuple[str, ...]:
        """All join keys of the view's entities, in entity order."""
        return tuple(k for e in self.entities for k in e.join_keys)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The names of the view's features, in schema order."""
        return tuple(f.name for f in self.schema)

    @property
    def effective_ttl(self) -> timedelta | None:
        """The ttl, with zero normalized to None (both mean unlimited, as in Feast)."""
        return self.ttl if self.ttl else None

    def __getitem__(self, features: list[str] | str) -> FeatureViewProjection:
        """Select some features: ``user_stats[["txn_count_7d"]]``."""
        names = [features] if isinstance(features, str) else list(features)
        for name in names:
            if name not in self.feature_names:
                msg = (
                    f"Feature view '{self.name}' has no feature '{name}'; "
                    f"its features are {', '.join(self.feature_names)}."
                )
                raise DefinitionError(msg)
        return FeatureViewProjection(self.name, tuple(names))
