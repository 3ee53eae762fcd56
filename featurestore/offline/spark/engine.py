"""SparkOfflineEngine: training frames and the newest rows per key, computed by Spark.

The :class:`~featurestore.offline.base.Engine` of ``offline_store: {type: spark}``. Spark
reads the sources and does the joins; a local DuckDB engine (:attr:`local`) keeps the work
that stays on one machine: schema checks from Parquet footers, snapshots, push-log reads,
function checks. Views with a batch transform run it on the executors through the one
executor (:mod:`~featurestore.offline.spark.transform`); aggregation views' training-frame
aggregates and tiles are Spark queries too (:mod:`~featurestore.offline.spark.aggregation`).
"""

from __future__ import annotations

import typing
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from featurestore._quiet import quiet_pyspark
from featurestore._time import from_micros
from featurestore.definitions import FeatureRef
from featurestore.errors import EntityFrameError, SourceError
from featurestore.offline.engine import OfflineEngine, _event_columns
from featurestore.offline.entity_frame import (
    EntityFrame,
    feature_types,
    load_entity,
    validate_entity,
)
from featurestore.offline.join.aggregation import TILE_TIME
from featurestore.offline.join.spec import ROW_COL, EntityStats
from featurestore.offline.spark.aggregation import aggregation_join, spark_tiles, tile_types
from featurestore.offline.spark.frame import SparkTrainingFrame
from featurestore.offline.spark.join import VALUES, join_view, latest_per_key
from featurestore.offline.spark.materialize import latest_types, write_latest
from featurestore.offline.spark.scan import spark_scan, spark_type
from featurestore.offline.spark.session import spark_session
from featurestore.offline.spark.transform import transformed_scan
from featurestore.offline.sql import EVENT_TS, Query
from featurestore.offline.training_frame import conform
from featurestore.repo.config import DuckDBOfflineStoreConfig

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from datetime import datetime

    from pyspark.sql import DataFrame, SparkSession

    from featurestore.definitions import FeatureView
    from featurestore.offline.base import Frame, PartitionWrite
    from featurestore.offline.engine import EntityInput
    from featurestore.offline.join import PointInTime
    from featurestore.repo.config import SparkOfflineStoreConfig
    from featurestore.repo.functions import AppliedFunctions
    from featurestore.repo.registry import ViewRecord
    from featurestore.types import DType

__all__ = ["SparkOfflineEngine"]

_T = "__fs_t"


