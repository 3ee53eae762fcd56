"""Properties G1 and G3 with pushed rows (DESIGN G8), against the brute-force oracle.

Random source rows (ties, nulls, late rows, several files) and a random mix of pushes
(``online_and_offline`` or ``offline``, batches with ties inside and across pushes) and
materialization windows inside ``[T0, W)``, in random order; then windows covering
``[T0, W)`` in random order. Checked, in a real SQLite file and a real Redis:

* every stored online row is the newest row (the order "newer": pushes rank after the source
  files, in push order, rows in batch order) among source and pushed rows with
  ``event_ts < W`` and the rows pushed online at any time (G3 with G8);
* training frames over random entity rows equal ``pit_oracle`` over source rows plus every
  row in the push log (G1 with G8).
"""

from __future__ import annotations

import itertools
import random
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import fresh_store, make_repo
from tests.oracle import newer_key, pit_oracle
from tests.strategies import BASE, USER_IDS, entity_rows, feature_rows, grid_times, write_timeline

FEATURES_PY = """
from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Int64, String

user = Entity("user", join_keys=["user_id"])
users = ParquetSource("data/u", timestamp_field="ts", created_timestamp_field="created")
u = FeatureView(name="u", entities=[user], source=users,
                schema=[Field("f_int", Int64), Field("f_str", String)])
"""
SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("created", pa.timestamp("us", tz="UTC")),
        ("f_int", pa.int64()),
        ("f_str", pa.string()),
    ]
)
T0 = BASE - timedelta(seconds=1)
USERS = [1, 2, 3, 4, 99]
FAR = BASE + timedelta(days=1)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("push"), FEATURES_PY)


@st.composite
def pushed_batch(draw: st.DrawFn) -> list[dict[str, Any]]:
    """1-4 rows with keys and event times (ties with each other and with source rows)."""
    rows = []
    for _ in range(draw(st.integers(1, 4))):
        event = draw(grid_times(max_seconds=24))
        created = draw(st.one_of(st.none(), st.just(event), grid_times(max_seconds=24)))
        rows.append(
            {
                "user_id": draw(USER_IDS),
                "event_ts": event,
                "created_ts": created,
                "f_int": draw(st.one_of(st.none(), st.integers(-5, 5))),
                "f_str": draw(st.one_of(st.none(), st.text(max_size=2))),
            }
        )
    if draw(st.booleans()):  # an exact tie inside the batch: the later row wins
        rows.append({**rows[0], "f_int": 100})
    return rows


def _tie_with(draw: st.DrawFn, batch: list[dict[str, Any]], earlier: list[dict[str, Any]]) -> None:
    """Often give the batch's first row the keys and times of an earlier pushed row."""
    if earlier and draw(st.booleans()):
        other = draw(st.sampled_from(earlier))
        batch[0].update({k: other[k] for k in ("user_id", "event_ts", "created_ts")})


@st.composite
def plans(draw: st.DrawFn) -> tuple[Any, list[tuple[str, Any]], list[tuple[Any, Any]]]:
    """W, a random mix of pushes and windows inside [T0, W), then windows covering [T0, W)."""
    w = draw(grid_times(max_seconds=22))
    ops: list[tuple[str, Any]] = []
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.integers(0, 2)):
            mode = draw(st.sampled_from(["online_and_offline", "online_and_offline", "offline"]))
            batch = draw(pushed_batch())
            _tie_with(draw, batch, [r for kind, (_, b) in ops if kind == "push" for r in b])
            ops.append(("push", (mode, batch)))
        else:
            a, b = sorted([draw(grid_times(max_seconds=22)), draw(grid_times(max_seconds=22))])
            a, b = max(a, T0), min(b, w)
            if a < b:
                ops.append(("window", (a, b)))
    cuts = sorted({T0, w, *(c for c in draw(st.lists(grid_times(max_seconds=22), max_size=3)))})
    covering = [(a, b) for a, b in itertools.pairwise(cuts) if T0 <= a < b <= w]
    random.Random(draw(st.integers(0, 2**32))).shuffle(covering)
    return w, ops, covering


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
@settings(max_examples=15)
@given(rows=feature_rows(), plan=plans(), entities=entity_rows())
def test_pushes_and_windows_in_any_order_keep_online_equal_to_offline(
    repo: Path, backend: str, request: pytest.FixtureRequest, rows, plan, entities
) -> None:
    w, ops, covering = plan
    write_timeline(repo / "data/u", rows, SCHEMA)
    shutil.rmtree(repo / "push_log", ignore_errors=True)
    store = fresh_store(repo, backend, request)
    logged: list[dict[str, Any]] = []  # pushed rows in the push log, in push order
    online_pushed: list[dict[str, Any]] = []
    try:
        for number, (kind, arg) in enumerate(ops):
            if kind == "window":
                store.materialize(*arg, views=["u"])
                continue
            mode, batch = arg
            frame = [
                {
                    "user_id": r["user_id"],
                    "ts": r["event_ts"],
                    "created": r["created_ts"],
                    "f_int": r["f_int"],
                    "f_str": r["f_str"],
                }
                for r in batch
            ]
            store.push("u", frame, to=mode)
            for i, r in enumerate(batch):
                placed = {**r, "file": f"~push-{number:04d}", "row": i}
                logged.append(placed)
                if mode != "offline":
                    online_pushed.append(placed)
        for start, end in covering:
            store.materialize(start, end, views=["u"])

        offline_rows = [*rows, *logged]
        candidates = [
            r
            for r in offline_rows
            if r["event_ts"] is not None and r["user_id"] is not None and r["event_ts"] < w
        ]
        candidates += [r for r in online_pushed if r["event_ts"] >= w]
        got = store.get_online_features(
            ["u:f_int", "u:f_str"], {"user_id": USERS}, request_time=FAR
        )
        values = got.to_dict()
        for i, user in enumerate(USERS):
            mine = [r for r in candidates if r["user_id"] == user]
            if not mine:
                assert got.statuses["f_int"][i] == "NOT_FOUND", user
                continue
            best = max(mine, key=newer_key)
            assert got.statuses["f_int"][i] == "PRESENT", user
            assert (values["f_int"][i], values["f_str"][i]) == (best["f_int"], best["f_str"]), (
                user,
                best,
            )
            assert got.event_timestamps["f_int"][i] == best["event_ts"]

        frame_rows = [e for e in entities if e["event_timestamp"] is not None]
        if frame_rows:
            entity_df = pl.DataFrame(
                frame_rows,
                schema={
                    "user_id": pl.Int64,
                    "event_timestamp": pl.Datetime("us", "UTC"),
                    "label": pl.Int64,
                },
            )
            training = store.get_training_frame(entity_df, ["u:f_int", "u:f_str"]).to_polars()
            expected = pit_oracle(
                frame_rows, offline_rows, join_keys=["user_id"], features=["f_int", "f_str"]
            )
            assert training.select("f_int", "f_str").to_dicts() == expected
    finally:
        store.close()
