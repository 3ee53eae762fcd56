"""Hypothesis strategies: feature timelines with ties and nulls, and entity frames.

Times sit on a coarse grid (seconds after BASE, plus an optional +-1 microsecond jitter) so
that equal event timestamps, ttl boundaries hit exactly, and off-by-one-microsecond
neighbours all occur often.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import strategies as st

BASE = datetime(2026, 1, 1, tzinfo=UTC)
TTL = timedelta(seconds=5)
"""The ttl of the tests' ttl-limited views; grid times are whole seconds, so it is hit exactly."""

USER_IDS = st.integers(min_value=1, max_value=4)
MERCHANTS = st.sampled_from(["a", "b"])


@st.composite
def grid_times(draw: st.DrawFn, *, max_seconds: int = 20) -> datetime:
    """A UTC time on the grid: ``BASE + s seconds (+-1 microsecond)``."""
    seconds = draw(st.integers(min_value=0, max_value=max_seconds))
    jitter = draw(st.sampled_from([0, 0, 0, -1, 1]))
    return BASE + timedelta(seconds=seconds, microseconds=jitter)


def _nullable(strategy: st.SearchStrategy[Any], *, null_weight: int = 1) -> st.SearchStrategy[Any]:
    return st.one_of(*([st.none()] * null_weight), strategy, strategy, strategy)


@st.composite
def feature_rows(
    draw: st.DrawFn,
    *,
    composite: bool = False,
    with_created: bool = True,
    n_files: int = 3,
    max_rows: int = 25,
) -> list[dict[str, Any]]:
    """Source rows of a feature view, each assigned to one of ``n_files`` files.

    Rows carry ``user_id`` (and ``merchant`` if ``composite``), ``event_ts``, ``created_ts``
    (if ``with_created``; None often), features ``f_int`` (Int64) and ``f_str`` (String), both
    nullable, and ``file`` (index). Includes exact duplicates of (keys, event_ts) with other
    values (ties), late rows (created long after the event), null keys and null event times.
    """
    n = draw(st.integers(min_value=0, max_value=max_rows))
    rows: list[dict[str, Any]] = []
    for _ in range(n):
        event = draw(st.one_of(grid_times(), grid_times(), grid_times(), grid_times(), st.none()))
        row: dict[str, Any] = {
            "user_id": draw(st.one_of(st.none(), USER_IDS, USER_IDS, USER_IDS, USER_IDS)),
            "event_ts": event,
            "f_int": draw(_nullable(st.integers(min_value=-(2**62), max_value=2**62))),
            "f_str": draw(_nullable(st.text(max_size=3))),
            "file": draw(st.integers(min_value=0, max_value=n_files - 1)),
        }
        if composite:
            row["merchant"] = draw(_nullable(MERCHANTS))
        if with_created:
            late = draw(st.sampled_from([0, 0, 1, 3, 30]))
            created = None if event is None else event + timedelta(seconds=late)
            row["created_ts"] = draw(st.one_of(st.none(), st.just(created), grid_times()))
        else:
            row["created_ts"] = None
        rows.append(row)
    # Ties: copies of some rows with the same keys and times but other values (and files).
    for original in draw(st.lists(st.sampled_from(rows), max_size=5)) if rows else []:
        copy = dict(original)
        copy["f_int"] = draw(st.integers(min_value=0, max_value=9))
        copy["file"] = draw(st.integers(min_value=0, max_value=n_files - 1))
        rows.append(copy)
    return draw(st.permutations(rows))


@st.composite
def entity_rows(
    draw: st.DrawFn, *, composite: bool = False, max_rows: int = 15
) -> list[dict[str, Any]]:
    """Entity rows: keys (sometimes null), a UTC timestamp (sometimes null), a label column.

    Duplicated rows are included.
    """
    rows: list[dict[str, Any]] = []
    for i in range(draw(st.integers(min_value=0, max_value=max_rows))):
        row: dict[str, Any] = {
            "user_id": draw(st.one_of(st.none(), USER_IDS, USER_IDS, USER_IDS, USER_IDS)),
            "event_timestamp": draw(st.one_of(st.none(), *[grid_times(max_seconds=28)] * 6)),
            "label": i,
        }
        if composite:
            row["merchant"] = draw(st.one_of(st.none(), MERCHANTS, MERCHANTS, MERCHANTS))
        rows.append(row)
    for original in draw(st.lists(st.sampled_from(rows), max_size=3)) if rows else []:
        rows.append(dict(original))
    return rows


timezones = st.sampled_from(
    [None, UTC, ZoneInfo("Europe/Paris"), ZoneInfo("Asia/Kolkata"), ZoneInfo("America/St_Johns")]
)
"""How to present entity timestamps: None = naive (meaning UTC), else aware in that zone."""


def write_timeline(
    folder: Path,
    rows: list[dict[str, Any]],
    schema: pa.Schema,
    *,
    columns: dict[str, str] | None = None,
) -> None:
    """Write ``feature_rows()`` rows to ``part-<file>.parquet`` files and record their positions.

    Each row's ``"file"`` (0-2) picks its file; afterwards ``row["file"]``/``row["row"]`` hold
    the position the oracle's tie-break uses. ``columns`` maps a Parquet column to the row key
    it takes (default: ``ts`` <- ``event_ts``, ``created`` <- ``created_ts``, others by name).
    A naive ``ts`` column gets naive UTC values.
    """
    mapping = {"ts": "event_ts", "created": "created_ts", **(columns or {})}
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    naive_ts = "ts" in schema.names and schema.field("ts").type.tz is None
    for index in range(3):
        in_file = [r for r in rows if r["file"] == index]
        if not in_file and index > 0:
            continue
        data: dict[str, list[Any]] = {name: [] for name in schema.names}
        for number, row in enumerate(in_file):
            row["position"] = (f"part-{index}.parquet", number)
            for name in schema.names:
                value = row.get(mapping.get(name, name))
                if name == "ts" and naive_ts and value is not None:
                    value = value.astimezone(UTC).replace(tzinfo=None)
                data[name].append(value)
        pq.write_table(pa.table(data, schema=schema), folder / f"part-{index}.parquet")
    for row in rows:
        row["file"], row["row"] = row["position"]
