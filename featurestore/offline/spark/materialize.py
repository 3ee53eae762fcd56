"""Materialization from the executors: every partition of the newest rows writes its own share.

Spark computes the newest row per join-key tuple of the window
(:func:`~featurestore.offline.spark.join.latest_per_key`) and repartitions the rows by the join
keys into ``spark.default.parallelism`` partitions (by default the executors' cores: one writer
per core; a fixed count, which adaptive execution does not coalesce), so each key is in
exactly one partition. Each partition, sorted by the keys, goes as Arrow batches
(``mapInArrow``) to the writer the materializer passed in
(:data:`~featurestore.offline.base.PartitionWrite`), which runs on the executor: it opens its
own connection to the online store, encodes with the one codec and writes with the store's
conditional write, exactly as the driver does. The executors return only their counts.

This module knows nothing of the online store (``offline/`` never imports ``online/``): the
writer is the materializer's. A failed partition fails the job and the call raises; the
materializer then keeps the watermark. What the other partitions wrote is valid (a record
replaces only an older one), and a rerun, or a task Spark retries, writes the same records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from featurestore._quiet import quiet_pyspark
from featurestore.errors import MaterializationError
from featurestore.offline.spark.join import latest_per_key
from featurestore.offline.sql import CREATED_TS, EVENT_TS
from featurestore.offline.training_frame import conform
from featurestore.types import to_arrow

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime

    from pyspark.sql import DataFrame

    from featurestore.offline.base import PartitionWrite
    from featurestore.repo.registry import ViewRecord

__all__ = ["latest_types", "write_latest"]

_UTC = pa.timestamp("us", tz="UTC")
_COUNTS = pa.schema([("rows", pa.int64()), ("written", pa.int64())])
"""What each partition returns to the driver."""


def latest_types(record: ViewRecord) -> dict[str, pa.DataType]:
    """The Arrow type of each column of the newest rows (those of the DuckDB engine)."""
    types: dict[str, pa.DataType] = {k: to_arrow(t) for k, t in record.key_dtypes.items()}
    types.update({f.name: to_arrow(f.dtype) for f in record.view.schema})
    types[EVENT_TS] = _UTC
    types[CREATED_TS] = _UTC
    return types


def write_latest(
    scan: DataFrame, record: ViewRecord, start: datetime, end: datetime, write: PartitionWrite
) -> tuple[int, int]:
    """Run ``write`` on the executors over each partition of the window's newest rows.

    ``scan`` is the view's source (:meth:`SparkOfflineEngine.scan`). Returns the sums of the
    partitions' ``(rows, written)``, once every partition has finished.

    Raises:
        MaterializationError: A partition failed (its error is in the message).
    """
    from pyspark.sql import functions as F

    keys = [F.col("`" + k.replace("`", "``") + "`") for k in sorted(record.view.join_keys)]
    writers = scan.sparkSession.sparkContext.defaultParallelism
    newest = (
        latest_per_key(scan, record.view, start, end)
        .repartition(writers, *keys)
        .sortWithinPartitions(*keys)
    )
    types = latest_types(record)

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        # On the executor: this partition's rows, in the engine's types, to the writer.
        rows, written = write(_conformed(batches, types))
        yield pa.RecordBatch.from_pydict({"rows": [rows], "written": [written]}, schema=_COUNTS)

    try:
        with quiet_pyspark():
            counts = newest.mapInArrow(run, "rows BIGINT, written BIGINT")
            total = counts.agg(F.sum("rows"), F.sum("written")).collect()[0]
    except Exception as exc:  # py4j and Spark errors share no useful base class
        msg = (
            f"Materializing feature view '{record.view.name}' failed on a Spark executor: "
            f"{_cause(exc)}. The watermark did not move; the records already written are "
            "valid (conditional writes). Fix the cause and run the window again."
        )
        raise MaterializationError(msg) from exc
    return int(total[0] or 0), int(total[1] or 0)


def _conformed(
    batches: Iterator[pa.RecordBatch], types: dict[str, pa.DataType]
) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        if batch.num_rows:
            result = conform(batch, types)
            assert isinstance(result, pa.RecordBatch)
            yield result


def _cause(exc: Exception) -> str:
    """The executor's own error out of Spark's report (the last line of the Python traceback)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line for line in lines if line.split(":", 1)[0].endswith(("Error", "Exception"))]
    return (errors[-1] if errors else lines[0] if lines else type(exc).__name__).rstrip(".")
