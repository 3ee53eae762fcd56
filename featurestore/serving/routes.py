"""HTTP endpoints: the FastAPI routes (probes, metrics, catalog) and the online routes.

``POST /get-online-features`` is a plain Starlette route to the pure-ASGI endpoint of
``serving/endpoint.py`` (``online_routes``); ``document_online_routes`` gives it its OpenAPI
entry.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.routing import Route

from featurestore.consistency.log_writer import render_metrics
from featurestore.errors import OnlineStoreUnavailableError
from featurestore.online.base import ReadRequest
from featurestore.serving.encoding import catalog_of
from featurestore.serving.endpoint import (
    ONLINE_PATHS,
    OnlineFeaturesEndpoint,
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
    from pydantic import BaseModel

    from featurestore.serving.app import ServerState

__all__ = ["ROUTE_PATHS", "document_online_routes", "online_routes", "router"]

logger = logging.getLogger(__name__)

router = APIRouter()

_ERROR_TEXTS: tuple[tuple[int, str], ...] = (
    (401, "Missing or invalid API key."),
    (404, "Unknown feature view, feature or feature service (the message names the closest)."),
    (408, "The request body did not arrive within serving.body_timeout_s."),
    (413, "Too many entity rows or too large a body."),
    (422, "Malformed request, or entity keys of the wrong type."),
    (
        503,
        "The online store is unreachable (retry, Retry-After), or the applied definitions are "
        "not the server's code.",
    ),
)
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text} for code, text in _ERROR_TEXTS
}

_PROBE = ReadRequest(b"\x00featurestore-ready-probe", ("__ready__",))


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.featurestore
    return state


def _json_response(body: bytes, status_code: int = 200) -> Response:
    return Response(body, status_code=status_code, media_type="application/json")


def online_routes(state: ServerState) -> list[Route]:
    """The plain Starlette routes of ``POST /get-online-features`` (one endpoint, two paths).

    Every method matches: the endpoint itself answers 405 to anything but POST.
    """
    endpoint = OnlineFeaturesEndpoint(state)
    return [Route(path, endpoint, methods=None) for path in ONLINE_PATHS]


def document_online_routes(schema: dict[str, Any]) -> None:
    """Add the online routes (plain Starlette routes, unseen by FastAPI) to an OpenAPI schema."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    template = "#/components/schemas/{model}"
    for model in (GetOnlineFeaturesRequest, GetOnlineFeaturesResponse, ErrorResponse):
        model_schema = model.model_json_schema(ref_template=template)
        components.update(model_schema.pop("$defs", {}))
        components[model.__name__] = model_schema

    def ref(model: type[BaseModel]) -> dict[str, Any]:
        return {
            "content": {
                "application/json": {"schema": {"$ref": template.format(model=model.__name__)}}
            }
        }

    responses: dict[str, Any] = {
        "200": {"description": "Successful Response", **ref(GetOnlineFeaturesResponse)},
        **{str(code): {"description": text, **ref(ErrorResponse)} for code, text in _ERROR_TEXTS},
    }
    for path, operation_id in zip(
        ONLINE_PATHS, ("get_online_features", "get_online_features_v1"), strict=True
    ):
        schema.setdefault("paths", {})[path] = {
            "post": {
                "summary": "Get online features (Feast-compatible)",
                "description": "Feature values for a batch of entities, in Feast's column-major "
                "response shape.",
                "operationId": operation_id,
                "requestBody": {"required": True, **ref(GetOnlineFeaturesRequest)},
                "responses": responses,
            }
        }


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
    """Registry loaded, definitions the server's code, the online store reachable."""
    state = _state(request)
    checks: dict[str, str] = {}
    ok = state.ready
    checks["registry"] = f"serial {state.store.snapshot.serial}" if state.ready else "not loaded"
    if (failure := state.store.registry.last_error) is not None:
        checks["registry"] += f", kept because the file does not load: {failure}"
        ok = False
    if state.conflict_serial == state.store.snapshot.serial:
        checks["definitions"] = (
            "stale: the applied definitions are not the code this server runs; deploy the "
            "applied code (the server log names the view)"
        )
        ok = False
    try:
        store = state.store
        await run_blocking(state, lambda: store.online.read_records([_PROBE]))
        problem = await run_blocking(state, store.online_problem)
        checks["online_store"] = problem or "reachable"
        ok = ok and problem is None
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
    """Request latency, requests by status, online-store latency, entities and value ages.

    With ``--workers N``, every worker's series, labelled ``worker`` (serving/workers.py).
    """
    state = _state(request)
    require_key(state, request.scope["headers"])
    workers = state.workers
    text = metrics_text(state) if workers is None else await run_blocking(state, workers.collect)
    return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")


def metrics_text(state: ServerState) -> str:
    """The metrics of this process in the Prometheus text format."""
    return state.metrics.render() + render_metrics(state.store.feature_log_stats())


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


ROUTE_PATHS = frozenset(ONLINE_PATHS) | frozenset(
    {
        "/health",
        "/ready",
        "/metrics",
        "/v1/catalog",
    }
)
