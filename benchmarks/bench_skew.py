"""Feature logging and skew report benchmark (issue 11).

1. HTTP serving with logging at sample rate 1.0 against logging off, same server, same run:
   POST /get-online-features for a service of 1 view x 10 features, 1 entity per request, at
   concurrency 10, driven by ``wrk`` (bench_http.py's machinery: data, server, Lua script).
   The two services read the same view; only ``logging=`` differs. Measurements alternate
   (off, on, off, on) so drift on a shared machine hits both.
2. The skew report over ``--log-rows`` logged rows (default 1M) of a 2-view service against
   the training frame for the same entity rows (keys and request times), same process, views
   and engine: ``--repeat`` rounds (default 3) alternating which runs first, with the entity
   rows in memory as one contiguous Arrow table; the ratio is of the best wall times (also of
   CPU times, every thread). Then once with the entity rows read from the log files by DuckDB
   (as the report reads them). Wall and CPU time, peak memory (RSS above the baseline, sampled
   every 10 ms).

Usage:
    python benchmarks/bench_skew.py [--duration 10] [--log-rows 1000000] [--json out.json]
        [--only http|skew] [--small] [--repeat 3]

``--small`` is a quick check (3 s per measurement, 100,000 logged rows).

Needs ``wrk`` and ``redis-server`` on PATH (or REDIS_URL), as bench_http.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_http  # noqa: E402

from benchmarks._redis import redis_url as private_redis_url  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

SERVICES = """
from featurestore import FeatureService
from featurestore.definitions.feature_service import LoggingConfig

svc_off = FeatureService("svc_off", features=[view0])
svc_on = FeatureService("svc_on", features=[view0], logging=LoggingConfig(sample_rate=1.0))
svc_two = FeatureService("svc_two", features=[view0, view1], logging=LoggingConfig(sample_rate=1.0))
"""

SERVICE_LUA = bench_http.LUA.replace(
    """"features":' .. features .. ',"full_feature_names":false}}'""",
    """"feature_service":' .. features .. '}}'""",
)
assert SERVICE_LUA != bench_http.LUA, "bench_http.LUA changed: update SERVICE_LUA"


class PeakMemory:
    """The peak RSS of this process above its level at entry, sampled every 10 ms."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self.peak_mb = 0.0

    def __enter__(self) -> PeakMemory:
        self._base = self._process.memory_info().rss
        self._peak = self._base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self._peak = max(self._peak, self._process.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self._process.memory_info().rss)
        self.peak_mb = (self._peak - self._base) / 2**20


def run_wrk_service(url: str, service: str, concurrency: int, duration_s: int, workdir: Path):
    original = bench_http.LUA
    bench_http.LUA = SERVICE_LUA
    try:
        spec = {"rows": 1, "features": service}
        return bench_http.run_wrk(
            url, "/get-online-features", spec, POPULATION, concurrency, duration_s, workdir
        )
    finally:
        bench_http.LUA = original


POPULATION = 10_000


def http_figures(url: str, duration_s: int, workdir: Path) -> list[dict[str, Any]]:
    rows = []
    for service in ("svc_off", "svc_on", "svc_off", "svc_on"):
        figures = run_wrk_service(url, service, 10, duration_s, workdir)
        figures["logging"] = "on (1.0)" if service == "svc_on" else "off"
        rows.append(figures)
        print(json.dumps(figures), file=sys.stderr)
    return rows


def timed(run: Callable[[], Any]) -> tuple[Any, float, float, float]:
    """``run()``'s result, wall seconds, CPU seconds (every thread) and peak RSS MB above entry."""
    with PeakMemory() as memory:
        cpu, start = time.process_time(), time.perf_counter()
        result = run()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return result, wall, cpu, memory.peak_mb


