"""Training frames with on-demand features: the point-in-time frame, then the one executor.

The stored features an on-demand view reads are joined like any feature (hidden when not
requested); request fields come from the entity frame's columns. The views then run through
:func:`~featurestore.transformations.run.run_transformation` on record batches streamed from
DuckDB: the row-independence check done at apply makes any batching give the same values as
one online request per entity (G2 in docs/concepts.md, "Guarantees").

polars, the transformations and Arrow's CSV writer are imported where they are used: the store
imports this module for every training frame, and frames without on-demand views need none of
them.
"""

from __future__ import annotations

import logging
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from featurestore.definitions import FeatureRef
from featurestore.errors import EntityFrameError, SourceError
from featurestore.frames import arrow_to_pandas, arrow_to_polars, describe, describe_html
from featurestore.offline.sql import quote_ident
from featurestore.offline.training_frame import (
    BATCH_ROWS,
    computed_when,
    conform,
    parquet_writer,
)
from featurestore.types import Array, DType, to_arrow, to_polars

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from typing import Protocol

    import polars as pl

    from featurestore.definitions import FeatureView
    from featurestore.offline.base import Engine, Frame
    from featurestore.offline.engine import EntityInput, OfflineEngine
    from featurestore.repo.registry import ViewRecord
    from featurestore.transformations.check import RowIndependenceReport
    from featurestore.transformations.decorator import OnDemandFeatureView
    from featurestore.transformations.graph import OnDemandPlan
    from featurestore.validation.frame import FrameValidation

    class _BatchWriter(Protocol):
        """pyarrow's Parquet and CSV writers, as used here."""

        def __enter__(self) -> _BatchWriter: ...
        def __exit__(self, *exc: object) -> None: ...
        def write_batch(self, batch: pa.RecordBatch) -> None: ...


__all__ = [
    "OnDemandTrainingFrame",
    "check_on_demand_views",
    "on_demand_training_frame",
    "sample_inputs",
]

logger = logging.getLogger(__name__)

_HIDDEN = "__fs_input__{view}__{feature}"


