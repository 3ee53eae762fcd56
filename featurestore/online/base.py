"""The OnlineStore protocol and the value types of the online read and write paths.

A store keeps one opaque, versioned record (see :mod:`featurestore.online.codec` and
docs/online-format.md) per (feature view, entity key). Stores never decode values: they
compare record headers to make writes conditional, and return raw records on reads.

A store whose reads go over a network also implements :class:`AsyncReads`, so a server reads
it without blocking its event loop (Redis). A local store (SQLite: a read of a file on this
machine, which never waits on a network) does not: its reads are run inline.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["AsyncReads", "FieldStatus", "OnlineStore", "ReadRequest"]


class FieldStatus(StrEnum):
    """The status of one feature value of one entity in an online response (DESIGN G3/G4)."""

    PRESENT = "PRESENT"
    """A stored value, valid at the request time (a stored null is still PRESENT)."""
    NOT_FOUND = "NOT_FOUND"
    """Nothing is stored for this entity in this view."""
    OUTSIDE_MAX_AGE = "OUTSIDE_MAX_AGE"
    """The stored value is not valid at the request time (older than the ttl allows, or
    newer than the request time); the value is null."""
    STALE_DEFINITION = "STALE_DEFINITION"
    """The stored value was computed with another definition of the view; re-materialize."""


class ReadRequest(NamedTuple):
    """Read the records of ``views`` stored under one entity key."""

    entity_key: bytes
    views: tuple[str, ...]


class OnlineStore(Protocol):
    """What every online store implements (SQLite, Redis; tests/contract checks both)."""

    def write_records(
        self, view: str, entity_keys: Sequence[bytes], records: Sequence[bytes]
    ) -> int:
        """Store ``records[i]`` under ``(view, entity_keys[i])``, conditionally and atomically.

        A record replaces the stored one only if it is not older by its order key (event
        timestamp, then created timestamp with null lowest; equal replaces), or if the stored
        one has another fingerprint or format version. Returns how many records were written.

        Raises:
            OnlineStoreUnavailableError: The store cannot be reached.
        """
        ...

    def read_records(self, requests: Sequence[ReadRequest]) -> list[list[bytes | None]]:
        """For each request, the stored record of each of its views (None when absent).

        All requests are served in one round trip.

        Raises:
            OnlineStoreUnavailableError: The store cannot be reached.
        """
        ...

    def merge_records(
        self,
        view: str,
        entity_keys: Sequence[bytes],
        records: Sequence[bytes],
        merge: Callable[[Sequence[bytes | None], Sequence[bytes]], list[bytes]],
    ) -> int:
        """Store the merge of each stored record with ``records[i]`` under ``(view, entity_keys[i])``.

        ``merge(stored, new)`` takes a batch: the records stored now (None: none) and the new
        ones, and returns the records to store, in the same order. Each read-merge-write is
        atomic: a record another writer stores meanwhile is merged, never overwritten
        (SQLite: one write transaction; Redis: compare-and-set, retried). A merged record
        equal to the stored one is not written. Aggregation tile blocks are written this way
        (:mod:`featurestore.online.tiles`). Returns how many records were written.

        Raises:
            OnlineStoreUnavailableError: The store cannot be reached.
        """
        ...

    def count_records(self, view: str) -> int:
        """How many entity keys have a record of ``view``."""
        ...

    def delete_records(self, view: str) -> int:
        """Delete every record of ``view``; returns how many were deleted.

        Raises:
            OnlineStoreUnavailableError: The store cannot be reached.
        """
        ...

    def delete_older(self, view: str, before_us: int) -> int:
        """Delete the records of ``view`` whose event timestamp is before ``before_us``.

        The event timestamp is the record header's (for a tile block: its newest tile's
        start); returns how many were deleted.

        Raises:
            OnlineStoreUnavailableError: The store cannot be reached.
        """
        ...

    @property
    def location(self) -> str:
        """Where the store is, for messages (a file path, or a host without password)."""
        ...

    def opener(self) -> Callable[[], OnlineStore]:
        """A picklable function that opens another connection to this store.

        A Spark executor materializing a partition opens its own store with it
        (:mod:`featurestore.offline.spark.materialize`).
        """
        ...

    def read_epoch(self) -> str | None:
        """The store epoch: the identity of the store's contents (None: it has none).

        Written into the store by :meth:`ensure_epoch` when materialization first writes to
        it; an emptied, restarted-without-persistence or replaced store has none, or another
        one (see :mod:`featurestore.online.epoch`). Cheap: one small read, and for a file a
        check that the file opened is still the one at the configured path (reopened when
        replaced).

        Raises:
            OnlineStoreIntegrityError: The store's file was deleted while open.
            OnlineStoreUnavailableError: The store cannot be reached.
        """
        ...

    def ensure_epoch(self) -> str:
        """The store epoch, written first if the store has none (atomically: one winner)."""
        ...

    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...


@runtime_checkable
class AsyncReads(Protocol):
    """The reads of a networked store, awaited on the running event loop (never blocking it).

    Same results and errors as :meth:`OnlineStore.read_records` and
    :meth:`OnlineStore.read_epoch` (tests/contract checks it); each round trip is bounded by
    the store's timeout. Connections belong to the loop that opened them.
    """

    async def aread_records(self, requests: Sequence[ReadRequest]) -> list[list[bytes | None]]:
        """:meth:`OnlineStore.read_records`, awaited."""
        ...

    async def aread_epoch(self) -> str | None:
        """:meth:`OnlineStore.read_epoch`, awaited."""
        ...

    async def aclose(self) -> None:
        """Close the running loop's idle connections (the store stays usable)."""
        ...
