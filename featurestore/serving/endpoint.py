"""``POST /get-online-features``: the server's hot path, one pure-ASGI endpoint.

It is mounted as a plain Starlette route (``online_routes``), so it skips FastAPI's request
object, dependency solving and response model, which cost more CPU per request than the lookup
itself; ``serving/openapi.py`` documents it in the OpenAPI schema. Every lookup goes through
this one class: auth, limits, parsing, the store call, encoding and error replies.

The API key is checked from the headers before any body byte is read, and the body must arrive
within ``serving.body_timeout_s`` (408 beyond); a request refused before its body was read is
answered with ``Connection: close``, so the server never drains or buffers what it refused.

Small lookups (at most ``INLINE_MAX_ROWS`` entity rows) run on the event loop
(``FeatureStore.aget_online_features``): planning and decoding are CPU work done in place, and
a Redis read is awaited on the loop's own connections, bounded by the store's ``timeout_s``,
so a stalled Redis never blocks the loop: ``/health`` and other requests are answered while a
lookup waits, and the lookup gets 503 after ``timeout_s``. Handing small lookups to a worker
thread would cost 90-150 us of CPU per request in GIL hand-offs (measured with bench_http.py).
A SQLite read is a local file read that never waits on a network: it runs inline. Larger
lookups, whose decoding is longer, run in the thread pool (bounded by the server's read
timeout).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Final, TypeVar

import orjson

from featurestore._deadlines import deadlines_of
from featurestore._time import utc_now
from featurestore.errors import (
    FeatureStoreError,
    OnlineStoreUnavailableError,
    RegistryConflictError,
)
from featurestore.serving.encoding import encode_online_response
from featurestore.serving.errors import (
    RETRY_AFTER_S,
    RequestTooLargeError,
    ServingError,
    error_body,
    public_detail,
    status_for,
)
from featurestore.serving.middleware import request_id_of
from featurestore.serving.schemas import OnlineQuery, parse_request

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable, MutableMapping
    from datetime import datetime

    from featurestore._deadlines import Deadlines
    from featurestore.online.response import OnlineResponse
    from featurestore.serving.app import ServerState
    from featurestore.serving.middleware import Reply

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]

T = TypeVar("T")

__all__ = [
    "INLINE_MAX_ROWS",
    "ONLINE_PATHS",
    "OnlineFeaturesEndpoint",
    "error_reply",
    "require_key",
    "run_blocking",
]

logger = logging.getLogger(__name__)

ONLINE_PATHS: Final = ("/get-online-features", "/v1/get-online-features")
"""The paths of the endpoint (POST only)."""

INLINE_MAX_ROWS: Final = 8
"""Lookups of at most this many entity rows run on the event loop (see the module docs)."""

_JSON: Final = (b"content-type", b"application/json")
_CLOSE: Final = (b"connection", b"close")
_ALLOW: Final = (b"allow", b"POST")
_POST_ONLY: Final = (
    "Method Not Allowed: send lookups as POST with a JSON body like "
    '{"entities": {"user_id": [7]}, "features": ["user_stats:txn_count_7d"]}.'
)
_UNAUTHORIZED: Final = (
    "Missing or invalid API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>' "
    "with one of the keys in serving.api_keys."
)
_NOT_JSON: Final = (
    "Request body is not valid JSON. Send a JSON object like "
    '{"entities": {"user_id": [7]}, "features": ["user_stats:txn_count_7d"]}.'
)


def require_key(state: ServerState, headers: Iterable[tuple[bytes, bytes]]) -> None:
    """Refuse (401) a request without a valid API key, when keys are configured."""
    if state.auth.enabled and not state.auth.allows(dict(headers)):
        raise ServingError(_UNAUTHORIZED, status_code=401)


class _Disconnected(Exception):
    """The client went away before sending its whole body."""


def _too_large(limit: int) -> RequestTooLargeError:
    msg = (
        f"Request body is over the server's limit of {limit} bytes "
        "(serving.max_body_bytes); send fewer entities per request."
    )
    return RequestTooLargeError(msg)


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _Disconnected
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def run_blocking(state: ServerState, call: Callable[[], T]) -> T:
    """Run a blocking store call in the server's thread pool, bounded by its read timeout."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(state.read_timeout_s):
            return await loop.run_in_executor(state.executor, call)
    except TimeoutError:
        msg = f"The online store did not answer within {state.read_timeout_s:.1f} s."
        raise OnlineStoreUnavailableError(msg) from None


async def _lookup(state: ServerState, query: OnlineQuery, request_time: datetime) -> OnlineResponse:
    store = state.store
    selection = query.feature_selection
    entities = query.entities
    full_names = query.full_feature_names
    if query.row_count <= INLINE_MAX_ROWS:
        return await store.aget_online_features(
            selection, entities, full_feature_names=full_names, request_time=request_time
        )

    def lookup() -> OnlineResponse:
        return store.get_online_features(
            selection, entities, full_feature_names=full_names, request_time=request_time
        )

    return await run_blocking(state, lookup)


def _views_of(state: ServerState, query: OnlineQuery) -> dict[str, str]:
    """Output name -> feature view of a request's features (cached per registry snapshot)."""
    store = state.store
    key = (id(store.snapshot), query.selection_key, query.full_feature_names)
    views = state.views_cache.get(key)
    if views is None:
        if len(state.views_cache) > 1024:
            state.views_cache.clear()
        try:
            refs = store.resolve(query.feature_selection)
        except FeatureStoreError:
            refs = []
        full = query.full_feature_names
        views = {ref.output_name(full_feature_names=full): ref.view for ref in refs}
        state.views_cache[key] = views
    return views


