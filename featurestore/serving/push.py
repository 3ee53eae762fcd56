"""``POST /push``: Feast's push body, written through ``FeatureStore.push`` (DESIGN G8).

The body is Feast's: ``{"push_source_name": ..., "df": {column: [values]}, "to": ...}``
(``df`` column-major; ``to`` is ``online`` by default, as in Feast, or ``offline`` or
``online_and_offline``). ``push_source_name`` names the feature view pushed to. Unknown body
fields (Feast's ``allow_registry_cache``, ``transform_on_write``) are ignored.

Pushing is a write: with API keys configured it needs a key from ``serving.push_api_keys``;
a key only in ``serving.api_keys`` (read-only) gets 403. Rows are checked before anything is
written, and a bad row gets a 422 naming the column and the row. The push itself (fsync of
the push log, then the online write) runs in a thread pool of its own, never on the event
loop nor in the lookups' threads, so pushes do not hold up lookups. It is not cut short by a
timeout: an answer means the rows were written (a 503 after a timed-out push that still
completed would make clients push the rows twice).

A server process of its own freezes its startup heap (``ServerState.freeze_heap``); the first
push imports what pushes use (the Parquet writer, the push modules, and pandas, which
pyarrow imports to convert the body's lists), about 33,000 objects that each full garbage
collection would walk again (9-14 ms each). They are frozen too, after the first push that
succeeds.
"""

from __future__ import annotations

import asyncio
import gc
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from featurestore.errors import ValidationError
from featurestore.serving.auth import ApiKeyChecker
from featurestore.serving.errors import ServingError
from featurestore.serving.schemas import ErrorResponse

if TYPE_CHECKING:
    from featurestore.materialization.push import PushResult
    from featurestore.serving.app import ServerState

__all__ = ["PUSH_PATH", "push_router"]

PUSH_PATH: Final = "/push"
_MODES: Final = ("online", "offline", "online_and_offline")
_PUSH_THREADS: Final = 8
_UNAUTHORIZED: Final = (
    "Missing or invalid API key: send 'Authorization: Bearer <key>' with a key listed in "
    "serving.push_api_keys."
)
_READ_ONLY: Final = (
    "This API key may read but not push. Push with a key listed in serving.push_api_keys."
)

push_router = APIRouter()
"""The router holding ``POST /push`` (the app includes it)."""

_REQUEST_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["push_source_name", "df"],
    "properties": {
        "push_source_name": {"type": "string", "description": "The feature view to push to."},
        "df": {
            "type": "object",
            "description": "Column-major rows: join keys, features, the source's timestamp "
            "field (ISO 8601; without an offset means UTC) and optionally its created "
            "timestamp field.",
            "additionalProperties": {"type": "array", "items": {}},
        },
        "to": {"type": "string", "enum": list(_MODES), "default": "online"},
    },
}
_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in (
        (401, "Missing or invalid API key."),
        (403, "The API key may read but not push."),
        (404, "Unknown feature view (the message names the closest)."),
        (422, "Malformed body, or a bad row (the message names the column and the row)."),
        (503, "The online store is unreachable; retry."),
    )
}


def _push_executor(request: Request) -> ThreadPoolExecutor:
    """The threads pushes run in: their own, so fsyncs never hold the lookups' threads."""
    executor: ThreadPoolExecutor | None = getattr(
        request.app.state, "featurestore_push_executor", None
    )
    if executor is None:
        executor = ThreadPoolExecutor(max_workers=_PUSH_THREADS, thread_name_prefix="fs-push")
        request.app.state.featurestore_push_executor = executor
    return executor


def _push_auth(request: Request, state: ServerState) -> ApiKeyChecker:
    checker: ApiKeyChecker | None = getattr(request.app.state, "featurestore_push_auth", None)
    if checker is None:
        checker = ApiKeyChecker(state.settings.push_api_keys)
        request.app.state.featurestore_push_auth = checker
    return checker


def _authorize(request: Request, state: ServerState) -> None:
    """Refuse a push without a write key (401), or with a read-only key (403)."""
    writers = _push_auth(request, state)
    if not (state.auth.enabled or writers.enabled):
        return
    headers = {k.lower(): v for k, v in request.headers.raw}
    if writers.enabled and writers.allows(headers):
        return
    if state.auth.enabled and state.auth.allows(headers):
        raise ServingError(_READ_ONLY, status_code=403)
    raise ServingError(_UNAUTHORIZED, status_code=401)


def _freeze_push_heap(request: Request, state: ServerState) -> None:
    """After a server process's first push, freeze what it imported (see the module doc)."""
    if state.freeze_heap and not getattr(request.app.state, "featurestore_push_frozen", False):
        request.app.state.featurestore_push_frozen = True
        gc.collect()  # once: the garbage of this moment is not frozen for good with the rest
        gc.freeze()


def _parse(body: bytes) -> tuple[str, dict[str, list[object]], str]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        msg = f"The body is not valid JSON ({exc}). Send Feast's push body."
        raise ServingError(msg) from None
    if not isinstance(data, dict):
        msg = "The body must be a JSON object: {push_source_name, df, to}."
        raise ServingError(msg)
    name = data.get("push_source_name")
    if not isinstance(name, str) or not name:
        msg = "'push_source_name' is required: the name of the feature view to push to."
        raise ServingError(msg)
    df = data.get("df")
    if not isinstance(df, dict) or not all(isinstance(v, list) for v in df.values()):
        msg = "'df' is required: an object of columns, each a list of values (column-major)."
        raise ServingError(msg)
    to = data.get("to", "online")
    if to not in _MODES:
        msg = f"'to' is {to!r}; use one of {', '.join(_MODES)}."
        raise ServingError(msg)
    return name, df, to


@push_router.post(
    PUSH_PATH,
    summary="Push rows (Feast-compatible)",
    description="Write rows of a feature view now: to its push log (offline, durable) and to "
    "the online store, per 'to'. See docs/push.md.",
    responses=_ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _REQUEST_SCHEMA}},
        }
    },
)
async def push(request: Request) -> Response:
    """``POST /push``: check the key, parse Feast's body, push in the thread pool."""
    state: ServerState = request.app.state.featurestore
    _authorize(request, state)
    name, df, to = _parse(await request.body())
    store = state.store

    def call() -> PushResult:
        try:
            return store.push(name, df, to=to)  # type: ignore[arg-type]  # checked by _parse
        except ValidationError as exc:
            raise ServingError(str(exc)) from exc

    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(_push_executor(request), call)
    _freeze_push_heap(request, state)
    body = orjson.dumps({"view": result.view, "rows": result.rows, "written": result.written})
    return Response(body, media_type="application/json")