def on_demand_training_frame(
    engine: Engine,
    entity_df: EntityInput | None,
    refs: list[FeatureRef],
    output_names: Mapping[FeatureRef, str],
    *,
    feature_views: Mapping[str, ViewRecord],
    on_demand_views: Mapping[str, OnDemandFeatureView],
    timestamp_column: str,
    point_in_time: Literal["event", "available"],
    event_columns: Mapping[str, str] | None = None,
    join: Callable[[list[tuple[ViewRecord, list[str]]], dict[FeatureRef, str]], Frame]
    | None = None,
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
        event_columns: Stored view name -> a column for its winning row's event timestamp
            (:meth:`OfflineEngine.training_frame`), last in the output.
        join: Builds the frame the views run on, from the views' features and their output
            columns, instead of the point-in-time join of ``entity_df`` (snapshots, where
            ``entity_df`` may be None).

    Raises:
        EntityFrameError: A request field or join key is missing from the entity frame, or an
            output column clashes with an entity column (checked before any work).
    """
    from featurestore.transformations.graph import plan_on_demand

    plan = plan_on_demand(refs, on_demand_views)
    columns_of: dict[FeatureRef, str] = {
        r: output_names[r] for r in refs if r.view not in on_demand_views
    }
    for ref in plan.stored:
        columns_of.setdefault(ref, _HIDDEN.format(view=ref.view, feature=ref.feature))
    by_view: dict[str, list[str]] = {}
    for ref in columns_of:
        by_view.setdefault(ref.view, []).append(ref.feature)
    requests = [(feature_views[v], fs) for v, fs in by_view.items()]
    if join is not None:
        base = join(requests, columns_of)
    else:
        assert entity_df is not None  # only a join builder goes without an entity frame
        base = engine.training_frame(
            entity_df,
            requests,
            output_names=columns_of,
            timestamp_column=timestamp_column,
            point_in_time=point_in_time,
            event_columns=event_columns,
        )
    events = [c for c in base.columns if c in (event_columns or {}).values()]
    joined = {*columns_of.values(), *events}
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
        final=[*entity_columns, *(output_names[r] for r in refs), *events],
    )


class OnDemandTrainingFrame:
    """A training frame whose on-demand features are computed batch by batch on output.

    Same API as :class:`~featurestore.offline.training_frame.TrainingFrame`; nothing runs until
    a ``to_*`` method or :meth:`record_batches` is called. Hidden input columns (stored
    features that on-demand views read but that were not requested) are dropped. A frame asked
    for with ``validate=True`` is computed once, checked, and held: see :attr:`validation`.
    """

    def __init__(
        self,
        base: Frame,
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
        self.validation: FrameValidation | None = None
        """The frame's stored feature columns checked against their views' expectations, when
        asked for (``get_training_frame(..., validate=True)``); else None."""
        self._held: pa.Table | None = None
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
        import polars as pl

        frame = pl.from_arrow(data.select(self._needed))
        assert isinstance(frame, pl.DataFrame)
        plan = self._plan
        request = {f.name: frame.get_column(f.name) for f in plan.request_fields}
        stored = {ref: frame.get_column(self._columns_of[ref]) for ref in plan.stored}
        produced = plan.run(request, stored, frame.height)
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

    def hold(self, table: pa.Table, validation: FrameValidation) -> None:
        """Keep ``table``, checked by ``validation``, as the frame's rows.

        Every ``to_*`` call then returns these rows (nothing is computed again), so what a
        model is trained on is what was checked. ``get_training_frame(..., validate=True)``
        calls it.
        """
        self._held = table
        self.validation = validation

    def to_arrow(self) -> pa.Table:
        """The whole frame as an Arrow table."""
        if self._held is not None:
            return self._held
        result = self._finish(self._base.to_arrow())
        assert isinstance(result, pa.Table)
        return result

    def to_polars(self) -> pl.DataFrame:
        """The whole frame as a polars DataFrame."""
        return arrow_to_polars(self.to_arrow())

    def to_pandas(self) -> Any:
        """The whole frame as a pandas DataFrame with nullable dtypes (``frames.arrow_to_pandas``).

        Needs the ``pandas`` extra.
        """
        return arrow_to_pandas(self.to_arrow(), what="OnDemandTrainingFrame.to_pandas")

    def record_batches(self, batch_size: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """Stream the frame as Arrow record batches of at most ``batch_size`` rows."""
        if self._held is not None:
            yield from self._held.to_batches(max_chunksize=batch_size)
            return
        for batch in self._base.record_batches(batch_size):
            result = self._finish(batch)
            assert isinstance(result, pa.RecordBatch)
            yield result

    def _schema(self, first: pa.RecordBatch | None) -> pa.Schema:
        if first is not None:
            return first.schema
        return self.to_arrow().schema

    def _write(
        self, path: str | Path, open_writer: Callable[[Path, pa.Schema], _BatchWriter]
    ) -> Path:
        """Stream the frame batch by batch into a writer (bounded memory)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        batches = self.record_batches()
        first = next(batches, None)
        with open_writer(target, self._schema(first)) as writer:
            if first is not None:
                writer.write_batch(first)
            for batch in batches:
                writer.write_batch(batch)
        logger.info("wrote training frame to %s", target)
        return target

    def to_parquet(self, path: str | Path) -> Path:
        """Write the frame to one Parquet file, streaming batch by batch (bounded memory)."""
        return self._write(path, parquet_writer)

    def to_csv(self, path: str | Path) -> Path:
        """Write the frame to a CSV file with a header, streaming batch by batch."""
        import pyarrow.csv as pacsv

        return self._write(path, pacsv.CSVWriter)

    def describe(self) -> list[tuple[str, str]]:
        """What the frame will compute, without computing it: the join, views and columns."""
        facts = self._base.describe()
        views = [f"{v.name} ({', '.join(v.feature_names)})" for v in self._plan.views]
        facts.insert(-2, ("on-demand views", "; ".join(views)))
        facts[-2] = ("columns", ", ".join(self.columns))
        facts[-1] = computed_when(self.validation)
        return facts

    def __repr__(self) -> str:
        return describe(type(self).__name__, self.describe())

    def _repr_html_(self) -> str:
        return describe_html(type(self).__name__, self.describe())


# -- skew-proofing at apply ---------------------------------------------------------------------


def _sample_aggregates(
    engine: OfflineEngine, view: FeatureView, features: list[str], rows: int, seed: int
) -> pa.Table:
    """Sample values of an aggregation view's features: each over a window of one sampled event.

    Such a window's sum, mean, min, max and last are the event's value, its count 1 (0 for
    a null value; a count of events is 1) and its stddev null: values the view really gives.
    """
    events = None
    if view.event_columns:
        events = _sample_view(engine, view.event_view(), list(view.event_columns), rows, seed)
    n = events.num_rows if events is not None else rows
    by_name = {a.output_name: a for a in view.aggregations}
    out: dict[str, pa.Array] = {}
    for name in features:
        a = by_name[name]
        if a.column is None or events is None:
            out[name] = pa.array([1] * n, pa.int64())
        elif a.function == "count":
            out[name] = pc.cast(events.column(a.column).is_valid(), pa.int64())
        elif a.function == "stddev":
            out[name] = pa.nulls(n, pa.float64())
        else:
            out[name] = events.column(a.column)
    return pa.table(out)


def _sample_view(
    engine: OfflineEngine, view: FeatureView, features: list[str], rows: int, seed: int
) -> pa.Table:
    """Up to ``rows`` random source rows of ``view``: its features, typed as declared."""
    if view.aggregations:
        return _sample_aggregates(engine, view, features, rows, seed)
    if view.transform is not None:  # the features exist only in the transform's output
        return engine.transformed.sample_features(view, features, rows=rows, seed=seed)
    origin = {dst: src for src, dst in view.source.field_mapping.items()}
    select = ", ".join(f"{quote_ident(origin.get(f, f))} AS {quote_ident(f)}" for f in features)
    cursor = engine.cursor()
    try:
        table = cursor.sql(
            f"SELECT {select} FROM read_parquet(?) "
            f"USING SAMPLE reservoir({int(rows)} ROWS) REPEATABLE ({int(seed)})",
            params=[engine.sources.pattern(view)],
        ).to_arrow_table()
    except duckdb.Error as exc:
        msg = f"Cannot sample the source of feature view '{view.name}': {exc}"
        raise SourceError(msg) from exc
    finally:
        cursor.close()
    dtypes = {f.name: f.dtype for f in view.schema}
    result = conform(table, {f: to_arrow(dtypes[f]) for f in features})
    assert isinstance(result, pa.Table)
    return result


def _random_values(dtype: DType, rows: int, rng: random.Random) -> list[Any]:
    """Seeded values of ``dtype`` with nulls and edge cases, for request fields."""
    name = str(dtype)

    def one() -> Any:
        if rng.random() < 0.15:
            return None
        if name in ("Int64", "Int32"):
            return rng.choice([0, 1, -1, rng.randint(-1000, 1000), rng.randint(0, 10**6)])
        if name in ("Float64", "Float32"):
            return rng.choice([0.0, 1.0, -2.5, rng.uniform(-1000, 1000), rng.uniform(0, 1)])
        if name == "String":
            return rng.choice(["", "a", "web", "pos", f"s{rng.randint(0, 99)}"])
        if name == "Bytes":
            return rng.randbytes(rng.randint(0, 4))
        if name == "Bool":
            return rng.random() < 0.5
        if name == "Timestamp":
            return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randint(0, 10**7))
        if isinstance(dtype, Array):
            return [_random_values(dtype.inner, 1, rng)[0] for _ in range(rng.randint(0, 3))]
        return None

    return [one() for _ in range(rows)]


