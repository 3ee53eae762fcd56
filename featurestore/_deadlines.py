"""Deadlines on an event loop, checked by one sweeping timer per table instead of one each.

Arming and cancelling an event-loop timer costs about 3 us on uvloop (``asyncio.timeout``
about 5 us), a tenth of a small lookup, and nearly every deadline is cancelled: a request's
head and body almost always arrive in the packet that starts it, and Redis answers a read
long before its timeout. A deadline here is a dict entry instead; one timer, armed only while
some deadline is pending, sweeps the entries every ``resolution_s`` and runs the callbacks of
those that are due. A deadline therefore fires between its time and ``resolution_s`` after
it. The feature server's header and body deadlines (``serving.header_timeout_s``,
``serving.body_timeout_s``) use the loop's table of :data:`RESOLUTION_S`; the Redis reads
(``online_store.timeout_s``) one of at most a tenth of their timeout (:func:`resolution_for`).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Hashable

__all__ = ["RESOLUTION_S", "Deadlines", "deadlines_of", "resolution_for"]

RESOLUTION_S: Final = 0.1
"""How often the pending deadlines of a default table are checked (at most this late)."""


def resolution_for(delay_s: float) -> float:
    """The resolution that fires a deadline of ``delay_s`` at most 10 % late (0.1 s at most).

    Example:
        >>> resolution_for(5.0), resolution_for(0.05)
        (0.1, 0.005)
    """
    return min(RESOLUTION_S, delay_s / 10)


class Deadlines:
    """Callbacks to run when their deadline passes, unless removed before (one loop's).

    Args:
        loop: The event loop whose clock and timer are used.
        resolution_s: How often pending deadlines are checked.

    Example:
        >>> import asyncio
        >>> async def demo() -> list[str]:
        ...     fired: list[str] = []
        ...     deadlines = Deadlines(asyncio.get_running_loop())
        ...     deadlines.add("slow", 0.01, lambda: fired.append("slow"))
        ...     deadlines.add("fast", 0.01, lambda: fired.append("fast"))
        ...     deadlines.remove("fast")  # answered in time
        ...     await asyncio.sleep(0.2)
        ...     return fired
        >>> asyncio.run(demo())
        ['slow']
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, resolution_s: float = RESOLUTION_S) -> None:
        self._loop = loop
        self._resolution_s = resolution_s
        self._due: dict[Hashable, tuple[float, Callable[[], object]]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def add(self, key: Hashable, delay_s: float, callback: Callable[[], object]) -> None:
        """Run ``callback`` once ``delay_s`` has passed, unless ``key`` is removed first.

        A key already pending gets the new deadline and callback.
        """
        self._due[key] = (self._loop.time() + delay_s, callback)
        if self._timer is None:
            self._timer = self._loop.call_later(self._resolution_s, self._sweep)

    def remove(self, key: Hashable) -> None:
        """Forget ``key``'s deadline (nothing happens if it has none)."""
        self._due.pop(key, None)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._due

    def _sweep(self) -> None:
        self._timer = None
        now = self._loop.time()
        due = [key for key, (deadline, _) in self._due.items() if deadline <= now]
        for key in due:
            _, callback = self._due.pop(key)
            callback()
        if self._due and self._timer is None:
            self._timer = self._loop.call_later(self._resolution_s, self._sweep)


_BY_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, Deadlines]] = (
    weakref.WeakKeyDictionary()
)


def deadlines_of(loop: asyncio.AbstractEventLoop, resolution_s: float = RESOLUTION_S) -> Deadlines:
    """The ``Deadlines`` of ``loop`` swept every ``resolution_s`` (one per loop and resolution)."""
    tables = _BY_LOOP.get(loop)
    if tables is None:
        tables = _BY_LOOP[loop] = {}
    deadlines = tables.get(resolution_s)
    if deadlines is None:
        deadlines = tables[resolution_s] = Deadlines(loop, resolution_s)
    return deadlines
