"""Serving replicas on one PostgreSQL registry and one Redis: real processes, real HTTP.

The registry file is moved into PostgreSQL with ``featurestore registry copy``; then one
``serve --workers 2`` and a second ``serve`` process share that registry and a Redis online
store. Every answer is right whichever process gives it; an apply made meanwhile is picked
up by every worker of both servers (seen in the per-worker reload counter); ``/metrics`` at
one port adds up both workers' requests under a ``worker`` label; and after SIGTERM each
worker's feature log files hold exactly the requests it logged, none lost or interleaved.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from featurestore import FeatureStore
from tests.conftest import make_repo
from tests.integration.test_http_support import (
    FEATURES_PY,
    free_port,
    now_utc,
    poll,
    repo_yaml,
    serve_command,
    write_data,
)
from tests.postgres_db import postgres_url  # noqa: F401  # fixture: the session's database

LOGGED_FEATURES_PY = (
    FEATURES_PY.replace(
        "from featurestore import Entity,", "from featurestore import LoggingConfig, Entity,"
    ).replace(
        "    features=[user_stats[[\"txn_count\", \"avg_amount\"]], merchant_stats[[\"fraud_rate\"]], pair_stats],\n)",
        "    features=[user_stats[[\"txn_count\", \"avg_amount\"]], merchant_stats[[\"fraud_rate\"]], pair_stats],\n"
        "    logging=LoggingConfig(sample_rate=1.0),\n)",
    )
)  # fmt: skip
BODY = {"entities": {"user_id": [1], "merchant_id": ["m0"]}, "feature_service": "fraud_v1"}
SAMPLE = re.compile(r"^(?P<name>\w+)\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
SAMPLE = re.compile(r"^(?P<name>\w+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


class Server:
    """A ``featurestore serve`` process on a free loopback port."""

    def __init__(self, repo: Path, log: Path, *options: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                serve_command(repo, self.port, "--no-ui", *options),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if not poll(self._ready, 120):
            self.stop()
            pytest.fail(f"the server did not start:\n{log.read_text()}")

    def _ready(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()
        try:
            return httpx.get(f"{self.url}/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def lookup(self) -> httpx.Response:
        # A new connection per request, so the kernel may hand it to any worker.
        return httpx.post(f"{self.url}/get-online-features", json=BODY, timeout=10)

    def samples(self, name: str) -> list[dict[str, str]]:
        """The samples of metric ``name`` at ``/metrics``: labels plus ``value``."""
        found = []
        for line in httpx.get(f"{self.url}/metrics", timeout=10).text.splitlines():
            match = SAMPLE.match(line)
            if match and match["name"] == name:
                labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
                found.append({**labels, "value": match["value"]})
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)


@pytest.fixture
def repo(tmp_path: Path, postgres_url: str, redis_server_url: str) -> Path:  # noqa: F811
    assert "LoggingConfig(sample_rate=1.0)" in LOGGED_FEATURES_PY
    tag = uuid.uuid4().hex[:10]
    online = f"{{type: redis, url: '{redis_server_url}', key_prefix: fstest-{tag}}}"
    # A project of its own in the session's database.
    yaml = repo_yaml(online=online).replace("project: httptest", f"project: p_{tag}")
    root = make_repo(tmp_path / "repo", LOGGED_FEATURES_PY, yaml=yaml)
    now = now_utc()
    write_data(root, now)
    with FeatureStore(root) as store:  # on the registry file first
        store.apply()
        store.materialize(now - timedelta(days=60), now + timedelta(seconds=1))
    copied = subprocess.run(
        [sys.executable, "-m", "featurestore", "--repo", str(root), "registry", "copy",
         "--to", postgres_url],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert copied.returncode == 0, copied.stderr
    config = root / "featurestore.yaml"
    config.write_text(
        config.read_text().replace("registry: data/registry.json", f"registry: {postgres_url}")
    )
    (root / "data" / "registry.json").unlink()  # from now on, only PostgreSQL
    return root


def _expected_answer(reply: httpx.Response) -> None:
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    assert results[2]["values"] == [43]  # user 1's newest txn_count
    assert results[2]["statuses"] == ["PRESENT"]


def test_workers_and_servers_share_one_registry_metrics_and_logs(repo: Path, tmp_path: Path):
    workers = Server(repo, tmp_path / "workers.log", "--workers", "2")
    single = Server(repo, tmp_path / "single.log")
    try:
        requests = 40
        for _ in range(requests):
            _expected_answer(workers.lookup())
        _expected_answer(single.lookup())

        # /metrics at one port: both workers' series, each labelled, adding up to the traffic.
        def served() -> tuple[int, set[str]]:
            rows = workers.samples("featurestore_http_requests_total")
            lookups = [r for r in rows if r["route"] == "/get-online-features"]
            ids = {r["worker"] for r in workers.samples("featurestore_feature_log_rows_total")}
            return sum(int(float(r["value"])) for r in lookups), ids

        assert poll(lambda: served()[0] == requests and len(served()[1]) == 2, 60), served()
        pids = served()[1]

        # An apply lands in PostgreSQL: every worker of both servers reloads it.
        features = repo / "features.py"
        features.write_text(
            features.read_text() + '\nextra = FeatureService("extra", features=[pair_stats])\n'
        )
        with FeatureStore(repo) as store:
            store.apply()

        def reloaded(server: Server) -> set[str]:
            rows = server.samples("featurestore_registry_reloads_total")
            return {r.get("worker", "") for r in rows if float(r["value"]) >= 1}

        assert poll(lambda: reloaded(workers) == pids, 60), workers.samples(
            "featurestore_registry_reloads_total"
        )
        assert poll(lambda: reloaded(single) == {""}, 60)
        for server in (workers, single):
            catalog = httpx.get(f"{server.url}/v1/catalog", timeout=10).json()
            assert "extra" in str(catalog)
            _expected_answer(server.lookup())
    finally:
        workers.stop()
        single.stop()

    # Each worker wrote its own log files; together they hold every logged request once.
    files = sorted((repo / "data" / "feature_logs").rglob("*.parquet"))
    writers = {re.match(r"part-.+?-(\d+)-", f.name)[1] for f in files}  # type: ignore[index]
    assert writers <= pids | {str(single.proc.pid)}
    ids = Counter()
    for file in files:
        table = pq.read_table(file)
        ids.update(table.column("request_id").to_pylist())
    assert sum(ids.values()) == requests + 3  # the workers' 41 lookups and the single's 2
    assert max(ids.values()) == 1


def test_a_registry_database_that_goes_away_keeps_the_previous_registry(
    tmp_path: Path,
    redis_server_url: str,
    postgres_url: str,  # noqa: F811  # makes sure the server is there (fails in CI otherwise)
):
    """The server's own database is dropped under it, then restored from a file backup."""
    import psycopg

    from featurestore.repo.registry import FileRegistry, copy_registry, open_registry
    from tests.postgres_db import database_url, server_url

    name = f"fstest_gone_{uuid.uuid4().hex[:8]}"
    url = database_url(name)
    with psycopg.connect(server_url(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    root = make_repo(
        tmp_path / "repo",
        LOGGED_FEATURES_PY,
        yaml=repo_yaml(
            online=f"{{type: redis, url: '{redis_server_url}', key_prefix: fstest-{name}}}"
        ),
    )
    now = now_utc()
    write_data(root, now)
    with FeatureStore(root) as store:
        store.apply()
        store.materialize(now - timedelta(days=60), now + timedelta(seconds=1))
    copy = [sys.executable, "-m", "featurestore", "--repo", str(root), "registry", "copy", "--to"]
    assert subprocess.run([*copy, url], capture_output=True, timeout=120).returncode == 0
    config = root / "featurestore.yaml"
    config.write_text(
        config.read_text().replace("registry: data/registry.json", f"registry: {url}")
    )
    server = Server(root, tmp_path / "serve.log")
    try:
        with psycopg.connect(server_url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')

        def ready() -> tuple[int, str]:
            reply = httpx.get(f"{server.url}/ready", timeout=10)
            return reply.status_code, reply.json()["checks"]["registry"]

        assert poll(lambda: ready()[0] == 503, 60), ready()
        assert "PostgreSQL cannot be reached" in ready()[1]
        _expected_answer(server.lookup())  # still serving the registry it had
        # The database comes back (restored from the file): the server is ready again.
        with psycopg.connect(server_url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        backup = FileRegistry(root / "data" / "registry.json", project="httptest")
        restored = open_registry(url, repo_root=root, project="httptest")
        copy_registry(backup, restored)
        restored.close()
        assert poll(lambda: ready()[0] == 200, 60), ready()
        _expected_answer(server.lookup())
    finally:
        server.stop()
        with psycopg.connect(server_url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
