"""The skew report's replay: the feature log through the training path, cell by cell (G5).

The logged rows of a service are read in chunks of :data:`CHUNK_BYTES`. Each chunk becomes an
entity frame (join keys, request fields, the request time as the timestamp) and goes through
the training path itself (:meth:`OfflineEngine.training_frame`, and for on-demand views
:func:`~featurestore.offline.on_demand.on_demand_training_frame`, the one on-demand
executor), then each served value is compared with its training value.

A differing cell that is not ``stale_definition`` is ``not_materialized`` when the training
row of a view it comes from has ``event_timestamp >=`` that view's logged watermark ``W`` (or
the view had no watermark): the join returns each view's winning row's event timestamp
(``event_columns`` of :meth:`OfflineEngine.training_frame`), so the rule is applied exactly,
with no second join. A training row that was pushed (DESIGN G8: the view's push log) counts as
online from its push time instead: it was not online at ``T`` if pushed after ``T``, it was if
pushed online at or before ``T``, and a row pushed offline only is judged by the watermark
like a source row. A training row is taken to be a pushed row when the push log holds a row
with its keys and event timestamp (the newest push of it).
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from featurestore.consistency.log_schema import (
    EVENT,
    FINGERPRINT,
    KEY,
    REQUEST,
    REQUEST_ID,
    REQUEST_TIME,
    SERVICE,
    STATUS,
    VALUE,
    WATERMARK,
    stored_views_of,
)
from featurestore.consistency.report import Cause, FeatureSkew, SkewReport, SkewSample
from featurestore.errors import FeatureServiceNotFoundError, SkewError
from featurestore.offline.on_demand import on_demand_training_frame
from featurestore.online.base import FieldStatus
from featurestore.transformations.graph import plan_on_demand

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from datetime import datetime
    from pathlib import Path

    import pyarrow.parquet as pq

    from featurestore.definitions import FeatureRef
    from featurestore.offline.engine import OfflineEngine
    from featurestore.repo.registry import RegistrySnapshot
    from featurestore.transformations import OnDemandFeatureView

__all__ = ["CHUNK_BYTES", "skew_report"]

logger = logging.getLogger(__name__)

CHUNK_BYTES = 256 * 2**20
"""Logged rows replayed per training frame, by the size of what is read of them for every row
(keys, request times and fields, served values, in memory): about 1.5M rows of a service
of 2 views x 10 numeric features. A replay holds about one chunk, its training frame, and the
next chunk's keys. Each chunk costs a training frame's fixed work (planning, a pass over each
view's source in the in-memory join), so chunks are as large as this bound allows."""

_TIME = "fs_request_time"


def skew_report(
    offline: OfflineEngine,
    snapshot: RegistrySnapshot,
    service: str,
    *,
    root: Path,
    on_demand_views: Callable[[list[FeatureRef]], dict[str, OnDemandFeatureView]],
    since: datetime | None = None,
    until: datetime | None = None,
    samples: int = 20,
) -> SkewReport:
    """Replay ``service``'s log in ``[since, until)`` (see the module docstring).

    Raises:
        FeatureServiceNotFoundError: The service is not applied.
        SkewError: No log of the service is found.
    """
    definition = snapshot.feature_services.get(service)
    if definition is None:
        raise FeatureServiceNotFoundError(name=service, candidates=snapshot.feature_services)
    folder = root / f"service={service}"
    if not folder.is_dir():
        why = (
            "it has no logging=LoggingConfig(...)"
            if definition.logging is None
            else "no request was logged yet"
        )
        msg = (
            f"Feature service '{service}' has no feature log in {folder} ({why}). Set "
            f"logging=LoggingConfig(sample_rate=...) on it, run 'featurestore apply', serve "
            "traffic, then run the report."
        )
        raise SkewError(msg)
    report = SkewReport(service=service, since=since, until=until)
    replay = _Replay(offline, snapshot, definition.refs, on_demand_views, report)
    replay.report_samples = samples
    chunks = _chunks(_files(root, service, since, until), since, until, report)
    # A chunk's values are read while its training frame is computed, then the next chunk's
    # entity columns while it is compared (Parquet reads release the GIL).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="skew-read") as reader:
        upcoming = reader.submit(next, chunks, None)
        while (chunk := upcoming.result()) is not None:
            values = reader.submit(chunk.values)
            upcoming = reader.submit(next, chunks, None)
            replay.run(chunk, values)
    report.samples.sort(key=lambda s: (s.request_time, s.request_id, s.feature))
    del report.samples[samples:]
    return report


def _files(root: Path, service: str, since: datetime | None, until: datetime | None) -> list[Path]:
    found = []
    for folder in sorted((root / f"service={service}").glob("date=*")):
        day = folder.name.removeprefix("date=")
        if since is not None and day < since.date().isoformat():
            continue
        if until is not None and day > until.date().isoformat():
            continue
        found.extend(sorted(folder.glob("part-*.parquet")))
    return found


_Part = Literal["entity", "values", "details"]


def _part(name: str) -> _Part | None:
    """Which read a log column belongs to (None: never read).

    ``entity``: what the entity frame needs (request time, keys, request fields), read first;
    ``values``: the served values, read while the chunk's training frame is computed;
    ``details``: what only classifies and shows differing cells (statuses, fingerprints,
    watermarks, event timestamps, the request id), read only for chunks that have some.
    """
    if name == REQUEST_TIME or name.startswith((KEY, REQUEST)):
        return "entity"
    if name.startswith(VALUE):
        return "values"
    return None if name == SERVICE else "details"


def _open(path: Path, part: _Part) -> pq.ParquetFile:
    """A log file to read one :func:`_part` of.

    A ParquetFile, not read_table: that would import pyarrow.dataset (and pandas), ~0.8 s once
    per process. Repeated strings (statuses, fingerprints, request ids) stay
    dictionary-encoded: read that way, they load about 8x faster than as plain strings.
    """
    import pyarrow.parquet as pq

    if part != "details":
        return pq.ParquetFile(path)
    names = pq.read_schema(path).names
    coded = [n for n in names if n == REQUEST_ID or n.startswith((STATUS, FINGERPRINT))]
    return pq.ParquetFile(path, read_dictionary=coded)


def _read(
    file: pq.ParquetFile, since: datetime | None, until: datetime | None, part: _Part
) -> pa.Table:
    """One log file's rows in the window: the columns of one :func:`_part`."""
    wanted = [n for n in file.schema_arrow.names if _part(n) == part]
    window = since is not None or until is not None
    filtered = window and REQUEST_TIME not in wanted
    table = file.read(columns=[*wanted, REQUEST_TIME] if filtered else wanted, use_threads=True)
    if window:
        times = table.column(REQUEST_TIME)
        keep = pa.scalar(True)
        if since is not None:
            keep = pc.and_(keep, pc.greater_equal(times, pa.scalar(since)))
        if until is not None:
            keep = pc.and_(keep, pc.less(times, pa.scalar(until)))
        table = table.filter(keep)
    return table.drop_columns([REQUEST_TIME]) if filtered else table


def _value_bytes(file: pq.ParquetFile) -> int:
    """About the memory a log file's entity columns and values take once read.

    Fixed-width columns by their width (and validity bits); others by their uncompressed size
    in the file.
    """
    meta = file.metadata
    stored: dict[str, int] = {}
    for group in (meta.row_group(i) for i in range(meta.num_row_groups)):
        for column in (group.column(j) for j in range(group.num_columns)):
            name = column.path_in_schema.split(".")[0]
            stored[name] = stored.get(name, 0) + column.total_uncompressed_size
    total = 0
    for field in file.schema_arrow:
        if _part(field.name) in ("entity", "values"):
            try:
                total += meta.num_rows * (field.type.bit_width + 1) // 8
            except ValueError:  # not fixed-width
                total += stored.get(field.name, 0)
    return total


class _Chunk:
    """Logged rows of some files of one schema: their entity columns, the rest on demand."""

    def __init__(
        self,
        table: pa.Table,
        schema: pa.Schema,
        paths: list[Path],
        since: datetime | None,
        until: datetime | None,
    ) -> None:
        self.table = table
        self.columns = schema.names
        """Every column of the chunk's files."""
        self._paths = paths
        self._window = (since, until)
        self._details: pl.DataFrame | None = None

    def _read(self, part: _Part) -> pa.Table:
        return pa.concat_tables([_read(_open(p, part), *self._window, part) for p in self._paths])

    def values(self) -> pa.Table:
        """The chunk's served values (``value:`` columns), row for row."""
        return self._read("values")

    def details(self) -> pl.DataFrame:
        """The chunk's ``details`` columns (:func:`_part`), row for row."""
        if self._details is None:
            self._details = _polars(self._read("details"))
        return self._details


def _chunks(
    files: list[Path], since: datetime | None, until: datetime | None, report: SkewReport
) -> Iterator[_Chunk]:
    """Logged rows in the window, files of one schema together, about CHUNK_BYTES a chunk."""
    pending: list[pa.Table] = []
    paths: list[Path] = []
    schema: pa.Schema | None = None
    size = 0
    for path in files:
        file = _open(path, "entity")
        table = _read(file, since, until, "entity")
        report.files += 1
        if pending and (not file.schema_arrow.equals(schema) or size >= CHUNK_BYTES):
            yield _Chunk(pa.concat_tables(pending), schema, paths, since, until)
            pending, paths, size = [], [], 0
        if table.num_rows:
            pending.append(table)
            paths.append(path)
            schema = file.schema_arrow
            size += _value_bytes(file)
    if pending:
        assert schema is not None  # the schema of the pending files
        yield _Chunk(pa.concat_tables(pending), schema, paths, since, until)


class _ViewState(NamedTuple):
    """One stored view's facts per row of a chunk, shared by every feature that reads it."""

    late: pl.Series
    """The training row was not online yet (:meth:`_Replay._behind`, pushes judged apart)."""
    stale: pl.Series
    """The logged fingerprint is not the applied one (null where none was logged)."""
    never: pl.Series
    """Late, and the view had no watermark (nothing was materialized)."""
    lag_s: pl.Series
    """Request time minus the logged watermark, in seconds, where late (else null)."""


class _Replay:
    """Replays chunks of one service's log into one report."""

    def __init__(
        self,
        offline: OfflineEngine,
        snapshot: RegistrySnapshot,
        refs: tuple[FeatureRef, ...],
        on_demand_views: Callable[[list[FeatureRef]], dict[str, OnDemandFeatureView]],
        report: SkewReport,
    ) -> None:
        self.offline = offline
        self.snapshot = snapshot
        self.refs = refs
        self.report = report
        self.depends = {r: stored_views_of(snapshot, r) for r in refs}
        odfv_refs = [r for r in refs if r.view in snapshot.on_demand_views]
        self.on_demand = on_demand_views(odfv_refs) if odfv_refs else {}
        self._push_cache: dict[str, pl.DataFrame | None] = {}
        self.tolerant = {r for r in refs if _inexact(snapshot, r, self.depends[r])}
        """Features compared within :data:`REL_TOLERANCE` (float aggregates, DESIGN G7)."""
        self.inputs: dict[str, list[str]] = {}
        """Per stored view, the features whose values decide whether it was behind."""
        for ref in refs:
            report.features[str(ref)] = FeatureSkew(str(ref))
            if ref.view in snapshot.feature_views:
                self.inputs.setdefault(ref.view, []).append(ref.feature)
        if self.on_demand:
            for ref in plan_on_demand(odfv_refs, self.on_demand).stored:
                features = self.inputs.setdefault(ref.view, [])
                if ref.feature not in features:
                    features.append(ref.feature)

    def _training(
        self, entity: pa.Table, refs: list[FeatureRef], views: Sequence[str] = ()
    ) -> pl.DataFrame:
        """The training values of ``refs`` for ``entity``, columns named ``view__feature``.

        Also the event timestamp of each of ``views``' winning row, in ``_event_column(view)``.
        """
        names = {r: f"{r.view}__{r.feature}" for r in refs}
        events = {view: _event_column(view) for view in views} or None
        if any(r.view in self.on_demand for r in refs):
            table = on_demand_training_frame(
                self.offline,
                entity,
                refs,
                names,
                feature_views=self.snapshot.feature_views,
                on_demand_views=self.on_demand,
                timestamp_column=_TIME,
                point_in_time="event",
                event_columns=events,
            ).to_arrow()
        else:
            by_view: dict[str, list[str]] = {}
            for ref in refs:
                by_view.setdefault(ref.view, []).append(ref.feature)
            table = self.offline.training_frame(
                entity,
                [(self.snapshot.feature_views[v], fs) for v, fs in by_view.items()],
                output_names=names,
                timestamp_column=_TIME,
                point_in_time="event",
                event_columns=events,
            ).to_arrow()
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        return frame

    def run(self, chunk: _Chunk, values: Future[pa.Table]) -> None:
        """Replay one chunk; ``values`` gives its served values (read meanwhile)."""
        report = self.report
        log = chunk.table
        report.rows += log.num_rows
        refs = [r for r in self.refs if VALUE + str(r) in chunk.columns]
        for name in chunk.columns:
            feature = name.removeprefix(VALUE)
            if (
                name.startswith(VALUE)
                and feature not in report.features
                and feature not in report.skipped_features
            ):
                report.skipped_features.append(feature)
        # The log's own arrays, not copied (one chunk per file: measured as fast as one array).
        entity = pa.table(
            {
                **{
                    name.removeprefix(prefix): log.column(name)
                    for name in log.column_names
                    for prefix in (KEY, REQUEST)
                    if name.startswith(prefix)
                },
                _TIME: log.column(REQUEST_TIME),
            }
        )
        # Values only: a clean chunk (the common case) costs one training frame, no more.
        offline = self._training(entity, refs)
        served = values.result()
        differing = self._count(refs, served, offline)
        if not differing:
            return
        # The rows and features with a differing cell again, with the event times of the rows
        # their training values come from (what classifies a difference): the same join, so
        # the same values.
        rows = self._differing_rows(differing, served, offline)
        views = dict.fromkeys(v for r in differing for v in self.depends[r])
        offline = self._training(entity.filter(rows.to_arrow()), differing, list(views))
        online = pl.concat(
            [_polars(log), _polars(served), chunk.details()], how="horizontal"
        ).filter(rows)
        state = {view: self._view_state(view, online, offline) for view in views}
        for ref in differing:
            self._compare(ref, online, offline, state)

    def _count(
        self, refs: list[FeatureRef], values: pa.Table, offline: pl.DataFrame
    ) -> list[FeatureRef]:
        """Count every feature's cells; the features with a differing cell.

        A first polars ``select`` finds the features whose every cell is equal or null on both
        sides (``eq_missing``: the ``==`` that :func:`_distinct` starts from, so such a
        feature has no differing cell) with their null counts; a second counts the other
        features cell by cell. Each runs all its features side by side.
        """
        served = _polars(values.select([VALUE + str(r) for r in refs]))
        both = pl.concat(
            [served, offline.select([f"{r.view}__{r.feature}" for r in refs])], how="horizontal"
        )
        columns = {r: (pl.col(VALUE + str(r)), pl.col(f"{r.view}__{r.feature}")) for r in refs}
        same = both.select(
            [a.eq_missing(b).all().alias(f"{i}:same") for i, (a, b) in enumerate(columns.values())]
            + [a.null_count().alias(f"{i}:null") for i, (a, _) in enumerate(columns.values())]
        ).row(0, named=True)
        counts: dict[str, int] = {}
        sums: list[pl.Expr] = []
        for i, (ref, (a, b)) in enumerate(columns.items()):
            if same[f"{i}:same"]:
                nulls = int(same[f"{i}:null"])
                counts |= {f"{i}:both_null": nulls, f"{i}:equal": both.height - nulls}
                continue
            floats = (
                both.schema[VALUE + str(ref)].is_float()
                and both.schema[f"{ref.view}__{ref.feature}"].is_float()
            )
            differ = _distinct_expr(a, b, floats=floats, tolerant=ref in self.tolerant)
            a_null, b_null = a.is_null(), b.is_null()
            sums += [
                (a_null & b_null).sum().alias(f"{i}:both_null"),
                (a_null & ~b_null).sum().alias(f"{i}:null_online_only"),
                (~a_null & b_null).sum().alias(f"{i}:null_offline_only"),
                (differ & ~a_null & ~b_null).sum().alias(f"{i}:value_mismatches"),
                (~differ & ~a_null).sum().alias(f"{i}:equal"),
            ]
        if sums:
            counts |= both.select(sums).row(0, named=True)
        differing = []
        for i, ref in enumerate(refs):
            stats = self.report.features[str(ref)]
            stats.cells += both.height
            for name in ("both_null", "null_online_only", "null_offline_only",
                         "value_mismatches", "equal"):  # fmt: skip
                setattr(stats, name, getattr(stats, name) + int(counts.get(f"{i}:{name}", 0)))
            if sum(int(counts.get(f"{i}:{n}", 0)) for n in
                   ("null_online_only", "null_offline_only", "value_mismatches")):  # fmt: skip
                differing.append(ref)
        return differing

    def _differing_rows(
        self, refs: list[FeatureRef], values: pa.Table, offline: pl.DataFrame
    ) -> pl.Series:
        """Whether each row has a differing cell in one of ``refs``."""
        served = _polars(values.select([VALUE + str(r) for r in refs]))
        rows = pl.repeat(value=False, n=offline.height, eager=True)
        for ref in refs:
            rows = rows | _distinct(
                served.get_column(VALUE + str(ref)),
                offline.get_column(f"{ref.view}__{ref.feature}"),
                tolerant=ref in self.tolerant,
            )
        return rows

    def _behind(self, view: str, online: pl.DataFrame, offline: pl.DataFrame) -> pl.Series:
        """Whether the training row of ``view`` was not online yet (DESIGN G5).

        It was not when its event timestamp is at or past the logged watermark, or when the
        view had no watermark (nothing was materialized).
        """
        event = offline.get_column(_event_column(view))
        watermark = online.get_column(WATERMARK + view)
        late = event.is_not_null() & (watermark.is_null() | (event >= watermark))
        return late.fill_null(value=False)

    def _pushes(self, view: str) -> pl.DataFrame | None:
        """The view's pushed rows: keys, event time, push time, pushed online (None if none).

        One row per (keys, event time): the newest push of it. Read once per replay.
        """
        if view not in self._push_cache:
            self._push_cache[view] = _read_pushes(self.offline, self.snapshot, view)
        return self._push_cache[view]

    def _view_state(self, view: str, online: pl.DataFrame, offline: pl.DataFrame) -> _ViewState:
        """What decides the cause of a differing cell, per row, for one stored view."""
        late = self._behind(view, online, offline)
        pushes = self._pushes(view)
        if pushes is not None:
            late = _push_aware(view, late, pushes, online, offline)
        record = self.snapshot.feature_views.get(view)
        frame = pl.DataFrame(
            {
                "late": late,
                "time": online.get_column(REQUEST_TIME),
                "watermark": online.get_column(WATERMARK + view),
                "fingerprint": online.get_column(FINGERPRINT + view),
            }
        )
        lag_s = (pl.col("time") - pl.col("watermark")).dt.total_microseconds() / 1e6
        has_watermark = pl.col("watermark").is_not_null()
        return _ViewState(
            *frame.select(
                pl.col("late"),
                (pl.col("fingerprint") != ("" if record is None else record.fingerprint)).alias(
                    "stale"
                ),
                (pl.col("late") & ~has_watermark).alias("never"),
                pl.when(pl.col("late") & has_watermark).then(lag_s).alias("lag_s"),
            ).get_columns()
        )

    def _compare(
        self,
        ref: FeatureRef,
        online: pl.DataFrame,
        offline: pl.DataFrame,
        state: dict[str, _ViewState],
    ) -> None:
        stats = self.report.features[str(ref)]
        served = online.get_column(VALUE + str(ref))
        trained = offline.get_column(f"{ref.view}__{ref.feature}")
        differ = _distinct(served, trained, tolerant=ref in self.tolerant)
        value_diff = differ & served.is_not_null() & trained.is_not_null()
        if served.dtype.is_numeric() and value_diff.any():
            a = served.filter(value_diff).cast(pl.Float64)
            b = trained.filter(value_diff).cast(pl.Float64)
            abs_err = (a - b).abs()
            stats.add_error(_max(abs_err), _max(abs_err / b.abs().clip(lower_bound=1e-300)))
        views = [state[view] for view in self.depends[ref]]
        stale = online.get_column(STATUS + str(ref)) == FieldStatus.STALE_DEFINITION.value
        late = pl.repeat(value=False, n=len(served), eager=True)
        never = late
        for view in views:
            stale = stale | view.stale
            late = late | view.late
            never = never | view.never
        stale = stale.fill_null(value=False)
        lag_s = (
            pl.DataFrame([v.lag_s.alias(str(i)) for i, v in enumerate(views)])
            .select(pl.max_horizontal(pl.all()))
            .to_series()
            if views
            else pl.repeat(None, n=len(served), dtype=pl.Float64, eager=True)
        )
        is_stale = differ & stale
        is_late = differ & ~stale & late
        is_mismatch = differ & ~stale & ~late
        stats.causes["stale_definition"] += int(is_stale.sum())
        stats.causes["not_materialized"] += int(is_late.sum())
        stats.causes["mismatch"] += int(is_mismatch.sum())
        self.report.lag.add(lag_s.filter(is_late & lag_s.is_not_null()).to_numpy())
        self.report.lag.never_materialized += int((is_late & never).sum())
        self._samples(ref, online, offline, differ, is_stale, is_late)

    def _samples(
        self,
        ref: FeatureRef,
        online: pl.DataFrame,
        offline: pl.DataFrame,
        differ: pl.Series,
        is_stale: pl.Series,
        is_late: pl.Series,
    ) -> None:
        keys = [c for c in online.columns if c.startswith(KEY)]
        trained = offline.get_column(f"{ref.view}__{ref.feature}")
        events = online.get_column(EVENT + str(ref))
        # The training row's event time: the newest of the rows the value comes from.
        winners = offline.select(
            pl.max_horizontal(*(_event_column(v) for v in self.depends[ref]))
        ).to_series()
        for i in differ.arg_true().head(self.report_samples).to_list():
            cause: Cause = (
                "stale_definition" if is_stale[i] else "not_materialized" if is_late[i] else
                "mismatch"
            )  # fmt: skip
            self.report.samples.append(
                SkewSample(
                    request_id=online[REQUEST_ID][i],
                    request_time=online[REQUEST_TIME][i],
                    keys={k.removeprefix(KEY): online[k][i] for k in keys},
                    feature=str(ref),
                    cause=cause,
                    online_value=_python(online[VALUE + str(ref)][i]),
                    offline_value=_python(trained[i]),
                    online_status=online[STATUS + str(ref)][i],
                    online_event_timestamp=events[i],
                    offline_event_timestamp=winners[i],
                )
            )

    report_samples = 20


_PUSHED_AT = "__fs_push_time"
_PUSHED_ONLINE = "__fs_push_online"


def _read_pushes(
    offline: OfflineEngine, snapshot: RegistrySnapshot, view: str
) -> pl.DataFrame | None:
    """A view's push log as (join keys, event column, push time, pushed online), or None."""
    from featurestore.offline.push_log import PUSH_ONLINE_COLUMN, PUSH_TIME_COLUMN

    record = snapshot.feature_views[view]
    source = record.view.source
    renamed = {dst: src for src, dst in getattr(source, "field_mapping", {}).items()}
    keys = {renamed.get(k, k): k for k in record.view.join_keys}
    timestamp = renamed.get(source.timestamp_field, source.timestamp_field)
    table = offline.sources.push_log.read(
        view, [*keys, timestamp, PUSH_TIME_COLUMN, PUSH_ONLINE_COLUMN]
    )
    if table is None or not table.num_rows:
        return None
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    utc = pl.Datetime("us", "UTC")
    return (
        frame.rename({**keys, PUSH_TIME_COLUMN: _PUSHED_AT, PUSH_ONLINE_COLUMN: _PUSHED_ONLINE})
        .with_columns(
            _utc(pl.col(timestamp)).alias(_event_column(view)),
            _utc(pl.col(_PUSHED_AT)).cast(utc),
        )
        .select([*keys.values(), _event_column(view), _PUSHED_AT, _PUSHED_ONLINE])
        .unique(subset=[*keys.values(), _event_column(view)], keep="last", maintain_order=True)
    )


def _utc(column: pl.Expr) -> pl.Expr:
    """A timestamp column as UTC microseconds (a naive one means UTC)."""
    return column.dt.replace_time_zone(None).dt.replace_time_zone("UTC").dt.cast_time_unit("us")


def _push_aware(
    view: str, late: pl.Series, pushes: pl.DataFrame, online: pl.DataFrame, offline: pl.DataFrame
) -> pl.Series:
    """``late`` with pushed training rows judged by their push time (module docstring)."""
    event = _event_column(view)
    keys = [c for c in pushes.columns if c not in (event, _PUSHED_AT, _PUSHED_ONLINE)]
    rows = pl.DataFrame(
        {
            **{k: online.get_column(KEY + k).cast(pushes.schema[k]) for k in keys},
            event: offline.get_column(event).cast(pushes.schema[event]),
            "__fs_t": online.get_column(REQUEST_TIME),
            "__fs_late": late,
        }
    ).with_row_index("__fs_i")
    joined = rows.join(pushes, on=[*keys, event], how="left").sort("__fs_i")
    return joined.select(
        pl.when(pl.col(_PUSHED_AT).is_null())
        .then(pl.col("__fs_late"))
        .when(pl.col(_PUSHED_AT) > pl.col("__fs_t"))
        .then(True)
        .when(pl.col(_PUSHED_ONLINE).fill_null(value=False))
        .then(False)
        .otherwise(pl.col("__fs_late"))
    ).to_series()


def _event_column(view: str) -> str:
    """The replay's column for the event timestamp of ``view``'s winning training row."""
    return f"__fs_event__{view}"


REL_TOLERANCE = 1e-9
"""Float sums, means and standard deviations of aggregation views (and on-demand features
computed from them) agree within this relative error online and offline (DESIGN G7: tiles
are summed in another order than the events); a smaller difference is equal."""


def _inexact(snapshot: RegistrySnapshot, ref: FeatureRef, views: tuple[str, ...]) -> bool:
    """Whether ``ref`` is compared within :data:`REL_TOLERANCE`."""
    record = snapshot.feature_views.get(ref.view)
    if record is not None:
        return any(
            a.output_name == ref.feature and a.function in ("sum", "mean", "stddev")
            for a in record.view.aggregations
        )
    return any(snapshot.feature_views[v].view.aggregations for v in views)


def _distinct_expr(a: pl.Expr, b: pl.Expr, *, floats: bool, tolerant: bool = False) -> pl.Expr:
    """:func:`_distinct` as a polars expression."""
    same = (a == b).fill_null(value=False)
    if floats:
        same = same | (a.is_nan() & b.is_nan()).fill_null(value=False)
        if tolerant:
            close = (a - b).abs() <= REL_TOLERANCE * pl.max_horizontal(a.abs(), b.abs())
            same = same | close.fill_null(value=False)
    return (a.is_null() ^ b.is_null()) | (a.is_not_null() & b.is_not_null() & ~same)


def _distinct(a: pl.Series, b: pl.Series, *, tolerant: bool = False) -> pl.Series:
    """Cell-wise "not the same value": nulls equal nulls, NaN equals NaN (the same float).

    With ``tolerant``, floats within :data:`REL_TOLERANCE` of each other are the same.
    """
    floats = a.dtype.is_float() and b.dtype.is_float()
    frame = pl.DataFrame({"a": a, "b": b})
    expr = _distinct_expr(pl.col("a"), pl.col("b"), floats=floats, tolerant=tolerant)
    return frame.select(expr).to_series()


def _polars(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _max(series: pl.Series) -> float | None:
    value = series.max()
    return float(value) if isinstance(value, int | float) else None


def _python(value: Any) -> Any:
    if isinstance(value, pl.Series):
        return value.to_list()
    return value
