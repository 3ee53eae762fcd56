"""What the Great Expectations gate costs materialization, and GE's pandas vs SQL path.

    .venv/bin/python benchmarks/bench_validation.py --entities 1000000
    .venv/bin/python benchmarks/bench_validation.py --small   # a quick check

Same data as bench_materialize.py (one row per entity, 10 features: 5 Int64, 5 Float64).
1. Materialization into a fresh SQLite file, without a suite and with a 5-expectation suite,
   alternated in one run, each in its own child process (peak RSS = the child's maxrss).
2. The same 5-expectation suite on windows of several sizes (default 10k to 1M rows), run by
   GE's pandas engine (the columns the suite names, Arrow -> pandas with nullable dtypes ->
   GE), by GE's SQL engine on DuckDB over the Arrow rows (featurestore/validation/
   duckdb_sql.py: nothing loaded), and by GE's SQL engine on SQLite and on PostgreSQL
   (``--postgres URL``; a scratch database is created and dropped), which must first load the
   rows: SQLite by ``executemany``, PostgreSQL by ``COPY`` of pyarrow-written CSV, both timed.
   featurestore picks pandas or SQL on DuckDB by window size (validation/run.py,
   ``SQL_MIN_ROWS``) from these figures.
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


PG_DATABASE = "fs_bench_validation"
"""Created (and dropped after the run) on the local PostgreSQL server (``--postgres``)."""

PG_TYPES = {pa.int64(): "bigint", pa.float64(): "double precision"}


def _sqlite_load(window: pa.Table, db: Path, table: str) -> None:
    with sqlite3.connect(db) as conn:
        names = window.column_names
        conn.execute(f"CREATE TABLE {table} ({', '.join(names)})")
        columns = [window.column(c).to_pylist() for c in names]
        conn.executemany(
            f"INSERT INTO {table} VALUES ({', '.join('?' * len(names))})",
            zip(*columns, strict=True),
        )


def _postgres_load(window: pa.Table, url: str, table: str) -> None:
    """COPY the window in as CSV (pyarrow writes it; PostgreSQL parses it): the fast way in."""
    import psycopg
    import pyarrow.csv as pacsv

    columns = ", ".join(f"{f.name} {PG_TYPES.get(f.type, 'timestamptz')}" for f in window.schema)
    sink = pa.BufferOutputStream()
    pacsv.write_csv(window, sink, pacsv.WriteOptions(include_header=False))
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} ({columns})")
        with cur.copy(f"COPY {table} FROM STDIN (FORMAT csv)") as copy:
            copy.write(sink.getvalue().to_pybytes())


def _postgres(admin: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(statement)


def engine_paths(
    root: Path, sizes: list[int], repeat: int, postgres: str | None
) -> tuple[float, list[dict[str, float]]]:
    """The suite on windows of each size, by GE's pandas engine and by its SQL engine.

    Returns the seconds reading the whole window from DuckDB, and per size the best of
    ``repeat`` runs of each path. A SQL path's time is loading the window into the database
    (as it must be, the rows being computed by DuckDB) plus GE's check there.
    """
    from featurestore import FeatureStore
    from featurestore.validation.gx import context, suite_from_json
    from featurestore.validation.run import validate_table

    store = FeatureStore(root)
    store.apply()
    record = store.get_feature_view("wide")
    view = record.view
    suite = suite_from_json("wide", view.suite_json or "")
    ctx = context()  # GE imported and its context built before timing
    began = time.perf_counter()
    rows = pa.Table.from_batches(list(store.offline.latest_rows(record, START, END)))
    read = time.perf_counter() - began
    names = [c for c in rows.column_names if not c.startswith("__fs_")]
    window = rows.select(names)
    store.close()

    def sql_check(source: object, table: str) -> float:
        asset = source.add_table_asset(table, table_name=table)  # type: ignore[attr-defined]
        batch = asset.add_batch_definition_whole_table("all").get_batch()
        began = time.perf_counter()
        outcome = batch.validate(suite, result_format={"result_format": "SUMMARY"})
        assert outcome.success, outcome
        return time.perf_counter() - began

    db = root / "data/window.sqlite"
    db.unlink(missing_ok=True)
    sqlite = ctx.data_sources.add_sqlite("bench_sqlite", connection_string=f"sqlite:///{db}")
    pg_source = None
    if postgres is not None:
        admin = f"{postgres}/postgres"
        _postgres(admin, f"DROP DATABASE IF EXISTS {PG_DATABASE}")
        _postgres(admin, f"CREATE DATABASE {PG_DATABASE}")
        pg_url = f"{postgres}/{PG_DATABASE}"
        pg_source = ctx.data_sources.add_postgres(
            "bench_postgres",
            connection_string=pg_url.replace("postgresql://", "postgresql+psycopg://"),
        )
    figures: list[dict[str, float]] = []
    try:
        for size in sizes:
            part = window.slice(0, size)
            best: dict[str, float] = {"rows": float(part.num_rows)}
            for attempt in range(repeat):
                run: dict[str, float] = {}
                for engine in ("pandas", "sql"):
                    began = time.perf_counter()
                    result = validate_table(
                        view, part, start=START, end=END, kind="validate", engine=engine
                    )
                    run[engine] = time.perf_counter() - began
                    if not result.success or result.rows != part.num_rows:
                        raise SystemExit(result.summary())
                table = f"w_{size}_{attempt}"
                began = time.perf_counter()
                _sqlite_load(part, db, table)
                sqlite_load = time.perf_counter() - began
                sqlite_check = sql_check(sqlite, table)
                run["sqlite_load"] = sqlite_load
                run["sqlite_check"] = sqlite_check
                if pg_source is not None:
                    began = time.perf_counter()
                    _postgres_load(part, pg_url, table)
                    run["postgres_load"] = time.perf_counter() - began
                    run["postgres_check"] = sql_check(pg_source, table)
                for key, seconds in run.items():
                    best[key] = min(best.get(key, seconds), seconds)
            figures.append(best)
    finally:
        if pg_source is not None:
            ctx.data_sources.delete("bench_postgres")  # closes GE's engine before the drop
            _postgres(admin, f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
    return read, figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(k) for k in text.split(",")],
        default=[10_000, 30_000, 100_000, 300_000, 1_000_000],
        help="window sizes of the engine comparison (rows, comma-separated)",
    )
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432",
        help="PostgreSQL server for GE's SQL engine ('' to skip); a scratch database is "
        f"created on it and dropped ({PG_DATABASE})",
    )
    parser.add_argument(
        "--small", action="store_true", help="quick check: 100k entities, 1 run, 2 sizes"
    )
    parser.add_argument("--child", type=Path)
    args = parser.parse_args()
    if args.small:
        args.entities, args.repeat, args.sizes = 100_000, 1, [10_000, 100_000]
        args.postgres = ""  # the quick check needs no PostgreSQL server
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

    sizes = [k for k in args.sizes if k <= n] or [n]
    read, paths = engine_paths(checked, sizes, args.repeat, args.postgres or None)
    print(
        f"the 5-expectation suite on windows of the {n:,}-row view (best of {args.repeat}; "
        f"reading the whole window from DuckDB took {read:.2f} s, paid by every path)"
    )
    header = f"  {'rows':>9}  {'pandas':>8}  {'SQL on DuckDB':>13}  {'SQLite: load + check':>22}"
    if args.postgres:
        header += f"  {'PostgreSQL: load + check':>26}"
    print(header + "  faster")
    for p in paths:
        totals = {
            "pandas": p["pandas"],
            "SQL on DuckDB": p["sql"],
            "SQLite": p["sqlite_load"] + p["sqlite_check"],
        }
        line = (
            f"  {p['rows']:>9,.0f}  {p['pandas']:>7.3f}s  {p['sql']:>12.3f}s  "
            f"{p['sqlite_load']:>7.3f} + {p['sqlite_check']:.3f} = {totals['SQLite']:.3f}s"
        )
        if "postgres_load" in p:
            totals["PostgreSQL"] = p["postgres_load"] + p["postgres_check"]
            line += (
                f"  {p['postgres_load']:>9.3f} + {p['postgres_check']:.3f} = "
                f"{totals['PostgreSQL']:.3f}s"
            )
        print(f"{line}  {min(totals, key=totals.__getitem__)}")


if __name__ == "__main__":
    main()
