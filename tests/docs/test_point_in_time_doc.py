"""docs/point-in-time.md's worked example, executed: its tables are the test's data and oracle."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from featurestore import FeatureStore
from tests.conftest import make_repo, write_parquet

PAGE = Path(__file__).resolve().parents[2] / "docs" / "point-in-time.md"

FEATURES = """
from datetime import timedelta
from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Int64

user = Entity("user", join_keys=["user_id"])
user_stats = FeatureView(
    name="user_stats",
    entities=[user],
    source=ParquetSource("data/user_stats.parquet", timestamp_field="event_timestamp",
                         created_timestamp_field="created"),
    schema=[Field("txn_count_7d", Int64)],
    ttl=timedelta(days=2),
)
"""


def _tables() -> list[list[list[str]]]:
    """The markdown tables of the worked example, as rows of cells (header and rule dropped)."""
    section = PAGE.read_text().split("## Worked example", 1)[1].split("\n## ", 1)[0]
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*section.splitlines(), ""]:
        if line.startswith("|"):
            current.append([c.strip().strip("`") for c in line.strip("|").split("|")])
        elif current:
            tables.append(current[2:])
            current = []
    return tables


def _time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


def _value(text: str) -> int | None:
    return None if text == "null" else int(text)


def test_worked_example_tables_match_the_training_frame(tmp_path: Path):
    source_rows, entity_rows = _tables()
    assert len(source_rows) == 4
    assert len(entity_rows) == 8
    repo = make_repo(tmp_path / "repo", FEATURES)
    write_parquet(
        repo / "data" / "user_stats.parquet",
        {
            "user_id": [7] * len(source_rows),
            "event_timestamp": [_time(r[1]) for r in source_rows],
            "created": [_time(r[2]) for r in source_rows],
            "txn_count_7d": [int(r[3]) for r in source_rows],
        },
    )
    entities = pa.table(
        {
            "user_id": [int(r[0]) for r in entity_rows],
            "event_timestamp": pa.array(
                [_time(r[1]) for r in entity_rows], pa.timestamp("us", "UTC")
            ),
        }
    )
    with FeatureStore(repo) as store:
        store.apply()
        frame = store.get_training_frame(entities, ["user_stats:txn_count_7d"]).to_arrow()
        assert frame.column("txn_count_7d").to_pylist() == [_value(r[2]) for r in entity_rows]

        # "With point_in_time='available', the row at 2026-11-22 12:00 gets 5".
        match = re.search(r"the row at (\S+ \S+) gets `(\d+)`", PAGE.read_text())
        assert match is not None
        at, expected = _time(match.group(1)), int(match.group(2))
        one = pa.table(
            {"user_id": [7], "event_timestamp": pa.array([at], pa.timestamp("us", "UTC"))}
        )
        available = store.get_training_frame(
            one, ["user_stats:txn_count_7d"], point_in_time="available"
        )
        assert available.to_arrow().column("txn_count_7d").to_pylist() == [expected]
        event = store.get_training_frame(one, ["user_stats:txn_count_7d"])
        assert event.to_arrow().column("txn_count_7d").to_pylist() != [expected]
