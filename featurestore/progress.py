"""Plain-text progress for long work where no terminal draws bars: notebooks, logs, CI.

:class:`TextProgress` is a materialization progress callback (``progress(view, done, total)``)
that writes a line per view every few seconds and one when the view is done. In a notebook
(an IPython kernel), ``FeatureStore.materialize*`` use it when no callback is given, so the
work is visible there too; the CLI draws rich bars on a terminal instead. Stdlib only.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO, TypeVar

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import TracebackType

__all__ = ["TextProgress", "visible"]

_Callback = TypeVar("_Callback")


@dataclass
class _ViewState:
    started: float
    printed: float
    done: int = 0
    total: int | None = None
    finished: bool = False


class TextProgress:
    """Writes ``Materializing VIEW: DONE/TOTAL rows (N rows/s)`` lines to ``stream``.

    A line is written at most every ``interval_s`` seconds per view, and once when a view
    reaches its total (or, total unknown, when the progress is closed).

    Args:
        stream: Where to write (default: ``sys.stderr`` at the time of each line).
        interval_s: Seconds between two lines of one view.
        description: The verb the lines start with.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> with TextProgress(out, interval_s=60) as progress:
        ...     progress("user_stats", 500, 1000)
        ...     progress("user_stats", 1000, 1000)
        >>> out.getvalue().splitlines()[-1].startswith("Materializing user_stats: 1,000/1,000 rows")
        True
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        interval_s: float = 2.0,
        description: str = "Materializing",
    ) -> None:
        self._stream = stream
        self._interval_s = interval_s
        self._description = description
        self._views: dict[str, _ViewState] = {}

    def __call__(self, view: str, done: int, total: int | None) -> None:
        """Record that ``done`` of ``total`` rows of ``view`` are processed."""
        now = time.monotonic()
        state = self._views.get(view)
        if state is None:
            state = self._views[view] = _ViewState(started=now, printed=now)
        state.done, state.total = done, total
        if total is not None and done >= total and not state.finished:
            state.finished = True
            self._write(view, state, now)
        elif now - state.printed >= self._interval_s:
            self._write(view, state, now)

    def close(self) -> None:
        """Write the last line of every view not reported as done yet."""
        now = time.monotonic()
        for view, state in self._views.items():
            if not state.finished:
                state.finished = True
                self._write(view, state, now)

    def __enter__(self) -> TextProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _write(self, view: str, state: _ViewState, now: float) -> None:
        state.printed = now
        rows = f"{state.done:,}" if state.total is None else f"{state.done:,}/{state.total:,}"
        elapsed = now - state.started
        speed = f", {state.done / elapsed:,.0f} rows/s" if elapsed > 0 and state.done else ""
        stream = self._stream if self._stream is not None else sys.stderr
        stream.write(f"{self._description} {view}: {rows} rows ({elapsed:.1f}s{speed})\n")
        stream.flush()


@contextmanager
def visible(progress: _Callback | None) -> Iterator[_Callback | TextProgress | None]:
    """The progress callback to use: ``progress``, or a notebook's default.

    When ``progress`` is None and this runs in a notebook (an IPython kernel), a
    :class:`TextProgress` is used and closed (last lines written) when the block ends.
    """
    if progress is not None or "ipykernel" not in sys.modules:
        yield progress
        return
    with TextProgress() as text:
        yield text
