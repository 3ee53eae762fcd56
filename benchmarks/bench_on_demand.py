"""On-demand feature views: extra online latency and training-frame throughput.

Usage:
    .venv/bin/python benchmarks/bench_on_demand.py [--online-only | --training-only]
        [--entity-rows 1000000 --source-rows 1000000] [--iterations 2000]

Online: ``get_online_features`` in-process on SQLite for 1 and 100 entities, reading 10
user_stats features, without and with an on-demand view over two of them and a request field
(polars mode and python mode); reports p50/p99 and the extra p50. Training: the same 10
features for ``--entity-rows`` entity rows against a ``--source-rows`` source, ``to_arrow`` and
``to_parquet``, without and with the on-demand view (best of 2 runs each).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._data import DATA, write_entities, write_source

FEATURES_PY = """
from datetime import timedelta
import polars as pl
from featurestore import (Entity, FeatureView, Field, ParquetSource, RequestSource,
                          on_demand_feature_view)
from featurestore.types import Float64

user = Entity("user", join_keys=["user_id"])
user_stats = FeatureView(
    name="user_stats", entities=[user],
    source=ParquetSource("{users}", timestamp_field="event_timestamp",
                         created_timestamp_field="created"),
    schema=[Field(f"u{{i}}", Float64) for i in range(10)],
    ttl=timedelta(days=365),
)
txn = RequestSource("txn", schema=[Field("amount", Float64)])


@on_demand_feature_view(sources=[user_stats[["u0", "u1"]], txn], schema=[Field("score", Float64)])
def scored(df: pl.DataFrame) -> pl.DataFrame:
    return df.select((pl.col("amount") * pl.col("u0") / (pl.col("u1") + 1)).alias("score"))


@on_demand_feature_view(sources=[user_stats[["u0", "u1"]], txn], schema=[Field("score_py", Float64)],
                        mode="python")
def scored_py(row: dict) -> dict:
    if row["amount"] is None or row["u0"] is None or row["u1"] is None:
        return {{"score_py": None}}
    return {{"score_py": row["amount"] * row["u0"] / (row["u1"] + 1)}}
"""

BASE = [f"user_stats:u{i}" for i in range(10)]
N_USERS = 100_000


def make_repo(source_rows: int) -> Path:
    from featurestore import FeatureStore

    users = write_source(
        DATA / f"users_{source_rows}_42.parquet",
        key="user_id",
        prefix="u",
        n_keys=N_USERS,
        rows=source_rows,
        seed=42,
    )
    root = DATA / f"odfv_repo_{source_rows}"
    if not (root / "data" / "registry.json").exists():
        root.mkdir(parents=True, exist_ok=True)
        (root / "featurestore.yaml").write_text(
            "project: bench_odfv\nregistry: data/registry.json\n"
            "online_store: {type: sqlite, path: data/online.db}\n"
        )
        (root / "features.py").write_text(FEATURES_PY.format(users=users))
        with FeatureStore(root) as store:
            store.apply()
            store.materialize(datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    return root


def percentiles(fn: Callable[[], object], iterations: int) -> tuple[float, float]:
    for _ in range(min(200, iterations)):
        fn()
    samples = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def bench_online(repo: Path, iterations: int) -> None:
    from featurestore import FeatureStore

    store = FeatureStore(repo)
    rng = random.Random(3)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    print(f"online, SQLite, in-process, {iterations} iterations per cell (p50 / p99 ms)")
    for n in (1, 100):
        rows = [
            {"user_id": rng.randrange(N_USERS), "amount": rng.uniform(1, 500)} for _ in range(n)
        ]
        cases = {
            "10 features": BASE,
            "+ polars on-demand view": [*BASE, "scored:score"],
            "+ python on-demand view": [*BASE, "scored_py:score_py"],
        }
        results = {}
        for label, features in cases.items():
            results[label] = percentiles(
                lambda f=features, r=rows: store.get_online_features(f, r, request_time=now),
                iterations if n == 1 else max(200, iterations // 5),
            )
        base = results["10 features"][0]
        for label, (p50, p99) in results.items():
            extra = "" if label == "10 features" else f"  extra p50 {p50 - base:+.3f} ms"
            print(f"  {n:>3} entities  {label:<26} {p50:7.3f} / {p99:7.3f}{extra}", flush=True)
    store.close()


def best_of(fn: Callable[[], object], runs: int = 2) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_training(repo: Path, entity_rows: int, source_rows: int) -> None:
    import polars as pl

    from featurestore import FeatureStore

    entities = write_entities(
        DATA / f"entities_{entity_rows}.parquet",
        rows=entity_rows,
        n_users=N_USERS,
        n_merchants=50_000,
        seed=7,
    )
    with_amount = DATA / f"entities_{entity_rows}_amount.parquet"
    if not with_amount.exists():
        frame = pl.read_parquet(entities)
        frame.with_columns(
            (pl.int_range(pl.len()) % 997 * 0.5).cast(pl.Float64).alias("amount")
        ).write_parquet(with_amount)
    store = FeatureStore(repo)
    print(
        f"training frame, {entity_rows:,} entity rows x {source_rows:,} source rows "
        "(best of 2, seconds)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "t.parquet"
        for method in ("to_arrow", "to_parquet"):
            times = {}
            for label, features in (
                ("10 features", BASE),
                ("+ on-demand", [*BASE, "scored:score"]),
            ):
                frame = store.get_training_frame(str(with_amount), features)
                run = (
                    (lambda fr=frame: fr.to_arrow())
                    if method == "to_arrow"
                    else (lambda fr=frame: fr.to_parquet(out))
                )
                times[label] = best_of(run)
            ratio = times["+ on-demand"] / times["10 features"]
            print(
                f"  {method:<10} without {times['10 features']:6.2f}  with "
                f"{times['+ on-demand']:6.2f}  ratio {ratio:4.2f}x",
                flush=True,
            )
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entity-rows", type=int, default=1_000_000)
    parser.add_argument("--source-rows", type=int, default=1_000_000)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--online-only", action="store_true")
    parser.add_argument("--training-only", action="store_true")
    args = parser.parse_args()
    t0 = time.perf_counter()
    repo = make_repo(args.source_rows)
    print(f"repo ready in {time.perf_counter() - t0:.1f}s: {repo}")
    if not args.training_only:
        bench_online(repo, args.iterations)
    if not args.online_only:
        bench_training(repo, args.entity_rows, args.source_rows)


if __name__ == "__main__":
    main()
