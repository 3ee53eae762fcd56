"""Apache Spark as the offline engine (``offline_store: {type: spark}``, docs/spark.md).

* ``session.py``: the SparkSession of a config (UTC, Arrow) and PySpark's import;
* ``scan.py``: a view's Parquet source as a typed DataFrame, with each row's place in the order;
* ``join.py``: the point-in-time join (G1) and the newest row per key (G3) as DataFrames;
* ``frame.py``: :class:`SparkTrainingFrame`, the lazy frame with ``to_spark()``;
* ``engine.py``: :class:`SparkOfflineEngine`, the :class:`~featurestore.offline.base.Engine`.

Nothing here imports PySpark until an engine is opened.
"""
