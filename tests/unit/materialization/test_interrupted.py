"""A materialization killed mid-window leaves a servable store and its watermark; rerun is safe."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from featurestore import FeatureStore
from tests.conftest import make_repo, utc, write_parquet

FEATURES_PY = """
from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Int64

user = Entity("user", join_keys=["user_id"])
big = FeatureView(name="big", entities=[user],
                  source=ParquetSource("data/big.parquet", timestamp_field="ts"),
                  schema=[Field("version", Int64)])
"""
N = 20_000

CHILD = """
import os, signal, sys
from datetime import datetime, timezone
from featurestore import FeatureStore
from featurestore.materialization.materializer import Materializer

store = FeatureStore(sys.argv[1])
batches = 0

def kill_after_three(view, done, total):
    global batches
    if done:
        batches += 1
    if batches == 3:
        os.kill(os.getpid(), signal.SIGKILL)

Materializer(store.registry, store.offline, store.online, batch_size=1000).materialize(
    store.refresh(),
    datetime(2026, 1, 2, tzinfo=timezone.utc),
    datetime(2026, 1, 3, tzinfo=timezone.utc),
    progress=kill_after_three,
)
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "repo", FEATURES_PY)
    users = list(range(N))
    write_parquet(
        root / "data/big.parquet",
        {
            "user_id": users + users,
            "ts": [utc(2026, 1, 1)] * N + [utc(2026, 1, 2, 12)] * N,
            "version": [1] * N + [2] * N,
        },
    )
    return root


def test_sigkill_mid_window_then_rerun(repo: Path, tmp_path: Path) -> None:
    store = FeatureStore(repo)
    store.apply()
    store.materialize(utc(2026, 1, 1), utc(2026, 1, 2))
    assert store.get_feature_view("big").watermark == utc(2026, 1, 2)
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD))
    result = subprocess.run(
        [sys.executable, str(script), str(repo)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert result.returncode == -9, result.stderr

    store.refresh()
    assert store.get_feature_view("big").watermark == utc(2026, 1, 2)
    got = store.get_online_features(
        ["big:version"], {"user_id": list(range(N))}, request_time=utc(2026, 1, 3)
    )
    versions = got.to_dict()["version"]
    assert set(got.statuses["version"]) == {"PRESENT"}
    assert 0 < versions.count(2) < N  # some batches landed before the kill
    assert versions.count(1) + versions.count(2) == N
    assert store.online.count_records("big") == N

    store.materialize(utc(2026, 1, 2), utc(2026, 1, 3))
    got = store.get_online_features(
        ["big:version"], {"user_id": list(range(N))}, request_time=utc(2026, 1, 3)
    )
    assert got.to_dict()["version"] == [2] * N
    assert store.online.count_records("big") == N
    assert store.get_feature_view("big").watermark == utc(2026, 1, 3)
    store.close()
