"""THE candidate window of G1/G3 (docs/concepts.md, "Guarantees"), and every form derived from it.

A row at event time ``e`` is a candidate at time ``t`` if and only if::

    t - ttl <= e <= t        (both bounds inclusive; a ttl of None or zero is unlimited)

:func:`in_window` is that definition on microseconds (Python integers, which never
overflow). Every other form of it is here, property-tested against :func:`in_window`
(``tests/property/test_rule_forms.py``), and each handles overflow the one way described
here: the lower bound ``t - ttl`` is clamped to the smallest ``int64`` (:func:`lower_bound`),
which every stored time is at or above, so clamping never changes the answer:

* :func:`ttl_micros`: a view's ttl as microseconds (None = unlimited), capped at
  :data:`MAX_TTL_US` (which changes nothing for two times less than ~146,000 years apart,
  so nothing for Python datetimes);
* :func:`in_window_array` / :func:`lower_bound_array`: vectorised on ``int64`` numpy arrays;
* :func:`lower_bound_datetime`: the bound of a whole range of times (pruning a scan);
* :func:`window_sql` / :func:`lower_bound_sql`: DuckDB conditions with the ttl bound as a
  parameter.

The window of an aggregation (DESIGN G7) is here too: an event at ``e`` is in the window of
width ``window`` read at ``t`` with tile size ``hop`` if and only if::

    start(t) <= e <= t,   start(t) = floor(t, hop) - window

:func:`agg_start` is that definition (Python integers: ``//`` floors, so times before the
epoch floor the same way); :func:`agg_start_array` and :func:`agg_start_sql` are its numpy
and DuckDB forms, property-tested against it like the others.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "INT64_MIN",
    "MAX_TTL_US",
    "agg_start",
    "agg_start_array",
    "agg_start_sql",
    "floor_to",
    "in_window",
    "in_window_array",
    "lower_bound",
    "lower_bound_array",
    "lower_bound_datetime",
    "lower_bound_sql",
    "ttl_micros",
    "window_sql",
]

INT64_MIN: Final = -(2**63)
MAX_TTL_US: Final = 2**62
"""The cap of :func:`ttl_micros`, in microseconds (~146,000 years).

