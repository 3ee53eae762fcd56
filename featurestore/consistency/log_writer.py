"""The feature log writer: served requests -> Parquet, off the request path (DESIGN G5).

The request path only decides whether to log (the sample rate, before anything is built) and
appends a tuple of references to what was served to a bounded queue; a full queue drops the
request from the log (counted), never fails it. One background thread takes the queued
requests as they come, converts them to Arrow a few hundred at a time
(:class:`~featurestore.consistency.log_schema.LogBatch`: one array per column, so no served
response is kept once converted), and writes files of at most ``batch_rows`` rows, at least
every ``flush_interval_s``, to::

    <path>/service=<service>/date=<YYYY-MM-DD>/part-<host>-<pid>-<token>-<seq>.parquet

Each file is written under a hidden temporary name and renamed when complete, so a reader
never sees half a file, and the name is unique per process and writer, so serving workers
write side by side. :meth:`FeatureLogger.close` (called by ``FeatureStore.close``, by the
server's shutdown on SIGTERM/SIGINT, and at interpreter exit) writes everything accepted.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import random
import socket
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pyarrow as pa

from featurestore.consistency.log_schema import LogBatch, service_log

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from featurestore.consistency.log_schema import LoggedRequest, ServiceLog
    from featurestore.online.response import OnlineResponse
    from featurestore.repo.config import FeatureLoggingConfig
    from featurestore.repo.registry import RegistrySnapshot

__all__ = ["FeatureLogger", "LogStats", "partition_dir", "render_metrics"]

logger = logging.getLogger(__name__)


def partition_dir(root: Path, service: str, day: str) -> Path:
    """The folder of one service's logs of one UTC day (``YYYY-MM-DD``)."""
    return root / f"service={service}" / f"date={day}"


@dataclass(frozen=True, slots=True)
class LogStats:
    """Counts of one writer since it started (per process)."""

    accepted_rows: int
    written_rows: int
    dropped_rows: int
    """Rows not logged: the queue was full, or they could not be converted."""
    queue_depth: int
    """Requests waiting to be written."""


def render_metrics(stats: LogStats | None) -> str:
    """The writer's counts in the Prometheus text format (zeros when nothing logs)."""
    stats = stats or LogStats(0, 0, 0, 0)
    rows = "featurestore_feature_log_rows_total"
    depth = "featurestore_feature_log_queue_depth"
    return (
        f"# HELP {rows} Feature log rows by outcome: accepted (queued), written to Parquet, "
        "dropped (queue full or not convertible).\n"
        f"# TYPE {rows} counter\n"
        f'{rows}{{outcome="accepted"}} {stats.accepted_rows}\n'
        f'{rows}{{outcome="written"}} {stats.written_rows}\n'
        f'{rows}{{outcome="dropped"}} {stats.dropped_rows}\n'
        f"# HELP {depth} Logged requests waiting to be written.\n"
        f"# TYPE {depth} gauge\n"
        f"{depth} {stats.queue_depth}\n"
    )


class _Flush:
    """A queue marker: write everything before it, then set ``done``."""

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()
_POLL_S = 0.05
"""Seconds the writer sleeps when its queue is empty, unless woken."""
_WAKE_EVERY = 32
"""The request path wakes the writer every this many queued requests (not on each one).

A queued response holds a few dozen Python objects; if they wait long enough to be promoted
to the garbage collector's oldest generation, they trigger full collections of the whole
heap (measured: +24 us of CPU per logged request, in-process, when the writer only woke
every 50 ms). Taken off the queue and converted to Arrow within a few dozen requests, they
die young."""
_CONVERT_REQUESTS = 256
"""Requests converted to Arrow at once: enough to make the per-column work count, few enough
that served responses do not pile up (each one holds a few dozen Python objects that the
garbage collector would otherwise walk again and again)."""
_MICROS_PER_DAY = 86_400_000_000


