"""THE total order "newer" (docs/concepts.md, "Guarantees"), and every form derived from it.

A source row is newer than another when its key

    (event timestamp, created timestamp with null lowest, file rank, row in file)

is larger, compared component by component (timestamps in microseconds since the epoch, UTC;
the file rank is the 1-based position of the row's file among the source's files sorted by
path, so comparing ranks compares paths). :class:`OrderKey` is that definition in plain
Python; everything else here is a form of it that some engine needs, and each is
property-tested against :class:`OrderKey` (``tests/property/test_rule_forms.py``):

* the unsigned **order keys** an online record stores (:func:`event_order_key`,
  :func:`created_order_key`) and their 16 big-endian bytes (:func:`pack_order_key`), which
  compare bytewise like ``(event, created)``: the online stores decide a conditional write
  without decoding a record. The file and row components are not stored: materialization
  writes only the newest row of each key, chosen by the full order offline;
* the **row id** (:func:`row_id`, :func:`row_id_sql`): ``file rank << 40 | row``, one
  ``int64`` that orders like ``(file rank, row)``;
* the **numpy** sort (:func:`newer_lexsort`), with :data:`NULL_CREATED_US` standing for a null
  created timestamp;
* the **SQL** struct (:func:`order_key_sql`), its ASOF probe (:func:`newest_probe_sql`) and
  the same four components as an ``ORDER BY`` list, newest first (:func:`newest_first_sql`).
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "FILE_ROW_BITS",
    "NULL_CREATED_US",
    "ORDER_KEY_FORMAT",
    "ORDER_KEY_SIZE",
    "OrderKey",
    "created_order_key",
    "event_order_key",
    "newer_lexsort",
    "newest_first_sql",
    "newest_probe_sql",
    "order_key_sql",
    "pack_order_key",
    "row_id",
    "row_id_sql",
]

_BIAS: Final = 1 << 63
ORDER_KEY_FORMAT: Final = ">QQ"
"""The ``struct`` format of a packed order key: event key, then created key, big-endian."""
ORDER_KEY_SIZE: Final = struct.calcsize(ORDER_KEY_FORMAT)  # 16
FILE_ROW_BITS: Final = 40
"""Bits of the row-in-file part of a :func:`row_id` (files of up to 2**40 rows)."""
NULL_CREATED_US: Final = -(2**63)
"""A null created timestamp in ``int64`` sort keys: the lowest ``int64``, below every time
(DuckDB reserves it for ``-infinity``, so no stored timestamp equals it)."""


@functools.total_ordering
@dataclass(frozen=True, slots=True)
class OrderKey:
    """A row's place in the order "newer": a larger key is a newer row.

    Example:
        >>> OrderKey(10, None, 1, 0) < OrderKey(10, -5, 1, 0)  # null created is lowest
        True
        >>> OrderKey(10, 7, 2, 0) > OrderKey(10, 7, 1, 9)  # then the file, then the row
        True
    """

    event_us: int
    created_us: int | None
    file_rank: int
    row: int

    def _components(self) -> tuple[int, bool, int, int, int]:
        created = self.created_us
        return (
            self.event_us,
            created is not None,
            0 if created is None else created,
            self.file_rank,
            self.row,
        )

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, OrderKey):
            return NotImplemented
        return self._components() < other._components()


def event_order_key(event_us: int) -> int:
    """The unsigned order key of an event timestamp (microseconds): ``event_us + 2**63``."""
    return event_us + _BIAS


def created_order_key(created_us: int | None) -> int:
    """The unsigned order key of a created timestamp: 0 for null, else ``created_us + 2**63 + 1``.

    Null sorts lowest, below every timestamp (``int64`` min included). The key fits 64 bits
    for ``created_us < 2**63 - 1`` (DuckDB's timestamps end at ``2**63 - 2``).
    """
    return 0 if created_us is None else created_us + _BIAS + 1


def pack_order_key(event_us: int, created_us: int | None) -> bytes:
    """The 16 bytes of :data:`ORDER_KEY_FORMAT`; bytewise order is the order of ``(event, created)``.

    Example:
        >>> pack_order_key(0, None) < pack_order_key(0, -1) < pack_order_key(1, None)
        True
    """
    return struct.pack(ORDER_KEY_FORMAT, event_order_key(event_us), created_order_key(created_us))


def row_id(file_rank: int, row: int) -> int:
    """One integer ordered like ``(file_rank, row)``: ``file_rank << 40 | row``."""
    return (file_rank << FILE_ROW_BITS) | row


def row_id_sql(file_rank: str, row: str) -> str:
    """:func:`row_id` in SQL (DuckDB ``BIGINT``), over two column expressions."""
    return f"((CAST({file_rank} AS BIGINT) << {FILE_ROW_BITS}) | {row})"


def newer_lexsort(by: np.ndarray, created: np.ndarray, row_ids: np.ndarray) -> np.ndarray:
    """The permutation putting rows from oldest to newest, ``int64`` arrays in, indices out.

    Args:
        by: The leading sort values: event timestamps, or any ``int64`` that orders rows like
            their event timestamps within the groups being compared (a packed key and time,
            a run number).
        created: Created timestamps, :data:`NULL_CREATED_US` for null.
        row_ids: :func:`row_id` of each row.
    """
    import numpy as np  # here: the SQL and scalar forms need no numpy

    order: np.ndarray = np.lexsort((row_ids, created, by))
    return order


def _order_key_parts_sql(event: str, created: str, file_rank: str, row: str) -> list[str]:
    """The four components of the order in SQL; a null ``created`` becomes ``-infinity``."""
    return [event, f"coalesce({created}, CAST('-infinity' AS TIMESTAMPTZ))", file_rank, row]


def order_key_sql(event: str, created: str, file_rank: str, row: str) -> str:
    """The order as one comparable DuckDB struct over four column expressions.

    A larger struct is a newer row; a null ``created`` becomes ``-infinity``, below every
    timestamp.
    """
    e, c, f, r = _order_key_parts_sql(event, created, file_rank, row)
    return f"struct_pack(e := {e}, c := {c}, f := {f}, r := {r})"


def newest_first_sql(event: str, created: str, file_rank: str, row: str) -> str:
    """The order as a DuckDB ``ORDER BY`` list, newest row first: the struct's components.

    A window ``ORDER BY`` sorts on these four keys faster than on the struct (snapshots:
    ``benchmarks/bench_snapshot.py``).
    """
    return ", ".join(
        f"{part} DESC" for part in _order_key_parts_sql(event, created, file_rank, row)
    )


def newest_probe_sql(time_sql: str) -> str:
    """The ASOF JOIN probe for "newest as of t", shaped like :func:`order_key_sql`.

    It is >= the order key of every row with event time ``<= time_sql`` (any created
    timestamp, file rank up to 2**31 - 1, any row) and < every row with a later event time.
    """
    return (
        f"struct_pack(e := {time_sql}, c := CAST('infinity' AS TIMESTAMPTZ), "
        "f := CAST(2147483647 AS INTEGER), r := CAST(9223372036854775807 AS BIGINT))"
    )
