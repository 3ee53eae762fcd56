"""A small training frame from a Parquet entity frame loads DuckDB and Arrow only (issue 10.13).

Each case runs in a fresh interpreter and reports which heavy modules it imported. polars is
loaded by the ``arrays`` strategy, batch transforms, on-demand views and ``to_polars``; a
frame through the range join from a Parquet file, written with ``to_arrow``/``to_parquet``/
``to_csv``, needs none of them. numpy is not checked: pyarrow imports it itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import pytest

from featurestore import FeatureStore
from tests.conftest import make_repo, write_parquet

FEATURES_PY = """
from datetime import timedelta
from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Float64, Int64

user = Entity("user", join_keys=["user_id"])
stats = FeatureView(
    name="stats",
    entities=[user],
    source=ParquetSource("data/stats.parquet", timestamp_field="ts",
                         created_timestamp_field="created"),
    schema=[Field("count", Int64), Field("amount", Float64)],
    ttl=timedelta(days=2),
)
"""

HEAVY = ["polars", "pandas", "pydantic", "pyarrow.compute", "pyarrow.parquet", "pyarrow.csv"]
"""Modules a small Parquet frame must not import (top-level names and Arrow submodules).

pydantic is the HTTP server's: the config is validated without it."""


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_repo(tmp_path_factory.mktemp("small") / "repo", FEATURES_PY)
    write_parquet(
        root / "data" / "stats.parquet",
        {
            "user_id": [1, 1, 2],
            "ts": [datetime(2026, 1, 1), datetime(2026, 1, 3), datetime(2026, 1, 1)],
            "created": [datetime(2026, 1, 1), datetime(2026, 1, 3), None],
            "count": [1, 2, None],
            "amount": [0.5, 1.5, 2.5],
        },
    )
    write_parquet(
        root / "data" / "entities.parquet",
        {
            "user_id": [1, 2, 3, 1],
            "event_timestamp": [
                datetime(2026, 1, 2),
                datetime(2026, 1, 2),
                datetime(2026, 1, 2),
                datetime(2026, 1, 4),
            ],
        },
    )
    FeatureStore(root).apply()
    return root


def _run(repo: Path, output: str) -> dict[str, object]:
    """Build the frame in a fresh interpreter; its rows, strategy and heavy modules loaded."""
    code = textwrap.dedent(
        f"""
        import json, sys
        from featurestore import FeatureStore

        store = FeatureStore({str(repo)!r})
        frame = store.get_training_frame(
            {str(repo / "data" / "entities.parquet")!r}, ["stats:count", "stats:amount"]
        )
        strategy = dict(frame.describe())["join strategy"]
        output = {output!r}
        if output in ("to_arrow", "to_polars"):
            result = getattr(frame, output)()
        else:
            path = getattr(frame, output)({str(repo / "out")!r} + "/frame." + output[3:])
        heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)  # before reading the result
        if output == "to_arrow":
            rows = result.select(["user_id", "count", "amount"]).to_pylist()
        elif output == "to_polars":
            rows = result.to_dicts()
        else:
            import duckdb
            rows = duckdb.sql(f"SELECT user_id, count, amount FROM '{{path}}'").fetchall()
            rows = [dict(zip(["user_id", "count", "amount"], r)) for r in rows]
        print(json.dumps({{
            "strategy": strategy,
            "heavy": heavy,
            "values": [[r["user_id"], r["count"], r["amount"]] for r in rows],
        }}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    report: dict[str, object] = json.loads(result.stdout)
    return report


EXPECTED = [[1, 1, 0.5], [2, None, 2.5], [3, None, None], [1, 2, 1.5]]


@pytest.mark.parametrize("output", ["to_arrow", "to_parquet", "to_csv"])
def test_small_parquet_frame_through_range_join_loads_no_polars(repo: Path, output: str) -> None:
    report = _run(repo, output)
    assert report["strategy"] == "range"
    assert report["values"] == EXPECTED
    assert report["heavy"] == []


def test_the_probe_sees_polars_when_it_is_used(repo: Path) -> None:
    report = _run(repo, "to_polars")
    assert report["values"] == EXPECTED
    assert report["heavy"] == ["polars"]
