"""Spark as the offline engine beside DuckDB, in the same run (issue 16).

Usage:
    .venv/bin/python benchmarks/bench_spark.py                       # 1M entity rows x 2 views
    .venv/bin/python benchmarks/bench_spark.py --source-rows 1000000 --entity-rows 100000
    nice -n 10 .venv/bin/python benchmarks/bench_spark.py --scale 1000000,10000000,50000000 \
        --timeout-min 25 --spark-driver-memory 8g
    .venv/bin/python benchmarks/bench_spark.py --scale 1000000,10000000 --cases materialize

Cases, each in its own subprocess (peak memory = the largest sum of RSS over that process and
its children, the Spark JVM included, sampled every 100 ms by this process):

* ``train``: a training frame of ``--entity-rows`` rows x 2 views (10 features each, ttl 30
  days) written with ``to_parquet`` (DuckDB: one file; Spark: part files from the executors);
* ``materialize``: the newest row per key of one view's ``--source-rows`` rows into a fresh
  ``--online`` store (100k keys), SQLite or a private redis-server; on Spark the executors
  write it, each partition over its own connection;
* ``agg_train`` and ``agg_materialize`` (DESIGN G7, on ``bench_aggregations.py``'s data:
  ``--agg-events`` events over ``--agg-keys`` cards and 7 days, 3 windows x 3 functions, hop
  1 h): the training frame of ``--agg-entity-rows`` rows written with ``to_parquet``, and
  the events' tiles into a fresh SQLite store. The frames' column sums are compared across
  engines (within 1e-9 relative). ``--agg-events 0`` skips them; ``--agg-only`` runs only
  them.

Spark runs in ``--master`` (default ``local[2]``); its session start (the JVM) is timed apart
from the work. Figures are ratios Spark / DuckDB of the same run. A case still running after
``--timeout-min`` is stopped (its process group killed) and reported as "did not finish
within N min" with the peak memory it had reached; one the kernel killed (out of memory) says
so. Each line carries the load average before and after each case.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
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
OPTIONS = argparse.Namespace(spark_driver_memory="4g", redis_url=None, timeout_min=25.0)
"""The command line's options (``main`` parses into it); a case's subprocess gets them too."""


class PeakMemory:
    """The peak of the summed RSS of process ``pid`` and its children, sampled in a thread."""

    def __init__(self, pid: int, interval_s: float = 0.1) -> None:
        import psutil

        self._process = psutil.Process(pid)
        self._interval = interval_s
        self._stop = threading.Event()
        self.peak_bytes = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> int:
        import psutil

        total = 0
        try:
            children = self._process.children(recursive=True)
        except psutil.Error:  # the process has ended
            return 0
        for proc in [self._process, *children]:
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
    from featurestore.repo.config import (
        RedisOnlineStoreConfig,
        SparkOfflineStoreConfig,
        SqliteOnlineStoreConfig,
    )

    store = FeatureStore(repo)
    store.apply()
    online_config = (
        RedisOnlineStoreConfig(type="redis", url=OPTIONS.redis_url, key_prefix=online)
        if OPTIONS.redis_url
        else SqliteOnlineStoreConfig(path=online)
    )
    update: dict[str, object] = {"online_store": online_config}
    if engine == "spark":
        update["offline_store"] = SparkOfflineStoreConfig(
            type="spark",
            master=master,
            conf={
                "spark.ui.enabled": "false",
                "spark.sql.shuffle.partitions": "8",
                "spark.driver.memory": OPTIONS.spark_driver_memory,
            },
        )
    return FeatureStore(repo, config=store.config.model_copy(update=update))


def run_case(case: str, engine: str, repo: Path, entities: Path, master: str) -> dict[str, object]:
    """One case in this process: seconds of start-up and of work, rows."""
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
    if OPTIONS.redis_url:
        store.online.delete_records("user_stats")
    store.close()
    (repo / online).unlink(missing_ok=True)
    return {
        "startup_s": round(startup, 2),
        "seconds": round(seconds, 2),
        "rows": int(rows),
        **extra,
    }


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def measure(case: str, engine: str, repo: Path, entities: Path, master: str) -> dict[str, float]:
    """Run one case in a subprocess (its own process group), bounded by ``--timeout-min``."""
    args = ["--case", case, "--engine", engine, "--repo", str(repo), "--entities", str(entities)]
    args += ["--spark-driver-memory", OPTIONS.spark_driver_memory]
    if OPTIONS.redis_url:
        args += ["--redis-url", OPTIONS.redis_url]
    load = _loadavg()
    proc = subprocess.Popen(
        [sys.executable, __file__, *args, "--master", master],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    memory = PeakMemory(proc.pid)
    result: dict[str, object]
    try:
        out, err = proc.communicate(timeout=OPTIONS.timeout_min * 60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the case and its Spark JVM
        proc.communicate()
        result = {"error": f"did not finish within {OPTIONS.timeout_min:g} min"}
    except BaseException:  # Ctrl-C does not reach the case's own session: end it too
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        memory.stop()
        raise
    else:
        if proc.returncode == -signal.SIGKILL:
            result = {"error": "killed by the kernel (out of memory?)"}
        elif proc.returncode != 0:
            result = {"error": err.strip().splitlines()[-1] if err.strip() else "failed"}
        else:
            result = json.loads(out.strip().splitlines()[-1])
    result["peak_mb"] = round(memory.stop() / 2**20)
    result["load"] = f"{load} -> {_loadavg()}"
    return result  # type: ignore[return-value]  # the figures are floats; errors are text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entity-rows", type=int, default=1_000_000)
    parser.add_argument("--source-rows", type=int, default=1_000_000)
    parser.add_argument("--scale", help="comma-separated source row counts: a scaling curve")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--cases", default="train,materialize", help="comma-separated")
    parser.add_argument("--timeout-min", type=float, default=25.0, help="time bound per case")
    parser.add_argument("--spark-driver-memory", default="4g")
    parser.add_argument("--online", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    parser.add_argument("--agg-events", type=int, default=1_000_000, help="0: no G7 cases")
    parser.add_argument("--agg-entity-rows", type=int, default=100_000)
    parser.add_argument("--agg-keys", type=int, default=10_000)
    parser.add_argument("--agg-only", action="store_true", help="only the G7 cases")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--repo", help=argparse.SUPPRESS)
    parser.add_argument("--entities", help=argparse.SUPPRESS)
    args = parser.parse_args(namespace=OPTIONS)
    if args.online == "redis" and not args.redis_url:
        from benchmarks._redis import redis_url

        with redis_url() as url:  # one private redis-server for every case
            args.redis_url = url
            _main(args)
        return
    _main(args)


def _main(args: argparse.Namespace) -> None:
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
        for case in args.cases.split(","):
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
                        "online": "redis" if args.redis_url else "sqlite",
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