class FeatureLogger:
    """Logs what logging services serve; one per :class:`~featurestore.FeatureStore`.

    Args:
        root: The log folder (``feature_logging.path``, resolved).
        config: Queue size, batch size and flush interval.
    """

    def __init__(self, root: Path, config: FeatureLoggingConfig) -> None:
        self.root = root
        self._config = config
        # A deque, not queue.Queue: appending wakes no thread (the writer polls every
        # _POLL_S), which keeps a logged request as cheap as a few list operations.
        self._queue: collections.deque[object] = collections.deque()
        self._wake = threading.Event()
        self._next_id = 0
        self._plans: dict[str, tuple[RegistrySnapshot, ServiceLog | None]] = {}
        self._random = random.Random()
        self._lock = threading.Lock()
        self._taken = 0
        """Rows the writer took from the queue."""
        self._written = 0
        self._dropped = 0
        self._token = uuid.uuid4().hex[:8]
        self._host = socket.gethostname().replace(os.sep, "_")[:32] or "host"
        self._sequence = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="featurestore-log", daemon=True)
        self._thread.start()
        atexit.register(_close_at_exit, weakref.ref(self))

    # -- the request path ---------------------------------------------------------------------

    def plan(self, snapshot: RegistrySnapshot, service: str) -> ServiceLog | None:
        """The service's log plan for ``snapshot``, None when it does not log.

        Cached per service for as long as ``snapshot`` is the current one.
        """
        cached = self._plans.get(service)
        if cached is None or cached[0] is not snapshot:
            if len(self._plans) > 1024:
                self._plans.clear()
            cached = self._plans[service] = (snapshot, service_log(snapshot, service))
        return cached[1]

    def sampled(self, log: ServiceLog) -> bool:
        """Whether to log this request (decided before any row is built)."""
        return log.sample_rate >= 1.0 or self._random.random() < log.sample_rate

    def submit(
        self,
        log: ServiceLog,
        *,
        request_time_us: int,
        entity_rows: list[dict[str, object]] | Mapping[str, Sequence[object]],
        response: OnlineResponse,
    ) -> None:
        """Queue one served request; drops it (counted) when the queue is full. Never raises.

        Builds nothing: the writer thread numbers and converts what is queued.
        """
        if self._closed or len(self._queue) >= self._config.queue_size:
            self._count(dropped=len(response))
            return
        queue = self._queue
        queue.append((log, request_time_us, entity_rows, response))
        if len(queue) % _WAKE_EVERY == 0:
            self._wake.set()

    def _count(self, *, written: int = 0, dropped: int = 0) -> None:
        with self._lock:
            self._written += written
            self._dropped += dropped

    def stats(self) -> LogStats:
        """Rows accepted, written and dropped so far, and the queue depth."""
        taken = self._taken  # before the queue: a request is counted once at most
        queued = [item for item in list(self._queue) if isinstance(item, tuple)]
        accepted = taken + sum(len(item[3]) for item in queued)
        with self._lock:
            return LogStats(accepted, self._written, self._dropped, len(queued))

    # -- flushing -----------------------------------------------------------------------------

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Write every request queued so far; False when it took longer than ``timeout_s``."""
        if self._closed or not self._thread.is_alive():
            return True
        marker = _Flush()
        self._queue.append(marker)
        self._wake.set()
        return marker.done.wait(timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        """Write everything accepted, then stop the writer thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._queue.append(_STOP)
            self._wake.set()
            self._thread.join(timeout_s)
        stats = self.stats()
        logger.info(
            "feature log closed: %d rows written, %d dropped",
            stats.written_rows,
            stats.dropped_rows,
        )

    # -- the writer thread --------------------------------------------------------------------

    def _run(self) -> None:
        # Requests are gathered per plan and day, converted every _CONVERT_REQUESTS requests
        # and whenever the queue runs empty; a file per group when a batch is due.
        pending: dict[tuple[int, int], LogBatch] = {}
        raw: dict[tuple[int, int], list[LoggedRequest]] = {}
        rows = 0
        oldest = time.monotonic()
        interval = self._config.flush_interval_s
        while True:
            item = self._queue.popleft() if self._queue else None
            if isinstance(item, tuple):
                request: LoggedRequest = item
                if not pending and not raw:
                    oldest = time.monotonic()
                group = (id(request[0]), request[1] // _MICROS_PER_DAY)
                waiting = raw.setdefault(group, [])
                waiting.append(request)
                rows += len(request[3])
                self._taken += len(request[3])  # only this thread writes it
                if len(waiting) >= _CONVERT_REQUESTS:
                    # No time.sleep(0) here: under load, giving the interpreter away after
                    # each batch let the queue grow by thousands (measured in /metrics)
                    # while the writer waited to get it back.
                    self._convert(pending, group, raw.pop(group))
                if rows < self._config.batch_rows:
                    continue
            for group, requests in raw.items():
                self._convert(pending, group, requests)
            raw = {}
            due = item is not None or time.monotonic() - oldest >= interval
            if pending and due:
                self._write(pending)
                pending, rows = {}, 0
            if isinstance(item, _Flush):
                item.done.set()
            if item is _STOP:
                return
            if item is None:
                self._wake.wait(_POLL_S)
                self._wake.clear()

    def _convert(
        self,
        pending: dict[tuple[int, int], LogBatch],
        group: tuple[int, int],
        requests: list[LoggedRequest],
    ) -> None:
        """Convert queued requests of one group to Arrow (counted as accepted)."""
        batch = pending.get(group)
        if batch is None:
            batch = pending[group] = LogBatch(requests[0][0], self._token)
        first, self._next_id = self._next_id, self._next_id + len(requests)
        try:
            dropped = batch.add(requests, first)
        except (pa.ArrowException, TypeError, ValueError):  # never stop the writer
            logger.exception("feature log: %d requests could not be converted", len(requests))
            dropped = sum(len(r[3]) for r in requests)
        if dropped:
            self._count(dropped=dropped)

    def _write(self, pending: dict[tuple[int, int], LogBatch]) -> None:
        import pyarrow.parquet as pq  # here: only a logging process writes Parquet

        for (_, days), batch in pending.items():
            if not batch.rows:
                continue
            day = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=days)).date().isoformat()
            try:
                table = batch.table()
            except (pa.ArrowException, TypeError, ValueError):  # never stop the writer
                logger.exception("feature log: %d rows could not be converted", batch.rows)
                self._count(dropped=batch.rows)
                continue
            folder = partition_dir(self.root, batch.log.service, day)
            self._sequence += 1
            name = f"part-{self._host}-{os.getpid()}-{self._token}-{self._sequence:06d}.parquet"
            temporary = folder / f".{name}.tmp"
            try:
                folder.mkdir(parents=True, exist_ok=True)
                # No dictionary for floats: nearly all distinct, and slower to read back.
                dictionary = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
                pq.write_table(table, temporary, use_dictionary=dictionary)
                temporary.replace(folder / name)
            except OSError:
                logger.exception("feature log: cannot write %d rows to %s", table.num_rows, folder)
                self._count(dropped=table.num_rows)
                continue
            self._count(written=table.num_rows)
            logger.debug("feature log: wrote %d rows to %s", table.num_rows, folder / name)


def _close_at_exit(ref: weakref.ref[FeatureLogger]) -> None:
    writer = ref()
    if writer is not None:
        writer.close(timeout_s=10.0)
