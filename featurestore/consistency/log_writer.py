"""The feature log writer: served requests -> Parquet, off the request path (DESIGN G5).

The request path only decides whether to log (the sample rate, before anything is built),
pickles the columns it served into one bytes object (about 2 us for 1 entity x 10 features)
and appends it to a bounded queue; a full
queue drops the request from the log (counted), never fails it. The pickled request holds no
reference to the response, so nothing served outlives its request, and bytes are not walked by
the garbage collector.

The Arrow conversion and the Parquet files are the work of a writer process of its own
(:mod:`featurestore.consistency.log_process`), so they never hold this process's interpreter
lock: a thread here only hands the queued bytes to the writer's stdin, a few dozen requests at
a time, and another reads its progress. Files go to::

    <path>/service=<service>/date=<YYYY-MM-DD>/part-<host>-<pid>-<token>-<seq>.parquet

Each file is written under a hidden temporary name and renamed when complete, so a reader
never sees half a file, and the name is unique per process and writer, so serving workers
write side by side. :meth:`FeatureLogger.close` (called by ``FeatureStore.close``, by the
server's shutdown on SIGTERM/SIGINT, and at interpreter exit) writes everything accepted; the
writer process ignores signals and, should this process die, writes what it received.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from featurestore.consistency.log_schema import (
    MessageEncoder,
    log_plan,
    partition_dir,
    request_columns,
    service_log,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from featurestore.consistency.log_schema import ServiceLog
    from featurestore.online.response import OnlineResponse
    from featurestore.repo.config import FeatureLoggingConfig
    from featurestore.repo.registry import RegistrySnapshot

__all__ = ["FeatureLogger", "LogStats", "partition_dir", "render_metrics"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LogStats:
    """Counts of one writer since it started (per process)."""

    accepted_rows: int
    written_rows: int
    dropped_rows: int
    """Rows not logged: the queue was full, or they could not be converted."""
    queue_depth: int
    """Requests accepted that the writer process has not converted yet."""


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
        f"# HELP {depth} Logged requests waiting for the writer.\n"
        f"# TYPE {depth} gauge\n"
        f"{depth} {stats.queue_depth}\n"
    )


_SEND_EVERY = 32
"""The request path wakes the sending thread every this many queued requests (not on each
one: a wake is a hand-off of the interpreter lock)."""
_SEND_EVERY_S = 0.05
"""The sending thread also wakes this often, for a trickle of requests."""
_PIPE_BYTES = 1 << 20
"""The pipe to the writer process is enlarged to this (Linux), so a burst never waits on it."""
_MAX_PLANS = 1024
"""Plans numbered before the writer is told to forget them (each registry change makes new
ones)."""


class FeatureLogger:
    """Logs what logging services serve; one per :class:`~featurestore.FeatureStore`.

    Starts its writer process at once (see the module docs).

    Args:
        root: The log folder (``feature_logging.path``, resolved).
        config: Queue size, batch size and flush interval.
    """

    def __init__(self, root: Path, config: FeatureLoggingConfig) -> None:
        self.root = root
        self._config = config
        self._plans: dict[str, tuple[RegistrySnapshot, ServiceLog | None]] = {}
        self._numbers: dict[int, tuple[int, ServiceLog]] = {}
        """id(log) -> (the plan's number at the writer, the log kept alive so ids stay unique)."""
        self._next_plan = 0
        self._random = random.Random()
        self._lock = threading.Lock()
        self._progress = threading.Condition(self._lock)
        # A deque of pickled requests: appending wakes no thread (see _SEND_EVERY).
        self._queue: collections.deque[bytes] = collections.deque()
        self._encode = MessageEncoder()  # under self._lock
        self._wake = threading.Event()
        self._submitted = 0
        """Requests queued."""
        self._accepted = 0
        self._dropped = 0
        """Rows dropped here: the queue was full, or the request could not be pickled."""
        self._taken = self._written = self._writer_dropped = self._flushed = 0
        """The writer process's counts (see featurestore.consistency.log_process)."""
        self._flushes = 0
        self._closed = False
        self._writer_gone = False
        self.process = _start_writer(root, config)
        self._sender = threading.Thread(target=self._send, name="featurestore-log", daemon=True)
        self._receiver = threading.Thread(
            target=self._receive, name="featurestore-log-progress", daemon=True
        )
        self._sender.start()
        self._receiver.start()
        atexit.register(_close_at_exit, weakref.ref(self))

    # -- the request path ---------------------------------------------------------------------

    def plan(self, snapshot: RegistrySnapshot, service: str) -> ServiceLog | None:
        """The service's log plan for ``snapshot``, None when it does not log.

        Cached per service for as long as ``snapshot`` is the current one.
        """
        cached = self._plans.get(service)
        if cached is None or cached[0] is not snapshot:
            if len(self._plans) > _MAX_PLANS:
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
        if self._full():
            self._drop(rows)  # before any work (checked again below, under the lock)
            return
        numbered = self._numbers.get(id(log))
        try:
            number = numbered[0] if numbered is not None else self._number(log, response)
            fields = (
                request_columns(entity_rows, log.request_fields) if log.request_fields else None
            )
            request = (
                number,
                request_time_us,
                list(response.join_keys.values()),
                list(response.features.values()),
                list(response.statuses.values()),
                list(response.event_micros.values()),
                fields,
            )
            with self._lock:
                if self._full():
                    self._dropped += rows
                    return
                self._queue.append(self._encode(request))
                self._submitted += 1
                self._accepted += rows
        except Exception:  # never fail a request for its log
            logger.warning("feature log: a request of %s not logged", log.service, exc_info=True)
            self._drop(rows)
            return
        if len(self._queue) >= _SEND_EVERY and not self._wake.is_set():
            self._wake.set()

    def _full(self) -> bool:
        """Whether a request must be dropped: the queue is full, or the logger is closed."""
        return self._closed or self._submitted - self._taken >= self._config.queue_size

    def _drop(self, rows: int) -> None:
        with self._lock:
            self._dropped += rows

    def _number(self, log: ServiceLog, response: OnlineResponse) -> int:
        """Number ``log`` and queue its plan for the writer (before any of its requests)."""
        plan = log_plan(log, response).to_message()
        with self._lock:
            numbered = self._numbers.get(id(log))
            if numbered is not None:  # another thread numbered it meanwhile
                return numbered[0]
            if len(self._numbers) >= _MAX_PLANS:
                self._numbers.clear()
                self._queue.append(self._encode(("forget",)))
            number = self._next_plan
            self._next_plan += 1
            self._queue.append(self._encode(("plan", number, plan)))
            self._numbers[id(log)] = (number, log)
            return number

    def stats(self) -> LogStats:
        """Rows accepted, written and dropped so far, and the queue depth."""
        with self._lock:
            return LogStats(
                self._accepted,
                self._written,
                self._dropped + self._writer_dropped,
                self._submitted - self._taken,
            )

    # -- flushing -----------------------------------------------------------------------------

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Write every request queued so far; False when it took longer than ``timeout_s``."""
        with self._lock:
            if self._closed or self._writer_gone:
                return True
            self._flushes += 1
            sequence = self._flushes
            self._queue.append(self._encode(("flush", sequence)))
        self._wake.set()
        with self._progress:
            return self._progress.wait_for(
                lambda: self._flushed >= sequence or self._writer_gone, timeout_s
            )

    def close(self, timeout_s: float = 30.0) -> None:
        """Write everything accepted, then stop the writer process (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake.set()
        deadline = time.monotonic() + timeout_s
        self._sender.join(timeout_s)  # it sends what is queued, then closes the pipe
        try:
            self.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning(
                "feature log writer (pid %d) still writing after %.0f s; it finishes on its own",
                self.process.pid,
                timeout_s,
            )
        else:
            self._receiver.join(max(0.0, deadline - time.monotonic()))
        stats = self.stats()
        logger.info(
            "feature log closed: %d rows written, %d dropped",
            stats.written_rows,
            stats.dropped_rows,
        )

    # -- the threads --------------------------------------------------------------------------

    def _send(self) -> None:
        """Hand the queued bytes to the writer; at close, everything left, then the end."""
        queue = self._queue
        pipe = self.process.stdin
        assert pipe is not None
        while True:
            self._wake.wait(_SEND_EVERY_S)
            self._wake.clear()
            closing = self._closed
            chunk = [queue.popleft() for _ in range(len(queue))]
            try:
                if chunk:  # each message framed by its length
                    pipe.write(
                        b"".join([p for m in chunk for p in (len(m).to_bytes(4, "little"), m)])
                    )
                    pipe.flush()
                if closing and not queue:
                    pipe.close()
                    return
            except (OSError, ValueError):  # the writer is gone: _receive counts the loss
                queue.clear()
                return

    def _receive(self) -> None:
        """Read the writer's progress reports until it exits."""
        reports = self.process.stdout
        assert reports is not None
        for line in reports:
            taken, written, dropped, flushed = map(int, line.split())
            with self._progress:
                self._taken, self._written = taken, written
                self._writer_dropped, self._flushed = dropped, flushed
                self._progress.notify_all()
        reports.close()
        self.process.wait()  # its stdout ends when it exits
        with self._progress:
            self._writer_gone = True
            lost = self._accepted - self._written - self._writer_dropped
            if lost:
                logger.error(
                    "feature log writer (pid %d) exited with status %s; %d rows not written",
                    self.process.pid,
                    self.process.poll(),
                    lost,
                )
                self._writer_dropped += lost
            self._taken = self._submitted
            self._closed = True
            self._progress.notify_all()


def _start_writer(root: Path, config: FeatureLoggingConfig) -> subprocess.Popen[bytes]:
    """The writer process, on the same code as this one (its package first on its path)."""
    import featurestore

    package_parent = str(Path(featurestore.__file__).resolve().parents[1])
    paths = [package_parent, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    host = socket.gethostname().replace(os.sep, "_")[:32] or "host"
    token = uuid.uuid4().hex[:8]
    process = subprocess.Popen(
        [
            sys.executable,
            "-P",  # not the working directory on its path: the package of this process
            "-m",
            "featurestore.consistency.log_process",
            str(root.resolve()),
            str(config.batch_rows),
            repr(config.flush_interval_s),
            token,
            host,
            str(os.getpid()),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
        start_new_session=True,  # a terminal's Ctrl-C reaches the server, which flushes it
    )
    assert process.stdin is not None
    try:
        import fcntl

        fcntl.fcntl(process.stdin.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    except (ImportError, AttributeError, OSError):  # not Linux, or above pipe-max-size
        pass  # the default size works too
    return process


def _close_at_exit(ref: weakref.ref[FeatureLogger]) -> None:
    writer = ref()
    if writer is not None:
        writer.close(timeout_s=10.0)
