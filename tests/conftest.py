"""Shared test factories: feature repos on disk, Parquet files, UTC times, a real Redis server."""

from __future__ import annotations

import os
import textwrap
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, settings

from tests.redis_cluster import redis_cluster, redis_cluster_url  # noqa: F401 (fixtures)
from tests.redis_server import RedisServer

if TYPE_CHECKING:
    from featurestore import FeatureStore

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


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    """``utc(2026, 1, 2, 3)`` -> an aware UTC datetime."""
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


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


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis URL: ``REDIS_URL`` if set, else a ``redis-server`` we start on a free port.

    Without either, the test fails in CI (CI=true) and is skipped locally.
    """
    env_url = os.environ.get("REDIS_URL")
    if env_url:
        yield env_url
        return
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def redis_key_prefix() -> str:
    """A key prefix unique to one test, so tests never touch keys they did not create."""
    return f"fstest-{uuid.uuid4().hex[:12]}"


def fresh_store(repo: Path, backend: str, request: pytest.FixtureRequest) -> FeatureStore:
    """A FeatureStore on ``repo`` with its own registry and an empty online store.

    ``backend`` is ``"sqlite"`` (a new file), ``"redis"`` (the session's private
    redis-server, under a new key prefix) or ``"redis-cluster"`` (the session's Redis
    Cluster, likewise), so property tests can start from nothing on every example without
    a new repo.
    """
    from featurestore import FeatureStore
    from featurestore.repo.config import RedisOnlineStoreConfig, SqliteOnlineStoreConfig

    tag = uuid.uuid4().hex[:10]
    base = FeatureStore(repo).config
    online: SqliteOnlineStoreConfig | RedisOnlineStoreConfig
    if backend == "sqlite":
        online = SqliteOnlineStoreConfig(path=f"data/online-{tag}.db")
    else:
        cluster = backend == "redis-cluster"
        url = request.getfixturevalue("redis_cluster_url" if cluster else "redis_server_url")
        online = RedisOnlineStoreConfig(
            type="redis", url=url, key_prefix=f"fstest-{tag}", cluster=cluster
        )
    config = base.model_copy(
        update={"registry": f"data/registry-{tag}.json", "online_store": online}
    )
    store = FeatureStore(repo, config=config)
    store.apply()
    return store
