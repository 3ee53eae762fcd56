"""What the Great Expectations gate costs materialization, and GE's pandas vs SQL path.

    .venv/bin/python benchmarks/bench_validation.py --entities 1000000

Same data as bench_materialize.py (one row per entity, 10 features: 5 Int64, 5 Float64).
1. Materialization into a fresh SQLite file, without a suite and with a 5-expectation suite,
   alternated in one run, each in its own child process (peak RSS = the child's maxrss).
2. The same 5-expectation suite on the same 1M-row window, run by GE's pandas engine (what
   featurestore uses: Arrow -> pandas with nullable dtypes -> GE) and by GE's SQL engine
   (SQLAlchemy) on SQLite, the window loaded into a SQLite table first (timed apart). GE's
   SQL engine on DuckDB (duckdb-engine 0.17, DuckDB 2.0.1) returned no rows for GE's metric
   queries ("list index out of range" for every expectation), so SQLite, a SQL backend GE
   supports, stands in for the push-down.
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_materialize import FEATURES_PY, START
from benchmarks.bench_materialize import make_repo as make_wide_repo

SUITE_PY = """
import great_expectations.expectations as gxe
EXPECTATIONS = [
    gxe.ExpectColumnValuesToNotBeNull(column="user_id"),
    gxe.ExpectColumnValuesToBeBetween(column="i0", min_value=0, max_value=10_000_000),
    gxe.ExpectColumnValuesToBeBetween(column="f0", min_value=0),
    gxe.ExpectColumnValuesToNotBeNull(column="f1"),
    gxe.ExpectColumnMeanToBeBetween(column="i1", min_value=0, max_value=1e12),
]
"""
CHECKED_PY = SUITE_PY + FEATURES_PY.replace("schema=[", "expectations=EXPECTATIONS,\n    schema=[")
END = START + timedelta(days=2)


def child(root: Path) -> None:
    """Materialize ``root`` into a fresh SQLite file; print seconds and peak RSS as JSON."""
    from featurestore import FeatureStore

    store = FeatureStore(root)
    store.apply()
    began = time.perf_counter()
    report = store.materialize(START, END)
    seconds = time.perf_counter() - began
    store.close()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rows": report.rows, "peak_mib": peak_mib}))


def run_child(root: Path) -> dict[str, float]:
    (root / "data/online.db").unlink(missing_ok=True)
    for path in (root / "data").glob("online.db-*"):
        path.unlink()
    (root / "data/registry.json").unlink(missing_ok=True)
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(root)],
        capture_output=True,
        text=True,
        check=True,
        timeout=3600,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def engine_paths(root: Path, n: int) -> dict[str, float]:
    """The suite on the window's rows by GE's pandas engine and by its SQL engine (SQLite)."""
    from featurestore import FeatureStore
    from featurestore.materialization.materializer import validate_window
    from featurestore.validation.gx import context, suite_from_json

    store = FeatureStore(root)
    store.apply()
    record = store.get_feature_view("wide")
    context()  # GE imported and its context built before timing
    began = time.perf_counter()
    result = validate_window(store.offline, record, START, END, log=None)
    pandas_total = time.perf_counter() - began
    if not result.success or result.rows != n:
        raise SystemExit(result.summary())
    began = time.perf_counter()
    rows = pa.Table.from_batches(list(store.offline.latest_rows(record, START, END)))
    read = time.perf_counter() - began

    db = root / "data/window.sqlite"
    db.unlink(missing_ok=True)
    began = time.perf_counter()
    with sqlite3.connect(db) as conn:
        names = [c for c in rows.column_names if not c.startswith("__fs_")]
        conn.execute(f"CREATE TABLE w ({', '.join(names)})")
        columns = [rows.column(c).to_pylist() for c in names]
        conn.executemany(
            f"INSERT INTO w VALUES ({', '.join('?' * len(names))})", zip(*columns, strict=True)
        )
    load = time.perf_counter() - began
    suite = suite_from_json("wide", record.view.suite_json or "")
    source = context().data_sources.add_sqlite("window", connection_string=f"sqlite:///{db}")
    batch = source.add_table_asset("w", table_name="w").add_batch_definition_whole_table("all")
    began = time.perf_counter()
    outcome = batch.get_batch().validate(suite, result_format={"result_format": "SUMMARY"})
    sql = time.perf_counter() - began
    assert outcome.success, outcome
    store.close()
    return {
        "pandas_total": pandas_total,
        "read": read,
        "pandas_validate": pandas_total - read,
        "sql_load": load,
        "sql_validate": sql,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", type=Path)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    n = args.entities
    base = Path(tempfile.mkdtemp(prefix="bench-val-"))
    plain = base / "plain"
    make_wide_repo(plain, n)
    checked = base / "checked"
    (checked / "data").mkdir(parents=True)
    (checked / "featurestore.yaml").write_text("project: bench\n")
    (checked / "features.py").write_text(CHECKED_PY)
    pq.write_table(pq.read_table(plain / "data/wide.parquet"), checked / "data/wide.parquet")

    runs: dict[str, list[dict[str, float]]] = {"without suite": [], "with suite": []}
    for _ in range(args.repeat):  # alternated, so both see the same machine
        runs["without suite"].append(run_child(plain))
        runs["with suite"].append(run_child(checked))
    print(f"materialize {n:,} entities x 10 features into SQLite ({args.repeat} runs each)")
    best = {}
    for name, results in runs.items():
        best[name] = min(r["seconds"] for r in results)
        times = ", ".join(f"{r['seconds']:.2f}" for r in results)
        peak = max(r["peak_mib"] for r in results)
        print(
            f"  {name:14s} best {n / best[name]:>9,.0f} rows/s ({best[name]:.2f} s; runs {times} s)"
            f"  peak RSS {peak:,.0f} MiB"
        )
    added = best["with suite"] / best["without suite"] - 1
    print(f"  validation adds {added:.0%} (target <= 50%)")

    paths = engine_paths(checked, n)
    print(f"the 5-expectation suite on the {n:,}-row window")
    print(
        f"  pandas engine   {paths['pandas_validate']:.2f} s "
        f"(+ {paths['read']:.2f} s reading the window from DuckDB)"
    )
    print(
        f"  SQL on SQLite   {paths['sql_validate']:.2f} s "
        f"(+ {paths['sql_load']:.2f} s loading the window into a SQLite table)"
    )


if __name__ == "__main__":
    main()
