"""``@on_demand_feature_view``: a plain typed function becomes an OnDemandFeatureView.

The function is kept as a function: the registry stores its import path and a fingerprint of
its source (and of what it depends on), never a pickle.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import types
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from featurestore.definitions import (
    FeatureRef,
    FeatureView,
    FeatureViewProjection,
    Field,
    RequestSource,
)
from featurestore.definitions._names import check_name, check_unique
from featurestore.errors import DefinitionError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "OnDemandFeatureView",
    "OnDemandInput",
    "TransformMode",
    "on_demand_feature_view",
    "source_fingerprint",
]

TransformMode = Literal["polars", "python"]
"""``polars``: the function takes and returns a polars DataFrame (vectorized, the default).
``python``: the function takes one row as a dict and returns a dict (lowest latency for one row)."""


def _function_sources(function: Callable[..., Any], seen: set[int]) -> list[str]:
    """The source of ``function`` and of the module-level functions it calls, recursively."""
    if id(function) in seen:
        return []
    seen.add(id(function))
    try:
        sources = [inspect.getsource(function)]
    except (OSError, TypeError):
        sources = [getattr(function, "__qualname__", repr(function))]
    code = getattr(function, "__code__", None)
    module = getattr(function, "__module__", None)
    if code is None:
        return sources
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= set(const.co_names)
    for name in sorted(names):
        target = function.__globals__.get(name)
        if isinstance(target, types.FunctionType) and target.__module__ == module:
            sources += _function_sources(target, seen)
    return sources


def source_fingerprint(function: Callable[..., Any]) -> str:
    """Hash of a transformation's source code and of the same-module functions it calls.

    Editing the function, or a helper it calls, changes the fingerprint.
    """
    text = "\n".join(_function_sources(function, set()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class OnDemandInput:
    """One input column of an on-demand view and where its values come from."""

    column: str
    """The column name the function sees (feature name, request field or upstream output)."""
    kind: Literal["feature", "request", "on_demand"]
    ref: FeatureRef | None = None
    """The stored feature (``feature``) or upstream output (``on_demand``) supplying it."""
    field: Field | None = None
    """The request field (``request``)."""


def _inputs_of(
    sources: tuple[FeatureView | FeatureViewProjection | RequestSource | OnDemandFeatureView, ...],
) -> tuple[OnDemandInput, ...]:
    items: list[OnDemandInput] = []
    for source in sources:
        if isinstance(source, FeatureView):
            items += [
                OnDemandInput(f, "feature", ref=FeatureRef(source.name, f))
                for f in source.feature_names
            ]
        elif isinstance(source, FeatureViewProjection):
            items += [
                OnDemandInput(f, "feature", ref=FeatureRef(source.view, f)) for f in source.features
            ]
        elif isinstance(source, RequestSource):
            items += [OnDemandInput(f.name, "request", field=f) for f in source.schema]
        else:
            items += [
                OnDemandInput(f, "on_demand", ref=FeatureRef(source.name, f))
                for f in source.feature_names
            ]
    return tuple(items)


@dataclass(frozen=True)
class OnDemandFeatureView:
    """Features computed at request time from other features and request fields.

    Offline, the function runs on the joined training frame (request fields come from the
    entity frame's columns); online, it runs once per request on the batch of entities
    (request fields come from the request). Same function, same executor, both paths.

    Input columns are named by the plain feature name (``avg_amount_7d``), the request field
    name (``amount``) or, for an upstream on-demand view, its output name.
    """

    name: str
    sources: tuple[FeatureView | FeatureViewProjection | RequestSource | OnDemandFeatureView, ...]
    schema: tuple[Field, ...]
    function: Callable[..., Any] = field(compare=False)
    mode: TransformMode = "polars"
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict, compare=False)
    function_fingerprint: str = field(init=False)
    inputs: tuple[OnDemandInput, ...] = field(init=False, repr=False, compare=False)
    """Every column the function receives and where it comes from, in source order."""

    def __post_init__(self) -> None:
        check_name(self.name, kind="On-demand feature view")
        if self.mode not in ("polars", "python"):
            msg = f"On-demand feature view '{self.name}' has mode={self.mode!r}; use 'polars' or 'python'."
            raise DefinitionError(msg)
        schema = tuple(self.schema)
        if not schema or not all(isinstance(f, Field) for f in schema):
            msg = f"On-demand feature view '{self.name}' needs schema=[Field(...), ...]."
            raise DefinitionError(msg)
        check_unique(
            [f.name for f in schema], what="feature", owner=f"On-demand feature view '{self.name}'"
        )
        sources = tuple(self.sources)
        for source in sources:
            if not isinstance(
                source, FeatureView | FeatureViewProjection | RequestSource | OnDemandFeatureView
            ):
                msg = (
                    f"On-demand feature view '{self.name}' lists source {source!r}; sources are "
                    "feature views, projections (view[['f']]), request sources or other on-demand "
                    "feature views."
                )
                raise DefinitionError(msg)
        if not sources:
            msg = f"On-demand feature view '{self.name}' needs sources=[...]."
            raise DefinitionError(msg)
        object.__setattr__(self, "sources", sources)
        object.__setattr__(self, "schema", schema)
        object.__setattr__(self, "tags", dict(self.tags))
        object.__setattr__(self, "function_fingerprint", source_fingerprint(self.function))
        object.__setattr__(self, "inputs", _inputs_of(sources))
        inputs = self.input_columns
        check_unique(
            list(inputs),
            what="input column",
            owner=f"On-demand feature view '{self.name}' (select features with view[['f']] to "
            "avoid two sources giving the same column)",
        )
        clash = set(inputs) & {f.name for f in schema}
        if clash:
            msg = (
                f"On-demand feature view '{self.name}' outputs {sorted(clash)}, which are also "
                "its inputs; give the outputs new names."
            )
            raise DefinitionError(msg)

    def __hash__(self) -> int:
        return hash(self.name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the wrapped function directly (handy in notebooks and unit tests)."""
        return self.function(*args, **kwargs)

    @property
    def kind(self) -> str:
        """How the executor's messages name this kind of transformation."""
        return "On-demand feature view"

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The names of the computed features, in schema order."""
        return tuple(f.name for f in self.schema)

    @property
    def view_inputs(self) -> tuple[FeatureRef, ...]:
        """The stored features the function reads, as refs (``view:feature``)."""
        return tuple(i.ref for i in self.inputs if i.kind == "feature" and i.ref is not None)

    @property
    def request_sources(self) -> tuple[RequestSource, ...]:
        """The request sources whose fields the function reads."""
        return tuple(s for s in self.sources if isinstance(s, RequestSource))

    @property
    def upstream(self) -> tuple[OnDemandFeatureView, ...]:
        """On-demand feature views whose outputs this one reads."""
        return tuple(s for s in self.sources if isinstance(s, OnDemandFeatureView))

    @property
    def input_columns(self) -> tuple[str, ...]:
        """Every column the function receives, in source order."""
        return tuple(i.column for i in self.inputs)

    @property
    def fingerprint(self) -> str:
        """Hash of the function's source, its schema and its inputs (upstream views included)."""
        payload = {
            "function": self.function_fingerprint,
            "mode": self.mode,
            "schema": [[f.name, str(f.dtype)] for f in self.schema],
            "views": [str(r) for r in self.view_inputs],
            "request": [[f.name, str(f.dtype)] for s in self.request_sources for f in s.schema],
            "upstream": [u.fingerprint for u in self.upstream],
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def on_demand_feature_view(
    *,
    sources: Sequence[FeatureView | FeatureViewProjection | RequestSource | OnDemandFeatureView],
    schema: Sequence[Field],
    mode: TransformMode = "polars",
    name: str | None = None,
    description: str = "",
    owner: str = "",
    tags: dict[str, str] | None = None,
) -> Callable[[Callable[..., Any]], OnDemandFeatureView]:
    """Declare an on-demand feature view over a function.

    Args:
        sources: Feature views (or projections), request sources and other on-demand views
            whose columns the function reads.
        schema: The columns the function returns, with their types (enforced on both paths).
        mode: ``"polars"`` (DataFrame in, DataFrame out) or ``"python"`` (dict in, dict out).
        name: The view's name; defaults to the function's name.
        description: Shown by the catalog.
        owner: Who to ask about the view.
        tags: Free-form labels.

    Example:
        >>> import polars as pl
        >>> from featurestore.types import Float64
        >>> txn = RequestSource("txn", schema=[Field("amount", Float64)])
        >>> @on_demand_feature_view(sources=[txn], schema=[Field("double", Float64)])
        ... def doubled(df: pl.DataFrame) -> pl.DataFrame:
        ...     return df.select((pl.col("amount") * 2).alias("double"))
        >>> doubled.feature_names
        ('double',)
    """

    def wrap(function: Callable[..., Any]) -> OnDemandFeatureView:
        if not callable(function):
            msg = f"@on_demand_feature_view decorates a function, not {function!r}."
            raise DefinitionError(msg)
        view_name = name or function.__name__
        if "return" not in inspect.get_annotations(function):
            msg = (
                f"On-demand feature view '{view_name}': function '{function.__name__}' is "
                "missing return annotation; annotate it (-> pl.DataFrame, or -> dict for "
                "mode='python')."
            )
            raise DefinitionError(msg)
        return OnDemandFeatureView(
            name=view_name,
            sources=tuple(sources),
            schema=tuple(schema),
            function=function,
            mode=mode,
            description=description,
            owner=owner,
            tags=dict(tags or {}),
        )

    return wrap
