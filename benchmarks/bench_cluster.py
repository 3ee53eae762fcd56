"""Online read latency on a 3-master Redis Cluster beside a single Redis, in the same run.

    .venv/bin/python benchmarks/bench_cluster.py --iterations 2000

Cases (as benchmarks/bench_online_read.py): 1 entity x 10 features (1 view), and 100 entities
x 5 views x 10 features. For each store: ``get_online_features`` p50/p99 (validation, the
round trips, decoding, statuses, the response), and the raw fetch of the same bytes by
redis-py (single: a pipeline of HMGETs; cluster: ``redis.cluster.RedisCluster``'s pipeline,
which also groups commands by node). The cluster is started here on loopback (3 masters, no
replicas: reads never touch replicas), next to a private redis-server; all on this machine,
so the cluster's per-node round trips run on the same two cores.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import redis
from redis.cluster import RedisCluster

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._redis import redis_url, wait_for_port
from benchmarks.bench_online_read import ENTITIES, NOW, VIEWS, make_repo, measure
from featurestore import FeatureStore
from featurestore.online.codec import KeyEncoder
from featurestore.repo.config import RedisOnlineStoreConfig
from featurestore.types import Int64


def _port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    while True:
        port = random.randrange(20000, 55000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port


@contextlib.contextmanager
def cluster_url(masters: int = 3) -> Iterator[str]:
    """A Redis Cluster of ``masters`` masters on loopback; the URL of its first node."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        raise SystemExit("no redis-server/redis-cli on PATH")
    workdir = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    ports = [_port() for _ in range(masters)]
    procs = []
    try:
        for port in ports:
            (workdir / str(port)).mkdir()
            argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", str(workdir / str(port)),
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]  # fmt: skip
            procs.append(
                subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        for port in ports:
            wait_for_port(port)
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + 60
        while True:
            info = redis.Redis(port=ports[0]).cluster("info")
            if info.get("cluster_state") == "ok":
                break
            if time.monotonic() > deadline:
                raise SystemExit("the benchmark's Redis Cluster did not become healthy")
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-cluster-repo-")) / "repo"
    make_repo(root)
    base = FeatureStore(root)
    base.apply()
    one_features = [
        f"v0:{f}" for f in [*(f"i0_{j}" for j in range(5)), *(f"f0_{j}" for j in range(5))]
    ]
    all_features = [f"v{v}:{k}{v}_{j}" for v in range(VIEWS) for k in "if" for j in range(5)]
    rng = random.Random(7)
    one = [{"user_id": rng.randrange(ENTITIES)}]
    hundred = {"user_id": rng.sample(range(ENTITIES), 100)}
    cases = {
        "1 entity x 10 features": (one_features, [one[0]["user_id"]], ["v0"]),
        "100 entities x 5 views x 10 features": (
            all_features,
            hundred["user_id"],
            [f"v{v}" for v in range(VIEWS)],
        ),
    }
    keys = KeyEncoder({"user_id": Int64})
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    figures: dict[tuple[str, str], tuple[tuple[float, float], tuple[float, float]]] = {}
    with redis_url() as single, cluster_url() as cluster:
        for name, url in (("redis", single), ("cluster", cluster)):
            online = RedisOnlineStoreConfig(
                type="redis", url=url, key_prefix=prefix, timeout_s=5, cluster=name == "cluster"
            )
            config = base.config.model_copy(
                update={"online_store": online, "registry": f"data/registry-{name}.json"}
            )
            store = FeatureStore(root, config=config)
            store.apply()
            began = time.perf_counter()
            store.materialize(NOW - timedelta(days=1), NOW)
            print(
                f"{name}: materialized {VIEWS} x {ENTITIES} rows in {time.perf_counter() - began:.2f} s"
            )
            client: redis.Redis | RedisCluster = (
                RedisCluster.from_url(url) if name == "cluster" else redis.Redis.from_url(url)
            )
            for case, (features, ids, views) in cases.items():
                rows = {"user_id": ids}
                ours = measure(
                    lambda f=features, r=rows, s=store: s.get_online_features(
                        f, r, request_time=NOW
                    ),
                    args.iterations,
                )
                hashes = [f"{prefix}:bench:".encode() + k for k in keys.encode_columns([ids])]

                def raw(h=hashes, v=views, c=client) -> None:
                    pipe = c.pipeline(transaction=False)
                    for key in h:
                        pipe.hmget(key, v)
                    pipe.execute()

                figures[name, case] = (ours, measure(raw, args.iterations))
            client.close()
            store.close()
    print(f"online read latency, {args.iterations} iterations each (ms)")
    for case in cases:
        for name in ("redis", "cluster"):
            (p50, p99), (raw50, raw99) = figures[name, case]
            print(
                f"  {name:7s} {case:38s} featurestore p50 {p50:6.3f} p99 {p99:6.3f}"
                f" | redis-py p50 {raw50:6.3f} p99 {raw99:6.3f}"
            )
        single50 = figures["redis", case][0][0]
        cluster50 = figures["cluster", case][0][0]
        raw_ratio = figures["cluster", case][1][0] / figures["redis", case][1][0]
        print(
            f"  cluster / single p50: featurestore {cluster50 / single50:4.2f}x,"
            f" redis-py {raw_ratio:4.2f}x"
        )


if __name__ == "__main__":
    main()
