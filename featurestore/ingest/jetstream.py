"""NATS JetStream as a :class:`~featurestore.ingest.consumer.MessageSource` (extra ``stream``).

A durable pull consumer on one subject of one stream (both created when missing). A
message's id is the publisher's ``Nats-Msg-Id`` header when it set one, else
``<stream>:<stream sequence>``: the same on every redelivery. A message not acknowledged
within ``ack_wait_s`` (a crashed or stopped consumer) is delivered again, to this consumer or
the next one started with the same durable name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from featurestore.errors import FeatureStoreError, MissingDependencyError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["JetStreamDelivery", "JetStreamSource", "import_nats"]

EXTRA = "stream"


def import_nats() -> Any:
    """The ``nats`` module (nats-py), or an error naming the extra to install."""
    try:
        import nats
    except ImportError as exc:
        raise MissingDependencyError(feature="Ingesting from NATS JetStream", extra=EXTRA) from exc
    return nats


@dataclass(frozen=True, slots=True)
class JetStreamDelivery:
    """One JetStream message."""

    message_id: str
    payload: bytes
    _msg: Any

    async def ack(self) -> None:
        """Acknowledge the message (JetStream will not deliver it again)."""
        await self._msg.ack()

    async def reject(self) -> None:
        """Terminate the message: JetStream never delivers it again."""
        await self._msg.term()


class JetStreamSource:
    """A durable pull subscription; open it with :meth:`connect`.

    Args:
        url: The NATS server, e.g. ``nats://127.0.0.1:4222``.
        stream: The JetStream stream (created for ``subject`` when missing).
        subject: The subject producers publish push bodies to.
        durable: The consumer's durable name: a restarted ingest resumes where it stopped.
        ack_wait_s: Seconds after which an unacknowledged message is delivered again.
    """

    def __init__(
        self,
        url: str,
        *,
        stream: str,
        subject: str,
        durable: str,
        ack_wait_s: float = 30.0,
    ) -> None:
        self.url = url
        self.stream = stream
        self.subject = subject
        self.durable = durable
        self.ack_wait_s = ack_wait_s
        self._nc: Any = None
        self._sub: Any = None

    async def connect(self) -> JetStreamSource:
        """Connect, create the stream when missing, and subscribe.

        Raises:
            FeatureStoreError: The server cannot be reached.
        """
        nats = import_nats()
        from nats.js.api import AckPolicy, ConsumerConfig
        from nats.js.errors import NotFoundError

        try:
            self._nc = await nats.connect(
                self.url, connect_timeout=5, max_reconnect_attempts=3, allow_reconnect=True
            )
        except Exception as exc:  # nats-py raises several unrelated types on connect
            msg = f"Cannot connect to NATS at {self.url}: {exc}. Start nats-server with -js."
            raise FeatureStoreError(msg) from exc
        js = self._nc.jetstream()
        try:
            await js.stream_info(self.stream)
        except NotFoundError:
            await js.add_stream(name=self.stream, subjects=[self.subject])
        config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=self.ack_wait_s)
        self._sub = await js.pull_subscribe(
            self.subject, durable=self.durable, stream=self.stream, config=config
        )
        return self

    async def fetch(self, max_messages: int, timeout_s: float) -> Sequence[JetStreamDelivery]:
        """Up to ``max_messages`` messages; empty after ``timeout_s`` without one."""
        try:
            messages = await self._sub.fetch(max_messages, timeout=timeout_s)
        except TimeoutError:  # nats-py raises its own subclass, or asyncio's (the builtin)
            return []
        deliveries = []
        for msg in messages:
            header = (msg.headers or {}).get("Nats-Msg-Id")
            seq = msg.metadata.sequence.stream
            deliveries.append(
                JetStreamDelivery(header or f"{self.stream}:{seq}", bytes(msg.data), msg)
            )
        return deliveries

    async def close(self) -> None:
        """Drain and close the connection."""
        if self._nc is not None:
            await self._nc.close()
            self._nc = None
