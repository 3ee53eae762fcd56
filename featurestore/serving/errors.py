"""FeatureStoreError subclass -> HTTP status and JSON error body ``{"detail", "request_id"}``.

Bad input is never a 5xx: Feast clients retry 5xx responses and lose their body. A 503 (store
unreachable, or definitions that are not the server's code) has a fixed message. Unexpected
exceptions become a generic 500 whose body carries only the request id; the traceback is logged.
"""

from __future__ import annotations

from typing import Final

import orjson

from featurestore.errors import (
    DefinitionError,
    EntityFrameError,
    FeatureStoreError,
    MaterializationError,
    NotFoundError,
    OnlineStoreUnavailableError,
    RegistryConflictError,
    TransformationError,
)

__all__ = [
    "INTERNAL_ERROR_DETAIL",
    "RETRY_AFTER_S",
    "RequestTooLargeError",
    "ServingError",
    "error_body",
    "public_detail",
    "status_for",
]

RETRY_AFTER_S: Final = 1
"""``Retry-After`` of a 503: short, since Feast's client sleeps that long on each retry."""
INTERNAL_ERROR_DETAIL: Final = (
    "Internal server error; the server log has the details under this request id."
)
"""The whole ``detail`` of every 500: nothing internal reaches the client."""


class ServingError(FeatureStoreError):
    """A request the server refuses before reaching the store (malformed, unauthorized...)."""

    status_code = 422

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        if status_code is not None:
            self.status_code = status_code
        super().__init__(message)


class RequestTooLargeError(ServingError):
    """The body or the number of entity rows is over the configured limit."""

    status_code = 413


# Most specific first: the first matching class decides.
_STATUS: Final[tuple[tuple[type[FeatureStoreError], int], ...]] = (
    (NotFoundError, 404),
    (EntityFrameError, 422),
    (DefinitionError, 422),
    (OnlineStoreUnavailableError, 503),
    # The applied definitions are not the code this server runs (another checkout applied a
    # change): no answer would be right until the server runs the applied code.
    (RegistryConflictError, 503),
    # An on-demand function failing on the request's own fields (a null, a zero...) is the
    # request's problem far more often than the server's.
    (TransformationError, 422),
    # A push the online store refused after its rows were logged (tile blocks of an older
    # format): a conflict with the store's state, never to be retried as is.
    (MaterializationError, 409),
)


def status_for(exc: FeatureStoreError) -> int:
    """The HTTP status of a FeatureStoreError raised while serving a request.

    Example:
        >>> from featurestore.errors import FeatureViewNotFoundError
        >>> status_for(FeatureViewNotFoundError(name="x"))
        404
    """
    if isinstance(exc, ServingError):
        return exc.status_code
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(detail: str, request_id: str) -> bytes:
    """The JSON body of every error response."""
    return orjson.dumps({"detail": detail, "request_id": request_id})


def public_detail(exc: FeatureStoreError, status: int) -> str:
    """What the client is told: our own message for 4xx/503, nothing internal for a 500."""
    if status >= 500 and status != 503:
        return INTERNAL_ERROR_DETAIL
    if isinstance(exc, OnlineStoreUnavailableError):
        return (
            "The online store is unavailable; retry shortly. The server log has the details "
            "under this request id."
        )
    if isinstance(exc, RegistryConflictError):
        return (
            "The applied feature definitions are not the code this server runs (a change was "
            "applied from another checkout); deploy the applied code to the server. GET /ready "
            "says so too; the server log has the details under this request id."
        )
    return str(exc)
