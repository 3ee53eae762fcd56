"""The materialization history: one line per view and finished window, for people to read.

The watermark (in the registry) is what materialization needs; this log is what the web UI
and a person looking at a view want: when each window ran, how many rows it read and wrote
and how long it took. One JSON-lines file per view under ``root``; each run appends one line
in one ``write`` on a file opened for appending, so concurrent materializations never
interleave inside a line. Reading takes the file's tail, so a long history costs nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from featurestore._time import utc_now

if TYPE_CHECKING:
    from pathlib import Path

    from featurestore.materialization.materializer import ViewMaterialization

__all__ = ["MaterializationHistory", "MaterializationRun"]

_TAIL_BYTES = 64 * 1024
"""How much of a view's file ``recent`` reads (about 300 runs)."""


@dataclass(frozen=True, slots=True)
class MaterializationRun:
    """One finished window of one view."""

    view: str
    start: datetime
    end: datetime
    rows: int
    """Entity keys read (aggregation views: events read)."""
    written: int
    """Records that replaced an older (or no) stored record."""
    seconds: float
    rebuilt: bool
    finished_at: datetime
    watermark: datetime | None
    """The view's watermark after the run."""


class MaterializationHistory:
    """The finished materialization windows of a project, per view, under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def record(self, run: ViewMaterialization) -> None:
        """Append ``run`` (a window that ran; a run with nothing to do is not recorded)."""
        if run.start is None:
            return
        line = json.dumps(
            {
                "start": run.start.isoformat(),
                "end": run.end.isoformat(),
                "rows": run.rows,
                "written": run.written,
                "seconds": round(run.seconds, 6),
                "rebuilt": run.rebuilt,
                "finished_at": utc_now().isoformat(),
                "watermark": run.watermark.isoformat() if run.watermark else None,
            }
        )
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path(run.view), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def recent(self, view: str, limit: int = 20) -> list[MaterializationRun]:
        """``view``'s last ``limit`` runs, newest first (empty when it never ran)."""
        try:
            with self._path(view).open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - _TAIL_BYTES))
                tail = handle.read()
        except FileNotFoundError:
            return []
        lines = tail.decode().splitlines()
        if size > _TAIL_BYTES:
            lines = lines[1:]  # the first line of the tail may be cut
        runs = [_run(view, json.loads(text)) for text in lines if text.strip()]
        return runs[::-1][:limit]

    def _path(self, view: str) -> Path:
        return self.root / f"{view}.jsonl"


def _run(view: str, data: dict[str, object]) -> MaterializationRun:
    watermark = data["watermark"]
    return MaterializationRun(
        view=view,
        start=datetime.fromisoformat(str(data["start"])),
        end=datetime.fromisoformat(str(data["end"])),
        rows=int(str(data["rows"])),
        written=int(str(data["written"])),
        seconds=float(str(data["seconds"])),
        rebuilt=bool(data["rebuilt"]),
        finished_at=datetime.fromisoformat(str(data["finished_at"])),
        watermark=datetime.fromisoformat(str(watermark)) if watermark else None,
    )