class SparkOfflineEngine:
    """Spark over the repo's Parquet sources, under the same contract as DuckDB.

    Args:
        config: The ``offline_store`` section (``type: spark``).
        repo_root: The feature repo; relative source paths resolve against it.
        functions: The applied batch transforms.
    """

    def __init__(
        self, config: SparkOfflineStoreConfig, *, repo_root: Path, functions: AppliedFunctions
    ) -> None:
        self.config = config
        self.repo_root = Path(repo_root)
        self._local = OfflineEngine(
            DuckDBOfflineStoreConfig(), repo_root=self.repo_root, functions=functions
        )
        self._functions = functions
        self._spark: SparkSession | None = None

    @property
    def local(self) -> OfflineEngine:
        """The DuckDB engine on the driver (schema checks, snapshots, push log, checks)."""
        return self._local

    @property
    def spark(self) -> SparkSession:
        """The Spark session (started on first use: a JVM start costs seconds)."""
        if self._spark is None:
            self._spark = spark_session(self.config)
        return self._spark

    def close(self) -> None:
        """Release the local engine; the Spark session stays for the process (it is shared)."""
        self._local.close()

    def infer_key_dtypes(self, view: FeatureView) -> dict[str, DType]:
        """Validate a view's source (Parquet footers, on the driver) and infer its key types."""
        return self._local.infer_key_dtypes(view)

    def _on_spark(self, record: ViewRecord) -> bool:
        """Whether Spark computes this view's newest rows (an aggregation view's are tiles)."""
        return not record.view.aggregations

    def scan(self, record: ViewRecord, features: list[str] | None = None) -> DataFrame:
        """A view's typed source rows as a DataFrame (:mod:`~featurestore.offline.spark.scan`).

        Raises:
            SourceError: The source is missing, off-schema, or unreadable by Spark.
        """
        if record.view.aggregations:  # an aggregation view reads its raw events (G7)
            record = replace(record, view=record.view.event_view())
            # Output names are not event columns: all of them, or none ([]: keys and times).
            features = None if features else features
        sources = self._local.sources
        # A view with a transform is checked against its output, not its source's columns.
        files = sources.read(self._functions.with_transform(record).view)
        pushed = {f for f in files.files if sources.push_log.contains(f)}
        if record.transform is not None:
            # The registry's record (no function) goes to the executors; they import it.
            return transformed_scan(
                self.spark,
                record,
                files,
                repo_root=self.repo_root,
                pushed=pushed,
                features=features,
            )
        return spark_scan(
            self.spark,
            record.view,
            files,
            key_dtypes=record.key_dtypes,
            pushed=pushed,
            features=features,
        )

    # -- training frames ----------------------------------------------------------------------

    def training_frame(
        self,
        entity_df: EntityInput,
        requests: list[tuple[ViewRecord, list[str]]],
        *,
        output_names: dict[FeatureRef, str],
        timestamp_column: str,
        point_in_time: PointInTime,
        event_columns: Mapping[str, str] | None = None,
    ) -> Frame:
        """A lazy point-in-time-correct training frame (G1), computed by Spark.

        ``entity_df`` may also be a Spark DataFrame (its partition order is its row order).

        Raises:
            EntityFrameError: Missing join key or timestamp column, unparsable timestamps,
                incompatible key types, or a column clashing with a feature name.
            SourceError: A source is missing or no longer matches its view.
        """
        from pyspark.sql import functions as F

        if type(entity_df).__module__.startswith("pyspark"):
            spark_df = typing.cast("DataFrame", entity_df)
            entity, columns, entity_types = _spark_entity(spark_df, timestamp_column, requests)
            frame = EntityFrame(Query(), columns, {}, EntityStats(rows=0, min_ts=None, max_ts=None))
        else:
            cursor = self._local.cursor()
            try:
                frame = load_entity(cursor, entity_df, timestamp_column)
                validate_entity(cursor, frame, requests)
                table = cursor.sql(frame.query.text, params=frame.query.params).to_arrow_table()
            finally:
                cursor.close()
            with quiet_pyspark():
                entity = self.spark.createDataFrame(table)
            columns = list(frame.columns)
            entity_types = {c: table.schema.field(c).type for c in columns}
        out_types = feature_types(frame, requests, output_names)
        events = _event_columns(requests, event_columns or {}, out_types, columns)
        probe = entity.withColumn(_T, F.col(f"`{timestamp_column}`"))
        result = entity
        selected: dict[str, object] = {}
        for i, (record, features) in enumerate(requests):
            view = record.view
            keys = probe.select(
                ROW_COL,
                _T,
                *[
                    F.col(f"`{k}`").cast(spark_type(record.key_dtypes[k])).alias(k)
                    for k in view.join_keys
                ],
            )
            scan = self.scan(record, list(features))
            if view.aggregations:
                time_range = None
                if frame.stats.min_ts is not None and frame.stats.max_ts is not None:
                    time_range = (frame.stats.min_ts, frame.stats.max_ts)
                joined = aggregation_join(
                    keys,
                    scan,
                    view,
                    list(features),
                    point_in_time=point_in_time,
                    time_range=time_range,
                )
            else:
                joined = join_view(keys, scan, view, list(features), point_in_time=point_in_time)
            joined = joined.select(ROW_COL, F.col(VALUES).alias(f"__fs_v{i}"))
            result = result.join(joined, ROW_COL, "left")
            for j, feature in enumerate(features):
                selected[output_names[FeatureRef(view.name, feature)]] = F.col(f"__fs_v{i}.v{j}")
            if view.name in events:
                selected[events[view.name]] = F.col(f"__fs_v{i}.e")
        outputs = [F.col(f"`{c}`") for c in columns]
        outputs += [selected[name].alias(name) for name in out_types]  # type: ignore[attr-defined]
        df = result.orderBy(ROW_COL).select(*outputs)
        facts = [
            ("engine", f"Spark ({self.config.master})"),
            ("point in time", point_in_time),
            ("views", "; ".join(f"{r.view.name} ({', '.join(f)})" for r, f in requests)),
        ]
        return SparkTrainingFrame(df, types={**entity_types, **out_types}, facts=facts)

    # -- materialization ----------------------------------------------------------------------

    def latest_rows(
        self,
        record: ViewRecord,
        start: datetime,
        end: datetime,
        *,
        batch_size: int = 100_000,
        ordered: bool = False,
    ) -> Iterator[pa.RecordBatch]:
        """The newest row per join-key tuple among rows with ``start <= event_ts < end``.

        Computed by Spark and collected on the driver as Arrow, then yielded in batches:
        the columns and types of :meth:`OfflineEngine.latest_rows`.

        Raises:
            SourceError: The source is missing or no longer matches the view.
        """
        if not self._on_spark(record):
            return self._local.latest_rows(
                record, start, end, batch_size=batch_size, ordered=ordered
            )
        df = latest_per_key(self.scan(record), record.view, start, end)
        if ordered:
            df = df.orderBy(*sorted(record.view.join_keys))
        return _stream(record, df, batch_size)

    def write_latest(
        self, record: ViewRecord, start: datetime, end: datetime, write: PartitionWrite
    ) -> tuple[int, int]:
        """Write the newest rows online from the executors, ``write`` on each partition.

        See :mod:`~featurestore.offline.spark.materialize`. A view Spark does not compute
        goes through ``write`` once, on the driver.

        Raises:
            MaterializationError: A partition failed.
            SourceError: The source is missing or no longer matches the view.
        """
        if not self._on_spark(record):
            return write(self._local.latest_rows(record, start, end, ordered=True))
        return write_latest(self.scan(record), record, start, end, write)

    def count_keys(self, record: ViewRecord, start: datetime, end: datetime) -> int:
        """How many rows :meth:`latest_rows` would yield for this window."""
        if not self._on_spark(record):
            return self._local.count_keys(record, start, end)
        from pyspark.sql import functions as F

        scan = self.scan(record, [])
        window = scan.where((F.col(EVENT_TS) >= F.lit(start)) & (F.col(EVENT_TS) < F.lit(end)))
        return int(window.select(*record.view.join_keys).distinct().count())

    def source_time_range(self, record: ViewRecord) -> tuple[datetime, datetime] | None:
        """The smallest and largest event timestamp of a view's source (None when empty)."""
        from pyspark.sql import functions as F

        micros = F.unix_micros(F.col(EVENT_TS))
        row = self.scan(record, []).agg(F.min(micros), F.max(micros)).collect()[0]
        if row[0] is None:
            return None
        return from_micros(int(row[0])), from_micros(int(row[1]))

    def tiles(
        self,
        record: ViewRecord,
        lo: datetime,
        hi: datetime,
        *,
        wanted: pa.Table | None = None,
        batch_size: int = 100_000,
    ) -> Iterator[pa.RecordBatch]:
        """An aggregation view's tiles over its events with ``lo <= event < hi`` (G7).

        Computed by Spark (:func:`~featurestore.offline.spark.aggregation.spark_tiles`) and
        collected on the driver as Arrow: the columns, types and order of
        :meth:`OfflineEngine.tiles`. ``wanted`` (join keys and ``__fs_tile``) restricts them
        to those tiles.

        Raises:
            SourceError: The source is missing or no longer matches the view.
        """
        from pyspark.sql import functions as F

        view = record.view
        wanted_df = None
        if wanted is not None:
            with quiet_pyspark():
                wanted_df = self.spark.createDataFrame(wanted.select([*view.join_keys, TILE_TIME]))
            wanted_df = wanted_df.select(
                *[
                    F.col(f"`{k}`").cast(spark_type(record.key_dtypes[k])).alias(k)
                    for k in view.join_keys
                ],
                F.col(TILE_TIME).cast("BIGINT"),
            )
        df = spark_tiles(self.scan(record), view, lo, hi, wanted=wanted_df)
        types = tile_types(view, record.key_dtypes)
        yield from _collected(
            df, types, batch_size, f"Computing the tiles of feature view '{view.name}'"
        )


