"""The feature log's writer process: served requests in, Parquet files out (DESIGN G5).

A :class:`~featurestore.consistency.log_writer.FeatureLogger` starts one with
``python -m featurestore.consistency.log_process ROOT BATCH_ROWS FLUSH_INTERVAL_S TOKEN HOST PID``
and sends it messages on its stdin, each a 4-byte little-endian length and a pickle of
:class:`~featurestore.consistency.log_schema.MessageEncoder`:

* ``("plan", number, plan)``: a :class:`~featurestore.consistency.log_schema.LogPlan` as
  builtins (:meth:`~featurestore.consistency.log_schema.LogPlan.to_message`);
* a :data:`~featurestore.consistency.log_schema.LoggedRequest`: one served request;
* ``("flush", sequence)``: write everything received so far, then acknowledge;
* ``("forget",)``: the plans received so far will not be used again;
* the end of the stream: write everything received, then exit.

It converts requests to Arrow a few hundred at a time and writes files of at most
``BATCH_ROWS`` rows, at least every ``FLUSH_INTERVAL_S``, to::

    ROOT/service=<service>/date=<YYYY-MM-DD>/part-<HOST>-<PID>-<TOKEN>-<seq>.parquet

under a hidden temporary name renamed when complete. On its stdout it reports, one line at a
time, ``taken written dropped flushed``: requests converted (or dropped), rows written, rows
dropped, and the last flush done, all counted since it started. It runs at a lower priority
(nice 10) than the serving process, and ignores SIGINT and SIGTERM:
the serving process flushes it when it shuts down, and if that process dies, the end of the
stream makes it write what it received and exit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from featurestore.consistency.log_schema import LogBatch, LogPlan, decode_message, partition_dir

if TYPE_CHECKING:
    from collections.abc import Callable

    from featurestore.consistency.log_schema import LoggedRequest

__all__ = ["LogFiles", "main", "run"]

logger = logging.getLogger(__name__)

_CONVERT_REQUESTS = 256
"""Requests of one plan and day converted to Arrow at once: enough to make the per-column work
count, few enough that converting does not hold back the progress the server waits for."""
_REPORT_EVERY_S = 0.05
"""Progress reports (requests taken) are sent at most this often, files and flushes always."""
_MICROS_PER_DAY = 86_400_000_000
_IDLE_S = 0.02
"""Requests waiting to be converted are converted when the pipe brings nothing for this long."""
_READ_BYTES = 1 << 20
_NICE = 10
"""The writer runs at a lower priority than the server it logs for: on a busy machine the
server's requests come first, and the writer catches up when they leave the CPU (its queue
bounds how far behind it may fall)."""


class LogFiles:
    """Gathers received requests per plan and day and writes them as Parquet files.

    Args:
        root: The log folder.
        batch_rows: Rows per file at most.
        name: The file name prefix, ``part-<host>-<pid>-<token>``.
        token: The request id prefix.
        report: Called with ``(taken, written, dropped, flushed)`` (see the module docs).
    """

    def __init__(
        self,
        root: Path,
        batch_rows: int,
        name: str,
        token: str,
        report: Callable[[int, int, int, int], None],
    ) -> None:
        self.root = root
        self._batch_rows = batch_rows
        self._name = name
        self._token = token
        self._report = report
        self._plans: dict[int, LogPlan] = {}
        self._raw: dict[tuple[int, int], list[LoggedRequest]] = {}
        self._pending: dict[tuple[int, int], LogBatch] = {}
        self.rows = 0
        """Rows received and not written yet."""
        self._next_id = 0
        self._sequence = 0
        self._taken = 0
        self._written = 0
        self._dropped = 0
        self._flushed = 0
        self._reported = 0.0

    def receive(self, message: Any) -> None:
        """Take one message of the logger (not the end of the stream)."""
        kind = message[0]
        if isinstance(kind, int):
            self._request(message)
        elif kind == "plan":
            self._plans[message[1]] = LogPlan.from_message(message[2])
        elif kind == "flush":
            self.write()
            self._flushed = message[1]  # only now: write() reports on its way
            self.report(force=True)
        elif kind == "forget":
            self.convert()  # the batches keep their plans
            self._plans.clear()
        else:
            logger.error("feature log writer: unknown message %r ignored", kind)

    def _request(self, request: LoggedRequest) -> None:
        rows = len(request[2][0]) if request[2] else 0
        if request[0] not in self._plans:  # the logger always sends the plan first
            logger.error("feature log writer: a request of unknown plan %d dropped", request[0])
            self._done(requests=1, dropped=rows)
            return
        self.rows += rows
        group = (request[0], request[1] // _MICROS_PER_DAY)
        waiting = self._raw.setdefault(group, [])
        waiting.append(request)
        if len(waiting) >= _CONVERT_REQUESTS:
            self._convert(group, self._raw.pop(group))
        if self.rows >= self._batch_rows:
            self.write()

    @property
    def converting(self) -> bool:
        """Whether requests wait to be converted."""
        return bool(self._raw)

    def convert(self) -> None:
        """Convert every request received to Arrow."""
        raw, self._raw = self._raw, {}
        for group, requests in raw.items():
            self._convert(group, requests)

    def _convert(self, group: tuple[int, int], requests: list[LoggedRequest]) -> None:
        batch = self._pending.get(group)
        if batch is None:
            batch = self._pending[group] = LogBatch(self._plans[group[0]], self._token)
        first, self._next_id = self._next_id, self._next_id + len(requests)
        try:
            dropped = batch.add(requests, first)
        except (pa.ArrowException, TypeError, ValueError, IndexError):  # never stop writing
            logger.exception("feature log: %d requests could not be converted", len(requests))
            dropped = sum(len(r[2][0]) if r[2] else 0 for r in requests)
        self._done(requests=len(requests), dropped=dropped)

    def write(self) -> None:
        """Convert and write everything received, one file per plan and day."""
        import pyarrow.parquet as pq  # here: only a logging process writes Parquet

        self.convert()
        pending, self._pending = self._pending, {}
        self.rows = 0
        for (_, days), batch in pending.items():
            if not batch.rows:
                continue
            day = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=days)).date().isoformat()
            try:
                table = batch.table()
            except (pa.ArrowException, TypeError, ValueError):  # never stop writing
                logger.exception("feature log: %d rows could not be converted", batch.rows)
                self._done(dropped=batch.rows)
                continue
            folder = partition_dir(self.root, batch.plan.service, day)
            self._sequence += 1
            name = f"{self._name}-{self._sequence:06d}.parquet"
            temporary = folder / f".{name}.tmp"
            try:
                folder.mkdir(parents=True, exist_ok=True)
                # No dictionary for floats: nearly all distinct, and slower to read back.
                dictionary = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
                pq.write_table(table, temporary, use_dictionary=dictionary)
                temporary.replace(folder / name)
            except OSError:
                logger.exception("feature log: cannot write %d rows to %s", table.num_rows, folder)
                self._done(dropped=table.num_rows)
                continue
            self._written += table.num_rows
            logger.debug("feature log: wrote %d rows to %s", table.num_rows, folder / name)
        self.report(force=True)

    def _done(self, *, requests: int = 0, dropped: int = 0) -> None:
        self._taken += requests
        self._dropped += dropped
        self.report()

    def report(self, *, force: bool = False) -> None:
        """Send the counts (at most every ``_REPORT_EVERY_S`` unless forced)."""
        now = time.monotonic()
        if force or now - self._reported >= _REPORT_EVERY_S:
            self._reported = now
            self._report(self._taken, self._written, self._dropped, self._flushed)


def run(fd: int, files: LogFiles, flush_interval_s: float) -> None:
    """Write what the pipe ``fd`` brings until it ends (see the module docs)."""
    buffer = bytearray()
    oldest: float | None = None  # when the oldest row not written arrived
    while True:
        now = time.monotonic()
        timeout = None if oldest is None else max(0.0, oldest + flush_interval_s - now)
        if files.converting:  # requests not converted yet: convert them once the pipe is idle
            timeout = _IDLE_S if timeout is None else min(timeout, _IDLE_S)
        if select.select([fd], [], [], timeout)[0]:
            data = os.read(fd, _READ_BYTES)
            if not data:
                if buffer:
                    logger.error("feature log writer: the stream ended inside a message")
                files.write()
                return
            buffer += data
            start = 0
            while len(buffer) - start >= 4:
                size = int.from_bytes(buffer[start : start + 4], "little")
                if len(buffer) - start - 4 < size:
                    break
                message = decode_message(bytes(buffer[start + 4 : start + 4 + size]))
                start += 4 + size
                if oldest is None:
                    oldest = now
                files.receive(message)
            del buffer[:start]
        else:
            files.convert()
        if files.rows == 0:  # all written (a full batch, a flush) or nothing but a plan
            oldest = None
        elif oldest is not None and time.monotonic() - oldest >= flush_interval_s:
            files.write()
            oldest = None


def main(argv: list[str] | None = None) -> None:
    """The writer process's entry point (see the module docs for the arguments)."""
    root, batch_rows, interval, token, host, pid = argv if argv is not None else sys.argv[1:]
    os.nice(_NICE)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(
        level=os.environ.get("FEATURESTORE_LOG_LEVEL", "warning").upper(),
        format="%(asctime)s %(levelname)s featurestore log writer: %(message)s",
    )
    # The reports get the real stdout; anything a library prints goes to stderr.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)

    def report(taken: int, written: int, dropped: int, flushed: int) -> None:
        with contextlib.suppress(OSError):  # the logger is gone: keep writing what it sent
            out.write(f"{taken} {written} {dropped} {flushed}\n".encode())

    files = LogFiles(Path(root), int(batch_rows), f"part-{host}-{pid}-{token}", token, report)
    run(sys.stdin.fileno(), files, float(interval))


if __name__ == "__main__":
    main()
