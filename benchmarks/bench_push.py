"""Push benchmark (issue 14): rows/s and push-to-readable latency, against the raw engines.

    .venv/bin/python benchmarks/bench_push.py            # default sizes (a few minutes)
    .venv/bin/python benchmarks/bench_push.py --small    # a quick check

Measured in one run, on one Redis online store (a private redis-server, or REDIS_URL):

* push throughput, rows/s, batches of 1 and 1,000 rows, through the SDK (``store.push``) and
  over HTTP (``POST /push``, one uvicorn worker in another process, its app built as
  ``featurestore serve`` builds it), ``to`` = ``online_and_offline``: check, durable Parquet append (write, fsync, rename, fsync folder),
  conditional online write;
* the raw engines doing the bare writes of the same rows: one pipelined Redis ``HSET`` per
  row of a packed value, and a Parquet append (write, fsync, rename, fsync folder) of an Arrow
  table already built; "raw both" is the two one after the other (their times added), which
  is what a push must at least do, and what the push figures are divided by;
* push-to-readable latency over HTTP for single rows: from sending ``POST /push`` to the
  ``POST /get-online-features`` answer holding the pushed value, p50/p99 (target: p99 under
  10 ms), with its floors measured in the same run: the raw 1-row durable Parquet append
  (two fsyncs, the larger part of a push on a loaded disk) and a bare HTTP round trip; and
  the two calls timed apart (the push's and the read's).

The machine's load (``uptime``) is printed with the figures: other work on the machine moves
them.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._redis import redis_url as private_redis_url  # noqa: E402
from featurestore import FeatureStore  # noqa: E402

FEATURES = 10
ENTITIES = 10_000
NOW = datetime.now(tz=UTC).replace(microsecond=0)
FEATURES_PY = textwrap.dedent(
    """
        from datetime import timedelta
        from featurestore import Entity, FeatureView, Field, ParquetSource
        from featurestore.types import Float64, Int64
        user = Entity("user", join_keys=["user_id"])
        stats = FeatureView(
            name="stats", entities=[user],
            source=ParquetSource("data/stats.parquet", timestamp_field="ts"),
            ttl=timedelta(days=30),
            schema=[Field(f"i{j}", Int64) for j in range(5)]
            + [Field(f"f{j}", Float64) for j in range(5)],
        )
        """
)


def build_repo(root: Path, url: str) -> Path:
    rng = np.random.default_rng(42)
    (root / "data").mkdir(parents=True)
    (root / "featurestore.yaml").write_text(
        f"project: benchpush\nonline_store: {{type: redis, url: '{url}', "
        f"key_prefix: 'bp-{uuid.uuid4().hex[:8]}'}}\n"
    )
    (root / "features.py").write_text(FEATURES_PY)
    columns: dict[str, Any] = {
        "user_id": pa.array(np.arange(ENTITIES), pa.int64()),
        "ts": pa.array([NOW - timedelta(hours=1)] * ENTITIES, pa.timestamp("us", tz="UTC")),
    }
    for j in range(5):
        columns[f"i{j}"] = pa.array(rng.integers(0, 1000, ENTITIES), pa.int64())
        columns[f"f{j}"] = pa.array(rng.random(ENTITIES), pa.float64())
    pq.write_table(pa.table(columns), root / "data/stats.parquet")
    with FeatureStore(root) as store:
        store.apply()
        store.materialize(NOW - timedelta(days=1), NOW)
    return root


def rows(n: int, start: int, rng: np.random.Generator) -> dict[str, list[Any]]:
    """``n`` pushed rows (column-major), keys from ``start``, event times after NOW."""
    users = [(start + i) % ENTITIES for i in range(n)]
    ts = [(NOW + timedelta(microseconds=start + i)).isoformat() for i in range(n)]
    out: dict[str, list[Any]] = {"user_id": users, "ts": ts}
    for j in range(5):
        out[f"i{j}"] = rng.integers(0, 1000, n).tolist()
        out[f"f{j}"] = rng.random(n).tolist()
    return out


def rate(total_rows: int, seconds: float) -> float:
    return total_rows / seconds if seconds > 0 else 0.0


def bench_sdk(store: FeatureStore, batch: int, pushes: int) -> float:
    rng = np.random.default_rng(1)
    payloads = [rows(batch, i * batch, rng) for i in range(pushes)]
    started = time.perf_counter()
    for payload in payloads:
        store.push("stats", payload)
    return rate(batch * pushes, time.perf_counter() - started)


def bench_raw_redis(url: str, batch: int, pushes: int) -> float:
    client = redis.Redis.from_url(url)
    value = os.urandom(120)  # about one encoded record of 10 features
    prefix = f"raw-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    for p in range(pushes):
        pipe = client.pipeline(transaction=False)
        for i in range(batch):
            pipe.hset(f"{prefix}:{p * batch + i}", "stats", value)
        pipe.execute()
    seconds = time.perf_counter() - started
    client.close()
    return rate(batch * pushes, seconds)


def bench_raw_parquet(folder: Path, batch: int, pushes: int) -> tuple[float, list[float]]:
    """Rows/s of bare durable appends, and the seconds each append took."""
    rng = np.random.default_rng(2)
    tables = [pa.table(rows(batch, p * batch, rng)) for p in range(pushes)]
    folder.mkdir(parents=True, exist_ok=True)
    each = []
    started = time.perf_counter()
    for p, table in enumerate(tables):
        begun = time.perf_counter()
        temp = folder / f".{p}.tmp"
        with temp.open("wb") as handle:
            pq.write_table(table, handle)
            handle.flush()
            os.fsync(handle.fileno())
        temp.replace(folder / f"{p:08d}.parquet")
        fd = os.open(folder, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        each.append(time.perf_counter() - begun)
    return rate(batch * pushes, time.perf_counter() - started), each


SERVER = """
import os, sys, uvicorn
from featurestore.serving.app import REPO_ENV, create_app_from_env
os.environ[REPO_ENV] = sys.argv[1]
app = create_app_from_env()  # as 'featurestore serve' builds each worker's app
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(repo: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(repo), str(port)])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start within 60 s")


