"""Serving CPU per request, in process: the feature server's ASGI app driven without a socket.

The app that ``featurestore serve`` runs (``create_app``, its lifespan, its middleware) is
called directly with prepared ``POST /get-online-features`` requests on one uvloop event loop,
and the process CPU time per request is reported: the figure that HTTP throughput at
concurrency 1 follows, without wrk's and the kernel's noise. It measures the featurestore code
on ``sys.path``, so two versions can be compared side by side on the same data:

    git worktree add /tmp/v01 1886b85
    python benchmarks/bench_serving_cpu.py --tree /tmp/v01   # 0.1
    python benchmarks/bench_serving_cpu.py                    # this checkout
    python benchmarks/bench_serving_cpu.py --against /tmp/v01 --rounds 2   # both, ABAB

Workloads as bench_http.py: 1 entity x 10 features (one view) and 100 entities x 50 features
(5 views x 10), over SQLite and over a private redis-server (or REDIS_URL). Each figure is the
best of ``--repeats`` rounds of ``--requests`` requests (the minimum is the least disturbed by
the other processes of a shared machine), with the bare floor of the same process measured in
the same run: the same requests answered by a raw ASGI app that parses the JSON, encodes the
keys and reads the same records through the same store adapter. ``--profile`` prints the top
functions of a cProfile run of one workload instead.

``--against DIR`` runs the measurement for DIR and for ``--tree`` alternately (ABAB..., one
process each, ``--rounds`` times), keeps each figure's best round and prints the ratios.

Usage:
    python benchmarks/bench_serving_cpu.py [--tree DIR] [--stores sqlite,redis]
        [--requests 3000] [--repeats 5] [--entities 10000] [--small] [--profile 1x10:sqlite]
        [--against DIR [--rounds 2]]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VIEWS = 5
FEATURES_PER_VIEW = 10
WORKLOADS = {"1x10": (1, 10), "100x50": (100, 50)}


def _use_tree(tree: Path) -> None:
    """Import featurestore from ``tree`` (ahead of the installed one)."""
    sys.path.insert(0, str(tree))
    sys.path.append(str(ROOT / "benchmarks"))
    import featurestore

    print(f"featurestore from {Path(featurestore.__file__).parent}", file=sys.stderr)


def build_repo(root: Path, online_store: str, entities: int) -> Path:
    """5 views x 10 Float64/Int64 features over ``entities`` users; applied and materialized."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from featurestore.store import FeatureStore

    rng = np.random.default_rng(42)
    lines = [
        "from datetime import timedelta",
        "from featurestore import Entity, FeatureView, Field, ParquetSource",
        "from featurestore.types import Float64, Int64",
        'user = Entity("user", join_keys=["user_id"])',
    ]
    now = datetime.now(tz=UTC).replace(microsecond=0)
    (root / "data").mkdir(parents=True, exist_ok=True)
    for v in range(VIEWS):
        fields = ", ".join(
            f'Field("f{v}_{i}", {"Int64" if i % 2 else "Float64"})'
            for i in range(FEATURES_PER_VIEW)
        )
        lines.append(
            f'view{v} = FeatureView(name="view{v}", entities=[user], '
            f'source=ParquetSource(path="data/view{v}.parquet", timestamp_field="event_timestamp"), '
            f"schema=[{fields}], ttl=timedelta(days=30))"
        )
        columns: dict[str, Any] = {
            "user_id": pa.array(np.arange(entities, dtype=np.int64)),
            "event_timestamp": pa.array(
                [now - timedelta(minutes=int(m)) for m in rng.integers(0, 600, entities)],
                type=pa.timestamp("us", tz="UTC"),
            ),
        }
        for i in range(FEATURES_PER_VIEW):
            values = rng.integers(0, 1000, entities) if i % 2 else rng.random(entities)
            columns[f"f{v}_{i}"] = pa.array(values)
        pq.write_table(pa.table(columns), root / f"data/view{v}.parquet")
    (root / "features.py").write_text("\n".join(lines) + "\n")
    (root / "featurestore.yaml").write_text(
        "project: benchcpu\nregistry: data/registry.json\n"
        f"online_store: {online_store}\nserving: {{max_entities: 1000}}\n"
    )
    with FeatureStore(root) as store:
        store.apply()
        store.materialize(now - timedelta(days=1), now + timedelta(seconds=1))
    return root


def bodies(rows: int, features: int, population: int, count: int) -> list[bytes]:
    """``count`` seeded request bodies of ``rows`` random users and the first ``features``."""
    import numpy as np

    rng = np.random.default_rng(7)
    refs = [f"view{v}:f{v}_{i}" for v in range(VIEWS) for i in range(FEATURES_PER_VIEW)]
    out = []
    for _ in range(count):
        ids = rng.integers(0, population, rows).tolist()
        body = {"entities": {"user_id": ids}, "features": refs[:features]}
        out.append(json.dumps({**body, "full_feature_names": False}).encode())
    return out


def _scope(body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/get-online-features",
        "raw_path": b"/get-online-features",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:6566"),
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 6566),
        "state": {},
    }


async def call(app: Any, body: bytes) -> tuple[int, bytes]:
    """One request through ``app``: its status and body."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(_scope(body), receive, send)
    return sent[0]["status"], sent[1]["body"]


@contextlib.asynccontextmanager
async def running(app: Any) -> Any:
    """Run the app's lifespan (startup before, shutdown after)."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def send(message: dict[str, Any]) -> None:
        await outbox.put(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.ensure_future(app(scope, inbox.get, send))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"the app did not start: {started}")
    try:
        yield app
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


