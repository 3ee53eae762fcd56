"""Push (DESIGN G8) through the SDK: real Parquet push log, real SQLite and Redis.

Pushed rows are readable online at once and appear in training frames; an older push does
not win online but is kept offline; a process killed (SIGKILL) between the offline append and
the online write is healed by the next materialization; compaction changes no training frame;
bad rows are refused before anything is written, naming the column and the row.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from featurestore import FeatureStore
from featurestore.errors import DefinitionError, EntityFrameError, ValidationError
from tests.conftest import make_repo, utc, write_parquet

FEATURES_PY = """
from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Float64, Int64

user = Entity("user", join_keys=["user_id"])
stats = FeatureView(
    name="stats",
    entities=[user],
    source=ParquetSource("data/stats", timestamp_field="ts", created_timestamp_field="created"),
    schema=[Field("count", Int64), Field("amount", Float64)],
)
"""
T = utc(2026, 1, 1)


def build(
    root: Path,
    backend: str = "sqlite",
    request: pytest.FixtureRequest | None = None,
    *,
    features_py: str = FEATURES_PY,
) -> FeatureStore:
    make_repo(root, features_py)
    write_parquet(
        root / "data/stats/part-0.parquet",
        {
            "user_id": [1, 2],
            "ts": [T, T],
            "created": [None, None],
            "count": [1, 2],
            "amount": [10.0, 20.0],
        },
        schema=pa.schema(
            [
                ("user_id", pa.int64()),
                ("ts", pa.timestamp("us")),  # naive: UTC
                ("created", pa.timestamp("us")),
                ("count", pa.int32()),
                ("amount", pa.float64()),
            ]
        ),
    )
    if backend == "redis":  # in featurestore.yaml, so that other processes use it too
        assert request is not None
        url = request.getfixturevalue("redis_server_url")
        prefix = f"fstest-push-{uuid.uuid4().hex[:8]}"
        (root / "featurestore.yaml").write_text(
            "project: test\nregistry: data/registry.json\n"
            f"online_store: {{type: redis, url: '{url}', key_prefix: {prefix}}}\n"
        )
    store = FeatureStore(root)
    store.apply()
    return store


def frame_dict(frame: Any) -> dict[str, list[Any]]:
    return frame.to_polars().to_dict(as_series=False)


def online(store: FeatureStore, users: list[int]) -> dict[str, list[Any]]:
    return store.get_online_features(
        ["stats:count", "stats:amount"], [{"user_id": u} for u in users]
    ).to_dict()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def test_pushed_rows_are_online_at_once_and_in_training_frames(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    with build(tmp_path, backend, request) as store:
        store.materialize(T - timedelta(days=1), T + timedelta(seconds=1))
        result = store.push(
            "stats",
            pd.DataFrame(
                {
                    "user_id": [1, 3],
                    "ts": [T + timedelta(hours=1)] * 2,
                    "count": [5, 7],
                    "amount": [1.5, None],
                }
            ),
        )
        assert (result.rows, result.written) == (2, 2)
        assert online(store, [1, 2, 3]) == {
            "user_id": [1, 2, 3],
            "count": [5, 2, 7],
            "amount": [1.5, 20.0, None],
        }
        entity = pl.DataFrame(
            {"user_id": [1, 1, 3, 3], "event_timestamp": [T, T + timedelta(hours=2)] * 2}
        )
        frame = frame_dict(store.get_training_frame(entity, ["stats:count", "stats:amount"]))
        assert frame["count"] == [1, 5, None, 7]


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def test_an_older_push_does_not_win_online_but_is_logged(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    with build(tmp_path, backend, request) as store:
        store.push(
            "stats", [{"user_id": 1, "ts": T + timedelta(hours=2), "count": 9, "amount": 9.0}]
        )
        older = store.push(
            "stats", [{"user_id": 1, "ts": T + timedelta(hours=1), "count": 4, "amount": 4.0}]
        )
        assert older.written == 0
        assert online(store, [1])["count"] == [9]
        logged = store.offline.sources.push_log.read("stats")
        assert logged is not None
        assert logged.column("count").to_pylist() == [9, 4]
        assert logged.column("push_time").type == pa.timestamp("us", tz="UTC")
        entity = pl.DataFrame({"user_id": [1], "event_timestamp": [T + timedelta(minutes=90)]})
        assert frame_dict(store.get_training_frame(entity, ["stats:count"]))["count"] == [4]


def test_a_tie_goes_to_the_later_push_offline_and_online(tmp_path: Path) -> None:
    with build(tmp_path) as store:
        row = {"user_id": 2, "ts": T, "created": None, "count": 11, "amount": 1.0}
        store.push("stats", [row, {**row, "count": 12}])  # ties the source row, then itself
        assert online(store, [2])["count"] == [12]
        store.materialize(T - timedelta(days=1), T + timedelta(seconds=1))
        assert online(store, [2])["count"] == [12]
        entity = pl.DataFrame({"user_id": [2], "event_timestamp": [T]})
        assert frame_dict(store.get_training_frame(entity, ["stats:count"]))["count"] == [12]


def test_healing_never_rewrites_a_tied_row_over_a_later_one(tmp_path: Path) -> None:
    """Rows tied on event and created time: the later push wins, whatever materialization heals.

    The two online pushes are healed (written again) by the materialization that follows; a
    later offline push of the same key and time is newer in the total order, so it must stay.
    """
    with build(tmp_path) as store:
        at = T + timedelta(hours=1)
        for count, to in ((10, "online_and_offline"), (11, "online_and_offline"),
                          (100, "offline"), (101, "offline")):  # fmt: skip
            store.push("stats", [{"user_id": 1, "ts": at, "count": count, "amount": 1.0}], to=to)
        assert online(store, [1])["count"] == [11]  # the offline pushes are not online yet
        store.materialize(T - timedelta(days=1), at + timedelta(seconds=1))
        frame = store.get_training_frame(
            pl.DataFrame({"user_id": [1], "event_timestamp": [at]}), ["stats:count"]
        )
        assert frame_dict(frame)["count"] == [101]
        assert online(store, [1])["count"] == [101]


def test_healing_reads_only_the_push_files_since_the_last_heal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    read: list[str] = []
    real_read_table = pq.read_table

    def recording_read_table(source: Any, *args: Any, **kwargs: Any) -> pa.Table:
        read.append(Path(source).name)
        return real_read_table(source, *args, **kwargs)

    with build(tmp_path) as store:
        for hour in (1, 2):
            store.push("stats", [{"user_id": 1, "ts": T + timedelta(hours=hour), "count": hour,
                                  "amount": 1.0}])  # fmt: skip
        store.materialize(T - timedelta(days=1), T + timedelta(seconds=1))
        healed = [Path(f).name for f in store.offline.sources.push_log.files("stats")]
        store.push("stats", [{"user_id": 2, "ts": T + timedelta(hours=3), "count": 30,
                              "amount": 3.0}])  # fmt: skip
        monkeypatch.setattr(pq, "read_table", recording_read_table)
        store.materialize(T, T + timedelta(seconds=2))
        monkeypatch.undo()
        files = [Path(f).name for f in store.offline.sources.push_log.files("stats")]
        assert read == [n for n in files if n not in healed] != []
        assert online(store, [1, 2])["count"] == [2, 30]


def test_offline_push_goes_online_with_the_window_that_covers_it(tmp_path: Path) -> None:
    with build(tmp_path) as store:
        store.push("stats", [{"user_id": 5, "ts": T, "count": 3, "amount": 3.0}], to="offline")
        assert store.get_online_features(["stats:count"], [{"user_id": 5}]).statuses["count"] == [
            "NOT_FOUND"
        ]
        store.materialize(T - timedelta(days=1), T + timedelta(seconds=1))
        assert online(store, [5])["count"] == [3]


def test_online_only_push_is_not_in_training_frames(tmp_path: Path) -> None:
    with build(tmp_path) as store:
        result = store.push(
            "stats",
            {"user_id": [1], "ts": ["2026-01-02T00:00:00Z"], "count": [8], "amount": [8.0]},
            to="online",
        )
        assert result.log_file is None
        assert online(store, [1])["count"] == [8]
        entity = pl.DataFrame({"user_id": [1], "event_timestamp": [T + timedelta(days=2)]})
        assert frame_dict(store.get_training_frame(entity, ["stats:count"]))["count"] == [1]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"user_id": "x", "ts": T, "count": 1, "amount": 1.0}], "row 0, column 'user_id'"),
        (
            [
                {"user_id": 1, "ts": T, "count": 1, "amount": 1.0},
                {"user_id": None, "ts": T, "count": 1, "amount": 1.0},
            ],
            "row 1 has a null join key",
        ),
        ([{"user_id": 1, "ts": T, "count": 1}], "column 'amount' is missing"),
        ([{"user_id": 1, "ts": T, "count": 1, "amount": 1.0, "cnt": 2}], "unknown column"),
        (
            {"user_id": [1, 2], "ts": [T, T], "count": [1, "two"], "amount": [1.0, 2.0]},
            "row 1, column 'count'",
        ),
        (
            {"user_id": [1, 2], "ts": [T, "yesterday"], "count": [1, 2], "amount": [1.0, 2.0]},
            "Cannot parse row 1, column 'ts' 'yesterday'",
        ),
        ([{"user_id": 1, "ts": T, "count": 2**40, "amount": 1.0}], "source's type int32"),
    ],
)
def test_bad_rows_are_refused_before_anything_is_written(
    tmp_path: Path, rows: Any, message: str
) -> None:
    with build(tmp_path) as store:
        with pytest.raises(EntityFrameError, match=message.replace("(", r"\(")):
            store.push("stats", rows)
        assert store.offline.sources.push_log.files("stats") == []
        assert online(store, [1])["count"] == [None]


def test_push_to_offline_only_view_online_is_refused(tmp_path: Path) -> None:
    offline_only = FEATURES_PY.replace("schema=[", "online=False, schema=[")
    with build(tmp_path, features_py=offline_only) as store:
        with pytest.raises(DefinitionError, match="online=False"):
            store.push("stats", [{"user_id": 1, "ts": T, "count": 1, "amount": 1.0}])
        store.push("stats", [{"user_id": 1, "ts": T, "count": 1, "amount": 1.0}], to="offline")
        assert len(store.offline.sources.push_log.files("stats")) == 1


def test_compaction_changes_no_training_frame(tmp_path: Path) -> None:
    with build(tmp_path) as store:
        for i in range(6):
            store.push(
                "stats",
                [
                    {"user_id": 1 + i % 2, "ts": T, "count": 100 + i, "amount": 1.0},
                    {
                        "user_id": 3,
                        "ts": T + timedelta(hours=i % 3),
                        "count": i,
                        "amount": float(i),
                    },
                ],
            )
        entity = pl.DataFrame(
            {
                "user_id": [1, 2, 3, 3, 3],
                "event_timestamp": [T, T, T, T + timedelta(hours=1), T + timedelta(hours=5)],
            }
        )
        before = frame_dict(store.get_training_frame(entity, ["stats:count", "stats:amount"]))
        result = store.offline.sources.push_log.compact("stats", target_rows=5)
        assert (result.files_before, result.files_after, result.rows) == (6, 3, 12)
        assert len(store.offline.sources.push_log.files("stats")) == 3
        after = frame_dict(store.get_training_frame(entity, ["stats:count", "stats:amount"]))
        assert after == before
        store.offline.sources.push_log.compact("stats")
        assert len(store.offline.sources.push_log.files("stats")) == 1
        assert (
            frame_dict(store.get_training_frame(entity, ["stats:count", "stats:amount"])) == before
        )


CRASHING_PUSH = """
import sys, time
from pathlib import Path
from featurestore import FeatureStore
from datetime import datetime, UTC