def bench_http(client: httpx.Client, batch: int, pushes: int) -> float:
    rng = np.random.default_rng(3)
    bodies = [
        {"push_source_name": "stats", "df": rows(batch, 50_000 + p * batch, rng),
         "to": "online_and_offline"}
        for p in range(pushes)
    ]  # fmt: skip
    started = time.perf_counter()
    for body in bodies:
        reply = client.post("/push", json=body)
        reply.raise_for_status()
    return rate(batch * pushes, time.perf_counter() - started)


def bench_latency(
    client: httpx.Client, iterations: int
) -> tuple[list[float], list[float], list[float]]:
    """Seconds from sending a 1-row push to reading its value back, per iteration; and the
    push's and the read's HTTP calls apart (where the time goes)."""
    rng = np.random.default_rng(4)
    latencies, pushes, reads = [], [], []
    read = {"features": ["stats:i0"], "entities": {"user_id": [0]}}
    for k in range(iterations):
        df = rows(1, 0, rng)
        body = {"push_source_name": "stats", "df": df, "to": "online_and_offline"}
        df["ts"] = [datetime.now(tz=UTC).isoformat()]  # newer than every earlier push
        df["i0"] = [k]
        started = time.perf_counter()
        client.post("/push", json=body).raise_for_status()
        pushed = time.perf_counter()
        values = client.post("/get-online-features", json=read).json()["results"][1]["values"]
        finished = time.perf_counter()
        if values != [k]:
            raise SystemExit(f"read {values} after pushing {k}: the push was not readable")
        latencies.append(finished - started)
        pushes.append(pushed - started)
        reads.append(finished - pushed)
    return latencies, pushes, reads


