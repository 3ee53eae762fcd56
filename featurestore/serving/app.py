"""The feature server: ``create_app()`` builds the FastAPI app; its lifespan opens the store.

At startup the server refuses to run when the repo's definition files differ from the applied
registry (DESIGN G4), opens the online store, and starts the registry watcher that picks up a
later ``apply`` without a restart.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi.responses import Response

from featurestore.errors import FeatureStoreError, OnlineStoreError, RegistryConflictError
from featurestore.serving.auth import ApiKeyChecker
from featurestore.serving.endpoint import OnlineFeaturesEndpoint, error_reply
from featurestore.serving.metrics import ServingMetrics
from featurestore.serving.middleware import ServingMiddleware, request_id_of
from featurestore.serving.protocol import FILE_RESERVE, LIMITS_KEY, ConnectionLimits
from featurestore.serving.push import PUSH_PATH, push_router
from featurestore.serving.reload import RegistryWatcher
from featurestore.serving.routes import (
    ROUTE_PATHS,
    document_online_routes,
    metrics_text,
    online_routes,
    router,
)
from featurestore.serving.workers import WorkerMetrics
from featurestore.store import FeatureStore

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from fastapi import Request
    from starlette.routing import Route
    from starlette.types import ASGIApp, Receive, Scope, Send

    from featurestore.repo.config import RepoConfig, ServingConfig
    from featurestore.repo.registry import Plan

__all__ = [
    "REPO_ENV",
    "FeatureServer",
    "ServerState",
    "create_app",
    "create_app_from_env",
    "unapplied_changes",
]

logger = logging.getLogger(__name__)

REPO_ENV = "FEATURESTORE_REPO"
"""The repo a server started by ``create_app_from_env`` (uvicorn workers) serves."""


@dataclass
class ServerState:
    """What the routes need, kept on ``app.state.featurestore``."""

    store: FeatureStore
    settings: ServingConfig
    auth: ApiKeyChecker
    metrics: ServingMetrics
    read_timeout_s: float
    """Past this, a lookup is answered 503 even if the store's own timeout did not fire."""
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=32, thread_name_prefix="fs-online")
    )
    """Where blocking online-store reads run, off the event loop."""
    ready: bool = False
    views_cache: dict[tuple[int, str | tuple[str, ...], bool], dict[str, str]] = field(
        default_factory=dict
    )
    """(snapshot id, selection, full names) -> output name -> view, for the value-age metric."""
    conflict_serial: int | None = None
    """The registry serial under which a lookup found definitions that are not the server's
    code (``RegistryConflictError``); ``/ready`` answers 503 while it is the current one."""
    freeze_heap: bool = False
    """Move every object alive after startup to the garbage collector's permanent generation
    (``gc.freeze()``): set for a server process of its own (``featurestore serve``), never for an
    app embedded in another program. The startup heap (FastAPI, pydantic, pyarrow, the
    registry) is then no longer walked by each full collection: with feature logging on, such
    collections took 0.2-0.7 s each and set the p99 (78 ms against 8.5 ms after, load 2).
    The same process collects its youngest generation every :data:`_YOUNG_COLLECTION_EVERY`
    net allocations instead of 700."""
    workers: WorkerMetrics | None = None
    """Where this worker shares its metrics with the others of ``serve --workers N``."""


_YOUNG_COLLECTION_EVERY = 20_000
"""A serving process's threshold of young-generation collections (CPython's default: 700).

A request's objects die by reference counting when it is answered, so nearly every
collection finds nothing; at 700, a logged request's few dozen objects waiting to be gathered
into columns (featurestore/consistency/log_writer.py) lived through collections, were
promoted, and set off full collections of ~8 ms four times as often as without logging (1 x 10
at 6,500 requests/s: 4 full collections in 3 s instead of 1). At 20,000 none ran in a minute
of traffic, logging on or off, and p99 with logging on fell from 4.7-7.0 ms to 3.0-3.6 ms."""


@dataclass(frozen=True)
class ServingMiddlewareSettings:
    """What ``FeatureServer.build_middleware_stack`` needs."""

    routes: list[Route]
    metrics: ServingMetrics
    max_body_bytes: int


