"""Spark as the offline engine beside DuckDB, in the same run (issue 16).

Usage:
    .venv/bin/python benchmarks/bench_spark.py                       # 1M entity rows x 2 views
    .venv/bin/python benchmarks/bench_spark.py --source-rows 1000000 --entity-rows 100000
    .venv/bin/python benchmarks/bench_spark.py --scale 1000000,10000000,50000000

Cases, each in its own subprocess (peak memory = the largest sum of RSS over the process and
its children, the Spark JVM included, sampled every 100 ms):

* ``train``: a training frame of ``--entity-rows`` rows x 2 views (10 features each, ttl 30
  days) written with ``to_parquet`` (DuckDB: one file; Spark: part files from the executors);
* ``materialize``: the newest row per key of one view's ``--source-rows`` rows into a fresh
  SQLite online store (100k keys);
* ``agg_train`` and ``agg_materialize`` (DESIGN G7, on ``bench_aggregations.py``'s data:
  ``--agg-events`` events over ``--agg-keys`` cards and 7 days, 3 windows x 3 functions, hop
  1 h): the training frame of ``--agg-entity-rows`` rows written with ``to_parquet``, and
  the events' tiles into a fresh SQLite store. The frames' column sums are compared across
  engines (within 1e-9 relative). ``--agg-events 0`` skips them; ``--agg-only`` runs only
  them.

Spark runs in ``--master`` (default ``local[2]``); its session start (the JVM) is timed apart
from the work. Figures are ratios Spark / DuckDB of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._data import DATA, make_repo, write_entities
from benchmarks.bench_aggregations import DAYS, START, prepare
from benchmarks.bench_aggregations import FEATURES as AGG_FEATURES

FEATURES = [f"user_stats:u{i}" for i in range(10)] + [f"merchant_stats:m{i}" for i in range(10)]


class PeakMemory:
    """The peak of the summed RSS of this process and its children, sampled in a thread."""

    def __init__(self, interval_s: float = 0.1) -> None:
        import psutil

        self._process = psutil.Process()
        self._interval = interval_s
        self._stop = threading.Event()
        self.peak_bytes = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> int:
        import psutil

        total = 0
        for proc in [self._process, *self._process.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        return total

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak_bytes = max(self.peak_bytes, self._sample())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak_bytes, self._sample())


def _store(repo: Path, engine: str, master: str, online: str):
    from featurestore import FeatureStore
    from featurestore.repo.config import SparkOfflineStoreConfig, SqliteOnlineStoreConfig

    store = FeatureStore(repo)
    store.apply()
    update: dict[str, object] = {"online_store": SqliteOnlineStoreConfig(path=online)}
    if engine == "spark":
        update["offline_store"] = SparkOfflineStoreConfig(
            type="spark",
            master=master,
            conf={
                "spark.ui.enabled": "false",
                "spark.sql.shuffle.partitions": "8",
                "spark.driver.memory": "4g",
            },
        )
    return FeatureStore(repo, config=store.config.model_copy(update=update))


def run_case(case: str, engine: str, repo: Path, entities: Path, master: str) -> dict[str, object]:
    """One case in this process: seconds of start-up and of work, rows, peak memory."""
    memory = PeakMemory()
    online = f"data/online-bench-{engine}-{time.time_ns()}.db"
    store = _store(repo, engine, master, online)
    begin = time.perf_counter()
    if engine == "spark":
        store.offline.spark  # noqa: B018 (starts the JVM and the session)
    startup = time.perf_counter() - begin
    extra: dict[str, object] = {}
    begin = time.perf_counter()
    if case == "train":
        out = DATA / f"out_spark_bench_{engine}.parquet"
        store.get_training_frame(str(entities), FEATURES).to_parquet(out)
        import duckdb

        pattern = str(out / "*.parquet") if out.is_dir() else str(out)
        rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{pattern}')").fetchall()[0][0]
    elif case == "agg_train":
        out = DATA / f"out_spark_bench_agg_{engine}.parquet"
        store.get_training_frame(str(entities), AGG_FEATURES).to_parquet(out)
        import duckdb

        pattern = str(out / "*.parquet") if out.is_dir() else str(out)
        names = [f.split(":")[1] for f in AGG_FEATURES]
        sums = ", ".join(f'sum("{n}")' for n in names)
        row = duckdb.sql(f"SELECT count(*), {sums} FROM read_parquet('{pattern}')").fetchall()[0]
        rows, extra = row[0], {"sums": [float(x or 0) for x in row[1:]]}
    elif case == "agg_materialize":
        start = datetime.fromisoformat(START)
        report = store.materialize(start, start + timedelta(days=DAYS), views=["txn"])
        rows = sum(v.rows for v in report.views)  # tiles
    else:
        report = store.materialize(
            datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), views=["user_stats"]
        )
        rows = sum(v.rows for v in report.views)
    seconds = time.perf_counter() - begin
    store.close()
    (repo / online).unlink(missing_ok=True)
    peak = memory.stop()
    return {
        "startup_s": round(startup, 2),
        "seconds": round(seconds, 2),
        "rows": int(rows),
        "peak_mb": round(peak / 2**20),
        **extra,
    }


def measure(case: str, engine: str, repo: Path, entities: Path, master: str) -> dict[str, float]:
    args = ["--case", case, "--engine", engine, "--repo", str(repo), "--entities", str(entities)]
    proc = subprocess.run(
        [sys.executable, __file__, *args, "--master", master],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}  # type: ignore[dict-item]
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entity-rows", type=int, default=1_000_000)
    parser.add_argument("--source-rows", type=int, default=1_000_000)
    parser.add_argument("--scale", help="comma-separated source row counts: a scaling curve")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--agg-events", type=int, default=1_000_000, help="0: no G7 cases")
    parser.add_argument("--agg-entity-rows", type=int, default=100_000)
    parser.add_argument("--agg-keys", type=int, default=10_000)
    parser.add_argument("--agg-only", action="store_true", help="only the G7 cases")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--repo", help=argparse.SUPPRESS)
    parser.add_argument("--entities", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        result = run_case(args.case, args.engine, Path(args.repo), Path(args.entities), args.master)
        print(json.dumps(result))
        return
    sizes = [int(s) for s in args.scale.split(",")] if args.scale else [args.source_rows]
    if args.agg_only:
        sizes = []
    for source_rows in sizes:
        entity_rows = source_rows if args.scale else args.entity_rows
        repo = make_repo(source_rows)
        entities = write_entities(
            DATA / f"entities_{entity_rows}.parquet",
            rows=entity_rows,
            n_users=100_000,
            n_merchants=50_000,
            seed=7,
        )
        for case in ("train", "materialize"):
            results = {
                e: measure(case, e, repo, entities, args.master) for e in ("duckdb", "spark")
            }
            duck, spark = results["duckdb"], results["spark"]
            ratio = (
                round(spark["seconds"] / duck["seconds"], 2)
                if "seconds" in duck and "seconds" in spark and duck["seconds"]
                else None
            )
            print(
                json.dumps(
                    {
                        "case": case,
                        "source_rows": source_rows,
                        "entity_rows": entity_rows if case == "train" else None,
                        "duckdb": duck,
                        "spark": spark,
                        "spark_over_duckdb": ratio,
                    }
                ),
                flush=True,
            )

    if args.agg_events:
        aggregations(args.agg_events, args.agg_entity_rows, args.agg_keys, args.master)


def aggregations(events: int, entity_rows: int, keys: int, master: str) -> None:
    """The G7 cases on both engines; the training frames' column sums checked equal."""
    import math

    repo = prepare(events, entity_rows, keys)
    (repo / "data").mkdir(exist_ok=True)  # the cases' online stores
    for case in ("agg_train", "agg_materialize"):
        results = {
            e: measure(case, e, repo, repo / "entities.parquet", master)
            for e in ("duckdb", "spark")
        }
        duck, spark = results["duckdb"], results["spark"]
        same = None
        if "sums" in duck and "sums" in spark:
            sums = [cast("list[float]", r.pop("sums")) for r in (duck, spark)]
            pairs = zip(*sums, strict=True)
            same = all(math.isclose(a, b, rel_tol=1e-9) for a, b in pairs)
        ratio = (
            round(spark["seconds"] / duck["seconds"], 2)
            if "seconds" in duck and "seconds" in spark and duck["seconds"]
            else None
        )
        print(
            json.dumps(
                {
                    "case": case,
                    "events": events,
                    "entity_rows": entity_rows if case == "agg_train" else None,
                    "keys": keys,
                    "duckdb": duck,
                    "spark": spark,
                    "spark_over_duckdb": ratio,
                    "same_sums": same,
                    "load": round(os.getloadavg()[0], 2),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
