"""FeatureService: a named selection of features for one model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from featurestore.definitions._names import check_name
from featurestore.definitions.feature_view import FeatureViewProjection
from featurestore.definitions.refs import FeatureRef
from featurestore.errors import DefinitionError

if TYPE_CHECKING:
    from collections.abc import Sequence


@dataclass(frozen=True)
class LoggingConfig:
    """Feature logging of one service (DESIGN G5): which share of its requests is logged.

    Where the logs go is set once per repo (``feature_logging`` in ``featurestore.yaml``);
    docs/skew.md shows how the logs are replayed into a skew report.

    Args:
        sample_rate: The share of requests logged, from 0 (none) to 1 (every request). The
            choice is made per request: all entity rows of a logged request are logged.

    Example:
        >>> LoggingConfig(sample_rate=0.25).sample_rate
        0.25
    """

    sample_rate: float = 1.0

    def __post_init__(self) -> None:
        rate: object = self.sample_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            msg = (
                f"LoggingConfig sample_rate={self.sample_rate!r} is invalid; pass a number from "
                "0 (log nothing) to 1 (log every request)."
            )
            raise DefinitionError(msg)
        object.__setattr__(self, "sample_rate", float(rate))


class _HasFeatures(Protocol):
    """Anything a service can select whole: a feature view or an on-demand feature view."""

    @property
    def name(self) -> str: ...

    @property
    def feature_names(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class FeatureService:
    """The features one model uses, by name: ``features="fraud_v1"`` anywhere refs are taken.

    ``features`` lists feature views (all their features), projections (``view[["a", "b"]]``)
    or ``"view:feature"`` strings. ``logging=LoggingConfig(sample_rate=...)`` logs what the
    service serves, for the skew report (docs/skew.md).

    Example:
        >>> FeatureService("fraud_v1", features=["user_stats:txn_count_7d"]).refs
        (FeatureRef(view='user_stats', feature='txn_count_7d'),)
    """

    name: str
    features: Sequence[object] = field(kw_only=True)
    description: str = field(default="", kw_only=True)
    owner: str = field(default="", kw_only=True)
    tags: dict[str, str] = field(default_factory=dict, kw_only=True, compare=False)
    logging: LoggingConfig | None = field(default=None, kw_only=True)
    refs: tuple[FeatureRef, ...] = field(init=False)

    def __post_init__(self) -> None:
        check_name(self.name, kind="Feature service")
        refs: list[FeatureRef] = []
        for item in self.features:
            refs.extend(_refs_of(item, service=self.name))
        if not refs:
            msg = f"Feature service '{self.name}' selects no features; pass features=[...]."
            raise DefinitionError(msg)
        if self.logging is not None and not isinstance(self.logging, LoggingConfig):
            msg = (
                f"Feature service '{self.name}' has logging={self.logging!r}; pass "
                "logging=LoggingConfig(sample_rate=...) or leave it unset."
            )
            raise DefinitionError(msg)
        unique = list(dict.fromkeys(refs))
        object.__setattr__(self, "features", tuple(self.features))
        object.__setattr__(self, "refs", tuple(unique))
        object.__setattr__(self, "tags", dict(self.tags))

    def __hash__(self) -> int:
        return hash(self.name)


def _refs_of(item: object, *, service: str) -> list[FeatureRef]:
    if isinstance(item, str):
        return [FeatureRef.parse(item)]
    if isinstance(item, FeatureRef):
        return [item]
    if isinstance(item, FeatureViewProjection):
        return [FeatureRef(item.view, f) for f in item.features]
    names = getattr(item, "feature_names", None)
    view = getattr(item, "name", None)
    if isinstance(view, str) and isinstance(names, tuple):
        return [FeatureRef(view, f) for f in names]
    msg = (
        f"Feature service '{service}' lists {item!r}, which is not a feature view, "
        "a projection or a 'view:feature' string."
    )
    raise DefinitionError(msg)
