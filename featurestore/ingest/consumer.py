"""The broker-independent ingest loop, and the interface a broker implements.

A broker plugs in by implementing :class:`MessageSource` (fetch a batch, close) whose
deliveries implement :class:`Delivery` (an id stable across redeliveries, the payload, ack,
reject). ``jetstream.py`` is NATS JetStream's; a Kafka source would use the
``topic:partition:offset`` of a record as its id, acknowledge by committing the offset after
the push, and reject by sending the record to a dead-letter topic (docs/push.md).

Each message is one Feast push body (JSON): ``{"push_source_name": VIEW, "df": {column:
[values]}, "to": "online_and_offline"}``; ``to`` defaults to ``online_and_offline`` here
(a stream feeds training frames). The loop, per fetched batch:

1. parses each message and checks its rows (``Pusher.conform``); a message that can never
   succeed (bad JSON, unknown view, a bad row) is rejected at once and counted;
2. drops messages whose id is already in the view's push log (a redelivery), but writes
   their rows online again (conditionally: a no-op unless the crash came before the online
   write);
3. pushes the rest of each (view, ``to``) group as one push (one file, one fsync), with each
   row's message id;
4. only then acknowledges the messages.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import orjson

from featurestore.errors import FeatureStoreError
from featurestore.offline.push_log import PUSH_ID_COLUMN

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pyarrow as pa

    from featurestore.materialization.push import PushMode
    from featurestore.store import FeatureStore

__all__ = ["Delivery", "IngestStats", "MessageSource", "ingest"]

logger = logging.getLogger(__name__)

_MODES = ("online", "offline", "online_and_offline")
_REFRESH_S = 5.0
"""How often a running consumer re-reads the registry (a later apply's definitions)."""


class Delivery(Protocol):
    """One delivered message."""

    @property
    def message_id(self) -> str:
        """An id that is the same every time the broker delivers this message."""
        ...

    @property
    def payload(self) -> bytes:
        """The message body: a Feast push body as JSON."""
        ...

    async def ack(self) -> None:
        """Acknowledge: the broker will not deliver the message again."""
        ...

    async def reject(self) -> None:
        """Refuse for good (the message can never be pushed): no redelivery."""
        ...


class MessageSource(Protocol):
    """A broker subscription the ingest loop reads from."""

    async def fetch(self, max_messages: int, timeout_s: float) -> Sequence[Delivery]:
        """Up to ``max_messages`` deliveries; empty after ``timeout_s`` without any."""
        ...

    async def close(self) -> None:
        """Release the subscription and the connection."""
        ...


@dataclass
class IngestStats:
    """What an ingest run did."""

    messages: int = 0
    """Messages fetched (redeliveries included)."""
    rows: int = 0
    """Rows appended to push logs."""
    duplicates: int = 0
    """Messages already in a push log (redelivered), not appended again."""
    rejected: int = 0
    """Messages refused for good (malformed, unknown view, bad rows)."""
    errors: list[str] = field(default_factory=list)
    """The first few rejection messages."""


@dataclass
class _Parsed:
    delivery: Delivery
    view: str
    to: PushMode
    table: pa.Table


class _SeenIds:
    """The message ids already in each view's push log (loaded once per view)."""

    def __init__(self, store: FeatureStore) -> None:
        self._store = store
        self._ids: dict[str, set[str]] = {}

    def of(self, view: str) -> set[str]:
        ids = self._ids.get(view)
        if ids is None:
            table = self._store.offline.local.sources.push_log.read(view, columns=[PUSH_ID_COLUMN])
            values = [] if table is None else table.column(PUSH_ID_COLUMN).to_pylist()
            ids = self._ids[view] = {v for v in values if v is not None}
        return ids


async def ingest(
    store: FeatureStore,
    source: MessageSource,
    *,
    batch_size: int = 1000,
    fetch_timeout_s: float = 1.0,
    max_messages: int | None = None,
    stop_when_idle: bool = False,
) -> IngestStats:
    """Push the messages of ``source`` until stopped (see the module doc).

    Args:
        store: The store pushed to.
        source: The broker subscription.
        batch_size: Messages fetched (and pushed together) at most per round.
        fetch_timeout_s: How long one fetch waits for a message.
        max_messages: Stop after this many messages (None: no limit).
        stop_when_idle: Stop at the first fetch that returns nothing.
    """
    import anyio.to_thread

    stats = IngestStats()
    seen = _SeenIds(store)
    refreshed = time.monotonic()
    while max_messages is None or stats.messages < max_messages:
        if time.monotonic() - refreshed > _REFRESH_S:  # pick up applies, as the server does
            await anyio.to_thread.run_sync(store.refresh)
            refreshed = time.monotonic()
        want = (
            batch_size if max_messages is None else min(batch_size, max_messages - stats.messages)
        )
        deliveries = await source.fetch(want, fetch_timeout_s)
        if not deliveries:
            if stop_when_idle:
                break
            continue
        stats.messages += len(deliveries)
        rejected = await anyio.to_thread.run_sync(_push_batch, store, deliveries, seen, stats)
        refused = {id(d) for d in rejected}
        for delivery in deliveries:
            if id(delivery) in refused:
                await delivery.reject()
            else:
                await delivery.ack()
    return stats


def _reject(stats: IngestStats, delivery: Delivery, reason: str) -> None:
    stats.rejected += 1
    if len(stats.errors) < 10:
        stats.errors.append(f"message {delivery.message_id}: {reason}")
    logger.warning("rejected message %s: %s", delivery.message_id, reason)


def _parse(store: FeatureStore, delivery: Delivery) -> _Parsed:
    try:
        body = orjson.loads(delivery.payload)
    except orjson.JSONDecodeError as exc:
        msg = f"not JSON ({exc})"
        raise FeatureStoreError(msg) from None
    if not isinstance(body, dict) or not isinstance(body.get("push_source_name"), str):
        msg = "not a push body: expected {push_source_name, df, to}"
        raise FeatureStoreError(msg)
    df = body.get("df")
    if not isinstance(df, dict):
        msg = "'df' must be an object of column lists"
        raise FeatureStoreError(msg)
    to = body.get("to", "online_and_offline")
    if to not in _MODES:
        msg = f"'to' is {to!r}; use one of {', '.join(_MODES)}"
        raise FeatureStoreError(msg)
    view = body["push_source_name"]
    record = store.get_feature_view(view)
    return _Parsed(delivery, view, to, store.pusher.conform(record, df))


def _push_batch(
    store: FeatureStore, deliveries: Sequence[Delivery], seen: _SeenIds, stats: IngestStats
) -> list[Delivery]:
    """Parse, deduplicate and push one fetched batch (in a worker thread); the rejected ones.

    Raises:
        FeatureStoreError: A push failed for a reason a retry may fix (disk, online store):
            nothing of the batch is acknowledged, so all of it is delivered again.
    """
    import pyarrow as pa

    from featurestore.errors import ValidationError

    rejected: list[Delivery] = []
    groups: dict[tuple[str, str], list[_Parsed]] = defaultdict(list)
    for delivery in deliveries:
        try:
            parsed = _parse(store, delivery)
        except FeatureStoreError as exc:
            _reject(stats, delivery, str(exc))
            rejected.append(delivery)
            continue
        groups[(parsed.view, parsed.to)].append(parsed)
    for (view, to), items in groups.items():
        record = store.get_feature_view(view)
        ids = seen.of(view)
        fresh: list[_Parsed] = []
        for item in items:
            if item.delivery.message_id in ids:
                stats.duplicates += 1
                if to != "offline":  # the crash may have come before the online write
                    store.pusher.write_online(record, item.table)
            else:
                fresh.append(item)
        if not fresh:
            continue
        table = pa.concat_tables([item.table for item in fresh])
        push_ids = [item.delivery.message_id for item in fresh for _ in range(item.table.num_rows)]
        try:
            store.pusher.push(record, table, to=to, push_ids=push_ids)  # type: ignore[arg-type]  # checked
        except ValidationError as exc:  # the group broke the view's expectations: never pushable
            for item in fresh:
                _reject(stats, item.delivery, str(exc))
                rejected.append(item.delivery)
            continue
        ids.update(item.delivery.message_id for item in fresh)
        stats.rows += table.num_rows
    return rejected
