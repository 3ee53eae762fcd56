"""Shared test factories: feature repos on disk, Parquet files, UTC times, a real Redis server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import textwrap
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def utc(*args: int) -> datetime:
    """``utc(2026, 1, 2, 3)`` -> an aware UTC datetime."""
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def write_parquet(
    path: Path, columns: dict[str, list[object]], schema: pa.Schema | None = None
) -> Path:
    """Write ``columns`` to a Parquet file at ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(columns, schema=schema) if schema is not None else pa.table(columns)
    pq.write_table(table, path)
    return path


def make_repo(
    root: Path,
    features_py: str,
    *,
    yaml: str | None = None,
    files: dict[str, str] | None = None,
) -> Path:
    """Create a feature repo in ``root``: featurestore.yaml, features.py and extra files."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "featurestore.yaml").write_text(
        textwrap.dedent(yaml)
        if yaml is not None
        else "project: test\nregistry: data/registry.json\n"
        "online_store: {type: sqlite, path: data/online.db}\n"
    )
    (root / "features.py").write_text(textwrap.dedent(features_py))
    for name, text in (files or {}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


# -- Redis ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis URL: ``REDIS_URL`` if set, else a ``redis-server`` we start on a free port.

    Without either, the test fails in CI (CI=true) and is skipped locally.
    """
    env_url = os.environ.get("REDIS_URL")
    if env_url:
        yield env_url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        message = "no redis-server on PATH and REDIS_URL is unset"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail(f"redis-server did not start on port {port}")
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def redis_key_prefix() -> str:
    """A key prefix unique to one test, so tests never touch keys they did not create."""
    return f"fstest-{uuid.uuid4().hex[:12]}"
