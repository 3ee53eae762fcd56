"""Pydantic models of the HTTP wire contract (Feast 0.67's shapes; see docs/serving.md).

Requests ignore unknown fields, because Feast's client always sends
``include_feature_view_version_metadata``. ``parse_request`` is the one parser of lookup
bodies: the request model decides, with a hand-written check of the common shape in front.
Responses are encoded column-wise by ``serving/encoding.py``; the response models here
document them in the OpenAPI schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from featurestore.serving.errors import ServingError

__all__ = [
    "CatalogEntity",
    "CatalogFeature",
    "CatalogResponse",
    "CatalogService",
    "CatalogView",
    "ErrorResponse",
    "FeatureResult",
    "GetOnlineFeaturesRequest",
    "GetOnlineFeaturesResponse",
    "HealthResponse",
    "OnlineQuery",
    "ResponseMetadata",
    "parse_request",
]

Scalar = StrictBool | StrictInt | StrictFloat | StrictStr | None
"""An entity key or request-field value: what ``json.dumps`` makes of a Python scalar."""
EntityValue = Scalar | list[Scalar]
"""Request fields of an on-demand view may be lists (``Array`` types)."""


class GetOnlineFeaturesRequest(BaseModel):
    """``POST /get-online-features``: Feast's request body.

    Example:
        >>> GetOnlineFeaturesRequest.model_validate(
        ...     {"entities": {"user_id": [1, 7]}, "features": ["user_stats:txn_count_7d"],
        ...      "include_feature_view_version_metadata": False}
        ... ).row_count
        2
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    entities: dict[str, list[EntityValue]] = Field(
        description="Columnar entity rows: {join key or request field: [value per row]}.",
        examples=[{"user_id": [1, 7]}],
    )
    features: list[StrictStr] | None = Field(
        default=None,
        description="'view:feature' references (or feature service names). "
        "Give this or feature_service.",
        examples=[["user_stats:txn_count_7d"]],
    )
    feature_service: StrictStr | None = Field(
        default=None, description="A feature service name; give this or features."
    )
    full_feature_names: StrictBool = Field(
        default=False, description="Name feature columns 'view__feature'."
    )

    @model_validator(mode="after")
    def _check_shape(self) -> GetOnlineFeaturesRequest:
        if (self.features is None) == (self.feature_service is None):
            msg = "Give exactly one of 'features' (a list of 'view:feature') or 'feature_service'."
            raise ValueError(msg)
        if self.features is not None and not self.features:
            msg = "'features' is empty: list at least one 'view:feature' reference."
            raise ValueError(msg)
        if not self.entities:
            msg = "'entities' is empty: give at least one join key column, e.g. {\"user_id\": [7]}."
            raise ValueError(msg)
        lengths = {name: len(values) for name, values in self.entities.items()}
        if len(set(lengths.values())) > 1:
            detail = ", ".join(f"'{n}' has {k}" for n, k in lengths.items())
            msg = f"Every 'entities' column needs one value per row, but {detail}."
            raise ValueError(msg)
        if next(iter(lengths.values())) == 0:
            msg = "'entities' has no rows: give at least one value per column."
            raise ValueError(msg)
        return self

    @property
    def row_count(self) -> int:
        """The number of entity rows."""
        return len(next(iter(self.entities.values())))

    @property
    def feature_selection(self) -> str | list[str]:
        """What to pass as ``features`` to ``FeatureStore.get_online_features``."""
        if self.feature_service is not None:
            return self.feature_service
        assert self.features is not None  # checked in _check_shape
        return list(self.features)

    @property
    def selection_key(self) -> str | tuple[str, ...]:
        """A hashable form of the selection (for per-selection caches)."""
        if self.feature_service is not None:
            return self.feature_service
        assert self.features is not None  # checked in _check_shape
        return tuple(self.features)


def _describe(error: ValidationError) -> str:
    problems: list[str] = []
    for item in error.errors(include_input=False, include_url=False)[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "body"
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}")
    more = len(error.errors()) - len(problems)
    suffix = f" (and {more} more)" if more > 0 else ""
    return "Invalid request body: " + "; ".join(problems) + suffix + "."


@dataclass(frozen=True, slots=True)
class OnlineQuery:
    """A validated get-online-features request: what the endpoint passes to the store.

    Attributes:
        entities: Columnar entity rows (every column has ``row_count`` values, at least one).
        features: The feature references, or None when ``feature_service`` is given.
        feature_service: The feature service name, or None when ``features`` is given.
        full_feature_names: Name feature columns ``view__feature``.
        row_count: The number of entity rows.
    """

    entities: dict[str, list[Any]]
    features: tuple[str, ...] | None
    feature_service: str | None
    full_feature_names: bool
    row_count: int

    @classmethod
    def of(cls, model: GetOnlineFeaturesRequest) -> OnlineQuery:
        """The query a validated request model describes."""
        features = tuple(model.features) if model.features is not None else None
        return cls(
            model.entities,
            features,
            model.feature_service,
            model.full_feature_names,
            model.row_count,
        )

    @property
    def feature_selection(self) -> str | list[str]:
        """What to pass as ``features`` to ``FeatureStore.get_online_features``."""
        if self.feature_service is not None:
            return self.feature_service
        assert self.features is not None  # one of the two is set
        return list(self.features)

    @property
    def selection_key(self) -> str | tuple[str, ...]:
        """A hashable form of the selection (for per-selection caches)."""
        if self.feature_service is not None:
            return self.feature_service
        assert self.features is not None  # one of the two is set
        return self.features