def bare_app(repo: Path) -> tuple[Any, Callable[[], None]]:
    """The floor: parse, encode keys, read the same records inline, answer a tiny JSON."""
    import orjson

    from featurestore.online.base import ReadRequest
    from featurestore.online.codec import KeyEncoder
    from featurestore.store import FeatureStore
    from featurestore.types import Int64

    store = FeatureStore(repo)
    online = store.online
    encoder = KeyEncoder({"user_id": Int64})

    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = (await receive())["body"]
        data = orjson.loads(body)
        views = tuple(dict.fromkeys(ref.split(":")[0] for ref in data["features"]))
        keys = encoder.encode_columns([data["entities"]["user_id"]])
        records = online.read_records([ReadRequest(key, views) for key in keys])
        payload = orjson.dumps({"records": sum(r is not None for row in records for r in row)})
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    return app, store.close


async def measure(app: Any, prepared: list[bytes], repeats: int) -> float:
    """Best CPU microseconds per request over ``repeats`` rounds of every body."""
    for body in prepared[:200]:  # warm caches (plans, encoders, connections)
        status, payload = await call(app, body)
        if status != 200:
            raise RuntimeError(f"{status}: {payload[:300]!r}")
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for body in prepared:
            await call(app, body)
        best = min(best, (time.process_time() - start) / len(prepared) * 1e6)
    return best


@contextlib.contextmanager
def repos(stores: list[str], entities: int) -> Iterator[dict[str, Path]]:
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-cpu-")))
        out: dict[str, Path] = {}
        for name in stores:
            if name == "sqlite":
                spec = "{type: sqlite, path: data/online.db}"
            else:
                from _redis import redis_url

                url = stack.enter_context(redis_url())
                spec = f"{{type: redis, url: '{url}', key_prefix: cpu{os.getpid()}}}"
            out[name] = build_repo(workdir / name, spec, entities)
        yield out


async def run(args: argparse.Namespace) -> None:
    from featurestore.serving.app import create_app

    stores = args.stores.split(",")
    with repos(stores, args.entities) as built:
        results = []
        for store_name, repo in built.items():
            app = create_app(repo_path=repo)
            floor, close = bare_app(repo)
            async with running(app):
                for name, (rows, features) in WORKLOADS.items():
                    prepared = bodies(rows, features, args.entities, args.requests)
                    if args.profile == f"{name}:{store_name}":
                        await measure(app, prepared, 1)
                        profiler = cProfile.Profile()
                        profiler.enable()
                        await measure(app, prepared, args.repeats)
                        profiler.disable()
                        stats = pstats.Stats(profiler).sort_stats(
                            os.environ.get("BENCH_SORT", "tottime")
                        )
                        stats.print_stats(35)
                        continue
                    ours = await measure(app, prepared, args.repeats)
                    bare = await measure(floor, prepared, args.repeats)
                    results.append((store_name, name, ours, bare))
                    print(
                        f"{store_name:6} {name:7} server {ours:7.1f} us/request  "
                        f"bare {bare:6.1f} us  ratio {ours / bare:5.2f}x",
                        flush=True,
                    )
            close()
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.json:
        rows = [{"store": s, "workload": w, "cpu_us": o, "bare_us": b} for s, w, o, b in results]
        args.json.write_text(json.dumps(rows, indent=1))


def compare(args: argparse.Namespace) -> None:
    """Measure ``--against`` (A) and ``--tree`` (B) alternately; print the best and B / A."""
    trees = {"A": args.against.resolve(), "B": args.tree.resolve()}
    best: dict[tuple[str, str, str], float] = {}
    passthrough = ["--stores", args.stores, "--requests", str(args.requests)]
    passthrough += ["--repeats", str(args.repeats), "--entities", str(args.entities)]
    with tempfile.TemporaryDirectory(prefix="bench-cpu-ab-") as tmp:
        for round_ in range(args.rounds):
            for label, tree in trees.items():
                out = Path(tmp) / f"{label}{round_}.json"
                command = [sys.executable, __file__, "--tree", str(tree), "--json", str(out)]
                subprocess.run([*command, *passthrough], check=True)
                for row in json.loads(out.read_text()):
                    key = (label, row["store"], row["workload"])
                    best[key] = min(best.get(key, float("inf")), row["cpu_us"])
    print(f"\nbest of {args.rounds} rounds, CPU us per request: A = {trees['A']}, B = {trees['B']}")
    for store in args.stores.split(","):
        for workload in WORKLOADS:
            a, b = best["A", store, workload], best["B", store, workload]
            print(f"  {store:6} {workload:7} A {a:8.1f}  B {b:8.1f}  B/A {b / a:5.3f}")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout to measure")
    parser.add_argument("--stores", default="sqlite,redis", help="sqlite, redis or both")
    parser.add_argument("--requests", type=int, default=3000, help="requests per round")
    parser.add_argument("--repeats", type=int, default=5, help="rounds (the best is kept)")
    parser.add_argument("--entities", type=int, default=10_000, help="users in the data")
    parser.add_argument("--small", action="store_true", help="a quick check: 500 x 3")
    parser.add_argument("--profile", help="WORKLOAD:STORE to profile (e.g. 1x10:sqlite)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--against", type=Path, help="another checkout to compare, ABAB")
    parser.add_argument("--rounds", type=int, default=2, help="A/B rounds with --against")
    args = parser.parse_args()
    if args.small:
        args.requests, args.repeats = 500, 3
    if args.against is not None:
        compare(args)
        return
    _use_tree(args.tree.resolve())
    import logging

    logging.basicConfig(level=logging.WARNING)
    import uvloop

    uvloop.run(run(args))


if __name__ == "__main__":
    main()
