"""The offline engine named by ``offline_store.type``; Spark is imported only when chosen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurestore.offline.engine import OfflineEngine

if TYPE_CHECKING:
    from pathlib import Path

    from featurestore.offline.base import Engine
    from featurestore.repo.config import OfflineStoreConfig
    from featurestore.repo.functions import AppliedFunctions

__all__ = ["open_offline_engine"]


def open_offline_engine(
    config: OfflineStoreConfig, *, repo_root: Path, functions: AppliedFunctions
) -> Engine:
    """The engine of ``config``: DuckDB, or Spark (which needs the ``spark`` extra).

    Raises:
        MissingDependencyError: ``type: spark`` without pyspark installed.
        SourceError: The engine cannot start with these settings.
    """
    if config.type == "spark":
        from featurestore.offline.spark.engine import SparkOfflineEngine

        return SparkOfflineEngine(config, repo_root=repo_root, functions=functions)
    return OfflineEngine(config, repo_root=repo_root, functions=functions)
