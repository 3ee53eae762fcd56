"""The Redis Cluster online store: the records of the Redis store, sharded by hash slot.

Layout (docs/redis-cluster.md): the keys and records of docs/online-format.md. An entity is
one hash, so all its views and tiles live on one slot. The record counter is one hash per
slot, ``<key_prefix>:<project>:__records__{<tag>}``, whose hash tag puts it on that slot, so
each write script touches keys of one slot (Redis Cluster runs a script on one slot only).

Routing: the slot map comes from ``CLUSTER SHARDS`` (Redis 7.0 or newer). A request's commands are grouped by the
master of their slot, packed, and written to every master involved before any reply is read:
one round trip per node, all nodes at once (the event-loop reads await them together). A
``MOVED`` reply updates the map and the command is sent again at once; ``ASK`` sends it to the
named node behind ``ASKING``; ``TRYAGAIN``, ``CLUSTERDOWN``, a lost or refused connection and
the like refresh the map and retry after a short pause, until the request's budget
(``timeout_s``) is spent: then :class:`~featurestore.errors.OnlineStoreUnavailableError`.
Writes end each master's batch with ``WAIT 1`` when the master has replicas: a write counts
only once a replica holds it, so a failover never loses an acknowledged record.

Connections, packing, scripts and messages are those of :mod:`featurestore.online.redis`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
from binascii import crc_hqx
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import hiredis
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from featurestore.errors import ConfigError, OnlineStoreError, OnlineStoreUnavailableError
from featurestore.online.epoch import new_epoch
from featurestore.online.redis import (
    _DELETE_SCRIPT,
    _MERGE_SCRIPT,
    _WRITE_CHUNK,
    _WRITE_SCRIPT,
    HmgetPacker,
    Node,
    _glob_escape,
    check_lengths,
    command_of,
    connection_settings,
    foreign_key_error,
    merge_rounds,
    older_bound,
    unavailable_error,
    where_of,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from featurestore.online.base import ReadRequest
    from featurestore.repo.config import RedisOnlineStoreConfig

__all__ = ["RedisClusterOnlineStore"]

SLOTS: Final = 16384
_ASKING: Final = command_of(b"ASKING")
_PAUSE_S: Final = 0.01
"""First pause before retrying after TRYAGAIN, CLUSTERDOWN or a lost node; doubled up to 16x."""
_WRITE_BATCH: Final = 50 * _WRITE_CHUNK
"""Records grouped by slot at once: more records, fewer and larger script calls (about 3
records per slot at 50,000; about 1 at 10,000, which wrote 50,000 records 1.4-1.6x slower)."""
_ROUND_KEYS: Final = 10 * _WRITE_CHUNK
"""Keys written per round of script calls (each round: one round trip per master, all at
once), so no round trip keeps a master busy for long (about 3,300 records per master of 3)."""
_FAILURES: Final = (RedisConnectionError, RedisTimeoutError, OSError, hiredis.ProtocolError)
"""What a node's failed exchange raises (a refused or lost connection, a timeout)."""

Address = tuple[str, int]


@functools.cache
def _slot_tags() -> tuple[bytes, ...]:
    """For each slot, the shortest decimal hash tag that Redis puts on it (computed once)."""
    tags: list[bytes | None] = [None] * SLOTS
    missing, n = SLOTS, 0
    while missing:
        tag = b"%d" % n
        slot = crc_hqx(tag, 0) % SLOTS
        if tags[slot] is None:
            tags[slot] = tag
            missing -= 1
        n += 1
    return tuple(t for t in tags if t is not None)


@dataclass(frozen=True, slots=True)
class _Script:
    """A Lua script: its text and SHA1 (sent as EVALSHA; EVAL where a node lacks it)."""

    text: bytes
    sha: bytes

    @classmethod
    def of(cls, text: str) -> _Script:
        data = text.encode()
        return cls(data, hashlib.sha1(data, usedforsecurity=False).hexdigest().encode())


@dataclass(slots=True)
class _Call:
    """One command of a request, routed by its slot; one reply."""

    slot: int
    command: bytes
    keys: tuple[bytes, ...]
    """The keys it touches (for the message when one is not ours)."""
    reply: Any = None
    ask: Address | None = None
    """Where the next try goes behind ASKING (the slot is being migrated there)."""
    eval_command: bytes | None = None
    """The EVAL form of a script call, sent instead when a node does not know the script."""


