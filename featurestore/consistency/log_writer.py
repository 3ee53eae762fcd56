"""The feature log writer: served requests -> Parquet, off the request path (DESIGN G5).

The request path only decides whether to log (the sample rate, before anything is built) and
puts a reference to the served columns on a bounded queue; a full queue drops the request
from the log (counted), never fails it. One background thread turns queued requests into
Arrow rows (:meth:`ServiceLog.table`) and writes them in batches of at most ``batch_rows``
rows, at least every ``flush_interval_s``, to::

    <path>/service=<service>/date=<YYYY-MM-DD>/part-<host>-<pid>-<token>-<seq>.parquet

Each file is written under a hidden temporary name and renamed when complete, so a reader
never sees half a file, and the name is unique per process and writer, so serving workers
write side by side. :meth:`FeatureLogger.close` (called by ``FeatureStore.close``, by the
server's shutdown on SIGTERM/SIGINT, and at interpreter exit) writes everything accepted.
"""

from __future__ import annotations

import atexit
import collections
import itertools
import logging
import os
import random
import socket
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pyarrow as pa

from featurestore.consistency.log_schema import LogBatch, LoggedRequest, service_log

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from featurestore.consistency.log_schema import ServiceLog
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


@dataclass(frozen=True, slots=True)
class _Entry:
    log: ServiceLog
    request: LoggedRequest


class _Flush:
    """A queue marker: write everything before it, then set ``done``."""

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()
_POLL_S = 0.05
"""Seconds the writer sleeps when its queue is empty (it is not woken per request)."""


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
        self._ids = itertools.count()
        self._plans: dict[str, tuple[RegistrySnapshot, ServiceLog | None]] = {}
        self._random = random.Random()
        self._lock = threading.Lock()
        self._accepted = 0
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
        """Queue one served request; drops it (counted) when the queue is full. Never raises."""
        rows = len(response)
        if self._closed:
            self._count(dropped=rows)
            return
        if len(self._queue) >= self._config.queue_size:
            self._count(dropped=rows)
            return
        request_id = f"{self._token}-{next(self._ids)}"  # unique: the token is per writer
        self._queue.append(_Entry(log, LoggedRequest(request_id, request_time_us, entity_rows,
                                                     response)))  # fmt: skip
        self._count(accepted=rows)

    def _count(self, *, accepted: int = 0, written: int = 0, dropped: int = 0) -> None:
        with self._lock:
            self._accepted += accepted
            self._written += written
            self._dropped += dropped

    def stats(self) -> LogStats:
        """Rows accepted, written and dropped so far, and the queue depth."""
        with self._lock:
            return LogStats(self._accepted, self._written, self._dropped, len(self._queue))

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
        # Rows are gathered per plan and day as they arrive (LogBatch); when a batch is due
        # each group becomes one Arrow table and one file.
        pending: dict[tuple[int, str], LogBatch] = {}
        rows = handled = 0
        oldest = time.monotonic()
        interval = self._config.flush_interval_s
        while True:
            item = self._queue.popleft() if self._queue else None
            if item is None:
                if pending and time.monotonic() - oldest >= interval:
                    self._write(pending)
                    pending, rows = {}, 0
                self._wake.wait(_POLL_S)
                self._wake.clear()
                continue
            if isinstance(item, _Entry):
                if not pending:
                    oldest = time.monotonic()
                micros = item.request.request_time_us
                day = datetime.fromtimestamp(micros / 1e6, UTC).date().isoformat()
                batch = pending.get((id(item.log), day))
                if batch is None:
                    batch = pending[id(item.log), day] = LogBatch(item.log)
                try:
                    batch.add(item.request)
                except (pa.ArrowException, TypeError, ValueError):
                    logger.warning(
                        "a request of service %s is not logged: a request field has values "
                        "not of its type",
                        item.log.service,
                        exc_info=True,
                    )
                    self._count(dropped=len(item.request.response))
                    continue
                rows += len(item.request.response)
                handled += 1
                if handled % 64 == 0:
                    time.sleep(0)  # let serving threads take the interpreter
            late = handled % 64 == 0 and time.monotonic() - oldest >= interval
            if rows >= self._config.batch_rows or late or item is _STOP or isinstance(item, _Flush):
                self._write(pending)
                pending, rows = {}, 0
            if isinstance(item, _Flush):
                item.done.set()
            if item is _STOP:
                return

    def _write(self, pending: dict[tuple[int, str], LogBatch]) -> None:
        import pyarrow.parquet as pq  # here: only a logging process writes Parquet

        for (_, day), batch in pending.items():
            if not batch.rows:
                continue
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
