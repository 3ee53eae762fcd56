"""HTTP endpoints: parse -> one FeatureStore call (in a worker thread) -> encoded response."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from featurestore.errors import OnlineStoreUnavailableError
from featurestore.online.base import ReadRequest
from featurestore.serving.encoding import catalog_of
from featurestore.serving.endpoint import (
    ONLINE_PATHS,
    answer_online_request,
    body_too_large,
    require_key,
    run_blocking,
)
from featurestore.serving.schemas import (
    CatalogResponse,
    ErrorResponse,
    GetOnlineFeaturesRequest,
    GetOnlineFeaturesResponse,
    HealthResponse,
)

if TYPE_CHECKING:
    from featurestore.serving.app import ServerState

__all__ = ["ROUTE_PATHS", "router"]

logger = logging.getLogger(__name__)

router = APIRouter()

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (401, "Missing or invalid API key."),
        (404, "Unknown feature view, feature or feature service (the message names the closest)."),
        (413, "Too many entity rows or too large a body."),
        (422, "Malformed request, or entity keys of the wrong type."),
        (503, "The online store is unreachable; retry (Retry-After)."),
    )
}

_REQUEST_BODY_SCHEMA = GetOnlineFeaturesRequest.model_json_schema()
_PROBE = ReadRequest(b"\x00featurestore-ready-probe", ("__ready__",))


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.featurestore
    return state


def _json_response(body: bytes, status_code: int = 200) -> Response:
    return Response(body, status_code=status_code, media_type="application/json")


async def get_online_features(request: Request) -> Response:
    """Feature values for a batch of entities, in Feast's column-major response shape.

    Over HTTP, POST requests to this path are answered by the pure-ASGI
    ``OnlineFeaturesEndpoint`` (same code, ``answer_online_request``) before FastAPI routing;
    this route documents it in the OpenAPI schema and answers when the app is mounted under
    a prefix.
    """
    state = _state(request)
    limit = state.settings.max_body_bytes
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit)
        chunks.append(chunk)
    body = await answer_online_request(state, request.scope["headers"], b"".join(chunks))
    return _json_response(body)


_ONLINE_ROUTE: dict[str, Any] = {
    "methods": ["POST"],
    "response_model": GetOnlineFeaturesResponse,
    "responses": _ERRORS,
    "openapi_extra": {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _REQUEST_BODY_SCHEMA}},
        }
    },
    "summary": "Get online features (Feast-compatible)",
}
router.add_api_route("/get-online-features", get_online_features, **_ONLINE_ROUTE)
router.add_api_route(
    "/v1/get-online-features",
    get_online_features,
    operation_id="get_online_features_v1",
    **_ONLINE_ROUTE,
)


@router.get("/health", response_model=HealthResponse, summary="Liveness")
async def health() -> Response:
    """The process is up and answering (no dependency is checked; no key needed)."""
    return _json_response(b'{"status":"ok","checks":{}}')


@router.get(
    "/ready",
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse, "description": "Not ready."}},
    summary="Readiness",
)
async def ready(request: Request) -> Response:
    """Registry loaded and the online store reachable (one round trip)."""
    state = _state(request)
    checks: dict[str, str] = {}
    ok = state.ready
    checks["registry"] = f"serial {state.store.snapshot.serial}" if state.ready else "not loaded"
    try:
        store = state.store
        await run_blocking(state, lambda: store.online.read_records([_PROBE]))
        checks["online_store"] = "reachable"
    except OnlineStoreUnavailableError:
        checks["online_store"] = "unreachable"
        ok = False
    except Exception:
        logger.exception("readiness probe of the online store failed")
        checks["online_store"] = "error"
        ok = False
    body = orjson.dumps({"status": "ready" if ok else "not ready", "checks": checks})
    return _json_response(body, 200 if ok else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    responses={200: {"content": {"text/plain": {}}}, 401: _ERRORS[401]},
)
async def metrics(request: Request) -> Response:
    """Request latency, requests by status, online-store latency, entities and value ages."""
    state = _state(request)
    require_key(state, request.scope["headers"])
    return Response(state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get(
    "/v1/catalog",
    response_model=CatalogResponse,
    responses={401: _ERRORS[401]},
    summary="Catalog of the applied registry",
)
async def catalog(request: Request) -> Response:
    """Entities, feature views with feature types and watermarks, and services (read-only)."""
    state = _state(request)
    require_key(state, request.scope["headers"])
    return _json_response(orjson.dumps(catalog_of(state.store.snapshot)))


ROUTE_PATHS = ONLINE_PATHS | frozenset(
    {
        "/health",
        "/ready",
        "/metrics",
        "/v1/catalog",
    }
)
