"""Online store type name -> constructor; backends with extras are imported lazily."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from featurestore.errors import ConfigError, MissingDependencyError
from featurestore.repo.config import RedisOnlineStoreConfig, SqliteOnlineStoreConfig

if TYPE_CHECKING:
    from featurestore.online.base import OnlineStore
    from featurestore.repo.config import OnlineStoreConfig

__all__ = ["open_online_store"]


def open_online_store(config: OnlineStoreConfig, *, repo_root: Path, project: str) -> OnlineStore:
    """Open the online store ``config`` describes.

    Args:
        config: The ``online_store`` section of featurestore.yaml.
        repo_root: The repo folder; a relative SQLite path is relative to it.
        project: The project name (part of every Redis key).

    Raises:
        MissingDependencyError: The store's extra (e.g. ``redis``) is not installed.
        ConfigError: The store type is unknown.
    """
    if isinstance(config, SqliteOnlineStoreConfig):
        from featurestore.online.sqlite import SqliteOnlineStore

        path = Path(config.path)
        return SqliteOnlineStore(
            path if path.is_absolute() else repo_root / path, timeout_s=config.timeout_s
        )
    if isinstance(config, RedisOnlineStoreConfig):
        if config.startup_nodes and not config.cluster:
            msg = (
                "featurestore.yaml: online_store.startup_nodes is set but online_store.cluster "
                "is not; add 'cluster: true' for a Redis Cluster, or remove startup_nodes."
            )
            raise ConfigError(msg)
        try:
            from featurestore.online.redis import RedisOnlineStore
            from featurestore.online.redis_cluster import RedisClusterOnlineStore
        except ImportError as exc:
            raise MissingDependencyError(feature="The redis online store", extra="redis") from exc
        if config.cluster:
            return RedisClusterOnlineStore(config, project=project)
        return RedisOnlineStore(config, project=project)
    msg = f"featurestore.yaml: unknown online_store type {getattr(config, 'type', config)!r}."
    raise ConfigError(msg)
