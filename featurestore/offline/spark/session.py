"""The SparkSession of an ``offline_store: {type: spark}`` config, and PySpark's quiet import."""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

from featurestore._quiet import quiet_pyspark
from featurestore.errors import MissingDependencyError, SourceError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from featurestore.repo.config import SparkOfflineStoreConfig

__all__ = ["REQUIRED_CONF", "spark_session"]

logger = logging.getLogger(__name__)

REQUIRED_CONF = {
    # Timestamps are instants in UTC everywhere (DESIGN.md); naive source values mean UTC.
    "spark.sql.session.timeZone": "UTC",
    # Nanosecond Parquet timestamps arrive as integers and are truncated to microseconds by
    # the scan, as DuckDB's scan does (Spark refuses to read them otherwise).
    "spark.sql.legacy.parquet.nanosAsLong": "true",
}
"""Settings the engine's results depend on; set on every session, over the user's conf."""

_DEFAULT_CONF = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
}


def spark_session(config: SparkOfflineStoreConfig) -> SparkSession:
    """The session for ``config`` (an existing one in this process is reused).

    Raises:
        MissingDependencyError: PySpark is not installed.
        SourceError: Spark cannot start (no Java, a bad master URL or setting).
    """
    try:
        with quiet_pyspark():
            from pyspark.sql import SparkSession
    except ImportError as exc:
        raise MissingDependencyError(feature="The spark offline store", extra="spark") from exc
    builder = SparkSession.builder.master(config.master).appName(config.app_name)
    if config.master.startswith("local"):
        # Python workers (batch transforms) run this interpreter, which has featurestore;
        # PySpark reads only the environment for it. An exported PYSPARK_PYTHON wins.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in {**_DEFAULT_CONF, **config.conf, **REQUIRED_CONF}.items():
        builder = builder.config(key, value)
    try:
        with quiet_pyspark():
            session = builder.getOrCreate()
    except Exception as exc:  # py4j and Java errors share no base class worth naming
        msg = (
            f"Cannot start Spark with offline_store master '{config.master}': {exc}. Check "
            "that Java 17 is installed (JAVA_HOME) and the master URL and conf are right."
        )
        raise SourceError(msg) from exc
    for key, value in REQUIRED_CONF.items():  # a reused session may have other values
        session.conf.set(key, value)
    logger.info("Spark session on %s (Spark %s)", config.master, session.version)
    return session