def sample_inputs(
    engine: OfflineEngine,
    view: OnDemandFeatureView,
    feature_views: Mapping[str, FeatureView],
    on_demand_views: Mapping[str, OnDemandFeatureView],
    *,
    rows: int = 200,
    seed: int = 0,
) -> pl.DataFrame:
    """Input rows for ``view``: real source rows of its feature views, random request values.

    Stored features are sampled from each view's source (``USING SAMPLE``; rows of different
    views are paired by position, padded with nulls); request fields get seeded random values
    of their types, nulls included; upstream on-demand views run on the same sample first.
    """
    import polars as pl

    from featurestore.transformations.graph import plan_on_demand
    from featurestore.transformations.run import run_transformation

    plan = plan_on_demand(
        [FeatureRef(view.name, f) for f in view.feature_names],
        {**on_demand_views, view.name: view},
    )
    by_view: dict[str, list[str]] = {}
    for ref in plan.stored:
        by_view.setdefault(ref.view, []).append(ref.feature)
    samples = {
        name: _sample_view(engine, feature_views[name], features, rows, seed)
        for name, features in by_view.items()
    }
    height = max(t.num_rows for t in samples.values()) if samples else rows
    rng = random.Random(seed)
    request = {
        f.name: pl.Series(
            f.name, _random_values(f.dtype, height, rng), dtype=to_polars(f.dtype), strict=False
        )
        for f in plan.request_fields
    }
    stored: dict[FeatureRef, pl.Series] = {}
    for name, table in samples.items():
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        pad = pl.DataFrame(
            [
                pl.Series(c, [None] * (height - frame.height), dtype=t)
                for c, t in frame.schema.items()
            ]
        )
        frame = pl.concat([frame, pad])
        for column in frame.columns:
            stored[FeatureRef(name, column)] = frame.get_column(column)
    produced: dict[FeatureRef, pl.Series] = {}
    inputs: list[pl.Series] = []
    for odfv in plan.views:
        inputs = []
        for item in plan.inputs[odfv.name]:
            assert item.ref is not None or item.kind == "request"
            if item.kind == "request":
                series = request[item.column]
            elif item.kind == "feature":
                series = stored[item.ref]  # type: ignore[index]  # asserted above
            else:
                series = produced[item.ref]  # type: ignore[index]  # asserted above
            inputs.append(series.alias(item.column))
        if odfv.name != view.name:
            result = run_transformation(odfv, pl.DataFrame(inputs, height=height))
            for name in odfv.feature_names:
                produced[FeatureRef(odfv.name, name)] = result.get_column(name)
    return pl.DataFrame(inputs, height=height)


def check_on_demand_views(
    engine: OfflineEngine,
    feature_views: Mapping[str, FeatureView],
    on_demand_views: Mapping[str, OnDemandFeatureView],
    *,
    rows: int = 200,
    seed: int = 0,
) -> dict[str, RowIndependenceReport]:
    """Run each on-demand view on a sample whole and row by row (see ``transformations.check``).

    Feature views with a batch transform are checked the same way, on sampled source rows
    (reports keyed by view name, like the on-demand views'; names are unique across both).

    Raises:
        TransformationError: A function raised or returned wrong types on the sample.
        SourceError: A source could not be sampled.
    """
    from featurestore.transformations.check import check_row_independence

    reports = {
        name: check_row_independence(
            view,
            sample_inputs(engine, view, feature_views, on_demand_views, rows=rows, seed=seed),
        )
        for name, view in sorted(on_demand_views.items())
    }
    for name, fv in sorted(feature_views.items()):
        if fv.transform is not None:
            reports[name] = engine.transformed.check(fv, rows=rows, seed=seed)
    return dict(sorted(reports.items()))
