"""THE header layout of an online record, its conditional-write rule, and every form of both.

Every record (docs/online-format.md) starts with the same header, described once here by
:data:`HEADER`: the format version, the two order keys of :mod:`featurestore.ordering`
(16 bytes that compare bytewise in the order "newer"), the view fingerprint and the number
of features. Everything that reads header bytes takes its offsets from here: the codec's
``struct`` format (:data:`HEAD_FORMAT`), the field positions the bulk reader uses
(:data:`EVENT_FIELD` ...), and the byte slices (:data:`ORDER_SLICE` ...).

The **conditional write** of DESIGN G3 is defined once too, as :data:`REPLACE_RULE`: a new
record replaces the stored one when, in this order, a ``differs`` part is different (another
format version, another fingerprint), or else when the ``not_older`` part (the order key)
is ``>=`` the stored one, bytewise. :func:`replaces` is that rule in Python, and the two
forms the stores run are generated from the same clauses, never written beside them:
:func:`sqlite_replace_condition` (the ``WHERE`` of SQLite's upsert) and
:func:`lua_replaces_function` (the Lua function of the Redis write script).
``tests/property/test_record_layout.py`` checks both against :func:`replaces` on random
records, in a real SQLite file and a real redis-server.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from featurestore.ordering import ORDER_KEY_FORMAT, created_order_key, event_order_key

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "BITMAP_FIELD",
    "COUNT_FIELD",
    "CREATED_FIELD",
    "EVENT_FIELD",
    "EVENT_SLICE",
    "FINGERPRINT_FIELD",
    "FINGERPRINT_SLICE",
    "HEADER",
    "HEAD_FORMAT",
    "HEAD_NUMPY_FIELDS",
    "HEAD_SIZE",
    "ORDER_SLICE",
    "RECORD_VERSION",
    "REPLACE_RULE",
    "VERSION_FIELD",
    "VERSION_SLICE",
    "HeaderPart",
    "created_us_of",
    "event_us_column",
    "event_us_of",
    "lua_replaces_function",
    "replaces",
    "sqlite_replace_condition",
]

RECORD_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class HeaderPart:
    """A named run of header bytes: its fields, their ``struct`` codes, where it lies."""

    name: str
    fields: tuple[tuple[str, str], ...]
    """(field name, big-endian ``struct`` code) of each field the part unpacks to."""
    start: int
    """Byte offset in the record (0-based)."""

    @property
    def codes(self) -> str:
        """The part's ``struct`` codes."""
        return "".join(code for _, code in self.fields)

    @property
    def size(self) -> int:
        """Bytes of the part."""
        return struct.calcsize(">" + self.codes)

    @property
    def slice(self) -> slice:
        """The part's bytes in a record: ``record[part.slice]``."""
        return slice(self.start, self.start + self.size)


def _parts(*named: tuple[str, tuple[tuple[str, str], ...]]) -> tuple[HeaderPart, ...]:
    parts, offset = [], 0
    for name, fields in named:
        part = HeaderPart(name, fields, offset)
        parts.append(part)
        offset += part.size
    return tuple(parts)


_ORDER_CODES = ORDER_KEY_FORMAT.lstrip(">")  # event order key, created order key
HEADER: Final = _parts(
    ("version", (("version", "B"),)),
    ("order", (("event", _ORDER_CODES[0]), ("created", _ORDER_CODES[1]))),
    ("fingerprint", (("fingerprint", "8s"),)),
    ("count", (("count", "H"),)),
)
"""The header, in record order (offsets derived from the sizes)."""
_PART = {p.name: p for p in HEADER}
_FIELDS = tuple(field for part in HEADER for field in part.fields)
HEAD_FORMAT: Final = ">" + "".join(p.codes for p in HEADER)
"""The header's ``struct`` format; the codec appends the null bitmap and feature slots."""
_NUMPY_OF: Final = {"B": "u1", "H": ">u2", "Q": ">u8", "8s": "S8"}
HEAD_NUMPY_FIELDS: Final = tuple((name, _NUMPY_OF[code]) for name, code in _FIELDS)
"""The header as numpy structured-dtype fields (same bytes as :data:`HEAD_FORMAT`)."""
HEAD_SIZE: Final = struct.calcsize(HEAD_FORMAT)
VERSION_SLICE: Final = _PART["version"].slice
ORDER_SLICE: Final = _PART["order"].slice
FINGERPRINT_SLICE: Final = _PART["fingerprint"].slice
EVENT_SLICE: Final = slice(
    ORDER_SLICE.start, ORDER_SLICE.start + struct.calcsize(">" + _ORDER_CODES[0])
)
"""The event order key's bytes (they compare bytewise like the event timestamps)."""


