"""The push log: pushed rows of each feature view, as durable Parquet files in push order.

``store.push`` (DESIGN G8) appends each batch of rows to ``<repo>/push_log/<view>/`` before
it writes them online. A file is written under a temporary name, fsynced, renamed into place
and its directory fsynced, so a file in the log is complete or absent. File names start with
a fixed-width push sequence (nanoseconds, strictly increasing within a process), so sorting
the names sorts the files in push order. :class:`~featurestore.offline.sources.Sources` lists
these files after the view's source files: a pushed row's position in the total order
``(event, created, file rank, row)`` is after every source row and after every row pushed
before it, and every reader of the view's rows (training join, materialization,
aggregations, validation, skew replay) reads pushed rows with no code of its own.

A push file holds the source's columns (by their names in the source, typed like the
source's first file, null where the push had none) and three more, which readers of the
source ignore (DuckDB reads the first file's columns):

* ``push_time``: when the row was pushed (UTC); the skew report counts it online from then;
* ``push_id``: the producer's message id (the stream consumer's duplicate check), or null;
* ``push_online``: whether the push wrote the row online too (``to`` included ``online``).

:meth:`PushLog.compact` folds small files into one, named after the last file it folds, with
the rows in the same order, so no row changes its place in the order and no training frame
changes. The folded file names the files it replaces in its Parquet metadata, and a listing
hides replaced files that are still present (a crash between the rename and the deletes).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from featurestore.errors import SourceError

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pyarrow as pa

__all__ = [
    "PUSH_ID_COLUMN",
    "PUSH_LOG_DIR",
    "PUSH_ONLINE_COLUMN",
    "PUSH_TIME_COLUMN",
    "CompactionResult",
    "PushLog",
]

logger = logging.getLogger(__name__)

PUSH_LOG_DIR: Final = "push_log"
"""The push log's folder in the feature repo: ``<repo>/push_log/<view>/``."""
PUSH_TIME_COLUMN: Final = "push_time"
"""When a row was pushed (``timestamp[us, UTC]``)."""
PUSH_ID_COLUMN: Final = "push_id"
"""The producer's message id of a pushed row (string), null when it gave none."""
PUSH_ONLINE_COLUMN: Final = "push_online"
"""Whether the row was pushed online as well as offline (bool)."""
PUSH_COLUMNS: Final = (PUSH_TIME_COLUMN, PUSH_ID_COLUMN, PUSH_ONLINE_COLUMN)

_SEQ_WIDTH: Final = 20
_PLAIN_ROWS: Final = 10_000
"""Files of fewer rows are written without dictionaries, column statistics and compression: a
push of a few rows has nothing to skip by them nor to compress, and leaving them out takes
about a quarter off writing a one-row file (a compacted file has all three, for readers that
prune by them)."""
_FOLDED_SUFFIX: Final = "+c.parquet"
_REPLACES_KEY: Final = b"featurestore.push_log.replaces"
_CREATE: Final = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
_seq_lock = threading.Lock()
_last_seq = 0


def _next_seq() -> int:
    """A push sequence number: nanoseconds now, strictly increasing within the process."""
    global _last_seq
    with _seq_lock:
        _last_seq = max(_last_seq + 1, time.time_ns())
        return _last_seq


@dataclass(frozen=True, slots=True)
class CompactionResult:
    """What :meth:`PushLog.compact` did to one view's push log."""

    view: str
    files_before: int
    files_after: int
    rows: int


