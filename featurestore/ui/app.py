"""The UI over HTTP: Starlette routes below ``/ui``, API-key sessions, and two ways to run it.

``mount_ui(app)`` adds the UI to a feature server built by ``create_app`` (``featurestore
serve`` runs ``create_server_from_env``); ``create_ui_app`` is a server of the UI alone for a
repo (``featurestore ui`` runs ``create_ui_app_from_env``). Pages are rendered on the server
(``pages``, ``forms``); blocking store calls run in worker threads, bounded in time.

When the server requires API keys (``serving.api_keys``), every page does too: a request
carrying one (``Authorization: Bearer`` or ``X-API-Key``, as for the API) is let in, and a
browser enters one once in a login form. The browser then keeps an HttpOnly, SameSite=Strict
cookie holding an HMAC of the key, never the key itself, and no page ever shows a key.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
from dataclasses import dataclass, field
from functools import cache, partial
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import anyio.to_thread
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from featurestore._time import parse_timestamp, utc_now
from featurestore.errors import (
    EntityFrameError,
    FeatureServiceNotFoundError,
    FeatureStoreError,
    FeatureViewNotFoundError,
    NotFoundError,
    OnlineStoreUnavailableError,
)
from featurestore.online.epoch import lost_reason, lost_views
from featurestore.serving.app import REPO_ENV, create_app_from_env
from featurestore.serving.auth import ApiKeyChecker
from featurestore.serving.errors import public_detail, status_for
from featurestore.serving.metrics import ServingMetrics
from featurestore.serving.reload import RegistryWatcher
from featurestore.store import FeatureStore
from featurestore.ui import forms, pages, view_pages
from featurestore.ui.markup import Markup, page
from featurestore.validation.result import ValidationResult

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

    from fastapi import FastAPI
    from starlette.requests import Request

    from featurestore.repo.config import Secret
    from featurestore.serving.app import ServerState

__all__ = [
    "UI_PATH",
    "UiState",
    "create_server_from_env",
    "create_ui_app",
    "create_ui_app_from_env",
    "mount_ui",
    "ui_app",
]

logger = logging.getLogger(__name__)

UI_PATH = "/ui"
_COOKIE = "featurestore_ui"
_SESSION_SALT = b"featurestore-ui-session-v1"
_MAX_FORM_BYTES = 8192
_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# The skew report is one self-contained page (featurestore.consistency.html): inline style.
_REPORT_CSP = _CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}


def _session_token(key: str) -> bytes:
    """What the cookie holds for ``key``: an HMAC of it (the key cannot be read back)."""
    return hmac.new(key.encode(), _SESSION_SALT, hashlib.sha256).hexdigest().encode()


@dataclass
class UiState:
    """What the UI's routes need, kept on the UI app's ``state.ui``."""

    store: FeatureStore
    checker: ApiKeyChecker
    sessions: tuple[bytes, ...]
    """The valid session cookie values, one per API key."""
    timeout_s: float
    """Past this, a blocking online-store call is answered 503."""
    notice: str | None = None
    """A warning shown on every page (the repo's unapplied changes)."""
    skew_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """One skew report at a time: each replays a log through DuckDB."""

    @classmethod
    def of(cls, store: FeatureStore, api_keys: Iterable[Secret]) -> UiState:
        """The state of a UI over ``store``, requiring one of ``api_keys`` when there are any."""
        keys = [k.get_secret_value() for k in api_keys if k.get_secret_value()]
        return cls(
            store=store,
            checker=ApiKeyChecker(api_keys),
            sessions=tuple(_session_token(k) for k in keys),
            timeout_s=max(2.0 * store.config.online_store.timeout_s, 1.0),
        )

    def has_session(self, cookie: str | None) -> bool:
        """Whether ``cookie`` is a valid session (compared with every token, constant time)."""
        if cookie is None:
            return False
        found = False
        for token in self.sessions:
            found |= hmac.compare_digest(cookie.encode(), token)
        return found

    async def blocking(self, call: Callable[[], Any]) -> Any:
        """Run a blocking store call in a worker thread, bounded by ``timeout_s``."""
        try:
            with anyio.fail_after(self.timeout_s):
                return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
        except TimeoutError:
            msg = f"The online store did not answer within {self.timeout_s:.1f} s."
            raise OnlineStoreUnavailableError(msg) from None


@dataclass(frozen=True)
class _Page:
    title: str
    body: Markup
    active: str = ""
    status: int = 200


def _state(request: Request) -> UiState:
    state: UiState = request.app.state.ui
    return state


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _html(text: str, status: int = 200, *, csp: str = _CSP) -> HTMLResponse:
    return HTMLResponse(
        text, status_code=status, headers={**_HEADERS, "Content-Security-Policy": csp}
    )


def _render(request: Request, result: _Page, *, logout: bool) -> HTMLResponse:
    state = _state(request)
    text = page(
        result.title,
        result.body,
        base=_base(request),
        project=state.store.snapshot.project,
        active=result.active,
        notice=state.notice,
        logout=logout,
    )
    return _html(text, result.status)


def _error(request: Request, status: int, message: str, *, logout: bool = False) -> HTMLResponse:
    body = forms.error_page(status, message, _base(request))
    return _render(request, _Page(f"{status}", body, status=status), logout=logout)


def _access(request: Request) -> tuple[bool, bool]:
    """Whether the request may see pages, and whether it came in through a session cookie."""
    state = _state(request)
    if not state.checker.enabled:
        return True, False
    if state.checker.allows(dict(request.scope["headers"])):
        return True, False
    session = state.has_session(request.cookies.get(_COOKIE))
    return session, session


def _page_route(
    path: str, handler: Callable[[Request, UiState], Awaitable[_Page | Response]]
) -> Route:
    """A GET route rendering ``handler``'s page, after the API-key check, errors as pages."""

    async def endpoint(request: Request) -> Response:
        allowed, logout = _access(request)
        base = _base(request)
        if not allowed:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            body = forms.login_page(base, next_path=target, failed=False)
            return _render(request, _Page("API key required", body, status=401), logout=False)
        try:
            result = await handler(request, _state(request))
        except FeatureStoreError as exc:
            status = 404 if isinstance(exc, NotFoundError) else status_for(exc)
            status = 422 if status >= 500 and status != 503 else status
            return _error(request, status, public_detail(exc, status), logout=logout)
        if isinstance(result, Response):
            return result
        return _render(request, result, logout=logout)

    return Route(path, endpoint, methods=["GET"])


# -- pages -----------------------------------------------------------------------------------


async def _catalog(request: Request, state: UiState) -> _Page:
    body = pages.catalog_page(state.store.snapshot, _base(request))
    return _Page("Catalog", body, active="")


async def _features(request: Request, state: UiState) -> _Page:
    body = pages.features_page(state.store.snapshot, _base(request))
    return _Page("Features", body, active="features")


async def _view(request: Request, state: UiState) -> _Page:
    name = request.path_params["name"]
    snapshot = state.store.snapshot
    base = _base(request)
    odfv = snapshot.on_demand_views.get(name)
    if odfv is not None:
        body = view_pages.on_demand_page(snapshot, odfv, base, now=utc_now())
        return _Page(f"On-demand view {name}", body)
    record = snapshot.feature_views.get(name)
    if record is None:
        raise FeatureViewNotFoundError(
            name=name,
            candidates=[*snapshot.feature_views, *snapshot.on_demand_views],
            hint="The catalog lists every applied view.",
        )
    store = state.store
    online = view_pages.OnlineFacts(records=None, problem=None)
    if record.view.online:
        try:
            records, epoch = await state.blocking(
                lambda: (
                    store.online.count_records(name),
                    store.online.read_epoch(),
                )
            )
            lost = lost_views([record], epoch)
            problem = lost_reason(lost, epoch, store.online.location) if lost else None
            online = view_pages.OnlineFacts(records=records, problem=problem)
        except FeatureStoreError as exc:
            online = view_pages.OnlineFacts(None, None, error=public_detail(exc, 503))
    validation = await anyio.to_thread.run_sync(store.validation_log.latest, name)
    runs = await anyio.to_thread.run_sync(_validated_windows, store, name)
    history = await anyio.to_thread.run_sync(store.materialization_history.recent, name)
    body = view_pages.view_page(
        snapshot,
        record,
        base,
        now=utc_now(),
        online=online,
        validation=validation,
        runs=runs,
        history=history,
    )
    return _Page(f"Feature view {name}", body)


_HISTORY = 20
"""Validated windows listed on a view's page."""


def _validated_windows(store: FeatureStore, view: str) -> list[ValidationResult]:
    """The view's last validated windows, newest first.

    The validation log keeps one file per window in the view's folder
    (``<start>--<end>.json``, see ``featurestore.validation.result``).
    """
    folder = store.validation_log.root / view
    files = sorted(folder.glob("*--*.json"), reverse=True)[:_HISTORY]
    return [ValidationResult.from_json(json.loads(p.read_text("utf-8"))) for p in files]


async def _service(request: Request, state: UiState) -> _Page:
    name = request.path_params["name"]
    snapshot = state.store.snapshot
    if name not in snapshot.feature_services:
        raise FeatureServiceNotFoundError(
            name=name,
            candidates=snapshot.feature_services,
            hint="The catalog lists every applied service.",
        )
    return _Page(f"Feature service {name}", pages.service_page(snapshot, name, _base(request)))


async def _freshness(request: Request, state: UiState) -> _Page:
    store = state.store
    snapshot = store.snapshot
    checked = [n for n, r in snapshot.feature_views.items() if r.view.suite_json is not None]
    validations = await anyio.to_thread.run_sync(
        lambda: {n: store.validation_log.latest(n) for n in checked}
    )
    lost: dict[str, str] = {}
    online_error = None
    try:
        epoch = await state.blocking(store.online.read_epoch)
        for record in lost_views(snapshot.feature_views.values(), epoch):
            lost[record.view.name] = lost_reason([record], epoch, store.online.location)
    except FeatureStoreError as exc:
        online_error = public_detail(exc, 503)
    body = view_pages.freshness_page(
        snapshot,
        _base(request),
        now=utc_now(),
        validations=validations,
        lost=lost,
        online_error=online_error,
    )
    return _Page("Freshness", body, active="freshness")


async def _lookup(request: Request, state: UiState) -> _Page:
    snapshot = state.store.snapshot
    form = {k: v for k, v in request.query_params.items()}
    selection = form.pop("features", "") or None
    inputs = forms.lookup_inputs(snapshot, selection) if selection else None
    response = None
    error = None
    status = 200
    if selection is not None and inputs is not None:
        try:
            row = forms.parse_inputs(inputs, form)
            if row is not None:
                response = await asyncio.wait_for(
                    state.store.aget_online_features(selection, [row]), state.timeout_s
                )
        except TimeoutError:
            status = 503
            error = f"The online store did not answer within {state.timeout_s:.1f} s."
        except FeatureStoreError as exc:
            status = status_for(exc)
            status = 422 if status >= 500 and status != 503 else status
            error = public_detail(exc, status)
    body = forms.lookup_page(
        snapshot,
        _base(request),
        selection=selection,
        inputs=inputs,
        form=form,
        response=response,
        error=error,
    )
    return _Page("Online lookup", body, active="lookup", status=status)


async def _skew(request: Request, state: UiState) -> _Page:
    return _Page("Skew reports", forms.skew_page(state.store.snapshot, _base(request)), "skew")


def _rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate <= 1.0:
        msg = f"max_mismatch_rate must be a number from 0 to 1, got {text!r}."
        raise EntityFrameError(msg)
    return rate


async def _skew_report(request: Request, state: UiState) -> Response:
    from featurestore.consistency.html import render_html

    params = request.query_params
    service = params.get("service", "")
    since, until = params.get("since", "").strip(), params.get("until", "").strip()
    rate = _rate(params.get("max_mismatch_rate", "0") or "0")
    report = partial(
        state.store.skew_report,
        service,
        since=parse_timestamp(since, what="since") if since else None,
        until=parse_timestamp(until, what="until") if until else None,
    )
    async with state.skew_lock:
        result = await anyio.to_thread.run_sync(report)
    return _html(render_html(result, max_mismatch_rate=rate), csp=_REPORT_CSP)


# -- login, static files, the app ------------------------------------------------------------


def _safe_next(base: str, target: str) -> str:
    """``target`` when it is a page of this UI (no open redirect), else the catalog."""
    inside = target.startswith(f"{base}/") and not target.startswith("//")
    return target if inside and "\\" not in target and "://" not in target else f"{base}/"


async def _login(request: Request) -> Response:
    state = _state(request)
    base = _base(request)
    if not state.checker.enabled:
        return RedirectResponse(f"{base}/", status_code=303)
    if request.method == "GET":
        body = forms.login_page(base, next_path=f"{base}/", failed=False)
        return _render(request, _Page("API key required", body, status=401), logout=False)
    raw = await request.body()
    fields = parse_qs(raw[:_MAX_FORM_BYTES].decode("utf-8", "replace"))
    key = fields.get("key", [""])[0].strip()
    target = _safe_next(base, fields.get("next", [""])[0])
    if not key or not state.checker.allows({b"x-api-key": key.encode()}):
        body = forms.login_page(base, next_path=target, failed=True)
        return _render(request, _Page("API key required", body, status=401), logout=False)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        _COOKIE,
        _session_token(key).decode(),
        path=base or "/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def _logout(request: Request) -> Response:
    base = _base(request)
    response = RedirectResponse(f"{base}/", status_code=303)
    response.delete_cookie(_COOKIE, path=base or "/", httponly=True, samesite="strict")
    return response


@cache
def _static_file(name: str) -> bytes | None:
    if Path(name).suffix not in _STATIC_TYPES or "/" in name or name.startswith("."):
        return None
    item = resources.files("featurestore.ui").joinpath("static", name)
    return item.read_bytes() if item.is_file() else None


async def _static(request: Request) -> Response:
    name = request.path_params["name"]
    content = _static_file(name)
    if content is None:
        return _error(request, 404, f"No UI asset '{name}'.")
    headers = {"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"}
    return Response(content, media_type=_STATIC_TYPES[Path(name).suffix], headers=headers)


async def _favicon(request: Request) -> Response:
    content = _static_file("favicon.svg")
    return Response(content, media_type=_STATIC_TYPES[".svg"])


async def _not_found(request: Request, exc: Exception) -> Response:
    allowed, logout = _access(request)
    message = f"No page at {request.url.path}." if allowed else "Not found."
    return _error(request, 404, message, logout=logout)


async def _crash(request: Request, exc: Exception) -> Response:
    logger.error("UI page %s failed", request.url.path, exc_info=exc)
    return _error(request, 500, "Internal error; the server log has the details.")


def ui_app(state: UiState) -> Starlette:
    """The UI's pages as one app, to be mounted at ``/ui`` (links follow the mount path)."""
    app = Starlette(
        routes=[
            _page_route("/", _catalog),
            _page_route("/features", _features),
            _page_route("/views/{name}", _view),
            _page_route("/services/{name}", _service),
            _page_route("/freshness", _freshness),
            _page_route("/lookup", _lookup),
            _page_route("/skew", _skew),
            _page_route("/skew/report", _skew_report),
            Route("/login", _login, methods=["GET", "POST"]),
            Route("/logout", _logout, methods=["POST"]),
            Route("/static/{name}", _static, methods=["GET"]),
        ],
        exception_handlers={404: _not_found, 405: _not_found, Exception: _crash},
    )
    app.state.ui = state
    return app


def mount_ui(app: FastAPI) -> None:
    """Serve the UI at ``/ui`` of a feature server built by ``create_app``.

    The UI reads the server's store (its registry snapshot, kept current by the server's
    registry watcher) and requires the server's API keys.
    """
    server: ServerState = app.state.featurestore
    state = UiState.of(server.store, server.settings.api_keys)
    app.mount(UI_PATH, ui_app(state), name="ui")
    app.add_route("/favicon.ico", _favicon, include_in_schema=False)


def create_server_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory``: the feature server with the UI at ``/ui``.

    It serves ``$FEATURESTORE_REPO``; ``featurestore serve`` runs it unless ``--no-ui``.
    """
    app = create_app_from_env()
    mount_ui(app)
    return app


def _unapplied(store: FeatureStore) -> str | None:
    """A notice naming the repo's unapplied changes (or why its files do not load), or None."""
    try:
        plan = store.plan()
    except FeatureStoreError as exc:
        return f"The repo's files do not load ({exc}); this UI shows the applied registry."
    if not plan.has_changes:
        return None
    changes = ", ".join(
        f"{c.kind} '{c.name}' ({c.action})" for c in plan.changes if c.action != "unchanged"
    )
    return (
        f"The repo's files differ from the applied registry: {changes}. This UI shows what "
        "was applied; run 'featurestore apply' to register the changes."
    )


def create_ui_app(
    store: FeatureStore | None = None, *, repo_path: str | Path | None = None
) -> Starlette:
    """A server of the UI alone (no online API) for a repo: ``featurestore ui`` runs it.

    Args:
        store: The store to show; the caller owns it. When None, a store is opened on
            ``repo_path`` at startup and closed at shutdown.
        repo_path: The feature repo; default ``$FEATURESTORE_REPO`` or the current directory.

    Returns:
        A Starlette app: the UI at ``/ui``, ``/`` redirecting there.
    """
    owns_store = store is None
    if store is None:
        root = repo_path if repo_path is not None else os.environ.get(REPO_ENV, ".")
        store = FeatureStore(root)
    state = UiState.of(store, store.config.serving.api_keys)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.notice = await anyio.to_thread.run_sync(_unapplied, state.store)
        # The stamp before the read, as the feature server takes it: an apply landing in
        # between is reloaded at the first check.
        stamp = await anyio.to_thread.run_sync(state.store.registry.stamp)
        await anyio.to_thread.run_sync(state.store.refresh)
        watcher = RegistryWatcher(
            state.store,
            interval_s=state.store.config.serving.registry_refresh_s,
            metrics=ServingMetrics(),
            stamp=stamp,
        )
        watcher.start()
        try:
            yield
        finally:
            await watcher.stop()
            await state.store.aclose_connections()
            if owns_store:
                await anyio.to_thread.run_sync(state.store.close)

    async def home(request: Request) -> Response:
        return RedirectResponse(f"{UI_PATH}/", status_code=307)

    return Starlette(
        routes=[
            Route("/", home),
            Route("/favicon.ico", _favicon),
            Mount(UI_PATH, ui_app(state), name="ui"),
        ],
        lifespan=lifespan,
    )


def create_ui_app_from_env() -> Starlette:
    """App factory for ``uvicorn --factory``: the UI of ``$FEATURESTORE_REPO``."""
    return create_ui_app(repo_path=Path(os.environ.get(REPO_ENV, ".")))