def _error_text(reply: object) -> str | None:
    """The text of an error reply (``MOVED 3999 127.0.0.1:7002``), None for any other reply."""
    if isinstance(reply, hiredis.ReplyError):
        return str(reply)
    if isinstance(reply, ResponseError):
        text, code = str(reply), getattr(reply, "status_code", None)
        return f"{code} {text}" if code and not text.startswith(code) else text
    return None


def _pairs(reply: Any) -> dict[str, Any]:
    """A RESP map reply (a flat list of names and values, or a dict) as a dict."""
    if isinstance(reply, dict):
        return {_text(k): v for k, v in reply.items()}
    return {_text(reply[i]): reply[i + 1] for i in range(0, len(reply), 2)}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else "" if value is None else str(value)


def _address(text: str, default_host: str) -> Address:
    """``host:port`` (of a redirection or a startup node) as an address."""
    host, _, port = text.rpartition(":")
    return (host or default_host, int(port))


class _Round:
    """One request's calls and their retries until all are answered or the budget is spent.

    The I/O is done by a blocking or an event-loop driver; this decides what is sent where,
    reads the replies and says whether, and after what pause, to go again.
    """

    def __init__(self, store: RedisClusterOnlineStore, calls: list[_Call], *, wait: bool) -> None:
        self.store = store
        self.calls = calls
        self.wait = wait
        self.deadline = time.monotonic() + store.config.timeout_s
        self.pending = list(range(len(calls)))
        self.retry: list[int] = []
        self.refresh = False
        self.pause = False
        self.attempt = 0
        self.reason: object = "no answer"

    def plan(self) -> list[tuple[Address, bytes, list[int], int]]:
        """(node, packed commands, the calls sent, replies expected) per node to ask now."""
        owners = self.store._owners
        groups: dict[Address, list[int]] = {}
        for i in self.pending:
            call = self.calls[i]
            groups.setdefault(call.ask or owners[call.slot], []).append(i)
        plan = []
        for address, indices in groups.items():
            parts: list[bytes] = []
            for i in indices:
                call = self.calls[i]
                if call.ask is not None:
                    parts.append(_ASKING)
                parts.append(call.command)
            replies = len(parts)
            if self.wait and self.store._replicas.get(address, 0) > 0:
                # Half the time left: a late replica gets WAIT's answer (0), not a timeout.
                wait_ms = max(1, int((self.deadline - time.monotonic()) * 500))
                parts.append(command_of(b"WAIT", b"1", b"%d" % wait_ms))
                replies += 1
            plan.append((address, b"".join(parts), indices, replies))
        self.pending = []
        return plan

    def absorb(self, indices: list[int], replies: list[Any]) -> None:
        """Take a node's replies to the calls ``indices`` (as planned)."""
        position = 0
        for i in indices:
            call = self.calls[i]
            if call.ask is not None:
                position += 1  # ASKING's OK
                call.ask = None
            self._take(i, call, replies[position])
            position += 1
        if position < len(replies) and int(replies[position]) < 1:  # WAIT: no replica has it
            self.reason = "no replica acknowledged the write"
            self.pause = self.refresh = True  # the replica may have failed: read the map again
            again = set(self.retry)
            self.retry += [i for i in indices if i not in again]

    def _take(self, i: int, call: _Call, reply: Any) -> None:
        text = _error_text(reply)
        if text is None:
            call.reply = reply
            return
        code, _, rest = text.partition(" ")
        if code == "MOVED":
            slot, _, target = rest.partition(" ")
            self.store._owners[int(slot)] = _address(target, self.store._seed_host)
        elif code == "ASK":
            call.ask = _address(rest.partition(" ")[2], self.store._seed_host)
        elif code == "NOSCRIPT" and call.eval_command is not None:
            call.command = call.eval_command
        elif code in ("TRYAGAIN", "CLUSTERDOWN", "LOADING", "MASTERDOWN", "READONLY"):
            self.reason = text
            self.pause = True
            self.refresh = self.refresh or code != "TRYAGAIN"
        else:  # not a matter of routing (WRONGTYPE ...): answered, the caller raises it
            call.reply = reply
            return
        self.retry.append(i)

    def failed(self, indices: list[int], exc: BaseException) -> None:
        """A node could not be asked (refused, lost, timed out): the calls go again."""
        self.reason = exc
        self.refresh = self.pause = True
        self.retry += indices

    def again(self) -> float | None:
        """None when every call is answered; else the pause before the next try.

        Raises:
            OnlineStoreUnavailableError: The budget is spent.
        """
        if not self.retry:
            return None
        self.pending, self.retry = self.retry, []
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            if self.refresh:  # the next request reads the map first
                self.store._stale = True
            raise unavailable_error(self.store._where(), self.store.config.timeout_s, self.reason)
        if not self.pause:
            return 0.0
        self.pause = False
        self.attempt += 1
        return min(_PAUSE_S * float(2 ** min(self.attempt - 1, 4)), remaining)


