"""Metrics of ``serve --workers N``: every worker's series, labelled by worker, at any worker.

uvicorn's workers share one port, so a Prometheus scrape reaches one worker at random. With
``--workers N`` (N > 1) the ``serve`` command makes a folder and names it in
``$FEATURESTORE_METRICS_DIR``; each worker writes its own metrics there (a file per process,
replaced atomically) every second and whenever it answers ``/metrics``, and ``/metrics`` answers
with every live worker's series, each carrying a ``worker="<pid>"`` label. Prometheus adds
them up by label (``sum without (worker) (rate(featurestore_http_requests_total[1m]))``).
Another worker's figures are at most one publishing interval old; a dead worker's file is
removed, so its series end (a counter reset, which ``rate`` handles).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["METRICS_DIR_ENV", "WorkerMetrics", "label_samples", "merge_families"]

logger = logging.getLogger(__name__)

METRICS_DIR_ENV = "FEATURESTORE_METRICS_DIR"
_SUFFIX = ".prom"
PUBLISH_INTERVAL_S = 1.0


def label_samples(text: str, name: str, value: str) -> str:
    r"""Prometheus text with the label ``name="value"`` added to every sample line.

    Example:
        >>> print(label_samples('# TYPE a counter\na{x="1"} 2\nb 3\n', "worker", "7"), end="")
        # TYPE a counter
        a{worker="7",x="1"} 2
        b{worker="7"} 3
    """
    label = f'{name}="{value}"'
    lines = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            lines.append(line)
            continue
        metric, _, rest = line.partition(" ")
        if "{" in metric:  # a metric name holds no brace: the first one opens the labels
            head, _, labels = line.partition("{")
            lines.append(f"{head}{{{label},{labels}")
        else:
            lines.append(f"{metric}{{{label}}} {rest}")
    return "\n".join(lines) + "\n"


def _families(text: str) -> dict[str, list[str]]:
    """Metric name -> its HELP/TYPE lines then its samples, in the text's order."""
    families: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith(("# HELP ", "# TYPE ")):
            name = line.split(" ", 3)[2]
            if name not in families:
                families[name] = []
            current = families[name]
            if line not in current:
                current.append(line)
        elif line and current is not None:
            current.append(line)
    return families


def merge_families(texts: list[str]) -> str:
    r"""Several processes' Prometheus texts as one: each family once, with all their samples.

    Example:
        >>> a = '# TYPE n counter\nn{worker="1"} 2\n'
        >>> print(merge_families([a, a.replace('"1"} 2', '"2"} 5')]), end="")
        # TYPE n counter
        n{worker="1"} 2
        n{worker="2"} 5
    """
    merged: dict[str, list[str]] = {}
    for text in texts:
        for name, lines in _families(text).items():
            family = merged.setdefault(name, [])
            family.extend(line for line in lines if not line.startswith("#") or line not in family)
    return "".join(line + "\n" for lines in merged.values() for line in lines)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class WorkerMetrics:
    """One worker's share of the metrics folder.

    Args:
        folder: The folder all workers of one ``serve`` write to.
        render: The worker's metrics in the Prometheus text format (unlabelled).
    """

    def __init__(self, folder: Path, render: Callable[[], str]) -> None:
        self.folder = folder
        self.render = render
        self.pid = os.getpid()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_env(cls, render: Callable[[], str]) -> WorkerMetrics | None:
        """The worker metrics ``$FEATURESTORE_METRICS_DIR`` asks for, None when unset."""
        folder = os.environ.get(METRICS_DIR_ENV)
        return cls(Path(folder), render) if folder else None

    def publish(self) -> str:
        """Write this worker's labelled metrics to its file; returns the text."""
        text = label_samples(self.render(), "worker", str(self.pid))
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".worker-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            Path(tmp).replace(self.folder / f"{self.pid}{_SUFFIX}")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return text

    def collect(self) -> str:
        """Every live worker's metrics, this one's fresh, as one Prometheus text."""
        texts = [self.publish()]
        for path in sorted(self.folder.glob(f"*{_SUFFIX}")):
            pid = int(path.stem) if path.stem.isdigit() else None
            if pid is None or pid == self.pid:
                continue
            if not _alive(pid):
                path.unlink(missing_ok=True)
                continue
            with contextlib.suppress(FileNotFoundError):  # its worker just stopped
                texts.append(path.read_text(encoding="utf-8"))
        return merge_families(texts)

    async def _run(self) -> None:
        while True:
            try:
                self.publish()
            except OSError:
                logger.exception("could not publish this worker's metrics to %s", self.folder)
            await asyncio.sleep(PUBLISH_INTERVAL_S)

    def start(self) -> None:
        """Publish every ``PUBLISH_INTERVAL_S`` seconds in the background."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop publishing and remove this worker's file (its series end with it)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        (self.folder / f"{self.pid}{_SUFFIX}").unlink(missing_ok=True)
