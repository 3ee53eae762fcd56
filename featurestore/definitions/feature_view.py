"""FeatureView: a set of features of some entities, read from one source, with a ttl."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from featurestore.definitions._names import check_name, check_unique
from featurestore.definitions.aggregation import Aggregation
from featurestore.definitions.entity import Entity
from featurestore.definitions.field import Field
from featurestore.definitions.source import ParquetSource
from featurestore.errors import DefinitionError
from featurestore.types import Float64

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import polars as pl

OnFailure = Literal["block", "warn"]
"""What materialization does with a window that fails its view's expectations (DESIGN G6)."""

_COLUMN_ARGS = ("column", "column_A", "column_B")
_COLUMN_LIST_ARGS = ("column_list", "column_set")


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
        expectations: Great Expectations checks of the rows materialization writes (DESIGN
            G6): an ``ExpectationSuite``, or a list of expectations from
            ``great_expectations.expectations``, written as GE users write them. Stored in the
            registry as GE's JSON (never a pickle), shown by ``plan``, not part of the
            fingerprint (they decide whether rows are written, not what a row holds). Their
            columns are the view's join keys, features and timestamp columns. See
            docs/validation.md.
        on_failure: ``"block"`` (default): a window that fails writes nothing and keeps the
            watermark. ``"warn"``: it is written, and the failure is logged and recorded.
        aggregations: Instead of ``schema``: windowed aggregates of the source's events
            (DESIGN G7, docs/aggregations.md). The view's features are then the aggregations'
            outputs (``schema`` is derived, and must not be given); the source holds raw
            events (join keys, timestamp, the aggregated columns). The ttl does not apply.
        hop: The tile size of an aggregation view: every window is a whole multiple of it;
            default: the smallest window.
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
    schema: Sequence[Field] = field(default=(), kw_only=True)
    ttl: timedelta | None = field(default=None, kw_only=True)
    online: bool = field(default=True, kw_only=True)
    description: str = field(default="", kw_only=True)
    owner: str = field(default="", kw_only=True)
    tags: dict[str, str] = field(default_factory=dict, kw_only=True, compare=False)
    transform: Callable[[pl.DataFrame], pl.DataFrame] | None = field(
        default=None, kw_only=True, compare=False
    )
    """Compared through its source fingerprint by the registry, not by identity."""
    expectations: object = field(default=None, kw_only=True, compare=False, repr=False)
    """As written: GE objects, or (read back from the registry) GE's JSON of a suite."""
    on_failure: OnFailure = field(default="block", kw_only=True)
    aggregations: Sequence[Aggregation] = field(default=(), kw_only=True)
    hop: timedelta | None = field(default=None, kw_only=True)
    suite_json: str | None = field(default=None, init=False, repr=False)
    """The expectations as GE's JSON of a suite (canonical text: sorted keys, no ids or GE
    version), or None without expectations. Equal suites have equal text."""

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
        if self.aggregations or self.hop is not None:
            schema = _aggregation_schema(self)
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
        if self.on_failure not in get_args(OnFailure):
            msg = (
                f"Feature view '{self.name}' has on_failure={self.on_failure!r}; use 'block' "
                "(a failing window writes nothing) or 'warn' (it is written and recorded)."
            )
            raise DefinitionError(msg)
        object.__setattr__(self, "entities", entities)
        object.__setattr__(self, "schema", schema)
        object.__setattr__(self, "aggregations", tuple(self.aggregations))
        object.__setattr__(self, "tags", dict(self.tags))
        if self.expectations is not None:
            suite = _suite_of(self.name, self.expectations)
            columns = {*keys, *(f.name for f in schema), *(c for c in reserved if c)}
            _check_columns(self.name, suite, columns)
            object.__setattr__(self, "suite_json", json.dumps(suite, sort_keys=True))

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
    def hop_us(self) -> int:
        """An aggregation view's tile size in microseconds (0 for a plain view)."""
        if not self.aggregations:
            return 0
        hop = self.hop or min(a.window for a in self.aggregations)
        return hop // timedelta(microseconds=1)

    @property
    def event_columns(self) -> tuple[str, ...]:
        """The source columns an aggregation view aggregates, in first-use order."""
        return tuple(dict.fromkeys(a.column for a in self.aggregations if a.column is not None))

    def event_view(self) -> FeatureView:
        """The plain view of an aggregation view's raw events (what its source is read as).

        Same name, entities and source; its features are the aggregated columns as
        ``Float64`` (none for a view that only counts events). A copy with two attributes replaced, not a new definition: a plain view needs a
        feature, and one that only counts events has none to read.
        """
        events = copy.copy(self)
        object.__setattr__(events, "schema", tuple(Field(c, Float64) for c in self.event_columns))
        object.__setattr__(events, "aggregations", ())
        object.__setattr__(events, "hop", None)
        return events

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


