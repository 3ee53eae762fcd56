"""Connection limits of the feature server: uvicorn's httptools protocol, bounded.

uvicorn closes a kept-alive connection after ``timeout_keep_alive``, but not a new connection
that never sends a byte, nor one that sends its headers slowly or without end, and its
httptools parser accepts headers of any size. ``LimitedHttpToolsProtocol`` adds the bounds of
the ``serving:`` settings, per connection, before any request reaches the app:

- ``idle_timeout_s``: a connection without a request in progress (new, or kept alive after a
  response) is closed;
- ``header_timeout_s``: from a request's first byte to the end of its headers (408, closed;
  checked by the loop's ``Deadlines``, not a timer per request: see
  ``featurestore/_deadlines.py``);
- ``max_header_bytes``: bytes received while a request's head is incomplete (431, closed);
- ``max_connections``: at the limit, a new connection closes the connection idle the longest
  (or is itself closed when every connection has a request in progress). The limit is lowered
  to fit the process's open-file limit, so idle sockets cannot starve ``/health`` of a file.

The limits come from the app: its lifespan puts ``ConnectionLimits`` in the ASGI lifespan state
under ``LIMITS_KEY``, which uvicorn hands to every protocol instance. Body time is bounded by
the endpoint itself (``serving.body_timeout_s``). Run with
``uvicorn.run(app, http=HTTP_PROTOCOL)``; ``featurestore serve`` does.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from featurestore._busy import counted_requests
from featurestore._deadlines import deadlines_of

if TYPE_CHECKING:
    import asyncio

    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from featurestore.repo.config import ServingConfig

__all__ = [
    "FILE_RESERVE",
    "HTTP_PROTOCOL",
    "LIMITS_KEY",
    "ConnectionLimits",
    "LimitedHttpToolsProtocol",
]

logger = logging.getLogger(__name__)

HTTP_PROTOCOL: Final = "featurestore.serving.protocol:LimitedHttpToolsProtocol"
"""uvicorn's ``http`` setting that applies the limits."""
LIMITS_KEY: Final = "featurestore.connection_limits"
"""Where the app's lifespan state holds its ``ConnectionLimits``."""
FILE_RESERVE: Final = 64
"""Open files kept free of client connections (store, registry, logs, listening socket)."""


def _open_file_limit() -> int | None:
    if sys.platform == "win32":  # pragma: no cover - no RLIMIT_NOFILE
        return None
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The per-connection bounds of ``LimitedHttpToolsProtocol`` (see the module docs).

    Attributes:
        max_header_bytes: Largest request head.
        header_timeout_s: Time from a request's first byte to the end of its headers.
        idle_timeout_s: Time a connection may stay open without a request in progress.
        max_connections: Open connections of this process.
        requested_connections: ``serving.max_connections`` as configured (before the
            open-file limit lowered it).
    """

    max_header_bytes: int
    header_timeout_s: float
    idle_timeout_s: float
    max_connections: int
    requested_connections: int

    @classmethod
    def from_settings(cls, settings: ServingConfig) -> ConnectionLimits:
        """The limits of ``serving:``, with ``max_connections`` fitted to the open-file limit.

        Example:
            >>> from featurestore.repo.config import ServingConfig
            >>> ConnectionLimits.from_settings(ServingConfig(max_connections=10)).max_connections
            10
        """
        requested = settings.max_connections
        files = _open_file_limit()
        allowed = requested if files is None else min(requested, max(files - FILE_RESERVE, 1))
        return cls(
            max_header_bytes=settings.max_header_bytes,
            header_timeout_s=settings.header_timeout_s,
            idle_timeout_s=settings.idle_timeout_s,
            max_connections=allowed,
            requested_connections=requested,
        )


def _default_limits() -> ConnectionLimits:
    from featurestore.repo.config import ServingConfig

    return ConnectionLimits.from_settings(ServingConfig())


_REASONS: Final = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
_FULL_WARNING_EVERY_S: Final = 10.0
_last_full_warning = float("-inf")


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the connection limits of the module docs."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = app_state.get(LIMITS_KEY)
        self.limits: ConnectionLimits = (
            limits if isinstance(limits, ConnectionLimits) else _default_limits()
        )
        # Concurrency is bounded here (closing idle connections), not by uvicorn's 503s.
        self.limit_concurrency = None
        self.timeout_keep_alive = self.limits.idle_timeout_s  # type: ignore[assignment]  # uvicorn types it int; call_later takes a float
        self._in_head = False
        self._head_bytes = 0
        self._deadlines = deadlines_of(self.loop)
        self._idle_since = 0.0
        # Requests of this connection in progress (pipelined ones too), counted in the loop's
        # total, by which a lone request's Redis read waits on its socket (featurestore._busy).
        self._busy = counted_requests(self.loop)
        self._requests = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Register the connection, arm its idle timer, and make room under the limit."""
        super().connection_made(transport)
        self._idle_since = self.loop.time()
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )
        if len(self.connections) > self.limits.max_connections:
            self._make_room()

    def _idle(self) -> bool:
        cycle = self.cycle
        return (cycle is None or cycle.response_complete) and not self.transport.is_closing()  # type: ignore[redundant-expr]  # uvicorn types cycle as set

    def _make_room(self) -> None:
        idle = [
            c
            for c in self.connections
            if c is not self and isinstance(c, LimitedHttpToolsProtocol) and c._idle()
        ]
        victim = min(idle, key=lambda c: c._idle_since) if idle else self
        global _last_full_warning
        now = self.loop.time()
        if now - _last_full_warning >= _FULL_WARNING_EVERY_S:  # a flood must not flood the log
            _last_full_warning = now
            logger.warning(
                "%d connections open (serving.max_connections %d): closing the %s",
                len(self.connections),
                self.limits.max_connections,
                "longest-idle one" if victim is not self else "new one (all are busy)",
            )
        victim.transport.close()

    def on_message_begin(self) -> None:
        """A request starts: its head must be complete within ``header_timeout_s``."""
        super().on_message_begin()
        self._requests += 1
        self._busy.started()
        self._in_head = True
        self._head_bytes = 0
        self._deadlines.add(self, self.limits.header_timeout_s, self._head_timeout)

    def data_received(self, data: bytes) -> None:
        """Parse ``data``; refuse a request whose head grows past ``max_header_bytes``."""
        super().data_received(data)
        if self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._refuse(431, "Request head over serving.max_header_bytes.")

    def on_headers_complete(self) -> None:
        """The head is in: stop its timer and hand the request to uvicorn (and the app)."""
        self._in_head = False
        self._cancel_head_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        """The connection is idle again (kept alive) from now."""
        self._idle_since = self.loop.time()
        if self._requests:
            self._requests -= 1
            self._busy.value -= 1
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection, its timers and its requests in progress."""
        self._cancel_head_deadline()
        self._busy.value -= self._requests
        self._requests = 0
        super().connection_lost(exc)

    def _cancel_head_deadline(self) -> None:
        self._deadlines.remove(self)

    def _head_timeout(self) -> None:
        if self._in_head and not self.transport.is_closing():
            self._refuse(408, "Request head not received within serving.header_timeout_s.")

    def _refuse(self, status: int, message: str) -> None:
        self._in_head = False
        self._cancel_head_deadline()
        body = message.encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s"
            % (status, _REASONS[status], len(body), body)
        )
        self.transport.close()
        logger.debug("closed a connection from %s: %d %s", self.client, status, message)
