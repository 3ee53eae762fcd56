"""The Redis online store: one hash per (project, entity key), one field per feature view.

Writes go through a Lua script (one EVALSHA per batch) that replaces a field only if the new
record is not older (its test is generated from
:data:`~featurestore.online.layout.REPLACE_RULE`), so every record is written atomically and
conditionally. Reads send one
HMGET per entity in a single round trip: the commands are packed here (RESP) and written at
once on a read connection of our own, and the replies are parsed by redis-py's (hiredis)
parser; this skips redis-py's pipeline and pool bookkeeping, which cost more than the round
trip itself. redis-py errors are translated here.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from featurestore.errors import (
    OnlineStoreError,
    OnlineStoreIntegrityError,
    OnlineStoreUnavailableError,
)
from featurestore.online.epoch import new_epoch
from featurestore.online.layout import lua_replaces_function

if TYPE_CHECKING:
    from collections.abc import Sequence

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

# KEYS[1..n] = entity hashes, KEYS[n+1] = the record counter; ARGV[1] = the view. Keys of
# another type (not ours) are left alone.
_DELETE_SCRIPT: Final = """
local field = ARGV[1]
local n = #KEYS - 1
local deleted = 0
for i = 1, n do
  if redis.call('TYPE', KEYS[i]).ok == 'hash' then
    deleted = deleted + redis.call('HDEL', KEYS[i], field)
  end
end
if deleted > 0 then
  redis.call('HINCRBY', KEYS[n + 1], field, -deleted)
end
return deleted
"""

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


def _bulk(value: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%b\r\n" % (len(value), value)


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
        self._client = redis.Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))
        self._script = self._client.register_script(_WRITE_SCRIPT)
        self._delete_script = self._client.register_script(_DELETE_SCRIPT)
        # Reads: idle connections of our own (list pop/append are atomic), same settings as
        # the pool's; at most max_connections are kept idle.
        self._connection_class = pool.connection_class
        self._connection_kwargs = dict(pool.connection_kwargs)
        self._idle: list[_Connection] = []
        self._pid = os.getpid()
        # Per views tuple: the RESP head of HMGET (argument count + name) and its fields.
        self._hmget_parts: dict[tuple[str, ...], tuple[bytes, bytes]] = {}

    def _where(self) -> str:
        host = self.config.url.rsplit("@", 1)[-1]  # never show a password
        return f"Redis at {host}"

    @property
    def location(self) -> str:
        """The Redis host and key prefix (never the password)."""
        return f"{self._where()}, keys {self._prefix.decode()}*"

    def _translate(self, exc: RedisError, keys: Sequence[bytes] = ()) -> OnlineStoreError:
        """Our error for a redis-py error; ``keys`` are those the failed command touched."""
        if isinstance(exc, ResponseError) and "WRONGTYPE" in str(exc):
            return self._foreign_key_error(keys)
        if isinstance(exc, RedisConnectionError | RedisTimeoutError):
            return OnlineStoreUnavailableError(
                f"{self._where()} is unreachable ({exc}) within {self.config.timeout_s} s; "
                "check that Redis runs and online_store.url, or raise online_store.timeout_s."
            )
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
        expected = {self._epoch: b"string"}
        foreign = [
            (key, kind)
            for key, kind in zip(keys, types, strict=True)
            if kind not in (b"none", expected.get(key, b"hash"))
        ]
        if not foreign:  # changed again since the failed command
            what = "a key under this store's prefix"
        else:
            key, kind = foreign[0]
            what = f"key {key.decode('utf-8', 'backslashreplace')!r} is a {kind.decode()}: it"
        return OnlineStoreIntegrityError(
            f"{self._where()} failed: {what} was not written by featurestore (another "
            f"program uses the prefix '{self._prefix.decode()}'), so featurestore cannot read "
            "or write it. "
            "Delete that key, or give this store its own online_store.key_prefix in "
            "featurestore.yaml and materialize again."
        )

    def write_records(
        self, view: str, entity_keys: Sequence[bytes], records: Sequence[bytes]
    ) -> int:
        """Write records conditionally with the Lua script (see OnlineStore)."""
        if len(entity_keys) != len(records):
            msg = f"{len(entity_keys)} entity keys but {len(records)} records."
            raise OnlineStoreError(msg)
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

    def read_records(self, requests: Sequence[ReadRequest]) -> list[list[bytes | None]]:
        """One HMGET per entity key, all sent in one round trip (see OnlineStore)."""
        if not requests:
            return []
        prefix = self._prefix
        parts = self._hmget_parts
        chunks: list[bytes] = []
        for key, views in requests:
            head_tail = parts.get(views)
            if head_tail is None:
                head_tail = self._hmget_command(views)
            chunks.append(head_tail[0])
            chunks.append(_bulk(prefix + key))
            chunks.append(head_tail[1])
        command = b"".join(chunks)
        try:
            return self._exchange(command, len(requests))
        except RedisError as exc:
            raise self._translate(exc, [prefix + r.entity_key for r in requests]) from exc

    def _hmget_command(self, views: tuple[str, ...]) -> tuple[bytes, bytes]:
        head = b"*%d\r\n$5\r\nHMGET\r\n" % (len(views) + 2)
        tail = b"".join(_bulk(v.encode()) for v in views)
        if len(self._hmget_parts) < 256:
            self._hmget_parts[views] = (head, tail)
        return head, tail

    def _exchange(self, command: bytes, replies: int) -> list[list[bytes | None]]:
        """Send packed commands on an idle read connection and read ``replies`` replies.

        A reused connection that turns out closed (Redis restarted, idle timeout) is
        replaced once by a new one; reads are idempotent. On any error the connection is
        dropped, so no reply of a failed exchange is ever read by the next one.
        """
        if self._pid != os.getpid():  # forked: never share a socket with the parent
            self._idle = []
            self._pid = os.getpid()
        idle = self._idle
        while True:
            try:
                conn = idle.pop()
                reused = True
            except IndexError:
                conn = cast("_Connection", self._connection_class(**self._connection_kwargs))
                reused = False
            try:
                conn.send_packed_command([command], check_health=False)
                read = conn.read_response
                results: list[list[bytes | None]] = [read() for _ in range(replies)]
            except RedisConnectionError:
                conn.disconnect()
                if reused:
                    continue
                raise
            except BaseException:
                conn.disconnect()
                raise
            if len(idle) < self.config.max_connections:
                idle.append(conn)
            else:
                conn.disconnect()
            return results

    def count_records(self, view: str) -> int:
        """How many entity keys have a record of ``view`` (kept by the write script)."""
        try:
            value = self._client.hget(self._counter, view)
        except RedisError as exc:
            raise self._translate(exc) from exc
        return int(value) if value is not None else 0

    def delete_records(self, view: str) -> int:
        """HDEL ``view`` from every hash under the prefix (SCAN, then a script per batch)."""
        meta = {self._prefix + name for name in _META_NAMES}
        deleted = 0
        try:
            batch: list[bytes] = []
            for key in self._client.scan_iter(match=_glob_escape(self._prefix) + b"*", count=1000):
                if key not in meta:
                    batch.append(key)
                if len(batch) >= _WRITE_CHUNK:
                    deleted += int(self._delete_script(keys=[*batch, self._counter], args=[view]))
                    batch = []
            if batch:
                deleted += int(self._delete_script(keys=[*batch, self._counter], args=[view]))
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
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.disconnect()
        self._client.close()
        self._client.connection_pool.disconnect()
