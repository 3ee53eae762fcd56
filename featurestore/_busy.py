"""How many requests the feature server has in progress on an event loop.

The server's HTTP protocol counts them (``featurestore.serving.protocol``); the Redis store's
async read looks at the count of its loop (``featurestore.online.redis``). When its request
is the only one in progress, the read waits for Redis's reply on the socket itself, for a
bounded time, instead of going round the event loop: with nothing else to run, the loop
round (its poll, the readiness callback, the future and the task's wake-up) is pure cost,
about 8 % of a one-entity request's CPU at concurrency 1. With other requests in progress
the read goes round the loop, so their work overlaps Redis's. A loop nothing counts on (a
user's own application calling ``aget_online_features``) has no count: its reads always go
round the loop, which is never blocked by them.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

__all__ = ["RequestCount", "counted_requests", "request_count_of"]


class RequestCount:
    """The requests in progress on one loop (``value``), kept by the server's protocol.

    ``alone`` is true only at a steady concurrency of one: after a moment with several
    requests in progress it stays false for the next ``CROWDED_READS`` reads, so that under
    concurrent load reads keep overlapping round the loop rather than switching on each gap.

    Example:
        >>> count = RequestCount()
        >>> count.started()
        >>> count.alone()
        True
        >>> count.started()  # a second request
        >>> count.alone()
        False
        >>> count.value = 1  # it finished; the crowd was recent
        >>> count.alone()
        False
    """

    __slots__ = ("crowded", "value")

    CROWDED_READS = 64

    def __init__(self) -> None:
        self.value = 0
        self.crowded = 0

    def started(self) -> None:
        """A request begins."""
        self.value += 1
        if self.value > 1:
            self.crowded = self.CROWDED_READS

    def alone(self) -> bool:
        """Whether the caller's request is the only one, and has been for a while."""
        if self.value > 1:
            return False
        if self.crowded:
            self.crowded -= 1
            return False
        return True


_BY_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RequestCount] = (
    weakref.WeakKeyDictionary()
)


def request_count_of(loop: asyncio.AbstractEventLoop) -> RequestCount | None:
    """The count of ``loop``, or None when no server counts its requests there."""
    return _BY_LOOP.get(loop)


def counted_requests(loop: asyncio.AbstractEventLoop) -> RequestCount:
    """The count of ``loop``, made when missing (the server's protocol keeps it)."""
    count = _BY_LOOP.get(loop)
    if count is None:
        count = _BY_LOOP[loop] = RequestCount()
    return count
