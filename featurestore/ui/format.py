"""How the UI writes times, durations, values and badges (one form on every page)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from featurestore.ui.markup import Markup, tag

if TYPE_CHECKING:
    from featurestore.ui.catalog import Freshness

__all__ = ["badge", "duration", "freshness_badge", "moment", "value_text"]


def moment(value: datetime | None, *, exact: bool = False) -> str:
    """RFC 3339 UTC with ``Z`` (``-`` for None), to the second unless ``exact``.

    Example:
        >>> from datetime import UTC
        >>> moment(datetime(2026, 12, 4, 9, 30, 5, 250, tzinfo=UTC))
        '2026-12-04T09:30:05Z'
        >>> moment(datetime(2026, 12, 4, 9, 30, 5, 250, tzinfo=UTC), exact=True)
        '2026-12-04T09:30:05.000250Z'
    """
    if value is None:
        return "-"
    return (value if exact else value.replace(microsecond=0)).isoformat().replace("+00:00", "Z")


def duration(value: timedelta | None) -> str:
    """A duration in its two largest units: ``2 d 4 h``, ``3 h 12 min``, ``45 s`` (None: ``-``).

    Example:
        >>> duration(timedelta(days=2, hours=4, minutes=5)), duration(timedelta(seconds=-90))
        ('2 d 4 h', '-1 min 30 s')
    """
    if value is None:
        return "-"
    seconds = int(value.total_seconds())
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    units = (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1))
    parts: list[str] = []
    for name, size in units:
        if seconds >= size or (name == "s" and not parts):
            parts.append(f"{seconds // size} {name}")
            seconds %= size
        elif parts:
            break
        if len(parts) == 2:
            break
    return sign + " ".join(parts)


def value_text(value: Any) -> str:
    """A feature value as the CLI's ``--json`` writes it: strings bare, ``null``, JSON numbers.

    Example:
        >>> value_text(None), value_text(12.5), value_text("grocery"), value_text([1, None])
        ('null', '12.5', 'grocery', '[1, null]')
    """
    if isinstance(value, str):
        return value
    return json.dumps(_jsonable(value), allow_nan=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return moment(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def badge(text: str, kind: str) -> Markup:
    """A small coloured label; ``kind`` is one of ok, warn, bad, muted."""
    return tag("span", text, class_=f"badge {kind}")


_STATE_KIND = {"fresh": "ok", "stale": "bad", "never materialized": "warn", "offline only": "muted"}


def freshness_badge(freshness: Freshness) -> Markup:
    """The view's freshness state as a badge."""
    return badge(freshness.state, _STATE_KIND[freshness.state])
