"""Start-up cost of small work, each case in a fresh process, against the raw engines.

Usage:
    .venv/bin/python benchmarks/bench_startup.py [--repeat 7] [--entity-rows 10000]
        [--source-rows 1000000]

Every case is a new ``python`` process timed from spawn to exit (wall clock), so imports and
interpreter start-up count, as they do for a user's script or a CLI call. Cases run
interleaved, ``--repeat`` times each; the median is reported with the min and max, and the
median CPU time (user + system, all threads), which the load of a shared machine distorts
less than the wall clock. featurestore's sources are byte-compiled first, as ``pip install``
does: with ``PYTHONDONTWRITEBYTECODE`` set (or sources edited since the last import), each
process would otherwise compile the modules it imports (~40 ms for a training frame). The
warm-up run also leaves the parsed ``featurestore.yaml`` in the repo's ``__pycache__``, as a
user's first run does (``featurestore.repo.config``).

- ``python``: ``python -c pass``, the floor.
- ``import_duckdb`` / ``import_pyarrow`` / ``import_polars`` / ``import_numpy``: each engine alone.
- ``import_featurestore`` and ``cli_version`` (``featurestore --version``): target < 0.2 s.
- ``raw_range_join``: DuckDB's own range join for the training frame (same ttl window and
  tie-break as featurestore: ``created`` null lowest, then file and row), fetched as Arrow.
- ``training_frame``: ``FeatureStore(repo).get_training_frame(...).to_arrow()`` for the same
  entity rows and features; target within 1.2x ``raw_range_join``.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._data import DATA, make_repo, write_entities

ROOT = Path(__file__).resolve().parents[1]

FEATURES = [f"user_stats:u{i}" for i in range(10)] + [f"merchant_stats:m{i}" for i in range(10)]


def _raw_range_join_sql(users: Path, merchants: Path, entities: Path) -> str:
    def newest(source: Path, key: str, prefix: str) -> str:
        cols = ", ".join(f"s.{prefix}{i}" for i in range(10))
        return (
            f"SELECT e.file_row_number AS rid, {cols} FROM e JOIN read_parquet('{source}', "
            f"filename=true, file_row_number=true) AS s ON s.{key} = e.{key} "
            "AND s.event_timestamp <= e.event_timestamp "
            "AND s.event_timestamp >= e.event_timestamp - INTERVAL 30 DAY "
            "QUALIFY row_number() OVER (PARTITION BY e.file_row_number ORDER BY "
            "s.event_timestamp DESC, s.created DESC NULLS LAST, s.filename DESC, "
            "s.file_row_number DESC) = 1"
        )

    columns = ", ".join([f"u.u{i}" for i in range(10)] + [f"m.m{i}" for i in range(10)])
    return (
        f"WITH e AS (SELECT * FROM read_parquet('{entities}', file_row_number=true)), "
        f"u AS ({newest(users, 'user_id', 'u')}), m AS ({newest(merchants, 'merchant_id', 'm')}) "
        f"SELECT e.user_id, e.merchant_id, e.event_timestamp, e.label, {columns} FROM e "
        "LEFT JOIN u ON u.rid = e.file_row_number LEFT JOIN m ON m.rid = e.file_row_number "
        "ORDER BY e.file_row_number"
    )


def _cases(repo: Path, entities: Path, users: Path, merchants: Path) -> dict[str, list[str]]:
    python = [sys.executable, "-c"]
    raw = (
        "import duckdb\n"
        "con = duckdb.connect()\n"
        "con.execute(\"SET TimeZone = 'UTC'\")\n"
        f"table = con.sql({_raw_range_join_sql(users, merchants, entities)!r}).to_arrow_table()\n"
        "print(table.num_rows)"
    )
    ours = (
        "from featurestore import FeatureStore\n"
        f"store = FeatureStore({str(repo)!r})\n"
        f"table = store.get_training_frame({str(entities)!r}, {FEATURES!r}).to_arrow()\n"
        "print(table.num_rows)"
    )
    return {
        "python": [*python, "pass"],
        "import_duckdb": [*python, "import duckdb"],
        "import_pyarrow": [*python, "import pyarrow"],
        "import_polars": [*python, "import polars"],
        "import_numpy": [*python, "import numpy"],
        "import_featurestore": [*python, "import featurestore"],
        "cli_version": [str(Path(sys.executable).parent / "featurestore"), "--version"],
        "raw_range_join": [*python, raw],
        "training_frame": [*python, ours],
    }


def _time(command: list[str]) -> tuple[float, float, str]:
    """Wall-clock seconds, CPU seconds (user + system, all threads) and last output line."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=600,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    lines = result.stdout.strip().splitlines()
    return wall, cpu, lines[-1] if lines else ""  # the last line: after DuckDB's progress bar


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--entity-rows", type=int, default=10_000)
    parser.add_argument("--source-rows", type=int, default=1_000_000)
    args = parser.parse_args()

    compileall.compile_dir(ROOT / "featurestore", quiet=1)
    repo = make_repo(args.source_rows)
    users = DATA / f"users_{args.source_rows}_42.parquet"
    merchants = DATA / f"merchants_{args.source_rows}_42.parquet"
    entities = write_entities(
        DATA / f"entities_{args.entity_rows}_startup.parquet",
        rows=args.entity_rows,
        n_users=100_000,
        n_merchants=50_000,
        seed=7,
    )
    apply = f"from featurestore import FeatureStore\nFeatureStore({str(repo)!r}).apply()"
    _time([sys.executable, "-c", apply])

    cases = _cases(repo, entities, users, merchants)
    times: dict[str, list[float]] = {name: [] for name in cases}
    cpus: dict[str, list[float]] = {name: [] for name in cases}
    outputs: dict[str, set[str]] = {name: set() for name in cases}
    load_before = os.getloadavg()
    _time(cases["training_frame"])  # warm the OS file cache, the byte-compiled sources and config
    for _ in range(args.repeat):
        for name, command in cases.items():
            seconds, cpu, out = _time(command)
            times[name].append(seconds)
            cpus[name].append(cpu)
            outputs[name].add(out)
    assert outputs["raw_range_join"] == outputs["training_frame"] == {str(args.entity_rows)}, (
        outputs
    )

    results = {
        name: {
            "median_s": round(statistics.median(ts), 3),
            "min_s": round(min(ts), 3),
            "max_s": round(max(ts), 3),
            "cpu_median_s": round(statistics.median(cpus[name]), 3),
        }
        for name, ts in times.items()
    }
    ratio = results["training_frame"]["median_s"] / results["raw_range_join"]["median_s"]
    cpu_ratio = (
        results["training_frame"]["cpu_median_s"] / results["raw_range_join"]["cpu_median_s"]
    )
    print(
        json.dumps(
            {
                "entity_rows": args.entity_rows,
                "source_rows_per_view": args.source_rows,
                "repeat": args.repeat,
                "load_average_before": load_before,
                "load_average_after": os.getloadavg(),
                "cases": results,
                "training_frame_vs_raw_range_join": round(ratio, 2),
                "training_frame_vs_raw_range_join_cpu": round(cpu_ratio, 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
