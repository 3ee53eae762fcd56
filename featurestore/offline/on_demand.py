"""Training frames with on-demand features: the point-in-time frame, then the one executor.

The stored features an on-demand view reads are joined like any feature (hidden when not
requested); request fields come from the entity frame's columns. The views then run through
:func:`~featurestore.transformations.run.run_transformation` on record batches streamed from
DuckDB: the row-independence check done at apply makes any batching give the same values as
one online request per entity (DESIGN G2).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from featurestore.definitions import FeatureRef
from featurestore.dtypes import to_arrow
from featurestore.errors import EntityFrameError, MissingDependencyError
from featurestore.transformations.graph import plan_on_demand
from featurestore.transformations.run import run_transformation

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from featurestore.offline.engine import EntityInput, OfflineEngine
    from featurestore.offline.training_frame import TrainingFrame
    from featurestore.repo.registry import ViewRecord
    from featurestore.transformations.decorator import OnDemandFeatureView
    from featurestore.transformations.graph import OnDemandPlan

__all__ = ["OnDemandTrainingFrame", "on_demand_training_frame"]

logger = logging.getLogger(__name__)

_HIDDEN = "__fs_input__{view}__{feature}"
DEFAULT_BATCH_ROWS = 131_072


def on_demand_training_frame(
    engine: OfflineEngine,
    entity_df: EntityInput,
    refs: list[FeatureRef],
    output_names: Mapping[FeatureRef, str],
    *,
    feature_views: Mapping[str, ViewRecord],
    on_demand_views: Mapping[str, OnDemandFeatureView],
    timestamp_column: str,
    point_in_time: Literal["event", "available"],
) -> OnDemandTrainingFrame:
    """A lazy training frame carrying stored and on-demand features.

    Args:
        engine: The offline engine (runs the point-in-time join).
        entity_df: The entity frame; it must hold every request field the views read.
        refs: The requested refs, in output order (stored and on-demand).
        output_names: The output column of each requested ref.
        feature_views: The applied feature views by name.
        on_demand_views: The on-demand views (loaded from the repo, fingerprints checked).
        timestamp_column: The entity frame's timestamp column.
        point_in_time: ``"event"`` or ``"available"``.

    Raises:
        EntityFrameError: A request field or join key is missing from the entity frame, or an
            output column clashes with an entity column (checked before any work).
    """
    plan = plan_on_demand(refs, on_demand_views)
    columns_of: dict[FeatureRef, str] = {
        r: output_names[r] for r in refs if r.view not in on_demand_views
    }
    for ref in plan.stored:
        columns_of.setdefault(ref, _HIDDEN.format(view=ref.view, feature=ref.feature))
    by_view: dict[str, list[str]] = {}
    for ref in columns_of:
        by_view.setdefault(ref.view, []).append(ref.feature)
    base = engine.training_frame(
        entity_df,
        [(feature_views[v], fs) for v, fs in by_view.items()],
        output_names=columns_of,
        timestamp_column=timestamp_column,
        point_in_time=point_in_time,
    )
    joined = set(columns_of.values())
    entity_columns = [c for c in base.columns if c not in joined]
    missing = [f.name for f in plan.request_fields if f.name not in entity_columns]
    if missing:
        needs = {
            v.name
            for v in plan.views
            for f in v.request_sources
            for x in f.schema
            if x.name in missing
        }
        msg = (
            f"The entity frame has no column {', '.join(repr(m) for m in missing)}, a request "
            f"field of on-demand feature view(s) {', '.join(sorted(needs))}. Add the column to "
            "the entity frame (offline, request fields come from entity frame columns)."
        )
        raise EntityFrameError(msg)
    outputs = {r: output_names[r] for r in refs if r.view in on_demand_views}
    taken = set(base.columns)
    for ref, name in outputs.items():
        if name in taken:
            msg = (
                f"Output column '{name}' (feature '{ref}') clashes with another column of the "
                "training frame. Rename the entity frame's column or pass "
                "full_feature_names=True."
            )
            raise EntityFrameError(msg)
    return OnDemandTrainingFrame(
        base,
        plan,
        entity_columns=entity_columns,
        columns_of=columns_of,
        outputs=outputs,
        final=[*entity_columns, *(output_names[r] for r in refs)],
    )


class OnDemandTrainingFrame:
    """A training frame whose on-demand features are computed batch by batch on output.

    Same API as :class:`~featurestore.offline.training_frame.TrainingFrame`; nothing runs until
    a ``to_*`` method or :meth:`record_batches` is called. Hidden input columns (stored
    features that on-demand views read but that were not requested) are dropped.
    """

    def __init__(
        self,
        base: TrainingFrame,
        plan: OnDemandPlan,
        *,
        entity_columns: list[str],
        columns_of: dict[FeatureRef, str],
        outputs: dict[FeatureRef, str],
        final: list[str],
    ) -> None:
        self._base = base
        self._plan = plan
        self._columns_of = columns_of
        self._outputs = outputs
        self._entity_columns = entity_columns
        self.columns = final
        """The output column names, in order."""
        dtypes = {FeatureRef(v.name, f.name): f.dtype for v in plan.views for f in v.schema}
        self._output_types = {name: to_arrow(dtypes[ref]) for ref, name in outputs.items()}
        needed = [f.name for f in plan.request_fields]
        needed += [columns_of[r] for r in plan.stored]
        self._needed = list(dict.fromkeys(needed))

    @property
    def sql(self) -> str:
        """The SQL of the point-in-time join that feeds the on-demand views."""
        return self._base.sql

    def _outputs_for(
        self, data: pa.Table | pa.RecordBatch
    ) -> dict[str, pa.Array | pa.ChunkedArray]:
        """Run every on-demand view on ``data``'s rows; the requested outputs as Arrow."""
        frame = pl.from_arrow(data.select(self._needed))
        assert isinstance(frame, pl.DataFrame)
        produced: dict[FeatureRef, pl.Series] = {}
        for view in self._plan.views:
            inputs = []
            for item in self._plan.inputs[view.name]:
                if item.kind == "request":
                    series = frame.get_column(item.column)
                elif item.kind == "feature":
                    assert item.ref is not None
                    series = frame.get_column(self._columns_of[item.ref])
                else:
                    assert item.ref is not None
                    series = produced[item.ref]
                inputs.append(series.alias(item.column))
            result = run_transformation(view, pl.DataFrame(inputs, height=frame.height))
            for name in view.feature_names:
                produced[FeatureRef(view.name, name)] = result.get_column(name)
        arrays: dict[str, pa.Array | pa.ChunkedArray] = {}
        for ref, name in self._outputs.items():
            array = produced[ref].to_arrow()
            arrays[name] = array.cast(self._output_types[name])
        return arrays

    def _finish(self, data: pa.Table | pa.RecordBatch) -> pa.Table | pa.RecordBatch:
        outputs = self._outputs_for(data)
        arrays = [outputs[c] if c in outputs else data.column(c) for c in self.columns]
        if isinstance(data, pa.Table):
            return pa.Table.from_arrays(arrays, names=self.columns)
        return pa.RecordBatch.from_arrays(arrays, names=self.columns)

    def to_arrow(self) -> pa.Table:
        """The whole frame as an Arrow table."""
        result = self._finish(self._base.to_arrow())
        assert isinstance(result, pa.Table)
        return result

    def to_polars(self) -> pl.DataFrame:
        """The whole frame as a polars DataFrame."""
        frame = pl.from_arrow(self.to_arrow())
        assert isinstance(frame, pl.DataFrame)
        return frame

    def to_pandas(self) -> Any:
        """The whole frame as a pandas DataFrame (needs the ``pandas`` extra)."""
        try:
            import pandas  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError(feature="TrainingFrame.to_pandas", extra="pandas") from exc
        return self.to_arrow().to_pandas()

    def record_batches(self, batch_size: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """Stream the frame as Arrow record batches of at most ``batch_size`` rows."""
        for batch in self._base.record_batches(batch_size):
            result = self._finish(batch)
            assert isinstance(result, pa.RecordBatch)
            yield result

    def _schema(self, first: pa.RecordBatch | None) -> pa.Schema:
        if first is not None:
            return first.schema
        empty = self._finish(self._base.to_arrow())
        return empty.schema

    def to_parquet(self, path: str | Path) -> Path:
        """Write the frame to one Parquet file, streaming batch by batch (bounded memory)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        batches = self.record_batches()
        first = next(batches, None)
        with pq.ParquetWriter(target, self._schema(first)) as writer:
            if first is not None:
                writer.write_batch(first)
            for batch in batches:
                writer.write_batch(batch)
        logger.info("wrote training frame to %s", target)
        return target

    def to_csv(self, path: str | Path) -> Path:
        """Write the frame to a CSV file with a header, streaming batch by batch."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        batches = self.record_batches()
        first = next(batches, None)
        with pacsv.CSVWriter(target, self._schema(first)) as writer:
            if first is not None:
                writer.write_batch(first)
            for batch in batches:
                writer.write_batch(batch)
        logger.info("wrote training frame to %s", target)
        return target

    def __repr__(self) -> str:
        return f"TrainingFrame(columns={self.columns!r})"