store = FeatureStore(sys.argv[1])
marker = Path(sys.argv[2])
online = store.online

def stop_before_online_write(*args, **kwargs):
    marker.write_text("offline append done")
    time.sleep(60)

online.write_records = stop_before_online_write
store.push("stats", [{"user_id": 1, "ts": datetime(2025, 12, 31, 12, tzinfo=UTC), "count": 77,
                      "amount": 7.0}])
"""


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def test_kill_between_offline_append_and_online_write_is_healed_by_materialization(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    store = build(tmp_path, backend, request)
    store.materialize(T - timedelta(days=1), T + timedelta(seconds=1))
    # a newer value for user 1 will be pushed late (event before the watermark) and crash
    store.push("stats", [{"user_id": 1, "ts": T - timedelta(days=2), "count": 0, "amount": 0.0}])
    store.close()
    marker = tmp_path / "marker"
    script = tmp_path / "crash.py"
    script.write_text(
        CRASHING_PUSH.replace("datetime(2025, 12, 31, 12", "datetime(2026, 1, 1, 0, 0, 0, 5")
    )
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path), str(marker)])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, "the pushing process ended before its online write"
            assert time.monotonic() < deadline, "the pushing process never reached the marker"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with FeatureStore(tmp_path) as store:
        assert online(store, [1])["count"] == [1]  # the crashed push never reached online
        logged = store.offline.sources.push_log.read("stats")
        assert logged is not None
        assert logged.column("count").to_pylist() == [0, 77]
        # a later window that does not cover the pushed row's event time still heals it
        store.materialize_incremental(T + timedelta(days=1))
        assert online(store, [1])["count"] == [77]
        entity = pl.DataFrame({"user_id": [1, 2], "event_timestamp": [T + timedelta(days=1)] * 2})
        offline = frame_dict(store.get_training_frame(entity, ["stats:count", "stats:amount"]))
        assert online(store, [1, 2]) == {
            "user_id": offline["user_id"],
            "count": offline["count"],
            "amount": offline["amount"],
        }


AGG_FEATURES_PY = """
from datetime import timedelta
from featurestore import Aggregation, Entity, FeatureView, ParquetSource

