"""The Spark engine for tests: a store on the same repo and registry, offline work on Spark.

Every test shares one SparkSession (Spark keeps one per process): ``local[2]``, two shuffle
partitions, no UI. A machine without PySpark or Java fails these tests; it never skips them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurestore.repo.config import SparkOfflineStoreConfig

if TYPE_CHECKING:
    from featurestore import FeatureStore

SPARK_CONFIG = SparkOfflineStoreConfig(
    type="spark",
    master="local[2]",
    app_name="featurestore-tests",
    conf={
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.ui.enabled": "false",
        "spark.driver.memory": "1g",
    },
)


def on_spark(store: FeatureStore) -> FeatureStore:
    """A store like ``store`` (same repo, registry and online store) whose engine is Spark."""
    from featurestore import FeatureStore

    config = store.config.model_copy(update={"offline_store": SPARK_CONFIG})
    return FeatureStore(store.repo_root, config=config)
