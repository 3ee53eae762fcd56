"""Feature logging through a real server process (issue 11): HTTP traffic, /metrics, SIGTERM
during traffic writes every accepted row, and the replay of that traffic finds no mismatch."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pyarrow.parquet as pq

from featurestore import FeatureStore
from tests.conftest import make_repo, utc
from tests.integration.test_http_support import free_port, serve_command
from tests.integration.test_skew_report import FEATURES_PY, W, _write_source


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(log.read_text())


def test_sigterm_during_traffic_writes_every_accepted_row(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", FEATURES_PY)
    _write_source(root)
    with FeatureStore(root) as store:
        store.apply()
        store.materialize(utc(2026, 1, 1), W)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            serve_command(root, port),
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_ready(url, proc, log)
        answered: list[int] = []
        stop = threading.Event()

        def traffic() -> None:
            with httpx.Client(base_url=url, timeout=10) as client:
                for i in range(100_000):  # bounded; stopped by the server going away
                    if stop.is_set():
                        return
                    body = {"feature_service": "svc", "entities": {"user_id": [i], "x": [1.0]}}
                    try:
                        reply = client.post(
                            "/get-online-features",
                            json=body,
                            headers={"Authorization": "Bearer secret-key-123"},
                        )
                    except httpx.HTTPError:
                        return
                    if reply.status_code == 200:
                        answered.append(i)

        thread = threading.Thread(target=traffic)
        thread.start()
        deadline = time.monotonic() + 30
        while len(answered) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        metrics = httpx.get(f"{url}/metrics", timeout=5).text
        assert "featurestore_feature_log_queue_depth" in metrics
        assert 'featurestore_feature_log_rows_total{outcome="dropped"} 0' in metrics
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down cleanly (lifespan, store closed), then re-raises the signal.
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM), log.read_text()
        stop.set()
        thread.join(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    files = list((root / "data/feature_logs/service=svc").rglob("*.parquet"))
    logged = {u for f in files for u in pq.read_table(f).column("key:user_id").to_pylist()}
    assert len(answered) >= 50
    assert set(answered) <= logged  # every request answered was logged and is on disk
    assert all(b"secret-key-123" not in f.read_bytes() for f in files)
    with FeatureStore(root) as store:
        report = store.skew_report("svc")
    assert report.rows == len(logged)
    assert report.cause_counts()["mismatch"] == 0


FROZEN_LOGGING_SERVER = """
import gc, json, sys
from featurestore.serving.app import create_app
from featurestore.store import FeatureStore
from tests.integration.test_http_support import running_server

store = FeatureStore(sys.argv[1])
app = create_app(store)
app.state.featurestore.freeze_heap = True  # as a server process of its own sets it
with running_server(app):
    started = store._feature_logger is not None
    print(json.dumps([started, "pyarrow.parquet" in sys.modules, gc.get_threshold()[0]]))
store.close()
"""


def test_a_frozen_server_starts_its_log_writer_first_and_collects_young_objects_less(
    tmp_path: Path,
) -> None:
    """The writer and the Parquet module exist before the heap is frozen (so full collections
    never walk them), and the young generation is collected every 20,000 net allocations."""
    root = make_repo(tmp_path / "repo", FEATURES_PY)
    _write_source(root)
    with FeatureStore(root) as store:
        store.apply()
    reply = subprocess.run(
        [sys.executable, "-c", FROZEN_LOGGING_SERVER, str(root)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    started, parquet, threshold = json.loads(reply.stdout.strip().splitlines()[-1])
    assert started
    assert parquet
    assert threshold == 20_000
