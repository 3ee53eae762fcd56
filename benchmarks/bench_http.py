"""HTTP serving benchmark: p50/p99, requests/s and server CPU per request of POST /get-online-features.

Workloads: 1 entity x 10 features (one view) and 100 entities x 50 features (5 views x 10),
each at concurrency 1 and 16, driven by ``wrk`` (a separate process; random entity ids per
request from a Lua script). In the same run the same workloads hit a bare ASGI endpoint (no
framework, no validation, no decoding, no JSON building of values) doing the same Redis reads
through the same online-store adapter in the same worker thread hop: the limit our server is
measured against.

Usage:
    python benchmarks/bench_http.py [--duration 10] [--entities 10000] [--json out.json]
        [--tree DIR]

``--tree`` measures the featurestore of another checkout with this script (e.g. 0.1 from
``git worktree add /tmp/v01 1886b85``): the repo is built and both servers run with that
checkout's code.

Needs ``wrk`` (Debian: apt-get install wrk) and ``redis-server`` on PATH (or REDIS_URL; keys
are written under a unique prefix and deleted afterwards). Starts its own redis-server on a
free loopback port otherwise. Bounded: about 8 x (duration + 2) seconds plus setup.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._redis import redis_url as private_redis_url  # noqa: E402


def _tree_from_argv() -> Path:
    """The checkout to measure, first on ``sys.path``: --tree, else $BENCH_TREE, else this."""
    tree = Path(os.environ.get("BENCH_TREE", ROOT))
    if "--tree" in sys.argv[:-1]:
        tree = Path(sys.argv[sys.argv.index("--tree") + 1]).resolve()
    sys.path.insert(0, str(tree))
    return tree


TREE = _tree_from_argv()

SERVER_PIDS: dict[str, int] = {}
"""Base URL -> server process id, for its CPU time per request."""
VIEWS = 5
FEATURES_PER_VIEW = 10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise RuntimeError("timed out waiting for a process to come up")


def build_repo(root: Path, redis_url: str, prefix: str, entities: int) -> Path:
    """5 views x 10 Float64/Int64 features over ``entities`` users; applied and materialized."""
    rng = np.random.default_rng(42)
    lines = [
        "from datetime import timedelta",
        "from featurestore import Entity, FeatureView, Field, ParquetSource",
        "from featurestore.types import Float64, Int64",
        'user = Entity("user", join_keys=["user_id"])',
    ]
    now = datetime.now(tz=UTC).replace(microsecond=0)
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
            if i % 2:
                columns[f"f{v}_{i}"] = pa.array(rng.integers(0, 1000, entities))
            else:
                columns[f"f{v}_{i}"] = pa.array(rng.random(entities))
        (root / "data").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(columns), root / f"data/view{v}.parquet")
    (root / "features.py").write_text("\n".join(lines) + "\n")
    (root / "featurestore.yaml").write_text(
        "project: benchhttp\nregistry: data/registry.json\n"
        f"online_store: {{type: redis, url: '{redis_url}', key_prefix: {prefix}}}\n"
        "serving: {max_entities: 1000}\n"
    )
    from featurestore.store import FeatureStore

    with FeatureStore(root) as store:
        store.apply()
        start = time.perf_counter()
        report = store.materialize(now - timedelta(days=1), now + timedelta(seconds=1))
        print(
            f"materialized {report.rows} rows in {time.perf_counter() - start:.1f} s",
            file=sys.stderr,
        )
    return root


def workload(entities: int, features: int) -> dict[str, Any]:
    refs = [f"view{v}:f{v}_{i}" for v in range(VIEWS) for i in range(FEATURES_PER_VIEW)][:features]
    return {"rows": entities, "features": refs}


LUA = textwrap.dedent(
    """
    local rows = {rows}
    local population = {population}
    local features = '{features}'
    math.randomseed(12345 + os.time())
    request = function()
      local ids = {{}}
      for i = 1, rows do ids[i] = tostring(math.random(0, population - 1)) end
      local body = '{{"entities":{{"user_id":[' .. table.concat(ids, ",") .. ']}},"features":' .. features .. ',"full_feature_names":false}}'
      return wrk.format("POST", "{path}", {{["Content-Type"] = "application/json"}}, body)
    end
    done = function(summary, latency, requests)
      local e = summary.errors
      io.write(string.format('RESULT {{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "errors": %d}}\\n',
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
        e.connect + e.read + e.write + e.status + e.timeout))
    end
    """
)


def run_wrk(
    url: str,
    path: str,
    spec: dict[str, Any],
    population: int,
    concurrency: int,
    duration_s: int,
    workdir: Path,
) -> dict[str, float]:
    script = workdir / f"wrk-{uuid.uuid4().hex[:6]}.lua"
    script.write_text(
        LUA.format(
            rows=spec["rows"],
            population=population,
            features=json.dumps(spec["features"]),
            path=path,
        )
    )
    threads = 1 if concurrency == 1 else 2
    args = [
        "wrk",
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{duration_s}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        url,
    ]
    # Warm up (connections, caches, JIT-free but allocator-warm), then measure.
    subprocess.run([*args[:3], "-d2s", *args[4:]], capture_output=True, check=True)
    process = psutil.Process(SERVER_PIDS[url])
    before = process.cpu_times()
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    after = process.cpu_times()
    line = next(li for li in out.splitlines() if li.startswith("RESULT "))
    data = json.loads(line.removeprefix("RESULT "))
    cpu_s = (after.user - before.user) + (after.system - before.system)
    return {
        "p50_ms": data["p50_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
        "rps": data["requests"] / (data["duration_us"] / 1e6),
        "errors": data["errors"],
        # Server CPU (all threads) per request: steadier than req/s on a loaded machine.
        "cpu_us": cpu_s / max(data["requests"], 1) * 1e6,
    }


# -- the bare endpoint ------------------------------------------------------------------------


def bare_app_factory():
    """A raw ASGI app: parse JSON, encode keys, the same Redis reads, answer a tiny JSON."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import orjson

    from featurestore.online.base import ReadRequest
    from featurestore.online.codec import KeyEncoder
    from featurestore.store import FeatureStore
    from featurestore.types import Int64

    store = FeatureStore(os.environ["BENCH_REPO"])
    online = store.online
    encoder = KeyEncoder({"user_id": Int64})
    pool = ThreadPoolExecutor(max_workers=32)

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["method"] != "POST":  # the readiness check
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})
            return
        data = orjson.loads(body)
        views = tuple(dict.fromkeys(ref.split(":")[0] for ref in data["features"]))
        keys = encoder.encode_columns([data["entities"]["user_id"]])
        requests = [ReadRequest(key, views) for key in keys]
        loop = asyncio.get_running_loop()
        records = await loop.run_in_executor(pool, online.read_records, requests)
        found = sum(r is not None for row in records for r in row)
        payload = orjson.dumps({"records": found})
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    return app