Python datetimes span years 1 to 9999 (3.2e17 us), so a longer ttl excludes nothing a
datetime can hold; and ``t - MAX_TTL_US`` stays inside DuckDB's timestamp range (about
+-2**63 us around the epoch) for every ``t`` at or after year 1, so the SQL subtraction
never overflows."""
_ONE_US: Final = timedelta(microseconds=1)
_DATETIME_MIN: Final = datetime.min.replace(tzinfo=UTC)


def ttl_micros(ttl: timedelta | None) -> int | None:
    """A ttl in microseconds: None when unlimited (None or zero), else capped at :data:`MAX_TTL_US`.

    Example:
        >>> ttl_micros(timedelta(seconds=2)), ttl_micros(timedelta(0)), ttl_micros(None)
        (2000000, None, None)
    """
    if not ttl:
        return None
    return min(ttl // _ONE_US, MAX_TTL_US)


def lower_bound(t_us: int, ttl_us: int | None) -> int | None:
    """The oldest event time seen at ``t_us``: ``t - ttl`` clamped to ``int64``, None if unlimited."""
    if ttl_us is None:
        return None
    return max(t_us - ttl_us, INT64_MIN)


def in_window(event_us: int, t_us: int, ttl_us: int | None) -> bool:
    """THE rule: whether a row at ``event_us`` is a candidate at ``t_us`` (``ttl_micros`` form).

    Example:
        >>> in_window(5, 10, 5), in_window(4, 10, 5), in_window(11, 10, None)
        (True, False, False)
    """
    if event_us > t_us:
        return False
    return ttl_us is None or event_us >= t_us - ttl_us


def lower_bound_array(t_us: np.ndarray, ttl_us: int) -> np.ndarray:
    """:func:`lower_bound` of each ``int64`` time, without overflowing ``int64``.

    Exact for ``0 <= ttl_us < 2**63`` (:func:`ttl_micros` gives at most :data:`MAX_TTL_US`):
    times below ``INT64_MIN + ttl`` would overflow, and their bound is ``INT64_MIN``.
    """
    import numpy as np  # here: the SQL and scalar forms need no numpy

    bound: np.ndarray = np.maximum(t_us, INT64_MIN + ttl_us) - ttl_us
    return bound


def in_window_array(event_us: np.ndarray, t_us: np.ndarray, ttl_us: int | None) -> np.ndarray:
    """:func:`in_window` element-wise on ``int64`` arrays (broadcasting like numpy)."""
    inside: np.ndarray = event_us <= t_us
    if ttl_us is not None:
        inside &= event_us >= lower_bound_array(t_us, ttl_us)
    return inside


def lower_bound_datetime(t: datetime, ttl: timedelta | None) -> datetime | None:
    """The oldest event time seen at aware ``t`` (pruning a scan by a frame's earliest time).

    None when nothing is excluded: unlimited ttl, or a bound before ``datetime.min``.
    """
    ttl_us = ttl_micros(ttl)
    if ttl_us is None or t - _DATETIME_MIN <= timedelta(microseconds=ttl_us):
        return None
    return t - timedelta(microseconds=ttl_us)


def lower_bound_sql(event: str, t: str, ttl: timedelta | None) -> tuple[str, tuple[object, ...]]:
    """``event >= t - ttl`` in DuckDB SQL with the ttl as a ``?`` parameter (``TRUE`` if unlimited).

    ``event`` and ``t`` are ``TIMESTAMPTZ`` expressions; the ttl is capped like
    :func:`ttl_micros`, so the subtraction stays in range for every ``t`` at or after year 1.
    """
    ttl_us = ttl_micros(ttl)
    if ttl_us is None:
        return "TRUE", ()
    return f"{event} >= {t} - ?", (timedelta(microseconds=ttl_us),)


def window_sql(event: str, t: str, ttl: timedelta | None) -> tuple[str, tuple[object, ...]]:
    """The whole window ``t - ttl <= event <= t`` in DuckDB SQL, with its parameters."""
    lower, params = lower_bound_sql(event, t, ttl)
    if not params:
        return f"{event} <= {t}", ()
    return f"{event} <= {t} AND {lower}", params


def floor_to(t_us: int, hop_us: int) -> int:
    """``t`` rounded down to a multiple of ``hop`` (microseconds; floors before the epoch too).

    Example:
        >>> floor_to(7, 5), floor_to(5, 5), floor_to(-1, 5)
        (5, 5, -5)
    """
    return t_us - t_us % hop_us


def agg_start(t_us: int, hop_us: int, window_us: int) -> int:
    """THE aggregation window's first included time at ``t`` (G7): ``floor(t, hop) - window``.

    Example:
        >>> agg_start(7, 5, 10), agg_start(5, 5, 10)  # events at 7 - 2 = -5 ... 7 count
        (-5, -5)
    """
    return floor_to(t_us, hop_us) - window_us


def agg_start_array(t_us: np.ndarray, hop_us: int, window_us: int) -> np.ndarray:
    """:func:`agg_start` element-wise on ``int64`` arrays (numpy's ``%`` floors like Python's)."""
    start: np.ndarray = t_us - t_us % hop_us - window_us
    return start


def agg_start_sql(t_us: str, hop_us: int, window_us: int) -> str:
    """:func:`agg_start` in DuckDB SQL over a ``BIGINT`` microseconds expression, as ``BIGINT``.

    DuckDB's ``%`` keeps the dividend's sign (like C), so the floor is written with a second
    modulo; the sizes are integers chosen by the definition, inlined as literals. Integers
    throughout: a ``TIMESTAMPTZ`` round trip (``make_timestamptz``, ``epoch_us``) made the
    training frame of ``benchmarks/bench_aggregations.py`` 7 % slower.
    """
    floor = f"({t_us} - ((({t_us} % {hop_us}) + {hop_us}) % {hop_us}))"
    return f"({floor} - {window_us})"
