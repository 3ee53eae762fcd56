"""The only place that checks or converts timezones: everything inside featurestore is UTC.

A naive timestamp at any boundary (entity frame, source, CLI argument, HTTP) means UTC.
Arrow is imported by the one function that converts arrays, so parsing a CLI time stays cheap.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from featurestore.errors import EntityFrameError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "EPOCH",
    "from_micros",
    "parse_timestamp",
    "to_micros",
    "to_utc",
    "to_utc_array",
    "utc_now",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(tz=UTC)


def to_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime; a naive value is taken to be UTC.

    Example:
        >>> to_utc(datetime(2026, 1, 1, 12)).isoformat()
        '2026-01-01T12:00:00+00:00'
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_timestamp(text: str, *, what: str = "timestamp") -> datetime:
    """Parse an ISO 8601 / RFC 3339 string (a trailing ``Z`` allowed) into aware UTC.

    Args:
        text: The string, e.g. ``2026-11-27T09:00:00Z`` or ``2026-11-27``.
        what: What the value is, for the error message.

    Raises:
        EntityFrameError: The string is not a timestamp.

    Example:
        >>> parse_timestamp("2026-11-27T09:00:00Z").isoformat()
        '2026-11-27T09:00:00+00:00'
    """
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        return to_utc(datetime.fromisoformat(cleaned))
    except ValueError:
        msg = (
            f"Cannot parse {what} {text!r}: use ISO 8601, e.g. '2026-11-27T09:00:00Z' "
            "(a timestamp without an offset means UTC)."
        )
        raise EntityFrameError(msg) from None


def to_micros(value: datetime) -> int:
    """Microseconds since the Unix epoch of an (aware or naive-UTC) datetime."""
    delta = to_utc(value) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    """The aware UTC datetime ``micros`` microseconds after the Unix epoch."""
    return EPOCH + timedelta(microseconds=micros)


def to_utc_array(array: pa.Array | pa.ChunkedArray, *, column: str) -> pa.ChunkedArray:
    """Convert a timestamp or date column to ``timestamp[us, UTC]``; naive values mean UTC.

    Strings are parsed as ISO 8601. Other types are refused with an error naming the column.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    utc_type = pa.timestamp("us", tz="UTC")
    chunked = array if isinstance(array, pa.ChunkedArray) else pa.chunked_array([array])
    typ = chunked.type
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        try:
            chunked = pc.cast(chunked, pa.timestamp("us"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            chunked = pa.chunked_array(
                [
                    pa.array(
                        [
                            None if v is None else parse_timestamp(v, what=column)
                            for v in chunk.to_pylist()
                        ],
                        type=utc_type,
                    )
                    for chunk in chunked.chunks
                ],
                type=utc_type,
            )
        typ = chunked.type
    if pa.types.is_date(typ):
        chunked = pc.cast(chunked, pa.timestamp("us"))
        typ = chunked.type
    if not pa.types.is_timestamp(typ):
        msg = (
            f"Column '{column}' must hold timestamps, but its type is {typ}. "
            "Pass datetimes (naive ones mean UTC) or ISO 8601 strings."
        )
        raise EntityFrameError(msg)
    # Nanoseconds are truncated: featurestore keeps microsecond precision everywhere.
    if typ.tz is None:
        micros = pc.cast(chunked, pa.timestamp("us"), safe=False)
        return pc.cast(micros, utc_type)
    return pc.cast(chunked, utc_type, safe=False)
