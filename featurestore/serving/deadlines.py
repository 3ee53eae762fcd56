"""Request deadlines of the feature server, checked by one sweeping timer per event loop.

Arming and cancelling an event-loop timer costs about 3 us on uvloop (``asyncio.timeout``
about 5 us), a tenth of a small lookup, and nearly every deadline is cancelled: a request's
head and body almost always arrive in the packet that starts it. A deadline here is a dict
entry instead; one timer, armed only while some deadline is pending, sweeps the entries every
``RESOLUTION_S`` and runs the callbacks of those that are due. A deadline therefore fires
between its time and ``RESOLUTION_S`` after it, which is well inside the second-scale
timeouts it enforces (``serving.header_timeout_s``, ``serving.body_timeout_s``).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Hashable

__all__ = ["RESOLUTION_S", "Deadlines", "deadlines_of"]

RESOLUTION_S: Final = 0.1
"""How often pending deadlines are checked (at most this late)."""


class Deadlines:
    """Callbacks to run when their deadline passes, unless removed before (one loop's).

    Args:
        loop: The event loop whose clock and timer are used.

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

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._due: dict[Hashable, tuple[float, Callable[[], object]]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def add(self, key: Hashable, delay_s: float, callback: Callable[[], object]) -> None:
        """Run ``callback`` once ``delay_s`` has passed, unless ``key`` is removed first.

        A key already pending gets the new deadline and callback.
        """
        self._due[key] = (self._loop.time() + delay_s, callback)
        if self._timer is None:
            self._timer = self._loop.call_later(RESOLUTION_S, self._sweep)

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
            self._timer = self._loop.call_later(RESOLUTION_S, self._sweep)


_BY_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Deadlines] = (
    weakref.WeakKeyDictionary()
)


def deadlines_of(loop: asyncio.AbstractEventLoop) -> Deadlines:
    """The ``Deadlines`` of ``loop`` (one per loop, created on first use)."""
    deadlines = _BY_LOOP.get(loop)
    if deadlines is None:
        deadlines = _BY_LOOP[loop] = Deadlines(loop)
    return deadlines
