"""Training-frame benchmark: featurestore vs a hand-written DuckDB ASOF JOIN (the yardstick).

Usage:
    .venv/bin/python benchmarks/bench_training_set.py [--entity-rows N --source-rows N]
    .venv/bin/python benchmarks/bench_training_set.py --sweep        # strategies by size
    .venv/bin/python benchmarks/bench_training_set.py --to-parquet-rows 10000000

Every measured case runs in its own subprocess; peak RSS is that process's ru_maxrss.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._data import DATA, make_repo, write_entities

USER_FEATURES = [f"user_stats:u{i}" for i in range(10)]
MERCHANT_FEATURES = [f"merchant_stats:m{i}" for i in range(10)]


def _raw_asof_sql(users: str, merchants: str, entities: str) -> str:
    """The yardstick: plain DuckDB, same tie-break (created null lowest, file, row), ttl 30d."""

    def dedup(path: str, key: str, prefix: str) -> str:
        # The usual hand-written tie-break: keep the newest row per (key, event time).
        cols = ", ".join(f"{prefix}{i}" for i in range(10))
        return (
            f"SELECT {key}, CAST(event_timestamp AS TIMESTAMPTZ) AS ts, {cols} "
            f"FROM read_parquet('{path}', filename=true, file_row_number=true) "
            f"WHERE {key} IS NOT NULL AND event_timestamp IS NOT NULL "
            f"QUALIFY row_number() OVER (PARTITION BY {key}, event_timestamp "
            "ORDER BY created DESC NULLS LAST, filename DESC, file_row_number DESC) = 1"
        )

    fields = []
    for alias, prefix in (("u", "u"), ("m", "m")):
        for i in range(10):
            fields.append(
                f"CASE WHEN {alias}.ts >= e.event_timestamp - INTERVAL 30 DAY "
                f"THEN {alias}.{prefix}{i} END AS {prefix}{i}"
            )
    return (
        f"WITH u AS ({dedup(users, 'user_id', 'u')}), m AS ({dedup(merchants, 'merchant_id', 'm')}), "
        f"e AS (SELECT * FROM read_parquet('{entities}', file_row_number=true)) "
        f"SELECT e.user_id, e.merchant_id, e.event_timestamp, e.label, {', '.join(fields)} "
        "FROM e ASOF LEFT JOIN u ON e.user_id = u.user_id AND e.event_timestamp >= u.ts "
        "ASOF LEFT JOIN m ON e.merchant_id = m.merchant_id AND e.event_timestamp >= m.ts "
        "ORDER BY e.file_row_number"
    )


def run_case(
    case: str, repo: Path, entities: Path, out: Path, memory_limit: str | None = None
) -> dict[str, float]:
    """Run one case in this process; return seconds and rows."""
    import duckdb

    from featurestore import FeatureStore

    start = time.perf_counter()
    rows = 0
    if case == "raw_asof":
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        users = next(DATA.glob(f"users_{repo.name.split('_', 1)[1]}.parquet"))
        merchants = next(DATA.glob(f"merchants_{repo.name.split('_', 1)[1]}.parquet"))
        table = con.sql(_raw_asof_sql(str(users), str(merchants), str(entities))).to_arrow_table()
        rows = table.num_rows
    else:
        store = FeatureStore(repo)
        if memory_limit:
            from featurestore.repo.config import DuckDBOfflineStoreConfig

            offline = DuckDBOfflineStoreConfig(
                memory_limit=memory_limit, temp_directory=str(DATA / "spill")
            )
            store = FeatureStore(
                repo, config=store.config.model_copy(update={"offline_store": offline})
            )
        features = USER_FEATURES + MERCHANT_FEATURES
        strategy = case.rsplit("_", 1)[1] if case.startswith("fs_sweep_") else "auto"
        if case == "fs_available":
            frame = store.get_training_frame(str(entities), features, point_in_time="available")
        elif strategy == "auto":
            frame = store.get_training_frame(str(entities), features)
        else:
            from featurestore.definitions import output_names

            refs = store.resolve(features)
            frame = store.offline.training_frame(
                str(entities),
                [
                    (store.get_feature_view("user_stats"), [r.feature for r in refs[:10]]),
                    (store.get_feature_view("merchant_stats"), [r.feature for r in refs[10:]]),
                ],
                output_names=dict(
                    zip(refs, output_names(refs, full_feature_names=False), strict=True)
                ),
                timestamp_column="event_timestamp",
                point_in_time="event",
                strategy=strategy,  # type: ignore[arg-type]
            )
        if case == "fs_parquet":
            frame.to_parquet(out)
            import pyarrow.parquet as pq

            rows = pq.ParquetFile(out).metadata.num_rows
        else:
            rows = frame.to_arrow().num_rows
    seconds = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(rss_mb), "rows": rows}


def measure(
    case: str, repo: Path, entities: Path, memory_limit: str | None = None
) -> dict[str, float]:
    out = DATA / f"out_{case}.parquet"
    extra = ["--memory-limit", memory_limit] if memory_limit else []
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--case",
            case,
            "--repo",
            str(repo),
            "--entities",
            str(entities),
            "--out",
            str(out),
            *extra,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    out.unlink(missing_ok=True)
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def prepare(source_rows: int, entity_rows: int) -> tuple[Path, Path]:
    repo = make_repo(source_rows)
    if not (repo / "data" / "registry.json").exists():
        from featurestore import FeatureStore

        FeatureStore(repo).apply()
    entities = write_entities(
        DATA / f"entities_{entity_rows}.parquet",
        rows=entity_rows,
        n_users=100_000,
        n_merchants=50_000,
        seed=7,
    )
    return repo, entities


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entity-rows", type=int, default=1_000_000)
    parser.add_argument("--source-rows", type=int, default=5_000_000)
    parser.add_argument("--to-parquet-rows", type=int, default=0)
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--memory-limit", help="offline_store memory_limit, e.g. 2GB")
    parser.add_argument("--case")
    parser.add_argument("--repo", type=Path)
    parser.add_argument("--entities", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.case:
        print(
            json.dumps(run_case(args.case, args.repo, args.entities, args.out, args.memory_limit))
        )
        return
    t0 = time.perf_counter()
    if args.to_parquet_rows:
        repo, entities = prepare(args.source_rows, args.to_parquet_rows)
        print(f"data ready in {time.perf_counter() - t0:.1f}s")
        result = measure("fs_parquet", repo, entities, args.memory_limit)
        print(
            f"to_parquet, {args.to_parquet_rows:,} entity rows x {args.source_rows:,} source "
            f"rows x 2 views (memory_limit {args.memory_limit or 'DuckDB default'}): "
            f"{result['seconds']} s, peak RSS {result['peak_rss_mb']} MB, "
            f"{result['rows']:,} rows written"
        )
        return
    if args.sweep:
        print(f"{'entity rows':>12} {'range s':>8} {'asof s':>8} {'arrays s':>9}")
        for n in (10_000, 100_000, 300_000, 1_000_000):
            repo, entities = prepare(args.source_rows, n)
            r = measure("fs_sweep_range", repo, entities)
            a = measure("fs_sweep_asof", repo, entities)
            m = measure("fs_sweep_arrays", repo, entities)
            print(f"{n:>12,} {r['seconds']:>8} {a['seconds']:>8} {m['seconds']:>9}", flush=True)
        return
    repo, entities = prepare(args.source_rows, args.entity_rows)
    print(
        f"data ready in {time.perf_counter() - t0:.1f}s "
        f"({args.entity_rows:,} entity rows, 2 views x {args.source_rows:,} rows x 10 features)"
    )
    raw = measure("raw_asof", repo, entities)
    print(f"{'case':<34} {'seconds':>8} {'peak RSS MB':>12} {'vs raw ASOF':>12}")
    print(
        f"{'raw DuckDB ASOF JOIN (yardstick)':<34} {raw['seconds']:>8} {raw['peak_rss_mb']:>12} {'1.00x':>12}"
    )
    for case, label in (
        ("fs_arrow", "featurestore .to_arrow()"),
        ("fs_parquet", "featurestore .to_parquet()"),
        ("fs_available", "featurestore available .to_arrow()"),
    ):
        r = measure(case, repo, entities)
        assert r["rows"] == raw["rows"], (r, raw)
        print(
            f"{label:<34} {r['seconds']:>8} {r['peak_rss_mb']:>12} "
            f"{r['seconds'] / raw['seconds']:>11.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
