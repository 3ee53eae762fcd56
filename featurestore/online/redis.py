"""The Redis online store: one hash per (project, entity key), one field per feature view.

Writes go through a Lua script (one EVALSHA per batch) that replaces a field only if the new
record is not older (its test is generated from
:data:`~featurestore.online.layout.REPLACE_RULE`), so every record is written atomically and
conditionally. Reads send one
HMGET per entity in a single round trip: the commands are packed here (RESP) and written at
once on a read connection of our own, and the replies are parsed by redis-py's (hiredis)
parser; this skips redis-py's pipeline and pool bookkeeping, which cost more than the round
trip itself. redis-py errors are translated here.

The same commands are also read asynchronously (:meth:`RedisOnlineStore.aread_records`, used
by the server on its event loop): connections of the running loop are non-blocking sockets of
our own that write the packed commands and parse the replies with ``hiredis.Reader``; each
exchange is bounded by ``timeout_s`` (an entry of the loop's sweeping deadline table,
:mod:`featurestore._deadlines`, not a timer per exchange), so a stalled Redis never blocks the
loop for longer than the short wait of :mod:`featurestore._busy`.

The connections to one server (:class:`Node`), the packing of reads (:class:`HmgetPacker`),
the scripts and the error messages are shared with the Redis Cluster store
(:mod:`featurestore.online.redis_cluster`), which keeps one node per cluster node.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import select
import socket
import time
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

import hiredis
import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from featurestore._busy import request_count_of
from featurestore._deadlines import deadlines_of, resolution_for
from featurestore.errors import (
    OnlineStoreError,
    OnlineStoreIntegrityError,
    OnlineStoreUnavailableError,
)
from featurestore.online.epoch import new_epoch
from featurestore.online.layout import EVENT_SLICE, lua_replaces_function
from featurestore.ordering import event_order_key

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from featurestore._deadlines import Deadlines
    from featurestore.online.base import ReadRequest
    from featurestore.repo.config import RedisOnlineStoreConfig

__all__ = ["RedisOnlineStore"]

logger = logging.getLogger(__name__)

# KEYS[1..n] = entity hashes, KEYS[n+1] = the per-view record counter hash.
# ARGV[1] = the view (hash field), ARGV[2..n+1] = records. replaces() is generated from the
# one conditional-write rule (featurestore.online.layout).
_WRITE_SCRIPT: Final = (
    lua_replaces_function()
    + """
local field = ARGV[1]
local n = #KEYS - 1
local written = 0
local created = 0
for i = 1, n do
  local new = ARGV[i + 1]
  if replaces(new, redis.call('HGET', KEYS[i], field)) then
    if redis.call('HSET', KEYS[i], field, new) == 1 then
      created = created + 1
    end
    written = written + 1
  end
end
if created > 0 then
  redis.call('HINCRBY', KEYS[n + 1], field, created)
end
return written
"""
)

_WRITE_CHUNK: Final = 1000

# KEYS[1..n] = entity hashes, KEYS[n+1] = the record counter; ARGV[1] = the view; ARGV[2],
# when given: delete only records whose event order key is below these bytes (compared byte
# by byte: Lua's string < is locale dependent). Keys of another type (not ours) are left alone.
_DELETE_SCRIPT: Final = f"""
local field = ARGV[1]
local bound = ARGV[2]
local function older(record)
  for j = 1, #bound do
    local a, b = string.byte(record, {EVENT_SLICE.start} + j), string.byte(bound, j)
    if a ~= b then return a < b end
  end
  return false
end
local n = #KEYS - 1
local deleted = 0
for i = 1, n do
  if redis.call('TYPE', KEYS[i]).ok == 'hash' then
    if not bound then
      deleted = deleted + redis.call('HDEL', KEYS[i], field)
    else
      local record = redis.call('HGET', KEYS[i], field)
      if record and older(record) then
        deleted = deleted + redis.call('HDEL', KEYS[i], field)
      end
    end
  end
end
if deleted > 0 then
  redis.call('HINCRBY', KEYS[n + 1], field, -deleted)