user = Entity("user", join_keys=["user_id"])
spend = FeatureView(
    "spend",
    entities=[user],
    source=ParquetSource("data/events", timestamp_field="ts"),
    aggregations=[
        Aggregation("amount", "sum", timedelta(hours=1)),
        Aggregation(None, "count", timedelta(hours=1)),
    ],
    hop=timedelta(minutes=10),
)
"""


def test_pushed_events_fold_into_aggregation_tiles_at_once(tmp_path: Path) -> None:
    make_repo(tmp_path, AGG_FEATURES_PY)
    write_parquet(
        tmp_path / "data/events/part-0.parquet",
        {"user_id": [1, 1], "ts": [T, T + timedelta(minutes=5)], "amount": [1.0, 2.0]},
    )
    features = ["spend:amount_sum_1h", "spend:count_1h"]
    at = T + timedelta(minutes=30)
    with FeatureStore(tmp_path) as store:
        store.apply()
        store.materialize(T - timedelta(hours=1), T + timedelta(minutes=20))
        before = store.get_online_features(features, {"user_id": [1]}, request_time=at)
        assert before.to_dict() == {"user_id": [1], "amount_sum_1h": [3.0], "count_1h": [2]}
        with pytest.raises(DefinitionError, match="to='online_and_offline'"):
            store.push("spend", [{"user_id": 1, "ts": at, "amount": 4.0}], to="online")
        store.push("spend", [{"user_id": 1, "ts": T + timedelta(minutes=25), "amount": 4.0}])
        after = store.get_online_features(features, {"user_id": [1]}, request_time=at)
        assert after.to_dict() == {"user_id": [1], "amount_sum_1h": [7.0], "count_1h": [3]}
        entity = pl.DataFrame({"user_id": [1], "event_timestamp": [at]})
        frame = frame_dict(store.get_training_frame(entity, features))
        assert (frame["amount_sum_1h"], frame["count_1h"]) == ([7.0], [3])
        # materializing the same window again counts the pushed event once
        store.materialize(T - timedelta(hours=1), T + timedelta(minutes=30))
        again = store.get_online_features(features, {"user_id": [1]}, request_time=at)
        assert again.to_dict() == after.to_dict()


def test_a_push_onto_tiles_of_an_older_format_is_refused_and_says_it_is_logged(
    tmp_path: Path,
) -> None:
    """Tile blocks written by an older featurestore (format 1) are never merged into: the
    push fails after its durable append, saying so, so the client does not push it twice."""
    import sqlite3
    import struct

    from featurestore.errors import MaterializationError
    from featurestore.online.layout import HEAD_SIZE

    make_repo(tmp_path, AGG_FEATURES_PY)
    write_parquet(
        tmp_path / "data/events/part-0.parquet",
        {"user_id": [1], "ts": [T], "amount": [1.0]},
    )
    with FeatureStore(tmp_path) as store:
        store.apply()
        store.materialize(T - timedelta(hours=1), T + timedelta(minutes=20))
        online_db = store.config.online_store.path  # type: ignore[union-attr]
    with sqlite3.connect(tmp_path / online_db) as db:  # the block as format 1 wrote it
        ((key, block),) = db.execute("SELECT entity_key, record FROM online_records").fetchall()
        (slots,) = struct.unpack(">H", block[HEAD_SIZE - 2 : HEAD_SIZE])
        old = block[: HEAD_SIZE - 2] + struct.pack(">H", slots & 0xFF) + block[HEAD_SIZE:]
        db.execute("UPDATE online_records SET record = ? WHERE entity_key = ?", (old, key))
    with FeatureStore(tmp_path) as store:
        row = {"user_id": 1, "ts": T + timedelta(minutes=5), "amount": 2.0}
        with pytest.raises(MaterializationError, match=r"'spend'.*--rebuild.*do not push"):
            store.push("spend", [row])
        entity = pl.DataFrame({"user_id": [1], "event_timestamp": [T + timedelta(minutes=30)]})
        frame = frame_dict(store.get_training_frame(entity, ["spend:count_1h"]))
        assert frame["count_1h"] == [2]  # logged once, read by training frames
    from featurestore.serving.errors import status_for

    assert status_for(MaterializationError("x")) == 409  # POST /push: a conflict, not a 500


def test_a_push_breaking_the_views_expectations_is_refused(tmp_path: Path) -> None:
    checked = FEATURES_PY.replace(
        "from featurestore import",
        "import great_expectations.expectations as gxe\nfrom featurestore import",
    ).replace(
        "schema=[",
        "expectations=[gxe.ExpectColumnValuesToBeBetween(column='count', min_value=0)],\n"
        "    schema=[",
    )
    with build(tmp_path, features_py=checked) as store:
        with pytest.raises(ValidationError, match="expect_column_values_to_be_between"):
            store.push("stats", [{"user_id": 1, "ts": T, "count": -1, "amount": 1.0}])
        assert store.offline.sources.push_log.files("stats") == []
        assert online(store, [1])["count"] == [None]
        store.push("stats", [{"user_id": 1, "ts": T, "count": 3, "amount": 1.0}])
        assert online(store, [1])["count"] == [3]
