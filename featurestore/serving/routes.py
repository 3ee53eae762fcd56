"""HTTP endpoints: parse -> one FeatureStore call (in a worker thread) -> encoded response."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from featurestore._time import utc_now
from featurestore.errors import FeatureStoreError, OnlineStoreUnavailableError
from featurestore.online.base import ReadRequest
from featurestore.serving.encoding import catalog_of, encode_online_response
from featurestore.serving.errors import RequestTooLargeError, ServingError
from featurestore.serving.schemas import (
    CatalogResponse,
    ErrorResponse,
    GetOnlineFeaturesRequest,
    GetOnlineFeaturesResponse,
    HealthResponse,
    parse_request,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from featurestore.serving.app import ServerState

T = TypeVar("T")

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


def _require_key(request: Request, state: ServerState) -> None:
    if not state.auth.enabled:
        return
    headers = dict(request.scope["headers"])
    if not state.auth.allows(headers):
        msg = (
            "Missing or invalid API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>' "
            "with one of the keys in serving.api_keys."
        )
        raise ServingError(msg, status_code=401)


async def _read_body(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            msg = (
                f"Request body is over the server's limit of {limit} bytes "
                "(serving.max_body_bytes); send fewer entities per request."
            )
            raise RequestTooLargeError(msg)
        chunks.append(chunk)
    return b"".join(chunks)


async def _in_thread(state: ServerState, call: Callable[[], T]) -> T:
    """Run a blocking store call in the server's thread pool, bounded by its read timeout."""
    loop = asyncio.get_running_loop()
    try:
        return await asyncio.wait_for(
            loop.run_in_executor(state.executor, call), timeout=state.read_timeout_s
        )
    except TimeoutError:
        msg = f"The online store did not answer within {state.read_timeout_s:.1f} s."
        raise OnlineStoreUnavailableError(msg) from None


def _json_response(body: bytes, status_code: int = 200) -> Response:
    return Response(body, status_code=status_code, media_type="application/json")


async def get_online_features(request: Request) -> Response:
    """Feature values for a batch of entities, in Feast's column-major response shape."""
    state = _state(request)
    _require_key(request, state)
    body = await _read_body(request, state.settings.max_body_bytes)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        msg = (
            "Request body is not valid JSON. Send a JSON object like "
            '{"entities": {"user_id": [7]}, "features": ["user_stats:txn_count_7d"]}.'
        )
        raise ServingError(msg) from None
    parsed = parse_request(data)
    rows = parsed.row_count
    if rows > state.settings.max_entities:
        msg = (
            f"The request has {rows} entity rows; the server accepts at most "
            f"{state.settings.max_entities} (serving.max_entities). Split the request."
        )
        raise RequestTooLargeError(msg)
    state.metrics.entities_per_request.observe(rows)
    request_time = utc_now()
    store = state.store
    start = time.perf_counter()
    lookup = functools.partial(
        store.get_online_features,
        parsed.feature_selection,
        parsed.entities,
        full_feature_names=parsed.full_feature_names,
        request_time=request_time,
    )
    response = await _in_thread(state, lookup)
    state.metrics.online_read_duration.observe(time.perf_counter() - start)
    body = encode_online_response(
        response,
        views=_views_of(state, parsed),
        request_time=request_time,
        metrics=state.metrics,
    )
    return _json_response(body)


def _views_of(state: ServerState, parsed: GetOnlineFeaturesRequest) -> dict[str, str]:
    """Output name -> feature view of a request's features (cached per registry snapshot)."""
    selection = parsed.feature_selection
    snapshot = state.store.snapshot
    key = (
        id(snapshot),
        selection if isinstance(selection, str) else tuple(selection),
        parsed.full_feature_names,
    )
    views = state.views_cache.get(key)
    if views is None:
        if len(state.views_cache) > 1024:
            state.views_cache.clear()
        try:
            refs = state.store.resolve(selection)
        except FeatureStoreError:
            refs = []
        full = parsed.full_feature_names
        views = {ref.output_name(full_feature_names=full): ref.view for ref in refs}
        state.views_cache[key] = views
    return views


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
        await _in_thread(state, lambda: store.online.read_records([_PROBE]))
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
    _require_key(request, state)
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
    _require_key(request, state)
    return _json_response(orjson.dumps(catalog_of(state.store.snapshot)))


ROUTE_PATHS = frozenset(
    {
        "/get-online-features",
        "/v1/get-online-features",
        "/health",
        "/ready",
        "/metrics",
        "/v1/catalog",
    }
)