def skew_figures(repo: Path, log_rows: int, repeat: int) -> dict[str, Any]:
    """The report against the training frame of the same entity rows, ``repeat`` rounds.

    Same process, rows, views and engine. Rounds alternate which of the two runs first (drift
    on a shared machine hits both); the ratio is of the best times. The frame gets its entity
    rows in memory (one contiguous Arrow table, read before it is timed); the report reads
    them from the log files within its time.
    """
    from featurestore.consistency import replay
    from featurestore.store import FeatureStore

    batch = 10_000
    with FeatureStore(repo) as store:
        start = time.perf_counter()
        for i in range(log_rows // batch):
            users = [(i * batch + j) % POPULATION for j in range(batch)]
            store.get_online_features("svc_two", {"user_id": users})
        store.feature_logger.flush(timeout_s=600)
        logging_s = time.perf_counter() - start
        files = list((repo / "data/feature_logs/service=svc_two").rglob("*.parquet"))
        logged = sum(pq.read_metadata(f).num_rows for f in files)
        refs = [str(r) for r in store.snapshot.feature_services["svc_two"].refs]
        keys = pa.concat_tables(
            [pq.read_table(f, columns=["key:user_id", "request_time"]) for f in files]
        )
        entity = keys.rename_columns(["user_id", "event_timestamp"]).combine_chunks()
        # Warm-up, one of each, not in the best times: the first large run of a process pays
        # for imports (pandas via DuckDB's register, polars, the in-memory join) and for the
        # memory it is the first to take from the OS (~0.35 s CPU for a report run first).
        # The report runs first, so its peak memory here is the cold process's.
        report, *first_report = timed(lambda: store.skew_report("svc_two"))
        frame, *first_frame = timed(lambda: store.get_training_frame(entity, refs).to_arrow())
        warmup = dict(
            zip(
                ("report_s", "report_cpu_s", "report_peak_mb", "frame_s", "frame_cpu_s",
                 "frame_peak_mb"),
                (*first_report, *first_frame),
                strict=True,
            )
        )  # fmt: skip
        print(json.dumps({"warmup": warmup}), file=sys.stderr)
        rounds = []
        for i in range(repeat):
            figures: dict[str, Any] = {"load_average": os.getloadavg()[0]}
            order = ("report", "frame") if i % 2 == 0 else ("frame", "report")
            for which in order:
                if which == "report":
                    report, *measured = timed(lambda: store.skew_report("svc_two"))
                    assert report.rows == logged, (report.rows, logged)
                else:
                    frame, *measured = timed(
                        lambda: store.get_training_frame(entity, refs).to_arrow()
                    )
                    assert frame.num_rows == logged
                figures.update(
                    zip((f"{which}_s", f"{which}_cpu_s", f"{which}_peak_mb"), measured, strict=True)
                )
            figures["ratio"] = figures["report_s"] / figures["frame_s"]
            rounds.append(figures)
            print(json.dumps(figures), file=sys.stderr)
        # The same, with the entity rows read from the log files by DuckDB (as the report
        # must read them): the training frame of a user whose entity rows are on disk.
        pattern = str(repo / "data/feature_logs/service=svc_two/*/*.parquet")
        query = (
            'SELECT "key:user_id" AS user_id, request_time AS event_timestamp '
            f"FROM read_parquet('{pattern}')"
        )
        from_files, files_s, *_ = timed(lambda: store.get_training_frame(query, refs).to_arrow())
        assert from_files.num_rows == logged
    report_s = min(r["report_s"] for r in rounds)
    training_s = min(r["frame_s"] for r in rounds)
    return {
        "logged_rows": logged,
        "log_files": len(files),
        "chunk_bytes": replay.CHUNK_BYTES,
        "logging_s": logging_s,
        "report_s": report_s,
        "training_frame_s": training_s,
        "ratio": report_s / training_s,
        "ratio_cpu": min(r["report_cpu_s"] for r in rounds) / min(r["frame_cpu_s"] for r in rounds),
        "training_frame_from_files_s": files_s,
        "ratio_from_files": report_s / files_s,
        "report_peak_mb": max(r["report_peak_mb"] for r in [warmup, *rounds]),
        "training_frame_peak_mb": max(r["frame_peak_mb"] for r in [warmup, *rounds]),
        "mismatches": report.cause_counts()["mismatch"],
        "warmup": warmup,
        "rounds": rounds,
    }


def serve_and_measure(
    stack: ExitStack, repo: Path, duration_s: int, workdir: Path
) -> list[dict[str, Any]]:
    env = {**os.environ, "FEATURESTORE_LOG_LEVEL": "warning"}
    port = bench_http.free_port()
    url = stack.enter_context(
        bench_http.server(
            [sys.executable, "-m", "featurestore", "--repo", str(repo), "serve",
             "--port", str(port)],
            port,
            env,
            workdir / "server.log",
        )
    )  # fmt: skip
    check = httpx.post(
        f"{url}/get-online-features",
        json={"feature_service": "svc_on", "entities": {"user_id": [1]}},
        timeout=5,
    )
    assert check.status_code == 200, check.text
    return http_figures(url, duration_s, workdir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk measurement")
    parser.add_argument("--log-rows", type=int, default=1_000_000, help="rows to log and replay")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of report and frame")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--only", choices=["http", "skew"], help="run one of the two parts")
    parser.add_argument("--small", action="store_true", help="3 s runs, 100,000 logged rows")
    args = parser.parse_args()
    if args.small:
        args.duration, args.log_rows = 3, 100_000
    if args.only != "skew" and shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    workdir = Path(tempfile.mkdtemp(prefix="bench-skew-"))
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    with ExitStack() as stack:
        redis_url = stack.enter_context(private_redis_url())
        repo = bench_http.build_repo(workdir / "repo", redis_url, prefix, POPULATION)
        with (repo / "features.py").open("a") as features:
            features.write(SERVICES)
        from featurestore.store import FeatureStore

        with FeatureStore(repo) as store:
            store.apply()
        results: dict[str, Any] = {"load_average": os.getloadavg()}
        if args.only != "skew":
            results["http_1x10_c10"] = serve_and_measure(stack, repo, args.duration, workdir)
        if args.only != "http":
            results["skew_report"] = skew_figures(repo, args.log_rows, args.repeat)
        results["load_average_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
