"""The offline engine interface: what the layers above need from DuckDB or Spark.

:class:`OfflineEngine <featurestore.offline.engine.OfflineEngine>` (DuckDB, one machine) and
:class:`SparkOfflineEngine <featurestore.offline.spark.engine.SparkOfflineEngine>` implement
:class:`Engine`; :func:`featurestore.offline.factory.open_offline_engine` picks one by the
``offline_store`` type, and nothing above it knows which runs. Both compute the same training
frames (G1) and the same newest rows (G3) by the one order of :mod:`featurestore.ordering`;
the property tests run on both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime
    from pathlib import Path

    import polars as pl
    import pyarrow as pa

    from featurestore.definitions import FeatureRef, FeatureView
    from featurestore.offline.engine import EntityInput, OfflineEngine
    from featurestore.offline.join import PointInTime
    from featurestore.repo.registry import ViewRecord
    from featurestore.types import DType
    from featurestore.validation.frame import FrameValidation

__all__ = ["Engine", "Frame", "PartitionWrite", "WritesFromExecutors"]

PartitionWrite: TypeAlias = Callable[[Iterator["pa.RecordBatch"]], tuple[int, int]]
"""Writes one partition's newest rows online; returns ``(rows, records written)``.

Made by the materializer and run where the partition is (on a Spark executor), so it must
pickle: it opens its own online store connection there.
"""


class Frame(Protocol):
    """A lazy training frame: entity columns first, then features, rows in input order."""

    columns: list[str]
    validation: FrameValidation | None

    @property
    def sql(self) -> str:
        """What the engine runs, for debugging."""
        ...

    def hold(self, table: pa.Table, validation: FrameValidation) -> None:
        """Keep ``table`` (checked by ``validation``) as the frame's rows."""
        ...

    def to_arrow(self) -> pa.Table:
        """The whole frame as an Arrow table."""
        ...

    def to_polars(self) -> pl.DataFrame:
        """The whole frame as a polars DataFrame."""
        ...

    def to_pandas(self) -> Any:
        """The whole frame as a pandas DataFrame."""
        ...

    def record_batches(self, batch_size: int = ...) -> Iterator[pa.RecordBatch]:
        """The frame as Arrow record batches, in order."""
        ...

    def to_parquet(self, path: str | Path) -> Path:
        """Write the frame as Parquet."""
        ...

    def to_csv(self, path: str | Path) -> Path:
        """Write the frame as CSV with a header."""
        ...

    def describe(self) -> list[tuple[str, str]]:
        """What the frame computes, as (fact, value) pairs."""
        ...


class Engine(Protocol):
    """An offline engine: training frames, newest rows per key, tiles, source checks."""

    @property
    def local(self) -> OfflineEngine:
        """DuckDB on this machine, for the work that stays on one machine.

        Schema checks (Parquet footers), snapshots, push-log reads and function checks. The
        DuckDB engine is its own ``local``.
        """
        ...

    def infer_key_dtypes(self, view: FeatureView) -> dict[str, DType]:
        """Validate a view's source (schema only) and infer its join key types."""
        ...

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
        """A lazy point-in-time-correct training frame (G1)."""
        ...

    def latest_rows(
        self,
        record: ViewRecord,
        start: datetime,
        end: datetime,
        *,
        batch_size: int = ...,
        ordered: bool = ...,
    ) -> Iterator[pa.RecordBatch]:
        """The newest row per join-key tuple among rows with ``start <= event_ts < end``."""
        ...

    def count_keys(self, record: ViewRecord, start: datetime, end: datetime) -> int:
        """How many rows :meth:`latest_rows` would yield for this window."""
        ...

    def source_time_range(self, record: ViewRecord) -> tuple[datetime, datetime] | None:
        """The smallest and largest event timestamp of a view's source (None when empty)."""
        ...

    def tiles(
        self,
        record: ViewRecord,
        lo: datetime,
        hi: datetime,
        *,
        wanted: pa.Table | None = ...,
        batch_size: int = ...,
    ) -> Iterator[pa.RecordBatch]:
        """An aggregation view's tiles over its events with ``lo <= event < hi`` (G7)."""
        ...

    def close(self) -> None:
        """Release the engine."""
        ...


@runtime_checkable
class WritesFromExecutors(Protocol):
    """An engine whose workers write the newest rows online themselves, in parallel (Spark).

    The materializer hands it the writer instead of collecting the rows on this machine.
    """

    def write_latest(
        self, record: ViewRecord, start: datetime, end: datetime, write: PartitionWrite
    ) -> tuple[int, int]:
        """Run ``write`` over each partition of the newest rows of ``[start, end)``.

        Returns the summed ``(rows, written)`` once every partition has finished.

        Raises:
            MaterializationError: A partition failed; others may have written (validly).
        """
        ...
