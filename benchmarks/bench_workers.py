"""Serving replicas and the registry: HTTP requests/s with 1 and 2 workers; registry latency.

Part 1, HTTP: the same repo (5 views x 10 features over Redis, as bench_http.py) served by
``featurestore serve --workers 1`` and ``--workers 2``, each driven by ``wrk`` at concurrency
16 with 1 x 10 and 100 x 50 lookups; requests/s, p50/p99 and server CPU per request (summed
over the server's processes), and the 2-worker / 1-worker ratio. On a machine with C free
cores the ratio is bounded by about min(2, C): wrk and Redis need cores too.

Part 2, registry: per operation, the median latency of the file registry and of PostgreSQL on
a registry of ``--views`` views: apply (each apply changes one view), a watermark move, a full
load (what a server's reload reads) and the stamp a server polls; beside each, the raw floor
measured in the same run (file: writing and fsync-ing the same bytes then renaming; PostgreSQL:
a ``SELECT 1`` round trip), so the figures read as multiples of what the storage costs.

Usage:
    python benchmarks/bench_workers.py [--duration 10] [--entities 10000] [--views 50]
        [--repeats 30] [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--json out]

Needs ``wrk`` and ``redis-server`` on PATH (or REDIS_URL), and a PostgreSQL server where it
may create (and then drops) a database of its own. Bounded: about 4 x (duration + 2) seconds
for part 1 plus ``repeats`` operations of each kind for part 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._redis import redis_url as private_redis_url  # noqa: E402
from benchmarks.bench_http import LUA, build_repo, free_port, wait_for, workload  # noqa: E402

# -- part 1: HTTP with 1 and 2 workers ---------------------------------------------------------


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its children (uvicorn's workers)."""
    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