class PushLog:
    """The push logs of one feature repo (one folder per view).

    Args:
        root: The push log folder (``<repo>/push_log``).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def folder(self, view: str) -> Path:
        """The folder of one view's push files."""
        return self.root / view

    def contains(self, path: str) -> bool:
        """Whether a file path lies inside the push log (a source glob must not read it)."""
        try:
            Path(path).resolve().relative_to(self.root.resolve())
        except ValueError:
            return False
        return True

    def files(self, view: str) -> list[str]:
        """The view's push files in push order (absolute paths); empty when none.

        Temporary files of an append in progress and files a compaction replaced are left
        out.
        """
        folder = self.folder(view)
        try:
            names = sorted(
                e.name
                for e in os.scandir(folder)
                if e.name.endswith(".parquet") and not e.name.startswith(".")
            )
        except FileNotFoundError:
            return []
        replaced: set[str] = set()
        for name in names:
            if name.endswith(_FOLDED_SUFFIX):
                replaced.update(_replaced_by(folder / name))
        return [str(folder / n) for n in names if n not in replaced]

    def append(self, view: str, table: pa.Table) -> str:
        """Write ``table`` durably as the view's newest push file; returns its path.

        The file is written under a hidden temporary name, fsynced, renamed into place, and
        the folder fsynced: after a crash the file is either complete or absent.

        Raises:
            SourceError: The file cannot be written (disk full, permissions).
        """
        folder = self.folder(view)
        name = f"{_next_seq():0{_SEQ_WIDTH}d}-{uuid.uuid4().hex[:8]}.parquet"
        return str(_write_durably(folder, name, table))

    def read(self, view: str, columns: Iterable[str] | None = None) -> pa.Table | None:
        """All rows of a view's push log in push order (None when it has no file)."""
        files = self.files(view)
        if not files:
            return None
        import pyarrow as pa
        import pyarrow.parquet as pq

        wanted = None if columns is None else list(columns)
        tables = [pq.read_table(f, columns=wanted) for f in files]
        return pa.concat_tables(tables, promote_options="default")

    def compact(self, view: str, *, target_rows: int = 1_000_000) -> CompactionResult:
        """Fold the view's push files into files of up to about ``target_rows`` rows.

        Consecutive files are folded in push order, rows in order, so every row keeps its
        place in the order "newer". Files already at ``target_rows`` are left alone.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        files = self.files(view)
        groups: list[list[str]] = []
        current: list[str] = []
        count = 0
        rows = 0
        for path in files:
            n = pq.ParquetFile(path).metadata.num_rows
            rows += n
            if current and count + n > target_rows:
                groups.append(current)
                current, count = [], 0
            current.append(path)
            count += n
        if current:
            groups.append(current)
        folder = self.folder(view)
        after = 0
        for group in groups:
            after += 1
            if len(group) < 2:
                continue
            table = pa.concat_tables([pq.read_table(p) for p in group], promote_options="default")
            last = Path(group[-1]).name.removesuffix(_FOLDED_SUFFIX).removesuffix(".parquet")
            replaces = [Path(p).name for p in group]
            table = table.replace_schema_metadata(
                {**(table.schema.metadata or {}), _REPLACES_KEY: "\n".join(replaces).encode()}
            )
            _write_durably(folder, last + _FOLDED_SUFFIX, table)
            for path in group:
                if not path.endswith(last + _FOLDED_SUFFIX):
                    Path(path).unlink(missing_ok=True)
            _fsync_dir(folder)
            logger.info("push log of %s: folded %d files into one", view, len(group))
        return CompactionResult(view, len(files), after, rows)


def _replaced_by(path: Path) -> list[str]:
    """The names of the files a folded file replaces (from its Parquet metadata)."""
    import pyarrow.parquet as pq

    metadata = pq.read_schema(path).metadata or {}
    text = metadata.get(_REPLACES_KEY, b"").decode()
    return [n for n in text.split("\n") if n and n != path.name]


def _write_durably(folder: Path, name: str, table: pa.Table) -> Path:
    """Write ``table`` as ``folder/name``: temporary file, fsync, rename, fsync the folder.

    The file is built in memory (smaller than ``table``) and written at once; the folder is
    made only when the view's first file finds it missing.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    final = folder / name
    temp = folder / f".{name}.{os.getpid()}.tmp"
    sink = pa.BufferOutputStream()
    small = table.num_rows < _PLAIN_ROWS
    pq.write_table(
        table,
        sink,
        use_dictionary=not small,
        write_statistics=not small,
        compression="none" if small else "snappy",
    )
    data = memoryview(sink.getvalue())
    try:
        try:
            fd = os.open(temp, _CREATE, 0o644)
        except FileNotFoundError:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(temp, _CREATE, 0o644)
        try:
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        temp.replace(final)
        _fsync_dir(folder)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        msg = (
            f"Cannot write the push log file '{final}': {exc}. Free disk space or fix permissions."
        )
        raise SourceError(msg) from exc
    return final


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