def _aggregation_schema(view: FeatureView) -> tuple[Field, ...]:
    """The features of an aggregation view (its aggregations' outputs), checked (G7)."""
    owner = f"Feature view '{view.name}'"
    aggregations = tuple(view.aggregations)
    if not aggregations or not all(isinstance(a, Aggregation) for a in aggregations):
        msg = f"{owner} has hop= but no aggregations=[Aggregation(...), ...]; add them or drop hop."
        raise DefinitionError(msg)
    if tuple(view.schema):
        msg = (
            f"{owner} declares both schema= and aggregations=; an aggregation view's features "
            "are its aggregations' outputs: drop schema."
        )
        raise DefinitionError(msg)
    for forbidden, value in (("transform", view.transform), ("expectations", view.expectations)):
        if value is not None:
            msg = f"{owner}: an aggregation view cannot have {forbidden}= (not supported)."
            raise DefinitionError(msg)
    one_us = timedelta(microseconds=1)
    hop = cast("object", view.hop or min(a.window for a in aggregations))
    if not isinstance(hop, timedelta) or hop <= timedelta(0) or hop % one_us:
        msg = f"{owner} has hop={view.hop!r}; use a positive timedelta of whole microseconds."
        raise DefinitionError(msg)
    for a in aggregations:
        if a.window % hop:
            msg = (
                f"{owner}: aggregation '{a.output_name}' has window {a.window}, not a whole "
                f"multiple of the hop {hop}; change the window or set hop= to a divisor of "
                "every window."
            )
            raise DefinitionError(msg)
    fields = tuple(Field(a.output_name, a.dtype) for a in aggregations)
    object.__setattr__(view, "aggregations", aggregations)
    return fields


def _suite_of(view: str, expectations: object) -> dict[str, Any]:
    """GE's JSON of a suite, from a suite, a list of expectations, or that JSON itself.

    Duck-typed (``to_json_dict`` / ``configuration``), so definitions never import GE: a
    registry read back by a server without the ``validation`` extra still loads.
    """
    owner = f"Feature view '{view}'"
    if isinstance(expectations, Mapping):
        suite = dict(expectations)
    elif hasattr(expectations, "to_json_dict") and hasattr(expectations, "expectations"):
        suite = expectations.to_json_dict()
    elif isinstance(expectations, list | tuple) and all(
        hasattr(e, "configuration") for e in expectations
    ):
        suite = {
            "name": view,
            "expectations": [e.configuration.to_json_dict() for e in expectations],
        }
    else:
        msg = (
            f"{owner} has expectations={expectations!r}; pass a great_expectations "
            "ExpectationSuite or a list of expectations from great_expectations.expectations."
        )
        raise DefinitionError(msg)
    items = suite.get("expectations")
    if not isinstance(items, list) or not items:
        msg = f"{owner} has an expectation suite without expectations; add some or drop it."
        raise DefinitionError(msg)
    canonical = []
    for item in items:
        if not (
            isinstance(item, Mapping)
            and isinstance(item.get("type"), str)
            and isinstance(item.get("kwargs"), Mapping)
        ):
            msg = f"{owner} has an expectation that is not GE's JSON of an expectation: {item!r}."
            raise DefinitionError(msg)
        entry = {k: v for k, v in item.items() if k not in ("id", "rendered_content")}
        entry["kwargs"] = {k: v for k, v in item["kwargs"].items() if k != "batch_id"}
        canonical.append(entry)
    meta = suite.get("meta") or {}
    result = {
        "name": suite.get("name") or view,
        "expectations": canonical,
        "meta": {k: v for k, v in dict(meta).items() if k != "great_expectations_version"},
        "notes": suite.get("notes"),
    }
    try:
        json.dumps(result)
    except (TypeError, ValueError) as exc:
        msg = f"{owner} has expectations that are not JSON ({exc}); use plain values."
        raise DefinitionError(msg) from exc
    return result


def _check_columns(view: str, suite: Mapping[str, Any], columns: set[str]) -> None:
    """Every column an expectation names is a join key, feature or timestamp of the view."""
    for item in suite["expectations"]:
        kwargs = item["kwargs"]
        named = [kwargs[a] for a in _COLUMN_ARGS if isinstance(kwargs.get(a), str)]
        for arg in _COLUMN_LIST_ARGS:
            if isinstance(kwargs.get(arg), list):
                named += [c for c in kwargs[arg] if isinstance(c, str)]
        for column in named:
            if column not in columns:
                msg = (
                    f"Feature view '{view}' has expectation {item['type']} on column "
                    f"'{column}', which the view does not have; its columns are "
                    f"{', '.join(sorted(columns))}."
                )
                raise DefinitionError(msg)