class RedisClusterOnlineStore:
    """Online records in a Redis Cluster (layout: docs/redis-cluster.md).

    Args:
        config: The ``online_store`` section with ``cluster: true`` (url: any node,
            startup_nodes, password, timeout_s, max_connections, key_prefix).
        project: The project name; part of every key.

    Raises:
        ConfigError: The prefix or project holds a brace (a hash tag), the URL names a
            database other than 0, or a startup node is not ``host:port``.
    """

    def __init__(self, config: RedisOnlineStoreConfig, *, project: str) -> None:
        self.config = config
        self.project = project
        prefix = f"{config.key_prefix}:{project}:"
        if "{" in prefix or "}" in prefix:
            msg = (
                f"featurestore.yaml: online_store.key_prefix {config.key_prefix!r} and project "
                f"{project!r} must not contain '{{' or '}}' on a Redis Cluster (a hash tag "
                "would move the keys off their slots); choose another key_prefix."
            )
            raise ConfigError(msg)
        self._prefix = prefix.encode()
        self._epoch = self._prefix + b"__epoch__"
        self._counter_prefix = self._prefix + b"__records__{"
        self._connection_class, self._kwargs, pool = connection_settings(config)
        pool.disconnect()  # only its settings are used: each node gets connections of its own
        if self._kwargs.get("db"):
            msg = (
                f"featurestore.yaml: online_store.url {where_of(config)!r} names database "
                f"{self._kwargs['db']}, but a Redis Cluster has only database 0; end the URL "
                "with /0 or no database."
            )
            raise ConfigError(msg)
        self._seed_host = str(self._kwargs.get("host", "127.0.0.1"))
        self._seeds: list[Address] = [(self._seed_host, int(self._kwargs.get("port", 6379)))]
        for node in config.startup_nodes:
            try:
                text = urlsplit(node).netloc.rsplit("@", 1)[-1] if "://" in node else node
                self._seeds.append(_address(text, self._seed_host))
            except ValueError as exc:
                msg = (
                    f"featurestore.yaml: online_store.startup_nodes entry {node!r} is not "
                    "host:port; write e.g. 10.0.0.2:7000."
                )
                raise ConfigError(msg) from exc
        self._nodes: dict[Address, Node] = {}
        self._owners: list[Address] = []
        """Slot -> its master (empty until the slot map is first read)."""
        self._replicas: dict[Address, int] = {}
        self._stale = True
        """Read the slot map before the next request (none yet, or a request failed on it)."""
        self._map_error = "no node answered"
        """Why the last node asked gave no slot map (for the message)."""
        self._hmget = HmgetPacker(self._prefix)
        self._write_script = _Script.of(_WRITE_SCRIPT)
        self._delete_script = _Script.of(_DELETE_SCRIPT)
        self._merge_script = _Script.of(_MERGE_SCRIPT)

    def _where(self) -> str:
        return f"Redis at {where_of(self.config)} (a cluster)"

    @property
    def location(self) -> str:
        """A node of the cluster and the key prefix (never the password)."""
        return f"{self._where()}, keys {self._prefix.decode()}*"

    def opener(self) -> Callable[[], RedisClusterOnlineStore]:
        """Connects to the cluster again with the same settings (see OnlineStore)."""
        return functools.partial(RedisClusterOnlineStore, self.config, project=self.project)

    def _node(self, address: Address) -> Node:
        node = self._nodes.get(address)
        if node is None:
            host, port = address
            node = self._nodes[address] = Node(
                self._connection_class,
                {**self._kwargs, "host": host, "port": port},
                max_idle=self.config.max_connections,
                timeout_s=self.config.timeout_s,
                where=f"Redis Cluster node {host}:{port}",
            )
        return node

    def _counter(self, slot: int) -> bytes:
        """The record counter hash of ``slot`` (its hash tag puts it on the slot)."""
        return self._counter_prefix + _slot_tags()[slot] + b"}"

    # -- the slot map -------------------------------------------------------------------------

    def _map_sources(self) -> list[Address]:
        """Nodes to ask for the slot map: the known masters first, then the configured ones."""
        known = list(dict.fromkeys(self._owners))
        return known + [a for a in self._seeds if a not in known]

    def _take_map(self, address: Address, reply: Any) -> bool:
        """Use a ``CLUSTER SHARDS`` reply of node ``address``; False if it covers not all slots.

        ``CLUSTER SHARDS`` (Redis 7.0+) names each node by its preferred endpoint (the one
        ``MOVED`` and ``ASK`` name) and tells replicas' health; ``CLUSTER SLOTS`` is cached
        by Redis 7.0 and may leave out replicas that attached later, and a write waits for
        a replica only where the master has a working one.
        """
        error = _error_text(reply)
        if error is not None or not isinstance(reply, list):
            answer = error if error is not None else repr(reply)
            self._map_error = f"{address[0]}:{address[1]} answered {answer}"
            return False
        owners: list[Address | None] = [None] * SLOTS
        replicas: dict[Address, int] = {}
        for shard in reply:
            fields = _pairs(shard)
            master: Address | None = None
            working = 0
            for node in fields.get("nodes", []):
                info = _pairs(node)
                endpoint = _text(info.get("endpoint")) or _text(info.get("ip"))
                host = address[0] if endpoint in ("", "?") else endpoint
                port = int(info.get("port", info.get("tls-port", 0)))
                role, health = _text(info.get("role")), _text(info.get("health"))
                if role == "master":
                    master = (host, port)
                elif health != "fail" and health != "failed":
                    working += 1
            ranges = [int(n) for n in fields.get("slots", [])]
            if master is None or not ranges:
                continue
            replicas[master] = working
            for first, last in zip(ranges[::2], ranges[1::2], strict=True):
                owners[first : last + 1] = [master] * (last - first + 1)
        if any(owner is None for owner in owners):  # the cluster is down or being set up
            self._map_error = f"{address[0]}:{address[1]} knows no master for some slots"
            return False
        self._owners = [owner for owner in owners if owner is not None]
        self._replicas = replicas
        self._stale = False
        return True

    def _refresh(self) -> None:
        """Read the slot map from the first node that answers (the old map stays otherwise)."""
        for address in self._map_sources():
            try:
                (reply,) = self._node(address).exchange(
                    command_of(b"CLUSTER", b"SHARDS"), 1, errors=True
                )
            except _FAILURES as exc:
                self._map_error = f"{address[0]}:{address[1]}: {exc}"
                continue
            if self._take_map(address, reply):
                return

    async def _arefresh(self) -> None:
        """:meth:`_refresh` on the running event loop."""
        for address in self._map_sources():
            try:
                (reply,) = await self._node(address).aexchange(command_of(b"CLUSTER", b"SHARDS"), 1)
            except (*_FAILURES, TimeoutError) as exc:
                self._map_error = f"{address[0]}:{address[1]}: {str(exc) or 'no answer'}"
                continue
            if self._take_map(address, reply):
                return

    def _ready(self) -> None:
        """Read the slot map if there is none yet, or the last request found it out of date."""
        if self._stale:
            self._refresh()
        if not self._owners:
            raise self._no_map()

    def _no_map(self) -> OnlineStoreError:
        nodes = ", ".join(f"{h}:{p}" for h, p in self._seeds)
        if " answered ERR" in self._map_error:  # not a cluster, or a Redis before 7.0
            return OnlineStoreError(
                f"{self._where()} failed: {self._map_error} to CLUSTER SHARDS; the Redis "
                "Cluster store needs Redis 7.0 or newer with cluster-enabled yes (for a "
                "single Redis, remove 'cluster: true' from online_store)."
            )
        return unavailable_error(
            self._where(),
            self.config.timeout_s,
            f"no node of {nodes} gave a full slot map; last: {self._map_error}",
        )

    # -- routed exchanges ---------------------------------------------------------------------

    def _run(self, calls: list[_Call], *, wait: bool = False) -> list[Any]:
        """The replies of ``calls``, each sent to the master of its slot (see the module)."""
        self._ready()
        round_ = _Round(self, calls, wait=wait)
        while True:
            sent = []
            for address, command, indices, replies in round_.plan():
                node = self._node(address)
                try:
                    sent.append((node, node.send(command), command, indices, replies))
                except _FAILURES as exc:
                    round_.failed(indices, exc)
            for node, conn, command, indices, replies in sent:
                try:
                    round_.absorb(indices, node.receive(conn, command, replies, errors=True))
                except _FAILURES as exc:
                    round_.failed(indices, exc)
            pause = round_.again()
            if pause is None:
                return [call.reply for call in calls]
            if round_.refresh:
                round_.refresh = False
                self._refresh()
            if pause:
                time.sleep(pause)

    async def _arun(self, calls: list[_Call]) -> list[Any]:
        """:meth:`_run` on the running event loop: every node's exchange awaited together."""
        if self._stale:
            await self._arefresh()
        if not self._owners:
            raise self._no_map()
        round_ = _Round(self, calls, wait=False)
        while True:
            plan = round_.plan()
            results = await asyncio.gather(
                *(self._node(a).aexchange(command, n) for a, command, _, n in plan),
                return_exceptions=True,
            )
            for (_, _, indices, _), result in zip(plan, results, strict=True):
                if isinstance(result, OnlineStoreError):  # AUTH refused: not a routing matter
                    raise result
                if isinstance(result, BaseException):
                    if not isinstance(result, (*_FAILURES, TimeoutError)):
                        raise result
                    round_.failed(indices, result)
                else:
                    round_.absorb(indices, result)
            pause = round_.again()
            if pause is None:
                return [call.reply for call in calls]
            if round_.refresh:
                round_.refresh = False
                await self._arefresh()
            if pause:
                await asyncio.sleep(pause)

    def _foreign(self, calls: list[_Call], replies: list[Any]) -> _Call | None:
        """The call whose reply is WRONGTYPE (None: none); any other error reply is raised."""
        for call, reply in zip(calls, replies, strict=True):
            text = _error_text(reply)
            if text is None:
                continue
            if text.startswith("WRONGTYPE"):
                return call
            raise OnlineStoreError(f"{self._where()} failed: {text}.")
        return None

    def _check(self, calls: list[_Call], replies: list[Any]) -> None:
        """Raise the first error reply (WRONGTYPE: naming the key that is not ours)."""
        call = self._foreign(calls, replies)
        if call is not None:
            types = self._run(self._type_calls(call.keys))
            raise foreign_key_error(
                self._where(), self._prefix, call.keys, types, epoch=self._epoch
            )

    async def _acheck(self, calls: list[_Call], replies: list[Any]) -> None:
        """:meth:`_check` on the running event loop."""
        call = self._foreign(calls, replies)
        if call is not None:
            types = await self._arun(self._type_calls(call.keys))
            raise foreign_key_error(
                self._where(), self._prefix, call.keys, types, epoch=self._epoch
            )

    def _type_calls(self, keys: Sequence[bytes]) -> list[_Call]:
        return [_Call(key_slot(key), command_of(b"TYPE", key), (key,)) for key in keys]

    def _script_call(
        self, script: _Script, slot: int, keys: list[bytes], args: list[bytes]
    ) -> _Call:
        """A call of ``script`` on ``keys`` (all of ``slot``): EVALSHA, EVAL as the fallback."""
        tail = [b"%d" % len(keys), *keys, *args]
        return _Call(
            slot,
            command_of(b"EVALSHA", script.sha, *tail),
            tuple(keys),
            eval_command=command_of(b"EVAL", script.text, *tail),
        )

    # -- the OnlineStore protocol ------------------------------------------------------------

    def write_records(
        self, view: str, entity_keys: Sequence[bytes], records: Sequence[bytes]
    ) -> int:
        """Write records conditionally: one script per slot, all masters at once."""
        check_lengths(entity_keys, records)
        prefix, field = self._prefix, view.encode()
        written = 0
        for start in range(0, len(records), _WRITE_BATCH):
            by_slot: dict[int, tuple[list[bytes], list[bytes]]] = {}
            for key, record in zip(
                entity_keys[start : start + _WRITE_BATCH],
                records[start : start + _WRITE_BATCH],
                strict=True,
            ):
                name = prefix + key
                keys, values = by_slot.setdefault(key_slot(name), ([], [field]))
                keys.append(name)
                values.append(record)
            calls = [
                self._script_call(self._write_script, slot, [*keys, self._counter(slot)], values)
                for slot, (keys, values) in by_slot.items()
            ]
            written += sum(int(r) for r in self._run_scripts(calls))
        return written

    def _run_scripts(self, calls: list[_Call]) -> list[Any]:
        """The replies of script ``calls`` (errors raised), sent in rounds of _ROUND_KEYS keys."""
        replies: list[Any] = []
        start = 0
        while start < len(calls):
            stop, keys = start + 1, len(calls[start].keys)
            while stop < len(calls) and keys + len(calls[stop].keys) <= _ROUND_KEYS:
                keys += len(calls[stop].keys)
                stop += 1
            part = calls[start:stop]
            got = self._run(part, wait=True)
            self._check(part, got)
            replies += got
            start = stop
        return replies

    def read_records(self, requests: Sequence[ReadRequest]) -> list[list[bytes | None]]:
        """One HMGET per entity key, one pipelined round trip per master (see OnlineStore)."""
        if not requests:
            return []
        calls = self._read_calls(requests)
        replies = self._run(calls)
        self._check(calls, replies)
        return replies

    async def aread_records(self, requests: Sequence[ReadRequest]) -> list[list[bytes | None]]:
        """:meth:`read_records` on the running event loop (never blocks it; see AsyncReads)."""
        if not requests:
            return []
        calls = self._read_calls(requests)
        replies = await self._arun(calls)
        await self._acheck(calls, replies)
        return replies

    def _read_calls(self, requests: Sequence[ReadRequest]) -> list[_Call]:
        prefix, pack = self._prefix, self._hmget.pack_one
        calls = []
        for key, views in requests:
            name = prefix + key
            calls.append(_Call(key_slot(name), pack(key, views), (name,)))
        return calls

    def count_records(self, view: str) -> int:
        """How many entity keys have a record of ``view``: the sum of the slot counters."""
        field = view.encode()
        calls = [
            _Call(slot, command_of(b"HGET", self._counter(slot), field), (self._counter(slot),))
            for slot in range(SLOTS)
        ]
        replies = self._run(calls)
        self._check(calls, replies)
        return sum(int(r) for r in replies if r is not None)

    def merge_records(
        self,
        view: str,
        entity_keys: Sequence[bytes],
        records: Sequence[bytes],
        merge: Callable[[Sequence[bytes | None], Sequence[bytes]], list[bytes]],
    ) -> int:
        """Read (HGET, routed), merge, then compare-and-set: one script per slot (see OnlineStore).

        Records another writer changed in between are read and merged again.
        """
        check_lengths(entity_keys, records)
        names = [self._prefix + key for key in entity_keys]
        field = view.encode()

        def merge_round(pending: list[int]) -> tuple[int, list[int]]:
            written, retry = 0, []
            for start in range(0, len(pending), _WRITE_BATCH):
                chunk = pending[start : start + _WRITE_BATCH]
                reads = [
                    _Call(key_slot(names[i]), command_of(b"HGET", names[i], field), (names[i],))
                    for i in chunk
                ]
                stored = self._run(reads)
                self._check(reads, stored)
                by_slot: dict[int, tuple[list[int], list[bytes]]] = {}
                merged = merge(stored, [records[i] for i in chunk])
                for i, read, old, new in zip(chunk, reads, stored, merged, strict=True):
                    if new != old:
                        sent, args = by_slot.setdefault(read.slot, ([], [field]))
                        sent.append(i)
                        args += [old or b"", new]
                slots = list(by_slot.items())
                calls = [
                    self._script_call(
                        self._merge_script,
                        slot,
                        [*(names[i] for i in sent), self._counter(slot)],
                        args,
                    )
                    for slot, (sent, args) in slots
                ]
                replies = self._run_scripts(calls)
                for (_, (sent, _)), failed in zip(slots, replies, strict=True):
                    retry += [sent[int(j)] for j in failed]
                    written += len(sent) - len(failed)
            return written, retry

        return merge_rounds(self._where(), view, len(records), merge_round)

    def delete_records(self, view: str) -> int:
        """HDEL ``view`` from every hash under the prefix (SCAN each master, a script per slot)."""
        return self._delete(view)

    def delete_older(self, view: str, before_us: int) -> int:
        """:meth:`delete_records`, of the records whose event key is before ``before_us``."""
        return self._delete(view, older_bound(before_us))

    def _delete(self, view: str, *bound: bytes) -> int:
        self._ready()
        pattern = _glob_escape(self._prefix) + b"*"
        deleted = 0
        for address in list(dict.fromkeys(self._owners)):
            cursor = b"0"
            while True:
                try:
                    (reply,) = self._node(address).exchange(
                        command_of(b"SCAN", cursor, b"MATCH", pattern, b"COUNT", b"1000"), 1
                    )
                except RedisError as exc:
                    raise unavailable_error(self._where(), self.config.timeout_s, exc) from exc
                cursor, names = reply
                entities = [n for n in names if self._is_entity(n)]
                deleted += self._delete_keys(view, entities, bound)
                if cursor == b"0":
                    break
        return deleted

    def _is_entity(self, name: bytes) -> bool:
        return name != self._epoch and not name.startswith(self._counter_prefix)

    def _delete_keys(self, view: str, names: list[bytes], bound: tuple[bytes, ...]) -> int:
        by_slot: dict[int, list[bytes]] = {}
        for name in names:
            by_slot.setdefault(key_slot(name), []).append(name)
        calls = [
            self._script_call(
                self._delete_script, slot, [*keys, self._counter(slot)], [view.encode(), *bound]
            )
            for slot, keys in by_slot.items()
        ]
        return sum(int(r) for r in self._run_scripts(calls))

    def read_epoch(self) -> str | None:
        """The value of ``{key_prefix}:{project}:__epoch__`` (None: no such key)."""
        calls = [self._epoch_call(b"GET")]
        (value,) = self._run(calls)
        self._check(calls, [value])
        return None if value is None else bytes(value).decode()

    async def aread_epoch(self) -> str | None:
        """:meth:`read_epoch` on the running event loop (never blocks it; see AsyncReads)."""
        calls = [self._epoch_call(b"GET")]
        (value,) = await self._arun(calls)
        await self._acheck(calls, [value])
        return None if value is None else bytes(value).decode()

    def _epoch_call(self, name: bytes, *args: bytes) -> _Call:
        return _Call(key_slot(self._epoch), command_of(name, self._epoch, *args), (self._epoch,))

    def ensure_epoch(self) -> str:
        """The epoch key, set first with ``SET NX`` when missing (one writer wins)."""
        calls = [self._epoch_call(b"SET", new_epoch().encode(), b"NX")]
        self._check(calls, self._run(calls, wait=True))
        value = self.read_epoch()
        if value is None:  # deleted between the two commands: the store is being emptied
            msg = f"{self._where()}: the store epoch vanished while it was written; retry."
            raise OnlineStoreUnavailableError(msg)
        return value

    async def aclose(self) -> None:
        """Close the idle connections of the async reads (those of the running loop)."""
        for node in list(self._nodes.values()):
            await node.aclose()

    def close(self) -> None:
        """Disconnect every node's connections."""
        for node in list(self._nodes.values()):
            node.close()