@contextmanager
def server(cmd: list[str], port: int, env: dict[str, str], log: Path):
    with log.open("w") as handle:
        # Run from the log's directory: a checkout as the working directory would come first
        # on the server's sys.path (python -m), ahead of PYTHONPATH.
        proc = subprocess.Popen(
            cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=log.parent
        )
        SERVER_PIDS[f"http://127.0.0.1:{port}"] = proc.pid
        try:
            wait_for(
                lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code < 500
            )
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--entities", type=int, default=10_000, help="users in the data")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout to measure")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")

    workdir = Path(tempfile.mkdtemp(prefix="bench-http-"))
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    results: list[dict[str, Any]] = []
    with ExitStack() as stack:
        redis_url = stack.enter_context(private_redis_url())
        repo = build_repo(workdir / "repo", redis_url, prefix, args.entities)
        env = {
            **os.environ,
            "BENCH_REPO": str(repo),
            "FEATURESTORE_LOG_LEVEL": "warning",
            "PYTHONPATH": os.pathsep.join([str(TREE), os.environ.get("PYTHONPATH", "")]),
            "BENCH_TREE": str(TREE),
        }
        import featurestore

        print(f"featurestore from {Path(featurestore.__file__).parent}", file=sys.stderr)
        ours_port, bare_port = free_port(), free_port()
        ours = stack.enter_context(
            server(
                [
                    sys.executable,
                    "-m",
                    "featurestore",
                    "--repo",
                    str(repo),
                    "serve",
                    "--port",
                    str(ours_port),
                ],
                ours_port,
                env,
                workdir / "ours.log",
            )
        )
        bare = stack.enter_context(
            server(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "bench_http:bare_app_factory",
                    "--app-dir",
                    str(Path(__file__).parent),
                    "--port",
                    str(bare_port),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                bare_port,
                env,
                workdir / "bare.log",
            )
        )
        workloads = {"1x10": workload(1, 10), "100x50": workload(100, 50)}
        for name, spec in workloads.items():
            check = httpx.post(
                f"{ours}/get-online-features",
                timeout=5,
                json={
                    "entities": {"user_id": list(range(spec["rows"]))},
                    "features": spec["features"],
                },
            )
            assert check.status_code == 200, check.text
            assert all(s == "PRESENT" for r in check.json()["results"][1:] for s in r["statuses"])
            for concurrency in (1, 16):
                for label, url in (("featurestore", ours), ("bare ASGI", bare)):
                    figures = run_wrk(
                        url,
                        "/get-online-features",
                        spec,
                        args.entities,
                        concurrency,
                        args.duration,
                        workdir,
                    )
                    row = {"workload": name, "concurrency": concurrency, "server": label, **figures}
                    results.append(row)
                    print(
                        f"{name:7} c={concurrency:<3} {label:13} p50 {figures['p50_ms']:7.2f} ms  "
                        f"p99 {figures['p99_ms']:7.2f} ms  {figures['rps']:8.0f} req/s  "
                        f"cpu {figures['cpu_us']:6.0f} us/req  errors {figures['errors']}",
                        flush=True,
                    )
        from featurestore.store import FeatureStore

        with FeatureStore(repo) as store:
            client = store.online._client
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start : start + 1000])

    by = {(r["workload"], r["concurrency"], r["server"]): r for r in results}
    print("\nratios (featurestore / bare):")
    for name in ("1x10", "100x50"):
        for concurrency in (1, 16):
            ours_row, bare_row = (
                by[name, concurrency, "featurestore"],
                by[name, concurrency, "bare ASGI"],
            )
            print(
                f"  {name:7} c={concurrency:<3} throughput {ours_row['rps'] / bare_row['rps']:.0%}, "
                f"p99 {ours_row['p99_ms'] / bare_row['p99_ms']:.2f}x, "
                f"cpu/request {ours_row['cpu_us'] / bare_row['cpu_us']:.2f}x"
            )
    target_p99 = by["100x50", 1, "featurestore"]["p99_ms"]
    ratio = by["1x10", 16, "featurestore"]["rps"] / by["1x10", 16, "bare ASGI"]["rps"]
    print(
        f"\ntargets: 100x50 p99 at c=1 {target_p99:.2f} ms (< 10 ms: {'met' if target_p99 < 10 else 'MISSED'}); "
        f"1-entity throughput at c=16 {ratio:.0%} of bare (>= 60%: {'met' if ratio >= 0.6 else 'MISSED'})"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