def bench_round_trip(client: httpx.Client, iterations: int) -> list[float]:
    """Seconds of a bare HTTP round trip (``GET /health``): the floor of any request."""
    latencies = []
    for _ in range(iterations):
        started = time.perf_counter()
        client.get("/health").raise_for_status()
        latencies.append(time.perf_counter() - started)
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="few iterations: a quick check")
    parser.add_argument("--iterations", type=int, default=None, help="single-row pushes")
    parser.add_argument("--json", type=Path, default=None, help="also write figures here")
    args = parser.parse_args()
    singles = args.iterations or (50 if args.small else 500)
    batches = 3 if args.small else 20
    load = os.getloadavg()
    results: dict[str, Any] = {"load_before": [round(x, 2) for x in load]}
    with private_redis_url() as url, tempfile.TemporaryDirectory() as tmp:
        repo = build_repo(Path(tmp) / "repo", url)
        with FeatureStore(repo) as store:
            store.push("stats", rows(1, 0, np.random.default_rng(0)))  # warm: imports, caches
            results["sdk_rows_per_s_batch_1"] = bench_sdk(store, 1, singles)
            results["sdk_rows_per_s_batch_1000"] = bench_sdk(store, 1000, batches)
        results["raw_hset_rows_per_s_batch_1"] = bench_raw_redis(url, 1, singles)
        results["raw_hset_rows_per_s_batch_1000"] = bench_raw_redis(url, 1000, batches)
        raw = Path(tmp) / "raw"
        results["raw_parquet_rows_per_s_batch_1"], appends = bench_raw_parquet(
            raw / "1", 1, singles
        )
        results["raw_parquet_rows_per_s_batch_1000"] = bench_raw_parquet(raw / "k", 1000, batches)[
            0
        ]
        port = free_port()
        server = start_server(repo, port)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                bench_latency(client, 5)  # warm the server
                results["http_rows_per_s_batch_1"] = bench_http(client, 1, singles)
                results["http_rows_per_s_batch_1000"] = bench_http(client, 1000, batches)
                latencies, push_calls, read_calls = bench_latency(client, singles)
                round_trips = bench_round_trip(client, singles)
        finally:
            server.terminate()
            server.wait(timeout=15)
    results["http_push_to_readable_ms_p50"] = percentile(latencies, 0.50) * 1e3
    results["http_push_to_readable_ms_p99"] = percentile(latencies, 0.99) * 1e3
    results["http_push_to_readable_ms_mean"] = statistics.fmean(latencies) * 1e3
    for name, values in (
        ("raw_parquet_append", appends),
        ("http_round_trip", round_trips),
        ("http_push_call", push_calls),
        ("http_read_call", read_calls),
    ):
        for q in (50, 99):
            results[f"{name}_ms_p{q}"] = percentile(values, q / 100) * 1e3
    for batch in ("1", "1000"):  # the two raw writes one after the other, as a push does them
        hset, parquet = (results[f"raw_{k}_rows_per_s_batch_{batch}"] for k in ("hset", "parquet"))
        results[f"raw_both_rows_per_s_batch_{batch}"] = 1 / (1 / hset + 1 / parquet)
    results["load_after"] = [round(x, 2) for x in os.getloadavg()]
    results["single_row_pushes"] = singles
    results["batch_pushes"] = batches

    def line(label: str, ours: str, raw: str | None = None) -> None:
        ratio = ""
        if raw is not None and results[raw]:
            ratio = f"  ({results[ours] / results[raw]:.2f}x of {raw.split('_rows')[0]})"
        print(f"{label:<34} {results[ours]:>12,.0f} rows/s{ratio}")

    print(f"load (1/5/15 min) before {results['load_before']}, after {results['load_after']}")
    for batch in ("1", "1000"):
        print(f"-- batches of {batch} row(s)")
        line(
            "  SDK store.push",
            f"sdk_rows_per_s_batch_{batch}",
            f"raw_both_rows_per_s_batch_{batch}",
        )
        line(
            "  HTTP POST /push",
            f"http_rows_per_s_batch_{batch}",
            f"raw_both_rows_per_s_batch_{batch}",
        )
        line("  raw Redis HSET (pipelined)", f"raw_hset_rows_per_s_batch_{batch}")
        line("  raw Parquet append (fsync)", f"raw_parquet_rows_per_s_batch_{batch}")
        line("  raw both, one after the other", f"raw_both_rows_per_s_batch_{batch}")
    print(
        f"push-to-readable over HTTP, 1 row: p50 {results['http_push_to_readable_ms_p50']:.2f} ms, "
        f"p99 {results['http_push_to_readable_ms_p99']:.2f} ms (target p99 < 10 ms), "
        f"{singles} pushes"
    )
    print(
        "  floors in this run: raw 1-row Parquet append (fsync file and folder) "
        f"p50 {results['raw_parquet_append_ms_p50']:.2f} ms, "
        f"p99 {results['raw_parquet_append_ms_p99']:.2f} ms; HTTP round trip (GET /health) "
        f"p50 {results['http_round_trip_ms_p50']:.2f} ms, "
        f"p99 {results['http_round_trip_ms_p99']:.2f} ms"
    )
    print(
        "  split: the POST /push call "
        f"p50 {results['http_push_call_ms_p50']:.2f} ms, p99 {results['http_push_call_ms_p99']:.2f} ms;"
        " the POST /get-online-features call "
        f"p50 {results['http_read_call_ms_p50']:.2f} ms, p99 {results['http_read_call_ms_p99']:.2f} ms"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