_NAMES = [name for name, _ in _FIELDS]
VERSION_FIELD: Final = _NAMES.index("version")
"""Positions of the header fields among the fields ``struct`` unpacks (codec and reader)."""
EVENT_FIELD: Final = _NAMES.index("event")
CREATED_FIELD: Final = _NAMES.index("created")
FINGERPRINT_FIELD: Final = _NAMES.index("fingerprint")
COUNT_FIELD: Final = _NAMES.index("count")
BITMAP_FIELD: Final = len(_NAMES)
"""The first null bitmap word, right after the header fields."""

_NO_CREATED: Final = created_order_key(None)
_EVENT_ZERO: Final = event_order_key(0)
_CREATED_ZERO: Final = created_order_key(0)


def event_us_of(order_key: int) -> int:
    """The event timestamp (microseconds) of a stored event order key."""
    return order_key - _EVENT_ZERO


def event_us_column(order_keys: Iterable[int]) -> list[int]:
    """:func:`event_us_of` of many keys (one list comprehension, for the bulk reader)."""
    zero = _EVENT_ZERO
    return [key - zero for key in order_keys]


def created_us_of(order_key: int) -> int | None:
    """The created timestamp (microseconds, None for null) of a stored created order key."""
    return None if order_key == _NO_CREATED else order_key - _CREATED_ZERO


REPLACE_RULE: Final[tuple[tuple[Literal["differs", "not_older"], HeaderPart], ...]] = (
    ("differs", _PART["version"]),
    ("differs", _PART["fingerprint"]),
    ("not_older", _PART["order"]),
)
"""THE conditional write: the first clause that holds decides; ``not_older`` is last."""


def replaces(new: bytes, old: bytes | None) -> bool:
    """Whether record ``new`` replaces the stored record ``old`` (None: nothing stored).

    Example:
        >>> head = bytes([1]) + bytes(16) + bytes(8)
        >>> replaces(head, head), replaces(head, None)  # equal replaces
        (True, True)
    """
    if old is None:
        return True
    for clause, part in REPLACE_RULE:
        a, b = new[part.slice], old[part.slice]
        if clause == "differs":
            if a != b:
                return True
        else:
            return a >= b
    return True  # pragma: no cover - REPLACE_RULE ends with not_older


def sqlite_replace_condition(new: str, old: str) -> str:
    """:data:`REPLACE_RULE` as a SQLite condition over two BLOB expressions.

    ``substr`` on a BLOB counts bytes from 1, and BLOBs compare with ``memcmp``, so ``>=``
    is the bytewise comparison of :func:`replaces`.
    """
    terms = []
    for clause, part in REPLACE_RULE:
        operator = "!=" if clause == "differs" else ">="
        where = f"{part.start + 1}, {part.size}"
        terms.append(f"substr({new}, {where}) {operator} substr({old}, {where})")
    return "\n   OR ".join(terms)


def lua_replaces_function() -> str:
    """:data:`REPLACE_RULE` as a Lua function ``replaces(new, old)`` (``old`` may be false).

    Bytes are compared one by one with ``string.byte``: Lua's string ``<`` goes through
    ``strcoll`` and is locale dependent.
    """
    lines = ["local function replaces(new, old)", "  if not old then return true end"]
    for clause, part in REPLACE_RULE:
        first, last = part.start + 1, part.start + part.size
        if clause == "differs":
            lines.append(
                f"  if string.sub(new, {first}, {last}) ~= string.sub(old, {first}, {last}) "
                "then return true end"
            )
        else:
            lines += [
                f"  for j = {first}, {last} do",
                "    local a, b = string.byte(new, j), string.byte(old, j)",
                "    if a ~= b then return a > b end",
                "  end",
                "  return true",
            ]
    lines.append("end")
    return "\n".join(lines) + "\n"