end
return deleted
"""

# Compare-and-set of merged records. KEYS[1..n] = entity hashes, KEYS[n+1] = the record
# counter; ARGV[1] = the view, then per key the record read ('' when none; a record is never
# empty) and the one to store. Returns the (0-based) positions whose record changed since.
_MERGE_SCRIPT: Final = """
local field = ARGV[1]
local n = #KEYS - 1
local failed = {}
local created = 0
for i = 1, n do
  local current = redis.call('HGET', KEYS[i], field) or ''
  if current == ARGV[2 * i] then
    redis.call('HSET', KEYS[i], field, ARGV[2 * i + 1])
    if current == '' then created = created + 1 end
  else
    failed[#failed + 1] = i - 1
  end
end
if created > 0 then
  redis.call('HINCRBY', KEYS[n + 1], field, created)
end
return failed
"""
_MERGE_ATTEMPTS: Final = 20

_META_NAMES: Final = (b"__records__", b"__epoch__")
"""Keys of the store itself under the prefix (never entity hashes: entity keys start with a
version byte)."""


class _Connection(Protocol):
    """The part of ``redis.Connection`` the read path uses (typed for mypy)."""

    def send_packed_command(self, command: list[bytes], check_health: bool = ...) -> None: ...

    def read_response(self) -> Any: ...

    def disconnect(self) -> None: ...


def _glob_escape(value: bytes) -> bytes:
    """``value`` matched literally in a Redis glob pattern (SCAN MATCH)."""
    out = bytearray()
    for byte in value:
        if byte in b"*?[]\\":
            out += b"\\"
        out.append(byte)
    return bytes(out)


def bulk(value: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%b\r\n" % (len(value), value)


def command_of(*parts: bytes) -> bytes:
    """One packed RESP command."""
    return b"*%d\r\n" % len(parts) + b"".join(bulk(p) for p in parts)


_INLINE_WAIT_S: Final = 0.002
"""Longest an async read waits for its reply on the socket itself, blocking its loop, when its
request is the only one in progress (:mod:`featurestore._busy`). Redis answers a read on
loopback in tens of microseconds; a reply not in by then is awaited round the loop."""
_READ_SIZE: Final = 65536


class _AsyncConnection:
    """One Redis connection of an event loop: one exchange at a time, replies parsed by hiredis.

    The socket is non-blocking and ours (no asyncio transport), watched by the loop for its
    whole life: an exchange waits from its first byte sent, writes the command, then either
    reads the replies on the socket itself, waiting for at most ``wait_s`` (see
    :mod:`featurestore._busy`), or awaits them, read when the loop reports the socket
    readable (also while a large command is still being written). Data with no exchange
    waiting for it puts the connection out of step: it is closed. Error replies come back as ``hiredis.ReplyError`` values among the
    replies. An exchange not answered within its timeout fails with ``TimeoutError``; the
    caller then closes the connection, as after any failure, so no late reply is ever read.

    Args:
        loop: The event loop of the connection.
        deadlines: The table of ``loop`` that bounds each exchange (keyed by the connection).
        sock: The connected, non-blocking socket.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, deadlines: Deadlines, sock: socket.socket
    ) -> None:
        self._loop = loop
        self._deadlines = deadlines
        self._sock = sock
        self._fd = sock.fileno()
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)
        self._expire_callback = self._expire  # one bound method, not one per exchange
        self._readable_callback = self._on_readable
        self._parser = hiredis.Reader()
        self._waiter: asyncio.Future[list[Any]] | None = None
        self._replies: list[Any] = []
        self._expected = 0
        self.closed = False

    @classmethod
    async def connect(
        cls, loop: asyncio.AbstractEventLoop, deadlines: Deadlines, kwargs: dict[str, Any]
    ) -> _AsyncConnection:
        """A connection to the server of redis-py's connection ``kwargs`` (Unix path or TCP)."""
        path = kwargs.get("path")
        if path is not None:
            targets: list[tuple[int, Any]] = [(socket.AF_UNIX, path)]
        else:
            infos = await loop.getaddrinfo(
                kwargs.get("host", "localhost"), kwargs.get("port", 6379), type=socket.SOCK_STREAM
            )
            targets = [(family, address) for family, _, _, _, address in infos]
        failure: OSError = OSError(f"no address for {kwargs.get('host')!r}")
        for family, address in targets:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                if family != socket.AF_UNIX:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                await loop.sock_connect(sock, address)
            except OSError as exc:
                sock.close()
                failure = exc
                continue
            except BaseException:
                sock.close()
                raise
            conn = cls(loop, deadlines, sock)
            loop.add_reader(conn._fd, conn._readable_callback)
            return conn
        raise failure

    async def exchange(
        self, command: bytes, replies: int, timeout_s: float, wait_s: float = 0.0
    ) -> list[Any]:
        """Write ``command`` and return its ``replies`` replies, within ``timeout_s``.

        With ``wait_s``, the replies are first awaited on the socket itself for that long.

        Raises:
            TimeoutError: No complete answer within ``timeout_s``.
            ConnectionError: The connection is closed (by us or by the server).
            OSError: Writing or reading failed.
            hiredis.ProtocolError: The reply is not RESP.
        """
        if self.closed:
            raise ConnectionError("connection closed")
        self._replies = []
        self._expected = replies
        # Waiting from the first byte sent: Redis may answer before a large command is all
        # written, and the loop then hands its replies to this exchange.
        waiter: asyncio.Future[list[Any]] = self._loop.create_future()
        self._waiter = waiter
        try:
            sock = self._sock
            try:
                sent = sock.send(command)
            except BlockingIOError:
                sent = 0
            if sent < len(command):  # a full send buffer: the rest as the loop can
                async with asyncio.timeout(timeout_s):
                    await self._loop.sock_sendall(sock, memoryview(command)[sent:])
            if not waiter.done() and wait_s > 0 and self._wait_here(wait_s):
                return self._replies
            if not waiter.done():
                self._deadlines.add(self, timeout_s, self._expire_callback)
            return await waiter
        finally:
            self._waiter = None
            self._deadlines.remove(self)
            if waiter.done() and not waiter.cancelled():
                waiter.exception()  # retrieved here when a failed send raised first

    def _read(self) -> bool:
        """Read what the socket holds; whether every reply of the exchange is in."""
        parser, replies, expected = self._parser, self._replies, self._expected
        while True:
            try:
                data = self._sock.recv(_READ_SIZE)
            except BlockingIOError:
                return False
            if not data:
                raise ConnectionError("connection closed by the server")
            parser.feed(data)
            while len(replies) < expected:
                reply = parser.gets()
                if reply is False:
                    break
                replies.append(reply)
            else:
                return True

    def _wait_here(self, wait_s: float) -> bool:
        """Wait on the socket (not the loop) up to ``wait_s``; whether every reply is in."""
        end = time.monotonic() + wait_s
        while True:
            remaining_ms = (end - time.monotonic()) * 1000
            if remaining_ms <= 0 or not self._poll.poll(remaining_ms):
                return False
            if self._read():
                return True

    def _on_readable(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            self._unasked()
            return
        try:
            done = self._read()
        except (OSError, hiredis.ProtocolError) as exc:
            waiter.set_exception(exc)
            return
        if done:
            waiter.set_result(self._replies)

    def _unasked(self) -> None:
        """The loop saw the socket readable with no exchange waiting: close unless spurious."""
        try:
            self._sock.recv(_READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            pass
        self.close()

    def _expire(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(TimeoutError())

    def close_from_elsewhere(self) -> None:
        """:meth:`close`, called from outside the connection's loop (its own thread closes it)."""
        try:
            self._loop.call_soon_threadsafe(self.close)
        except RuntimeError:  # the loop is closed: nothing watches the socket any more
            self.close()

    def close(self) -> None:
        """Drop the connection at once (a late reply is never read) and its deadline."""
        if self.closed:
            return
        self.closed = True
        self._deadlines.remove(self)
        if not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        self._sock.close()


class Node:
    """The read connections to one Redis server: blocking ones, and those of the running loop.

    Shared by the single-server store (one node) and the cluster store (one per node). Each
    exchange writes packed commands at once and reads their replies; a reused connection
    found closed (Redis restarted, idle timeout) is replaced once by a new one, since reads
    are idempotent; any failed exchange drops its connection, so no reply of a failed
    exchange is ever read by the next one. At most ``max_idle`` connections are kept idle.

    Args:
        connection_class: redis-py's connection class for the server (TCP, TLS or Unix).
        connection_kwargs: Its settings (host, port, password, timeouts ...).
        max_idle: Most idle connections kept, blocking and per loop each.
        timeout_s: Bound of connecting and of each exchange.
        where: The server, for messages (never the password).
    """

    def __init__(
        self,
        connection_class: type[Any],
        connection_kwargs: dict[str, Any],
        *,
        max_idle: int,
        timeout_s: float,
        where: str,
    ) -> None:
        self._connection_class = connection_class
        self._connection_kwargs = connection_kwargs
        self._max_idle = max_idle
        self._timeout_s = timeout_s
        self.where = where
        self._idle: list[_Connection] = []  # list pop/append are atomic
        self._pid = os.getpid()
        # Async reads: idle connections of the loop that made them.
        self._aidle: list[_AsyncConnection] = []
        self._aloop: asyncio.AbstractEventLoop | None = None
        self._adeadlines: Deadlines | None = None
        # TLS has no set-up of ours on the loop, and Windows' loops cannot watch a socket of
        # ours (no add_reader on the proactor loop, no poll): both read blocking, off the loop.
        self._threaded = issubclass(connection_class, redis.SSLConnection) or os.name == "nt"

    def send(self, command: bytes) -> tuple[_Connection, bool]:
        """Write ``command`` on an idle (or new) connection: the connection, and if reused.

        Read its replies with :meth:`receive`; sending to several nodes first and reading
        after lets them all work at once.
        """
        if self._pid != os.getpid():  # forked: never share a socket with the parent
            self._idle = []
            self._pid = os.getpid()
        try:
            conn = self._idle.pop()
            reused = True
        except IndexError:
            conn = cast("_Connection", self._connection_class(**self._connection_kwargs))
            reused = False
        try:
            conn.send_packed_command([command], check_health=False)
        except RedisConnectionError:
            conn.disconnect()
            if reused:
                return self.send(command)
            raise
        except BaseException:
            conn.disconnect()
            raise
        return conn, reused

    def receive(
        self, sent: tuple[_Connection, bool], command: bytes, replies: int, *, errors: bool = False
    ) -> list[Any]:
        """The ``replies`` replies of ``command``, sent by :meth:`send` as ``sent``.

        With ``errors``, an error reply is returned in its place (a redis-py ``ResponseError``)
        and the connection stays in step; without, it is raised (and the connection dropped).
        """
        conn, reused = sent
        read = conn.read_response
        try:
            if errors:
                results = []
                for _ in range(replies):
                    try:
                        results.append(read())
                    except ResponseError as exc:
                        results.append(exc)
            else:
                results = [read() for _ in range(replies)]
        except RedisConnectionError:
            conn.disconnect()
            if reused:  # a stale idle connection: once more on a new one
                return self.receive(self.send(command), command, replies, errors=errors)
            raise
        except BaseException:
            conn.disconnect()
            raise
        if len(self._idle) < self._max_idle:
            self._idle.append(conn)
        else:
            conn.disconnect()
        return results

    def exchange(self, command: bytes, replies: int, *, errors: bool = False) -> list[Any]:
        """:meth:`send` then :meth:`receive`."""
        return self.receive(self.send(command), command, replies, errors=errors)

    async def aexchange(
        self, command: bytes, replies: int, *, wait_here: bool = False
    ) -> list[Any]:
        """:meth:`exchange` on a connection of the running loop (error replies are values).

        Connecting and each exchange are bounded by ``timeout_s``. Connections of another
        (closed) loop are dropped. With ``wait_here``, a read that is the only request in
        progress of the feature server on this loop waits for its reply on the socket itself
        for a moment (see :mod:`featurestore._busy`); the cluster store, which reads several
        nodes at once, does not ask for it.

        Raises:
            TimeoutError: The server did not answer in time.
            OSError: The server is unreachable or closed the connection.
            hiredis.ProtocolError: The server's reply is not RESP.
        """
        loop = asyncio.get_running_loop()
        deadlines = self._adeadlines
        if loop is not self._aloop or deadlines is None:
            for stale in self._aidle:  # of another loop, maybe running in another thread
                stale.close_from_elsewhere()
            self._aidle, self._aloop = [], loop
            deadlines = deadlines_of(loop, resolution_for(self._timeout_s))
            self._adeadlines = deadlines
        if self._threaded:
            return await asyncio.to_thread(self.exchange, command, replies, errors=True)
        wait_s = 0.0
        if wait_here:
            busy = request_count_of(loop)
            if busy is not None and busy.alone():
                wait_s = _INLINE_WAIT_S
        idle = self._aidle
        while True:
            conn = idle.pop() if idle else None
            reused = conn is not None and not conn.closed
            if conn is None or not reused:
                conn = await self._aconnect(loop, deadlines)
            try:
                results = await conn.exchange(command, replies, self._timeout_s, wait_s)
            except ConnectionError:
                conn.close()
                if reused:
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            if len(idle) < self._max_idle:
                idle.append(conn)
            else:
                conn.close()
            return results

    async def _aconnect(
        self, loop: asyncio.AbstractEventLoop, deadlines: Deadlines
    ) -> _AsyncConnection:
        """A new connection of ``loop``, authenticated and on the configured database.

        Its exchanges are bounded by entries of ``deadlines``.
        """
        kwargs = self._connection_kwargs
        timeout_s = self._timeout_s
        async with asyncio.timeout(timeout_s):
            conn = await _AsyncConnection.connect(loop, deadlines, kwargs)
        setup: list[bytes] = []
        password = kwargs.get("password")
        if password:
            username = kwargs.get("username")
            user = (username.encode(),) if username else ()
            setup.append(command_of(b"AUTH", *user, password.encode()))
        if kwargs.get("db"):
            setup.append(command_of(b"SELECT", str(kwargs["db"]).encode()))
        if setup:
            try:
                replies = await conn.exchange(b"".join(setup), len(setup), timeout_s)
            except BaseException:
                conn.close()
                raise
            failed = next((r for r in replies if isinstance(r, hiredis.ReplyError)), None)
            if failed is not None:
                conn.close()
                raise OnlineStoreError(f"{self.where} failed: {failed}.")
        return conn

    async def aclose(self) -> None:
        """Close the idle connections of the async reads (those of the running loop)."""
        idle, self._aidle = self._aidle, []
        for conn in idle:
            conn.close()

    def close(self) -> None:
        """Disconnect the idle blocking connections."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.disconnect()


class HmgetPacker:
    """Packs the HMGET of read requests (RESP), caching the parts of each views tuple.

    Args:
        prefix: The store's key prefix (``{key_prefix}:{project}:``).
    """

    def __init__(self, prefix: bytes) -> None:
        self._prefix = prefix
        # Per views tuple: the RESP head of HMGET (argument count + name) and its fields.
        self._parts: dict[tuple[str, ...], tuple[bytes, bytes]] = {}

    def pack(self, requests: Sequence[ReadRequest]) -> bytes:
        """One HMGET per request, packed into one write."""
        return b"".join(self.pack_one(key, views) for key, views in requests)

    def pack_one(self, entity_key: bytes, views: tuple[str, ...]) -> bytes:
        """The HMGET of one request."""
        head_tail = self._parts.get(views)
        if head_tail is None:
            head = b"*%d\r\n$5\r\nHMGET\r\n" % (len(views) + 2)
            head_tail = (head, b"".join(bulk(v.encode()) for v in views))
            if len(self._parts) < 256:
                self._parts[views] = head_tail
        return head_tail[0] + bulk(self._prefix + entity_key) + head_tail[1]


def unavailable_error(where: str, timeout_s: float, reason: object) -> OnlineStoreUnavailableError:
    """The error of a Redis (or cluster) that did not answer within ``timeout_s``."""
    return OnlineStoreUnavailableError(
        f"{where} is unreachable ({reason}) within {timeout_s} s; "
        "check that Redis runs and online_store.url, or raise online_store.timeout_s."
    )


def foreign_key_error(
    where: str, prefix: bytes, keys: Sequence[bytes], types: Sequence[Any], *, epoch: bytes
) -> OnlineStoreError:
    """The WRONGTYPE error, naming the first of ``keys`` that is not of our type.

    Args:
        where: The server, for the message.
        prefix: The store's key prefix.
        keys: The keys a failed command touched.
        types: The ``TYPE`` of each of ``keys``.
        epoch: The store's epoch key (a string; every other key of ours is a hash).
    """
    foreign = [
        (key, kind)
        for key, kind in zip(keys, types, strict=True)
        if kind not in (b"none", b"string" if key == epoch else b"hash")
    ]
    if not foreign:  # changed again since the failed command
        what = "a key under this store's prefix"
    else:
        key, kind = foreign[0]
        kind_name = kind.decode() if isinstance(kind, bytes) else str(kind)
        what = f"key {key.decode('utf-8', 'backslashreplace')!r} is a {kind_name}: it"
    return OnlineStoreIntegrityError(
        f"{where} failed: {what} was not written by featurestore (another "
        f"program uses the prefix '{prefix.decode()}'), so featurestore cannot read "
        "or write it. "
        "Delete that key, or give this store its own online_store.key_prefix in "
        "featurestore.yaml and materialize again."
    )


def connection_settings(
    config: RedisOnlineStoreConfig,
) -> tuple[type[Any], dict[str, Any], redis.BlockingConnectionPool]:
    """The connection class, settings and pool of ``config.url`` (timeouts, no retries).

    Raises:
        OnlineStoreError: The URL is not a Redis URL.
    """
    password = config.password.get_secret_value() if config.password else None
    try:
        pool = redis.BlockingConnectionPool.from_url(
            config.url,
            max_connections=config.max_connections,
            timeout=config.timeout_s,
            socket_timeout=config.timeout_s,
            socket_connect_timeout=config.timeout_s,
            retry=Retry(NoBackoff(), 0),
            **({"password": password} if password else {}),
        )
    except ValueError as exc:
        msg = (
            f"online_store.url is not a valid Redis URL ({exc}); write "
            "redis://[:password@]host:port/db."
        )
        raise OnlineStoreError(msg) from exc
    return pool.connection_class, dict(pool.connection_kwargs), pool


def check_lengths(entity_keys: Sequence[bytes], records: Sequence[bytes]) -> None:
    """Raise unless there is one record per entity key."""
    if len(entity_keys) != len(records):
        msg = f"{len(entity_keys)} entity keys but {len(records)} records."
        raise OnlineStoreError(msg)


def older_bound(before_us: int) -> bytes:
    """The delete script's bound (ARGV[2]): records whose event time is before ``before_us``."""
    size = EVENT_SLICE.stop - EVENT_SLICE.start
    return event_order_key(before_us).to_bytes(size, "big")


def merge_rounds(
    where: str, view: str, count: int, merge_round: Callable[[list[int]], tuple[int, list[int]]]
) -> int:
    """Merge the records at positions ``0..count-1`` until none changed under the merge.

    ``merge_round(pending)`` reads, merges and compare-and-sets the records at ``pending``
    (the merge script): it returns how many it wrote and the positions another writer changed
    in between, which the next round reads and merges again. Returns how many were written.

    Raises:
        OnlineStoreError: Records still changed after ``_MERGE_ATTEMPTS`` rounds.
    """
    pending = list(range(count))
    written = 0
    for attempt in range(_MERGE_ATTEMPTS):
        done, pending = merge_round(pending)
        written += done
        if not pending:
            return written
        # Writers that lost a round back off a random while (up to 1, 2, 4 ... 64 ms), so
        # two of them never keep meeting in lockstep on the same keys.
        time.sleep(random.uniform(0, 0.001 * 2 ** min(attempt, 6)))
    msg = (
        f"{where}: {len(pending)} records of '{view}' changed under each of "
        f"{_MERGE_ATTEMPTS} merges (another writer keeps writing them); retry."
    )
    raise OnlineStoreError(msg)


def where_of(config: RedisOnlineStoreConfig) -> str:
    """The host of ``config.url`` for messages (never the password)."""
    return config.url.rsplit("@", 1)[-1]


class RedisOnlineStore:
    """Online records in Redis (layout: docs/online-format.md).

    Args:
        config: The ``online_store`` section (url, password, timeout_s, max_connections,
            key_prefix).
        project: The project name; part of every key.
    """

    def __init__(self, config: RedisOnlineStoreConfig, *, project: str) -> None:
        self.config = config
        self.project = project
        self._prefix = f"{config.key_prefix}:{project}:".encode()
        self._counter = self._prefix + b"__records__"
        self._epoch = self._prefix + b"__epoch__"
        connection_class, kwargs, pool = connection_settings(config)
        self._client = redis.Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))
        self._script = self._client.register_script(_WRITE_SCRIPT)
        self._delete_script = self._client.register_script(_DELETE_SCRIPT)
        self._merge_script = self._client.register_script(_MERGE_SCRIPT)
        # Reads: connections of our own, same settings as the pool's.
        self._node = Node(
            connection_class,
            kwargs,
            max_idle=config.max_connections,
            timeout_s=config.timeout_s,
            where=self._where(),
        )
        self._hmget = HmgetPacker(self._prefix)

    def _where(self) -> str:
        return f"Redis at {where_of(self.config)}"

    @property
    def location(self) -> str:
        """The Redis host and key prefix (never the password)."""
        return f"{self._where()}, keys {self._prefix.decode()}*"

    def opener(self) -> Callable[[], RedisOnlineStore]:
        """Connects again with the same settings (see OnlineStore)."""
        return functools.partial(RedisOnlineStore, self.config, project=self.project)

    def _translate(self, exc: RedisError, keys: Sequence[bytes] = ()) -> OnlineStoreError:
        """Our error for a redis-py error; ``keys`` are those the failed command touched."""
        if isinstance(exc, ResponseError) and "WRONGTYPE" in str(exc):
            return self._foreign_key_error(keys)
        if isinstance(exc, RedisConnectionError | RedisTimeoutError):
            return unavailable_error(self._where(), self.config.timeout_s, exc)
        return OnlineStoreError(f"{self._where()} failed: {exc}.")

    def _foreign_key_error(self, keys: Sequence[bytes]) -> OnlineStoreError:
        """The WRONGTYPE error, naming the first of ``keys`` that is not of our type.

        Costs one more round trip, on this error path only.
        """
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.type(key)
                types = pipe.execute()
        except RedisError as exc:
            return self._translate(exc)
        return foreign_key_error(self._where(), self._prefix, keys, types, epoch=self._epoch)

    def write_records(
        self, view: str, entity_keys: Sequence[bytes], records: Sequence[bytes]
    ) -> int:
        """Write records conditionally with the Lua script (see OnlineStore)."""
        check_lengths(entity_keys, records)
        prefix = self._prefix
        written = 0
        keys: list[bytes] = []
        try:
            for start in range(0, len(records), _WRITE_CHUNK):
                stop = start + _WRITE_CHUNK
                keys = [prefix + k for k in entity_keys[start:stop]]
                keys.append(self._counter)
                written += int(self._script(keys=keys, args=[view, *records[start:stop]]))
        except RedisError as exc:
            raise self._translate(exc, keys) from exc
        return written

    def merge_records(
        self,
        view: str,
        entity_keys: Sequence[bytes],
        records: Sequence[bytes],
        merge: Callable[[Sequence[bytes | None], Sequence[bytes]], list[bytes]],
    ) -> int:
        """Read (HGET, pipelined), merge, then compare-and-set with a script (see OnlineStore).

        Records another writer changed in between are read and merged again.
        """
        check_lengths(entity_keys, records)
        keys: list[bytes] = []

        def merge_round(pending: list[int]) -> tuple[int, list[int]]:
            nonlocal keys
            written, retry = 0, []
            for start in range(0, len(pending), _WRITE_CHUNK):
                chunk = pending[start : start + _WRITE_CHUNK]
                keys = [self._prefix + entity_keys[i] for i in chunk]
                with self._client.pipeline(transaction=False) as pipe:
                    for key in keys:
                        pipe.hget(key, view)
                    stored: list[bytes | None] = pipe.execute()
                args: list[bytes | str] = [view]
                sent: list[int] = []
                changed: list[bytes] = []
                merged = merge(stored, [records[i] for i in chunk])
                for i, key, old, new in zip(chunk, keys, stored, merged, strict=True):
                    if new != old:
                        args += [old or b"", new]
                        sent.append(i)
                        changed.append(key)
                if sent:
                    failed = self._merge_script(keys=[*changed, self._counter], args=args)
                    retry += [sent[int(j)] for j in failed]
                    written += len(sent) - len(failed)
            return written, retry

        try:
            return merge_rounds(self._where(), view, len(records), merge_round)
        except RedisError as exc:
            raise self._translate(exc, keys) from exc

    def read_records(self, requests: Sequence[ReadRequest]) -> list[list[bytes | None]]:
        """One HMGET per entity key, all sent in one round trip (see OnlineStore)."""
        if not requests:
            return []
        try:
            return self._node.exchange(self._hmget.pack(requests), len(requests))
        except RedisError as exc:
            raise self._translate(exc, [self._prefix + r.entity_key for r in requests]) from exc

    async def aread_records(self, requests: Sequence[ReadRequest]) -> list[list[bytes | None]]:
        """:meth:`read_records` on the running event loop (never blocks it; see AsyncReads)."""
        if not requests:
            return []
        replies = await self._aexchange(self._hmget.pack(requests), len(requests))
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError | ResponseError):
                raise await self._areply_error(
                    reply, [self._prefix + r.entity_key for r in requests]
                )
        return replies

    def count_records(self, view: str) -> int:
        """How many entity keys have a record of ``view`` (kept by the write script)."""
        try:
            value = self._client.hget(self._counter, view)
        except RedisError as exc:
            raise self._translate(exc) from exc
        return int(value) if value is not None else 0

    def delete_records(self, view: str) -> int:
        """HDEL ``view`` from every hash under the prefix (SCAN, then a script per batch)."""
        return self._delete(view)

    def delete_older(self, view: str, before_us: int) -> int:
        """:meth:`delete_records`, of the records whose event key is before ``before_us``."""
        return self._delete(view, older_bound(before_us))

    def _delete(self, view: str, *bound: bytes) -> int:
        meta = {self._prefix + name for name in _META_NAMES}
        deleted = 0
        try:
            batch: list[bytes] = []
            for key in self._client.scan_iter(match=_glob_escape(self._prefix) + b"*", count=1000):
                if key not in meta:
                    batch.append(key)
                if len(batch) >= _WRITE_CHUNK:
                    keys = [*batch, self._counter]
                    deleted += int(self._delete_script(keys=keys, args=[view, *bound]))
                    batch = []
            if batch:
                keys = [*batch, self._counter]
                deleted += int(self._delete_script(keys=keys, args=[view, *bound]))
        except RedisError as exc:
            raise self._translate(exc) from exc
        return deleted

    def read_epoch(self) -> str | None:
        """The value of ``{key_prefix}:{project}:__epoch__`` (None: no such key)."""
        try:
            value = self._client.get(self._epoch)
        except RedisError as exc:
            raise self._translate(exc, [self._epoch]) from exc
        return (
            None if value is None else (value.decode() if isinstance(value, bytes) else str(value))
        )

    async def aread_epoch(self) -> str | None:
        """:meth:`read_epoch` on the running event loop (never blocks it; see AsyncReads)."""
        (value,) = await self._aexchange(command_of(b"GET", self._epoch), 1)
        if isinstance(value, hiredis.ReplyError | ResponseError):
            raise await self._areply_error(value, [self._epoch])
        return None if value is None else value.decode()

    async def _areply_error(
        self, reply: hiredis.ReplyError | ResponseError, keys: Sequence[bytes]
    ) -> OnlineStoreError:
        """Our error for an error reply of an async exchange (one more round trip if WRONGTYPE)."""
        if not str(reply).startswith("WRONGTYPE"):
            return OnlineStoreError(f"{self._where()} failed: {reply}.")
        types = await self._aexchange(b"".join(command_of(b"TYPE", key) for key in keys), len(keys))
        return foreign_key_error(self._where(), self._prefix, keys, types, epoch=self._epoch)

    async def _aexchange(self, command: bytes, replies: int) -> list[Any]:
        """:meth:`Node.aexchange`, its failures translated.

        Raises:
            OnlineStoreUnavailableError: Redis did not answer in time or is unreachable.
        """
        try:
            return await self._node.aexchange(command, replies, wait_here=True)
        except TimeoutError:
            raise unavailable_error(self._where(), self.config.timeout_s, "no answer") from None
        except (OSError, hiredis.ProtocolError, RedisConnectionError, RedisTimeoutError) as exc:
            raise unavailable_error(self._where(), self.config.timeout_s, exc) from exc

    async def aclose(self) -> None:
        """Close the idle connections of the async reads (those of the running loop)."""
        await self._node.aclose()

    def ensure_epoch(self) -> str:
        """The epoch key, set first with ``SET NX`` when missing (one writer wins)."""
        try:
            self._client.set(self._epoch, new_epoch(), nx=True)
            value = self._client.get(self._epoch)
        except RedisError as exc:
            raise self._translate(exc, [self._epoch]) from exc
        if value is None:  # deleted between the two commands: the store is being emptied
            msg = f"{self._where()}: the store epoch vanished while it was written; retry."
            raise OnlineStoreUnavailableError(msg)
        return value.decode() if isinstance(value, bytes) else str(value)

    def close(self) -> None:
        """Disconnect the pool and the read connections."""
        self._node.close()
        self._client.close()
        self._client.connection_pool.disconnect()