async def _answer(state: ServerState, body: bytes) -> bytes:
    """The JSON body answering a get-online-features request body (auth already checked)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ServingError(_NOT_JSON) from None
    query = parse_request(data)
    rows = query.row_count
    settings = state.settings
    if rows > settings.max_entities:
        msg = (
            f"The request has {rows} entity rows; the server accepts at most "
            f"{settings.max_entities} (serving.max_entities). Split the request."
        )
        raise RequestTooLargeError(msg)
    metrics = state.metrics
    metrics.entities_per_request.observe(rows)
    request_time = utc_now()
    start = time.perf_counter()
    try:
        response = await _lookup(state, query, request_time)
    except RegistryConflictError:
        state.conflict_serial = state.store.snapshot.serial  # /ready tells until the next apply
        raise
    metrics.online_read_duration.observe(time.perf_counter() - start)
    return encode_online_response(
        response, views=_views_of(state, query), request_time=request_time, metrics=metrics
    )


def error_reply(exc: FeatureStoreError, request_id: str) -> tuple[int, dict[str, str], bytes]:
    """Status, extra headers and JSON body answering ``exc`` (logged at the right level)."""
    status = status_for(exc)
    headers: dict[str, str] = {}
    if status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_S)
        logger.warning("request %s: answered 503: %s", request_id, exc)
    elif status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    elif status >= 500:
        logger.error("request %s failed", request_id, exc_info=exc)
    else:
        logger.debug("request %s refused (%d): %s", request_id, status, exc)
    return status, headers, error_body(public_detail(exc, status), request_id)


class OnlineFeaturesEndpoint:
    """Pure-ASGI ``POST /get-online-features`` (the app wraps it in ``ServingMiddleware``).

    Args:
        state: The server state (store, settings, auth, metrics, thread pool).
    """

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadlines: Deadlines | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request (ASGI)."""
        reply = await self.respond(scope, receive)
        if reply is not None:
            status, headers, payload = reply
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": payload})

    async def respond(self, scope: Scope, receive: Receive) -> Reply | None:
        """The reply to one request: status, headers and body (None: the client left).

        ``ServingMiddleware.answer`` sends it (the server's path); ``__call__`` is the same
        endpoint as a plain ASGI app.
        """
        state = self.state
        body_read = False
        try:
            if scope["method"] != "POST":
                raise ServingError(_POST_ONLY, status_code=405)
            require_key(state, scope["headers"])  # before reading (and buffering) any body
            body = await self._read_body_in_time(receive)
            body_read = True
            payload = await _answer(state, body)
        except _Disconnected:
            return None
        except FeatureStoreError as exc:
            status, extra, payload = error_reply(exc, request_id_of(scope))
            headers = [_JSON, (b"content-length", b"%d" % len(payload))]
            headers.extend((k.lower().encode(), v.encode()) for k, v in extra.items())
            if status == 405:
                headers.append(_ALLOW)
            if not body_read:
                headers.append(_CLOSE)
            return status, headers, payload
        return 200, [_JSON, (b"content-length", b"%d" % len(payload))], payload

    async def _read_body_in_time(self, receive: Receive) -> bytes:
        """The request body, which must arrive within ``serving.body_timeout_s`` (408 beyond).

        Nearly always the whole body came with the head, and ``receive`` returns it without
        waiting: the reading is stepped once by hand, and only a reading that has to wait gets
        a deadline, one entry of the loop's ``Deadlines`` (``featurestore/_deadlines.py``),
        which cancels this task when it passes. Keeping that deadline costs 3-4 us of CPU per
        request, as much as a tenth of a small lookup.
        """
        settings = self.state.settings
        reading = _read_body(receive, settings.max_body_bytes)
        try:
            waiting = reading.send(None)
        except StopIteration as done:
            body: bytes = done.value
            return body
        loop = asyncio.get_running_loop()
        deadlines = self._deadlines
        if deadlines is None or self._loop is not loop:
            self._loop = loop
            deadlines = self._deadlines = deadlines_of(loop)
        task = asyncio.current_task(loop)
        assert task is not None  # an ASGI app runs in a task
        deadlines.add(task, settings.body_timeout_s, task.cancel)
        try:
            return await _Resumed(reading, waiting)
        except asyncio.CancelledError:
            if task in deadlines:  # cancelled by someone else (shutdown)
                raise
            task.uncancel()
            msg = (
                f"The request body did not arrive within {settings.body_timeout_s:g} s "
                "(serving.body_timeout_s)."
            )
            raise ServingError(msg, status_code=408) from None
        finally:
            deadlines.remove(task)


class _Resumed:
    """Awaits the rest of a coroutine stepped by hand until it waited on ``waiting``.

    What ``await`` would have done from the start: what the coroutine waits on goes to the
    task, and what the task sends or throws (a result, a cancellation) goes back to it.
    """

    __slots__ = ("_coro", "_waiting")

    def __init__(self, coro: Coroutine[Any, Any, bytes], waiting: Any) -> None:
        self._coro = coro
        self._waiting = waiting

    def __await__(self) -> Generator[Any, Any, bytes]:
        coro, waiting = self._coro, self._waiting
        while True:
            try:
                sent = yield waiting
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # thrown in by the task: a cancellation
                try:
                    waiting = coro.throw(exc)
                except StopIteration as done:
                    result: bytes = done.value
                    return result
            else:
                try:
                    waiting = coro.send(sent)
                except StopIteration as done:
                    result = done.value
                    return result