def _route_path(scope: Scope) -> str:
    """The request path below the scope's root path (as Starlette's router matches it)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if not root or not path.startswith(root):
        return path
    rest = path[len(root) :]
    return rest if not rest or rest[0] == "/" else path


class _FrontDoor:
    """HTTP requests to the online routes go to their endpoint; everything else to ``default``.

    The online routes are fixed paths, so a request is matched by one dict lookup of its path
    below the root path (what Starlette's router would match), not by a regex per route.
    """

    def __init__(self, routes: list[Route], default: ASGIApp) -> None:
        for route in routes:
            if route.param_convertors:
                msg = f"online route {route.path} has path parameters; give it a fixed path"
                raise ValueError(msg)
        self.endpoints: dict[str, ASGIApp] = {route.path: route.app for route in routes}
        self.default = default

    def endpoint_of(self, scope: Scope) -> ASGIApp | None:
        """The online endpoint answering an HTTP ``scope``, None when it is not an online route."""
        return self.endpoints.get(_route_path(scope) if scope.get("root_path") else scope["path"])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.endpoint_of(scope) if scope["type"] == "http" else None
        await (self.default if endpoint is None else endpoint)(scope, receive, send)


def unapplied_changes(plan: Plan) -> str | None:
    """A message naming the unapplied changes of ``plan``, or None when there are none."""
    if not plan.has_changes:
        return None
    lines = ", ".join(
        f"{c.kind} '{c.name}' ({c.action})" for c in plan.changes if c.action != "unchanged"
    )
    return (
        f"The repo's definitions differ from the applied registry: {lines}. The server does not "
        "serve definitions that were not applied. Run 'featurestore apply' (and materialize "
        "the views it says need it), or revert the repo files, then start the server again."
    )


def _read_timeout_s(store: FeatureStore) -> float:
    # The store's own timeout should fire first; this bounds a lookup that hangs anyway.
    return max(2.0 * store.config.online_store.timeout_s, 1.0)


async def _handle_feature_store_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FeatureStoreError)  # registered for FeatureStoreError only
    status, headers, body = error_reply(exc, request_id_of(request.scope))
    return Response(body, status_code=status, media_type="application/json", headers=headers)


class FeatureServer(FastAPI):
    """The FastAPI app, with the online routes in front of FastAPI's own layers.

    Every request enters ``ServingMiddleware`` (request id, body limit, metrics, last-resort
    500), then the online routes (plain Starlette routes to the one lookup endpoint, matched
    by path as the router would, root path included); any other request, and the lifespan,
    go to FastAPI's middleware stack and router. FastAPI's layers (its telemetry check, error,
    body-limit and exception middleware, exit stack, router) cost about 20 us per request, a
    quarter of a small lookup, and the endpoint needs none of them: it answers every error
    itself. So ``__call__`` hands an online request to ``ServingMiddleware`` with its endpoint
    directly (the same middleware instance and work, two hops fewer), and the lookup endpoint
    returns its reply for the middleware to send (``ServingMiddleware.answer``).
    """

    serving: ServingMiddlewareSettings
    _front: _FrontDoor
    _middleware: ServingMiddleware

    def build_middleware_stack(self) -> ASGIApp:
        """``ServingMiddleware`` -> online routes, else FastAPI's own stack."""
        settings = self.serving
        self._front = _FrontDoor(settings.routes, super().build_middleware_stack())
        self._middleware = ServingMiddleware(
            self._front,
            metrics=settings.metrics,
            max_body_bytes=settings.max_body_bytes,
            routes=ROUTE_PATHS | {PUSH_PATH},
        )
        return self._middleware

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """An online request goes through ``ServingMiddleware`` to its endpoint directly."""
        if scope["type"] == "http" and self.middleware_stack is not None:
            if self.root_path:
                scope["root_path"] = self.root_path
            endpoint = self._front.endpoint_of(scope)
            if endpoint is not None:
                scope["app"] = self
                if isinstance(endpoint, OnlineFeaturesEndpoint):
                    await self._middleware.answer(endpoint.respond, scope, receive, send)
                else:
                    await self._middleware.serve(endpoint, scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI schema, with ``POST /get-online-features`` (see ``online_routes``)."""
        if self.openapi_schema is None:
            document_online_routes(super().openapi())
        return super().openapi()


def create_app(
    store: FeatureStore | None = None,
    *,
    config: RepoConfig | None = None,
    repo_path: str | Path | None = None,
    check_definitions: bool = True,
) -> FastAPI:
    """Build the feature server.

    Args:
        store: The store to serve; it stays open after the app shuts down (the caller owns it).
            When None, a store is opened on ``repo_path`` at startup and closed at shutdown.
        config: The repo config to use instead of reading ``featurestore.yaml``.
        repo_path: The feature repo; default ``$FEATURESTORE_REPO`` or the current directory.
        check_definitions: Refuse to start when the repo's definition files differ from the
            applied registry (DESIGN G4). Only embedders that manage definitions themselves
            should turn this off.

    Returns:
        The FastAPI app; run it with uvicorn, or ``featurestore serve``.

    Example:
        >>> app = create_app(repo_path="feature_repo")  # doctest: +SKIP
        >>> uvicorn.run(app, port=6566)  # doctest: +SKIP
    """
    owns_store = store is None
    if store is None:
        root = repo_path if repo_path is not None else os.environ.get(REPO_ENV, ".")
        store = FeatureStore(root, config=config)
    settings = store.config.serving
    metrics = ServingMetrics()
    state = ServerState(
        store=store,
        settings=settings,
        auth=ApiKeyChecker(settings.api_keys),
        metrics=metrics,
        read_timeout_s=_read_timeout_s(store),
    )
    state.workers = WorkerMetrics.from_env(lambda: metrics_text(state))

    limits = ConnectionLimits.from_settings(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        watcher = await _start(state, check_definitions=check_definitions)
        if state.workers is not None:
            state.workers.start()
        if limits.max_connections < limits.requested_connections:
            logger.warning(
                "serving.max_connections lowered from %d to %d to fit the open-file limit "
                "(ulimit -n) minus %d; raise the limit to allow more connections",
                limits.requested_connections,
                limits.max_connections,
                FILE_RESERVE,
            )
        try:
            yield {LIMITS_KEY: limits}  # the lifespan state: read by LimitedHttpToolsProtocol
        finally:
            state.ready = False
            await watcher.stop()
            if state.workers is not None:
                await state.workers.stop()
            state.executor.shutdown(wait=False, cancel_futures=True)
            await state.store.aclose_connections()  # the online store's, of this loop
            if owns_store:
                await anyio.to_thread.run_sync(state.store.close)
            logger.info("feature server stopped")

    docs = settings.docs if settings.docs is not None else not state.auth.enabled
    app = FeatureServer(
        title="featurestore feature server",
        version="1",
        description="Online feature lookups with Feast's wire shapes (see docs/serving.md).",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.featurestore = state
    app.serving = ServingMiddlewareSettings(
        routes=online_routes(state), metrics=metrics, max_body_bytes=settings.max_body_bytes
    )
    app.include_router(router)
    app.include_router(push_router)
    app.add_exception_handler(FeatureStoreError, _handle_feature_store_error)
    return app


async def _start(state: ServerState, *, check_definitions: bool) -> RegistryWatcher:
    store = state.store
    if check_definitions:
        plan = await anyio.to_thread.run_sync(store.plan)
        problem = unapplied_changes(plan)
        if problem is not None:
            logger.error("%s", problem)
            raise RegistryConflictError(problem)
    # The stamp before the read: an apply landing in between is reloaded at the first check.
    stamp = await anyio.to_thread.run_sync(store.registry.stamp)
    snapshot = await anyio.to_thread.run_sync(store.refresh)
    watcher = RegistryWatcher(
        store, interval_s=state.settings.registry_refresh_s, metrics=state.metrics, stamp=stamp
    )
    try:
        await anyio.to_thread.run_sync(lambda: store.online)
    except OnlineStoreError as exc:
        # Start anyway: /ready reports it, and requests get 503 until the store is back.
        logger.warning("online store not reachable at startup: %s", exc)
    watcher.start()
    if any(service.logging is not None for service in snapshot.feature_services.values()):
        # Started before the heap is frozen, so what it imports is frozen with the rest.
        await anyio.to_thread.run_sync(lambda: store.feature_logger)
    if state.freeze_heap:
        gc.freeze()
        gc.set_threshold(_YOUNG_COLLECTION_EVERY, *gc.get_threshold()[1:])
    state.ready = True
    logger.info(
        "serving project '%s': registry serial %d, %d feature views, online store %s",
        snapshot.project,
        snapshot.serial,
        len(snapshot.feature_views),
        store.config.online_store.type,
    )
    return watcher


def create_app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` (one per worker): serves ``$FEATURESTORE_REPO``.

    The worker process is the server's own, so its startup heap is frozen (see
    ``ServerState.freeze_heap``).
    """
    app = create_app(repo_path=Path(os.environ.get(REPO_ENV, ".")))
    app.state.featurestore.freeze_heap = True
    return app
