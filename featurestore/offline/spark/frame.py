"""SparkTrainingFrame: a lazy training frame computed by Spark, with ``to_spark()``."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from featurestore._quiet import quiet_pyspark
from featurestore.errors import SourceError
from featurestore.frames import arrow_to_pandas, arrow_to_polars, describe, describe_html
from featurestore.offline.training_frame import BATCH_ROWS, computed_when, conform, parquet_writer

if TYPE_CHECKING:
    from collections.abc import Iterator

    import polars as pl
    from pyspark.sql import DataFrame

    from featurestore.validation.frame import FrameValidation

__all__ = ["SparkTrainingFrame"]

logger = logging.getLogger(__name__)


class SparkTrainingFrame:
    """A point-in-time-correct training frame, computed by Spark when asked for.

    The API of :class:`~featurestore.offline.training_frame.TrainingFrame` (same rows, same
    columns, same types), plus :meth:`to_spark`. ``to_arrow``, ``to_polars``, ``to_pandas``
    and ``record_batches`` collect the frame on the driver; :meth:`to_parquet` writes from
    the executors in parallel, a directory of part files in row order.

    Example:
        >>> frame = store.get_training_frame(entity_df, features="fraud_v1")  # doctest: +SKIP
        >>> frame.to_spark().groupBy("label").count().show()  # doctest: +SKIP
    """

    def __init__(
        self, df: DataFrame, *, types: dict[str, pa.DataType], facts: list[tuple[str, str]]
    ) -> None:
        self._df = df
        self._types = types
        self._facts = facts
        self._lock = threading.Lock()
        self.columns = list(df.columns)
        """The output column names, in order."""
        self.validation: FrameValidation | None = None
        """The frame's check against its views' expectations, when asked for; else None."""
        self._held: pa.Table | None = None

    def hold(self, table: pa.Table, validation: FrameValidation) -> None:
        """Keep ``table``, checked by ``validation``, as the frame's rows (no recomputation)."""
        self._held = table
        self.validation = validation

    @property
    def sql(self) -> str:
        """Spark's plan of the frame (parsed, analyzed, optimized, physical), for debugging."""
        plan: str = self._df._jdf.queryExecution().toString()
        return plan

    def to_spark(self) -> DataFrame:
        """The frame as a Spark DataFrame, sorted in the entity frame's order (lazy)."""
        return self._df

    def to_arrow(self) -> pa.Table:
        """The whole frame as an Arrow table (collected on the driver)."""
        with self._lock:
            table = self._held
            if table is None:
                try:
                    with quiet_pyspark():
                        table = self._df.toArrow()
                except Exception as exc:
                    raise _spark_error(exc) from exc
        result = conform(table, self._types)
        assert isinstance(result, pa.Table)
        return result

    def to_polars(self) -> pl.DataFrame:
        """The whole frame as a polars DataFrame."""
        return arrow_to_polars(self.to_arrow())

    def to_pandas(self) -> Any:
        """The whole frame as a pandas DataFrame with nullable dtypes. Needs ``pandas``."""
        return arrow_to_pandas(self.to_arrow(), what="SparkTrainingFrame.to_pandas")

    def record_batches(self, batch_size: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """The frame as Arrow record batches of at most ``batch_size`` rows, in order."""
        yield from self.to_arrow().to_batches(max_chunksize=batch_size)

    def to_parquet(self, path: str | Path) -> Path:
        """Write the frame as Parquet from the executors: a directory of part files.

        The part files (``part-00000-...``) hold the rows in order. A held frame (validated)
        is written by pyarrow as one file instead, as the DuckDB engine writes it.
        """
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            held = self._held
            try:
                if held is None:
                    self._df.write.mode("overwrite").parquet(str(target))
                else:
                    result = conform(held, self._types)
                    assert isinstance(result, pa.Table)
                    with parquet_writer(target, result.schema) as writer:
                        writer.write_table(result, row_group_size=BATCH_ROWS)
            except (OSError, pa.ArrowException) as exc:
                msg = f"Cannot write the training frame to '{target}': {exc}. Check the path."
                raise SourceError(msg) from exc
            except Exception as exc:
                raise _spark_error(exc) from exc
        logger.info("wrote training frame to %s", target)
        return target

    def to_csv(self, path: str | Path) -> Path:
        """Write the frame to one CSV file with a header (collected on the driver)."""
        import pyarrow.csv as pacsv

        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            pacsv.write_csv(self.to_arrow(), target)
        except (OSError, pa.ArrowException) as exc:
            msg = f"Cannot write the training frame to '{target}': {exc}. Check the path."
            raise SourceError(msg) from exc
        return target

    def describe(self) -> list[tuple[str, str]]:
        """What the frame will compute, without computing it."""
        return [*self._facts, ("columns", ", ".join(self.columns)), computed_when(self.validation)]

    def __repr__(self) -> str:
        return describe(type(self).__name__, self.describe())

    def _repr_html_(self) -> str:
        return describe_html(type(self).__name__, self.describe())


def _spark_error(exc: Exception) -> SourceError:
    return SourceError(
        f"Computing the training frame failed in Spark: {exc}. If a source changed since "
        "'featurestore apply', run apply again; if memory ran out, raise "
        "spark.driver.memory / spark.executor.memory in offline_store conf."
    )
