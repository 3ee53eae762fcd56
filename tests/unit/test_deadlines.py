"""The sweeping deadline table (featurestore/_deadlines.py) against a model of its promise.

The table runs on a loop whose clock the test moves by hand (the table uses only the loop's
``time`` and ``call_later``), so no test waits or measures time. The promise, checked after
every step of random adds, removals and clock moves: a callback runs at most once per add,
never before its deadline, never after its key was removed or given a new deadline, and at
most one resolution after its deadline; and the table keeps at most one timer armed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore._deadlines import RESOLUTION_S, Deadlines, deadlines_of, resolution_for


class _ManualLoop:
    """A loop clock moved by the test, with call_later (what the table uses of a loop)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[_Timer] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], object]) -> _Timer:
        timer = _Timer(self.now + delay, callback)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        """Move the clock, running every timer that falls due on the way, in time order."""
        end = self.now + seconds
        while True:
            pending = [t for t in self.timers if not t.cancelled and t.when <= end]
            if not pending:
                break
            timer = min(pending, key=lambda t: t.when)
            self.timers.remove(timer)
            self.now = max(self.now, timer.when)
            timer.callback()
        self.now = end

    def armed(self) -> int:
        return sum(not t.cancelled for t in self.timers)


class _Timer:
    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when, self.callback, self.cancelled = when, callback, False

    def cancel(self) -> None:
        self.cancelled = True


_steps = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 4), st.floats(0.0, 1.0)),
        st.tuples(st.just("remove"), st.integers(0, 4), st.just(0.0)),
        st.tuples(st.just("advance"), st.just(0), st.floats(0.0, 0.5)),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(steps=_steps, resolution=st.sampled_from([RESOLUTION_S, 0.01, 0.25]))
def test_deadlines_fire_once_in_time_unless_removed(
    steps: list[tuple[str, int, float]], resolution: float
) -> None:
    loop = _ManualLoop()
    table = Deadlines(loop, resolution)  # type: ignore[arg-type]  # the clock is all it uses
    fired: list[tuple[int, int, float]] = []  # (key, add number, when)
    pending: dict[int, tuple[int, float]] = {}  # model: key -> (add number, deadline)
    adds = 0

    def check() -> None:
        assert loop.armed() <= 1
        for _, number, when in fired:
            assert when >= deadline_of[number]
            assert when <= deadline_of[number] + resolution + 1e-9
        numbers = [number for _, number, _ in fired]
        assert len(numbers) == len(set(numbers))
        for _, deadline in pending.values():  # nothing overdue by more than a resolution
            assert deadline + resolution > loop.now - 1e-9

    deadline_of: dict[int, float] = {}
    for op, key, value in steps:
        if op == "add":
            adds += 1
            number = adds

            def callback(key: int = key, number: int = number) -> None:
                assert pending.get(key, (None,))[0] == number  # not removed nor replaced
                del pending[key]
                fired.append((key, number, loop.now))

            deadline_of[number] = loop.now + value
            pending[key] = (number, loop.now + value)
            table.add(key, value, callback)
        elif op == "remove":
            pending.pop(key, None)
            table.remove(key)
        else:
            loop.advance(value)
        assert set(pending) == {k for k in range(5) if k in table}
        check()
    loop.advance(1.0 + 2 * resolution)  # everything still pending falls due and fires
    assert not pending
    assert loop.armed() == 0
    check()


def test_one_table_per_loop_and_resolution() -> None:
    async def tables() -> tuple[Any, ...]:
        loop = asyncio.get_running_loop()
        return (
            deadlines_of(loop),
            deadlines_of(loop, RESOLUTION_S),
            deadlines_of(loop, resolution_for(0.05)),
        )

    default, same, fine = asyncio.run(tables())
    assert default is same
    assert fine is not default
    assert resolution_for(0.05) == 0.005
    assert resolution_for(30.0) == RESOLUTION_S