_SCALARS: Final = frozenset({bool, int, float, str, type(None)})
"""The exact types of JSON scalars: the request model's ``Scalar``, accepted unchanged."""


def _common_shape(data: dict[str, Any]) -> OnlineQuery | None:
    """The common well-formed body, checked by hand; None means "ask the request model".

    Accepts only what the model accepts, with the same query (scalar entity columns of one
    length, a non-empty list of strings or a service name, a bool flag): about 3 us less per
    request than the model. Every other body, each malformed one included, goes to the
    model, which words the refusal; tests/unit/serving/test_serving_fast_paths.py checks the
    agreement on generated bodies.
    """
    entities = data.get("entities")
    if type(entities) is not dict or not entities:
        return None
    rows = -1
    for column in entities.values():
        if type(column) is not list or (rows >= 0 and len(column) != rows):
            return None
        rows = len(column)
        for value in column:
            if type(value) not in _SCALARS:
                return None
    if rows <= 0:
        return None
    full_names = data.get("full_feature_names", False)
    if type(full_names) is not bool:
        return None
    features = data.get("features")
    service = data.get("feature_service")
    if service is None:
        if type(features) is not list or not features:
            return None
        for ref in features:
            if type(ref) is not str:
                return None
        return OnlineQuery(entities, tuple(features), None, full_names, rows)
    if features is not None or type(service) is not str:
        return None
    return OnlineQuery(entities, None, service, full_names, rows)


def parse_request(data: Any) -> OnlineQuery:
    """Validate a decoded JSON body: the one parser of get-online-features requests.

    The request model decides what is valid; the common shape is recognized by hand first
    (``_common_shape``, which never accepts what the model refuses nor answers differently).

    Raises:
        ServingError: (422) The body does not have the request's shape; the message says where.
    """
    if not isinstance(data, dict):
        msg = (
            "Invalid request body: expected a JSON object like "
            '{"entities": {"user_id": [7]}, "features": ["user_stats:txn_count_7d"]}.'
        )
        raise ServingError(msg)
    query = _common_shape(data)
    if query is not None:
        return query
    try:
        return OnlineQuery.of(GetOnlineFeaturesRequest.model_validate(data))
    except ValidationError as exc:
        raise ServingError(_describe(exc)) from None


class FeatureResult(BaseModel):
    """One output column: a value, a status and an event timestamp per entity row."""

    values: list[Any]
    statuses: list[str] = Field(
        description="PRESENT, NOT_FOUND, OUTSIDE_MAX_AGE or STALE_DEFINITION per row."
    )
    event_timestamps: list[str] = Field(
        description="RFC 3339 UTC ('Z'); '1970-01-01T00:00:00Z' when there is none."
    )


class ResponseMetadata(BaseModel):
    """The output column names: join keys first, then features."""

    feature_names: list[str]


class GetOnlineFeaturesResponse(BaseModel):
    """Column-major results, one per name in ``metadata.feature_names``."""

    metadata: ResponseMetadata
    results: list[FeatureResult]


class ErrorResponse(BaseModel):
    """The body of every error response."""

    detail: str
    request_id: str | None = None


class HealthResponse(BaseModel):
    """``GET /health`` and ``GET /ready``."""

    status: str
    checks: dict[str, str] = Field(default_factory=dict)


class CatalogFeature(BaseModel):
    """A feature of a view."""

    name: str
    dtype: str
    description: str = ""


class CatalogEntity(BaseModel):
    """An entity with its join keys and their types."""

    name: str
    join_keys: list[str]
    key_dtypes: dict[str, str]
    description: str = ""


class CatalogView(BaseModel):
    """An applied feature view."""

    name: str
    entities: list[str]
    join_keys: list[str]
    features: list[CatalogFeature]
    ttl_seconds: float | None
    online: bool
    fingerprint: str
    watermark: str | None = Field(description="Rows before it are materialized (RFC 3339).")
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = Field(default_factory=dict)


class CatalogService(BaseModel):
    """A feature service and its feature references."""

    name: str
    features: list[str]
    description: str = ""


class CatalogResponse(BaseModel):
    """``GET /v1/catalog``: the applied registry, read-only."""

    project: str
    registry_serial: int
    applied_at: str | None
    entities: list[CatalogEntity]
    feature_views: list[CatalogView]
    feature_services: list[CatalogService]