@contextmanager
def serving(repo: Path, workers: int, env: dict[str, str], log: Path):
    port = free_port()
    cmd = [sys.executable, "-m", "featurestore", "--repo", str(repo), "serve", "--no-ui",
           "--port", str(port), "--workers", str(workers)]  # fmt: skip
    with log.open("w") as handle:
        proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/ready", timeout=2).status_code == 200, 120)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def measure(url: str, pid: int, spec: dict[str, Any], population: int, duration_s: int,
            workdir: Path) -> dict[str, float]:  # fmt: skip
    script = workdir / f"wrk-{uuid.uuid4().hex[:6]}.lua"
    script.write_text(
        LUA.format(
            rows=spec["rows"],
            population=population,
            features=json.dumps(spec["features"]),
            path="/get-online-features",
        )
    )
    args = ["wrk", "-t2", "-c16", f"-d{duration_s}s", "--timeout", "5s", "-s", str(script), url]
    subprocess.run([*args[:3], "-d2s", *args[4:]], capture_output=True, check=True)  # warm up
    before = tree_cpu_s(pid)
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    cpu_s = tree_cpu_s(pid) - before
    line = next(li for li in out.splitlines() if li.startswith("RESULT "))
    data = json.loads(line.removeprefix("RESULT "))
    return {
        "rps": data["requests"] / (data["duration_us"] / 1e6),
        "p50_ms": data["p50_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
        "errors": data["errors"],
        "cpu_us": cpu_s / max(data["requests"], 1) * 1e6,
    }


def sizing(client: Any, prefix: str, empty: int, entities: int) -> None:
    """Redis memory per entity key and per record (one view's features of one entity)."""
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    used = int(client.info("memory")["used_memory"]) - empty
    sample = keys[:: max(len(keys) // 200, 1)]
    per_key = statistics.mean(client.memory_usage(k) for k in sample)
    fields = statistics.mean(client.hlen(k) for k in sample)
    values = statistics.mean(
        sum(len(v) for v in client.hvals(k)) / max(client.hlen(k), 1) for k in sample
    )
    print(
        f"sizing: {len(keys)} keys for {entities} entities; used_memory grew {used / 1e6:.1f} MB "
        f"= {used / max(len(keys), 1):.0f} B per key; MEMORY USAGE {per_key:.0f} B per key "
        f"holding {fields:.1f} records (view fields) of {values:.0f} B encoded each",
        flush=True,
    )


def http_part(args: argparse.Namespace, stack: ExitStack, workdir: Path) -> list[dict[str, Any]]:
    import redis

    redis_url = stack.enter_context(private_redis_url())
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    empty = int(client.info("memory")["used_memory"])
    repo = build_repo(workdir / "repo", redis_url, prefix, args.entities)
    sizing(client, prefix, empty, args.entities)
    env = {**os.environ, "FEATURESTORE_LOG_LEVEL": "warning"}
    rows = []
    for workers in (1, 2):
        with serving(repo, workers, env, workdir / f"serve-{workers}.log") as (url, pid):
            for name, spec in {"1x10": workload(1, 10), "100x50": workload(100, 50)}.items():
                figures = measure(url, pid, spec, args.entities, args.duration, workdir)
                rows.append({"workers": workers, "workload": name, **figures})
                print(
                    f"workers={workers} {name:7} c=16  {figures['rps']:8.0f} req/s  "
                    f"p50 {figures['p50_ms']:6.2f} ms  p99 {figures['p99_ms']:6.2f} ms  "
                    f"cpu {figures['cpu_us']:6.0f} us/req  errors {figures['errors']}",
                    flush=True,
                )
    from featurestore.store import FeatureStore

    with FeatureStore(repo) as store:
        client = store.online._client  # type: ignore[attr-defined]
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    by = {(r["workers"], r["workload"]): r for r in rows}
    for name in ("1x10", "100x50"):
        print(
            f"  {name:7} 2 workers / 1 worker: throughput {by[2, name]['rps'] / by[1, name]['rps']:.2f}x, "
            f"cpu/request {by[2, name]['cpu_us'] / by[1, name]['cpu_us']:.2f}x"
        )
    return rows


# -- part 2: the registry, file vs PostgreSQL ----------------------------------------------------


def registry_repo(views: int, variant: int):
    from featurestore import Entity, FeatureView, Field, ParquetSource
    from featurestore.repo.loader import RepoContents
    from featurestore.types import Float64, Int64

    user = Entity("user", join_keys=["user_id"])
    repo = RepoContents()
    repo.add(user, origin="features.py")
    for v in range(views):
        extra = [Field("changed", Float64)] if v == 0 and variant else []
        repo.add(
            FeatureView(
                name=f"view{v}",
                entities=[user],
                source=ParquetSource(f"data/view{v}.parquet", timestamp_field="ts"),
                schema=[*(Field(f"f{i}", Float64) for i in range(10)), *extra],
                ttl=timedelta(days=1),
            ),
            origin="features.py",
        )
    keys = {n: {"user_id": Int64} for n in repo.feature_views}
    return repo, keys


def median_ms(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def time_registry(registry, views: int, repeats: int) -> dict[str, float]:
    repos = [registry_repo(views, 0), registry_repo(views, 1)]
    turn = [0]

    def apply() -> None:
        turn[0] += 1
        repo, keys = repos[turn[0] % 2]
        plan = registry.plan(repo, keys)
        start = time.perf_counter()
        registry.apply(plan)
        apply.seconds.append(time.perf_counter() - start)  # type: ignore[attr-defined]

    apply.seconds = []  # type: ignore[attr-defined]
    for _ in range(repeats):
        apply()
    day = [0]
    fingerprint = registry.load().feature_views["view1"].fingerprint

    def move() -> None:
        day[0] += 1
        stamp = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=day[0])
        assert registry.set_watermark("view1", stamp, fingerprint=fingerprint)

    return {
        "apply_ms": statistics.median(apply.seconds) * 1000,  # type: ignore[attr-defined]
        "watermark_ms": median_ms(move, repeats),
        "load_ms": median_ms(registry.load, repeats),
        "stamp_ms": median_ms(registry.stamp, repeats),
    }


def file_floor_ms(path: Path, repeats: int) -> float:
    payload = path.read_bytes()

    def write() -> None:
        tmp = path.with_name(".floor.tmp")
        with tmp.open("wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path.with_name("floor.json"))

    return median_ms(write, repeats)


@contextmanager
def postgres_database(server: str):
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def registry_part(
    args: argparse.Namespace, stack: ExitStack, workdir: Path
) -> list[dict[str, Any]]:
    import psycopg

    from featurestore.repo.registry import FileRegistry
    from featurestore.repo.registry_pg import PostgresRegistry

    rows = []
    path = workdir / "registry" / "registry.json"
    file_registry = FileRegistry(path, project="bench")
    figures = time_registry(file_registry, args.views, args.repeats)
    floor = file_floor_ms(path, args.repeats)
    rows.append({"registry": "file", **figures, "floor_ms": floor})
    url = stack.enter_context(postgres_database(args.postgres))
    pg_registry = PostgresRegistry(url, project="bench")
    figures = time_registry(pg_registry, args.views, args.repeats)
    pg_registry.close()
    with psycopg.connect(url, autocommit=True) as conn:
        floor = median_ms(lambda: conn.execute("SELECT 1").fetchone(), args.repeats)
    rows.append({"registry": "postgresql", **figures, "floor_ms": floor})
    print(f"\nregistry of {args.views} views, median of {args.repeats} (ms):")
    for row in rows:
        print(
            f"  {row['registry']:10} apply {row['apply_ms']:7.2f}  watermark {row['watermark_ms']:6.2f}  "
            f"load {row['load_ms']:6.2f}  stamp {row['stamp_ms']:6.3f}  floor {row['floor_ms']:6.3f} "
            f"(apply = {row['apply_ms'] / row['floor_ms']:.0f}x floor, "
            f"watermark = {row['watermark_ms'] / row['floor_ms']:.0f}x floor)"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk measurement")
    parser.add_argument("--entities", type=int, default=10_000, help="users in the data")
    parser.add_argument("--views", type=int, default=50, help="views in the registry part")
    parser.add_argument("--repeats", type=int, default=30, help="operations timed per kind")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "FEATURESTORE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="a PostgreSQL server (URL of a database) where a bench database may be created",
    )
    parser.add_argument("--skip-http", action="store_true", help="only the registry part")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not args.skip_http and shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    results: dict[str, Any] = {}
    with ExitStack() as stack:
        if not args.skip_http:
            results["http"] = http_part(args, stack, workdir)
        results["registry"] = registry_part(args, stack, workdir)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