def _stream(record: ViewRecord, df: DataFrame, batch_size: int) -> Iterator[pa.RecordBatch]:
    what = f"Reading the latest rows of feature view '{record.view.name}'"
    return _collected(df, latest_types(record), batch_size, what)


def _collected(
    df: DataFrame, types: dict[str, pa.DataType], batch_size: int, what: str
) -> Iterator[pa.RecordBatch]:
    """``df`` collected on the driver as Arrow, in batches conformed to ``types``."""
    try:
        with quiet_pyspark():
            table = df.toArrow()
    except Exception as exc:  # py4j and Spark errors share no useful base class
        msg = f"{what} failed in Spark: {exc}"
        raise SourceError(msg) from exc
    for batch in table.to_batches(max_chunksize=batch_size):
        result = conform(batch, types)
        assert isinstance(result, pa.RecordBatch)
        yield result


def _spark_entity(
    df: DataFrame, timestamp_column: str, requests: list[tuple[ViewRecord, list[str]]]
) -> tuple[DataFrame, list[str], dict[str, pa.DataType]]:
    """A Spark entity frame with ``__fs_row`` (its order) and a UTC timestamp column.

    Raises:
        EntityFrameError: The timestamp column or a join key is missing.
    """
    from pyspark.sql import functions as F

    columns = list(df.columns)
    if timestamp_column not in columns:
        msg = (
            f"The entity frame has no timestamp column '{timestamp_column}' (columns: "
            f"{', '.join(columns)}). Add it, or pass timestamp_column=<your column>."
        )
        raise EntityFrameError(msg)
    for record, _ in requests:
        missing = [k for k in record.view.join_keys if k not in columns]
        if missing:
            msg = (
                f"The entity frame lacks join key column(s) {', '.join(missing)} of feature "
                f"view '{record.view.name}' (columns: {', '.join(columns)}). Add them."
            )
            raise EntityFrameError(msg)
    ts = F.col(f"`{timestamp_column}`").cast("TIMESTAMP")
    with_row = df.withColumn(timestamp_column, ts).withColumn(
        ROW_COL, F.monotonically_increasing_id()
    )
    types = {timestamp_column: pa.timestamp("us", tz="UTC")}
    return with_row, columns, types
