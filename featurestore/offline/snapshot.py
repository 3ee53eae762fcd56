"""Snapshots: every entity's features as of one time ``T``, by the training rule (batch scoring).

A snapshot at ``T`` is the training frame (G1, the rule in :mod:`featurestore.offline.join`)
of entity rows that all have time ``T``: same columns, types, nulls and ttl rule. With a single
time there is nothing to join in time, so the plan is cheaper than any point-in-time join and
never a cross product: per view, the candidate window ``T - ttl <= event_timestamp <= T``
(:func:`featurestore.window.lower_bound_datetime`, both bounds bound parameters DuckDB pushes
into the Parquet scan) is a filter, and the newest candidate per key is a grouped arg-max by
the order "newer": the first row of each key's partition ordered newest first
(:func:`featurestore.ordering.newest_first_sql`, the components of ``order_key_sql``; a
window ``QUALIFY`` on them measured ~20 % less CPU than ``arg_max`` on the struct, see
``benchmarks/bench_snapshot.py``); the views' winners are then joined on the keys. An aggregation view (G7) is grouped the same way, each aggregate
over its own window ``start(T) <= event_timestamp <= T`` (:func:`featurestore.window.agg_start`,
the SQL of :func:`featurestore.offline.join.aggregation.aggregate_sql`); its keys are those
with an event in the widest window, and a key without one counts 0, as in training frames.

Which rows come back:

* ``keys=None``: one row per key tuple that has at least one candidate at ``T`` in any view
  read (requested, or read by a requested on-demand view), sorted by the keys. Every such view
  must have the same join keys (else there is no one entity key to list).
* ``keys`` given (a pandas/polars/Arrow frame or a DuckDB SQL query): one row per row of
  ``keys``, in order, duplicates kept, all its columns first; a key without a candidate gets
  nulls. Only views' rows with those keys are aggregated (a semi join).

Columns: the keys (or every column of ``keys``), the timestamp column holding ``T``, request
fields given as constants, then the features in request order. On-demand views run on the
result through the one executor (:func:`featurestore.offline.on_demand.on_demand_training_frame`).

:class:`SnapshotSpec` is the whole plan as one value; :func:`snapshot_query` is DuckDB's
implementation of it, the one function another offline engine would provide.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import duckdb
import pyarrow as pa

from featurestore._time import from_micros, to_micros
from featurestore.definitions import FeatureRef
from featurestore.errors import EntityFrameError, term
from featurestore.offline.entity_frame import (
    EntityFrame,
    feature_types,
    load_entity,
    to_arrow_table,
    validate_entity,
)
from featurestore.offline.join import EntityStats, JoinPlan, JoinSpec, ViewRequest
from featurestore.offline.join.aggregation import aggregate_sql
from featurestore.offline.join.query import key_match, values_struct
from featurestore.offline.join.spec import ROW_COL
from featurestore.offline.sql import (
    CREATED_TS,
    EVENT_TS,
    FILE_INDEX_COL,
    FILE_ROW_COL,
    Query,
    quote_ident,
)
from featurestore.offline.training_frame import TrainingFrame
from featurestore.ordering import newest_first_sql
from featurestore.types import to_arrow, to_duckdb
from featurestore.window import agg_start, lower_bound_datetime

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from featurestore.offline.engine import EntityInput, OfflineEngine
    from featurestore.offline.join import PointInTime
    from featurestore.offline.on_demand import OnDemandTrainingFrame
    from featurestore.repo.registry import ViewRecord
    from featurestore.transformations.decorator import OnDemandFeatureView
    from featurestore.types import DType

__all__ = ["RequestConstant", "SnapshotFrame", "SnapshotSpec", "snapshot", "snapshot_query"]

logger = logging.getLogger(__name__)


class RequestConstant(NamedTuple):
    """A request field given one value for every row of a snapshot."""

    name: str
    value: object
    dtype: DType


@dataclass(frozen=True)
class SnapshotSpec:
    """One snapshot, as an engine takes it.

    Attributes:
        as_of: The time ``T`` (aware UTC).
        join: The views, features and output columns, as for a training frame whose rows all
            have time ``as_of``. With ``all_keys``, ``join.entity`` is empty and
            ``join.entity_columns`` is the keys, the timestamp column and the constants.
        all_keys: The rows are every key with a candidate at ``as_of`` (``keys=None``).
        key_columns: The join keys; with ``all_keys``, every view's (the same set).
        constants: Request fields with one value for every row (columns after the keys'
            or the keys frame's own).
    """

    as_of: datetime
    join: JoinSpec
    all_keys: bool
    key_columns: list[str]
    constants: list[RequestConstant]


def _start(t: datetime, hop_us: int, window_us: int) -> datetime | None:
    """The first time in an aggregation window read at ``t``; None before year 1."""
    try:
        return from_micros(agg_start(to_micros(t), hop_us, window_us))
    except (OverflowError, ValueError):
        return None


def _per_key(spec: SnapshotSpec, request: ViewRequest) -> Query:
    """One view's values at ``as_of`` per key with a candidate: ``(keys..., __fs_vals)``.

    The newest candidate's features; for an aggregation view (G7), each aggregate over the
    key's events in its window ``start(T) <= event_timestamp <= T`` (keys with an event in
    the widest window).
    """
    view = request.record.view
    keys = ", ".join(f"s.{quote_ident(k)}" for k in view.join_keys)
    query = Query().add(f"SELECT {keys}, ")
    lower = lower_bound_datetime(spec.as_of, view.effective_ttl)
    if view.aggregations:
        by_name = {a.output_name: a for a in view.aggregations}
        values, starts = [], []
        for j, feature in enumerate(request.features):
            aggregation = by_name[feature]
            start = _start(spec.as_of, view.hop_us, aggregation.window_us)
            values.append(
                f"v{j} := {aggregate_sql(aggregation, 'TRUE' if start is None else f's.{EVENT_TS} >= ?')}"
            )
            starts += [] if start is None else [start]
        query.add(f"struct_pack({', '.join(values)}) AS __fs_vals FROM (", *starts)
        widest = max(a.window_us for a in view.aggregations)
        lower = _start(spec.as_of, view.hop_us, widest)
    else:
        query.add(f"{values_struct(request, 's.')} AS __fs_vals FROM (")
    query.extend(request.scan).add(") s")
    if not spec.all_keys:
        casts = ", ".join(
            f"CAST({quote_ident(k)} AS {to_duckdb(request.record.key_dtypes[k])}) AS "
            f"{quote_ident(k)}"
            for k in view.join_keys
        )
        present = " AND ".join(f"{quote_ident(k)} IS NOT NULL" for k in view.join_keys)
        query.add(
            f" SEMI JOIN (SELECT DISTINCT {casts} FROM __fs_entity WHERE {present}) e "
            f"ON {key_match(request, 's', 'e')}"
        )
    query.add(f" WHERE s.{EVENT_TS} <= ?", spec.as_of)
    if lower is not None:
        query.add(f" AND s.{EVENT_TS} >= ?", lower)
    if spec.join.point_in_time == "available":
        query.add(f" AND (s.{CREATED_TS} IS NULL OR s.{CREATED_TS} <= ?)", spec.as_of)
    if view.aggregations:
        return query.add(f" GROUP BY {keys}")
    newest_first = newest_first_sql(
        f"s.{EVENT_TS}", f"s.{CREATED_TS}", f"s.{FILE_INDEX_COL}", f"s.{FILE_ROW_COL}"
    )
    return query.add(
        f" QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {newest_first}) = 1"
    )


def snapshot_query(spec: SnapshotSpec) -> Query:
    """The snapshot in DuckDB SQL: the entity columns, then the features (module docstring)."""
    join = spec.join
    views = [f"__fs_v{i}" for i in range(len(join.requests))]
    parts = [] if spec.all_keys else [("__fs_entity", join.entity)]
    parts += [(v, _per_key(spec, r)) for v, r in zip(views, join.requests, strict=True)]
    query = Query().add("WITH ")
    for i, (name, part) in enumerate(parts):
        query.add(", " if i else "").add(f"{name} AS (").extend(part).add(")")
    constants = {c.name: c for c in spec.constants}
    features: dict[str, str] = {}
    for view, request in zip(views, join.requests, strict=True):
        counts = {a.output_name for a in request.record.view.aggregations if a.function == "count"}
        for j, (feature, out) in enumerate(
            zip(request.features, request.output_columns, strict=True)
        ):
            value = f"{view}.__fs_vals.v{j}"
            if feature in counts:  # no event in the window: 0 (a null key: null, as in training)
                value = f"coalesce({value}, 0)"
                if not spec.all_keys:
                    present = " AND ".join(
                        f"__fs_entity.{quote_ident(k)} IS NOT NULL"
                        for k in request.record.view.join_keys
                    )
                    value = f"CASE WHEN {present} THEN {value} END"
            features[out] = f"{value} AS {quote_ident(out)}"
    select: list[str] = []
    params: list[object] = []
    for column in join.entity_columns:
        if column in constants:
            constant = constants[column]
            select.append(f"CAST(? AS {to_duckdb(constant.dtype)}) AS {quote_ident(column)}")
            params.append(constant.value)
        elif not spec.all_keys:
            select.append(f"__fs_entity.{quote_ident(column)}")
        elif column == join.timestamp_column:
            select.append(f"CAST(? AS TIMESTAMPTZ) AS {quote_ident(column)}")
            params.append(spec.as_of)
        else:  # a key: from whichever view has it
            found = ", ".join(f"{v}.{quote_ident(column)}" for v in views)
            select.append(f"coalesce({found}) AS {quote_ident(column)}")
    select += [features[out] for out in join.feature_order]
    query.add(" SELECT " + ", ".join(select), *params)
    if spec.all_keys:
        query.add(f" FROM {views[0]}")
        for i in range(1, len(views)):
            seen = {
                k: ", ".join(f"{v}.{quote_ident(k)}" for v in views[:i]) for k in spec.key_columns
            }
            on = " AND ".join(
                f"{views[i]}.{quote_ident(k)} = coalesce({seen[k]})" for k in spec.key_columns
            )
            query.add(f" FULL JOIN {views[i]} ON {on}")
        query.add(" ORDER BY " + ", ".join(str(n + 1) for n in range(len(spec.key_columns))))
        return query
    query.add(" FROM __fs_entity")
    for view, request in zip(views, join.requests, strict=True):
        on = " AND ".join(
            f"CAST(__fs_entity.{quote_ident(k)} AS {to_duckdb(request.record.key_dtypes[k])})"
            f" = {view}.{quote_ident(k)}"
            for k in request.record.view.join_keys
        )
        query.add(f" LEFT JOIN {view} ON {on}")
    return query.add(f" ORDER BY __fs_entity.{ROW_COL}")


class SnapshotFrame(TrainingFrame):
    """Every entity's features as of one time: a :class:`TrainingFrame` whose rows share a time.

    The same ``to_*`` methods, computed lazily by DuckDB on each call; ``to_parquet`` streams.

    Example:
        >>> snap = store.get_snapshot("fraud_v1", as_of=t, request={"amount": 1.0})  # doctest: +SKIP
        >>> snap.to_parquet("scores_input.parquet")  # doctest: +SKIP
    """

    _noun = "snapshot"

    def __init__(
        self,
        cursor: duckdb.DuckDBPyConnection,
        spec: SnapshotSpec,
        *,
        types: dict[str, pa.DataType],
        keepalive: object = None,
    ) -> None:
        plan = JoinPlan("snapshot", spec.join, snapshot_query(spec))
        super().__init__(cursor, plan, feature_types=types, keepalive=keepalive)
        self.spec = spec
        """The snapshot's plan."""

    def describe(self) -> list[tuple[str, str]]:
        """What the snapshot will compute, without computing it."""
        spec = self.spec
        views = [
            f"{r.record.view.name} ({', '.join(r.features) or 'no features'})"
            for r in spec.join.requests
        ]
        rows = (
            "every key with a candidate row, sorted"
            if spec.all_keys
            else f"{spec.join.stats.rows:,} rows of keys, in order"
        )
        return [
            ("as of", spec.as_of.isoformat()),
            ("rows", rows),
            ("point in time", spec.join.point_in_time),
            ("plan", "newest candidate per key (window filter, arg-max by key), joined on keys"),
            ("views", "; ".join(views)),
            ("columns", ", ".join(self.columns)),
            ("computed", "on each to_* call (lazy)"),
        ]


def _keys_table(engine: OfflineEngine, keys: EntityInput) -> pa.Table:
    """``keys`` as an Arrow table: a DuckDB SQL query is run on the engine, a frame converted."""
    if not isinstance(keys, str):
        return to_arrow_table(keys)
    cursor = engine.cursor()
    try:
        return cursor.sql(keys).to_arrow_table()
    except duckdb.Error as exc:
        msg = (
            f"The keys SQL query failed: {exc}. Fix the query: {keys!r} (a keys string is "
            "DuckDB SQL; for a file, pass \"SELECT * FROM 'keys.parquet'\")."
        )
        raise EntityFrameError(msg) from exc
    finally:
        cursor.close()


def _frame(
    engine: OfflineEngine,
    requests: list[tuple[ViewRecord, list[str]]],
    output_names: dict[FeatureRef, str],
    *,
    as_of: datetime,
    keys: pa.Table | None,
    constants: list[RequestConstant],
    timestamp_column: str,
    point_in_time: PointInTime,
) -> SnapshotFrame:
    """The snapshot of stored features (on-demand views run on it afterwards)."""
    cursor = engine.cursor()
    try:
        fixed = [timestamp_column, *(c.name for c in constants)]
        if keys is None:
            key_columns = _shared_keys(requests)
            entity = EntityFrame(Query(), [*key_columns, *fixed], {}, EntityStats(0, as_of, as_of))
        else:
            stamp = pa.scalar(as_of, pa.timestamp("us", tz="UTC"))
            table = keys.append_column(timestamp_column, pa.repeat(stamp, keys.num_rows))
            entity = load_entity(cursor, table, timestamp_column)
            validate_entity(cursor, entity, requests)
            entity.columns = [*entity.columns, *(c.name for c in constants)]
            key_columns = list(
                dict.fromkeys(k for record, _ in requests for k in record.view.join_keys)
            )
        types = feature_types(entity, requests, output_names)
        view_requests = [
            ViewRequest(
                record=record,
                features=list(features),
                output_columns=[output_names[FeatureRef(record.view.name, f)] for f in features],
                scan=engine.scan(record, list(features)),  # the engine's one read path
                source_rows=0,
            )
            for record, features in requests
        ]
        spec = SnapshotSpec(
            as_of=as_of,
            join=JoinSpec(
                entity=entity.query,
                entity_columns=entity.columns,
                requests=view_requests,
                timestamp_column=timestamp_column,
                stats=entity.stats,
                point_in_time=point_in_time,
                feature_order=list(types),
            ),
            all_keys=keys is None,
            key_columns=key_columns,
            constants=constants,
        )
        conformed = {c.name: to_arrow(c.dtype) for c in constants}
        if keys is None:
            first = requests[0][0]
            conformed.update({k: to_arrow(first.key_dtypes[k]) for k in key_columns})
        frame = SnapshotFrame(
            cursor, spec, types={**conformed, **types}, keepalive=entity.keepalive
        )
    except BaseException:
        cursor.close()
        raise
    logger.debug("snapshot at %s: %d views", as_of.isoformat(), len(view_requests))
    return frame


def _shared_keys(requests: list[tuple[ViewRecord, list[str]]]) -> list[str]:
    """The join keys every view has (``keys=None`` needs one entity key to list)."""
    if not requests:
        msg = (
            "The requested on-demand views read no feature view, so a snapshot has no keys to "
            f"list. Pass {term('keys=<a frame or SQL query of keys>', cli='--keys FILE')}."
        )
        raise EntityFrameError(msg)
    first = requests[0][0].view
    for record, _ in requests[1:]:
        if set(record.view.join_keys) != set(first.join_keys):
            msg = (
                f"Feature views '{first.name}' ({', '.join(first.join_keys)}) and "
                f"'{record.view.name}' ({', '.join(record.view.join_keys)}) have different "
                "join keys, so a snapshot cannot list their entities by itself. Pass "
                f"{term('keys=<a frame or SQL query with the columns>', cli='--keys FILE')} "
                f"holding {', '.join(dict.fromkeys([*first.join_keys, *record.view.join_keys]))}."
            )
            raise EntityFrameError(msg)
    return list(first.join_keys)


def snapshot(
    engine: OfflineEngine,
    refs: list[FeatureRef],
    output_names: Mapping[FeatureRef, str],
    *,
    as_of: datetime,
    keys: EntityInput | None,
    request: Mapping[str, object],
    feature_views: Mapping[str, ViewRecord],
    on_demand_views: Mapping[str, OnDemandFeatureView],
    timestamp_column: str,
    point_in_time: PointInTime,
) -> SnapshotFrame | OnDemandTrainingFrame:
    """The snapshot of ``refs`` at ``as_of`` (module docstring); lazy.

    Args:
        engine: The offline engine.
        refs: The requested refs, in output order (stored and on-demand).
        output_names: The output column of each ref.
        as_of: The time ``T`` (aware UTC).
        keys: None (every key with a candidate), or a frame or DuckDB SQL query of keys.
        request: Request fields of the on-demand views, one value each for every row.
        feature_views: The applied feature views by name.
        on_demand_views: The on-demand views behind ``refs`` (empty when there are none).
        timestamp_column: The output column holding ``as_of``.
        point_in_time: ``"event"`` or ``"available"`` (also ``created_timestamp <= T``).

    Raises:
        EntityFrameError: ``keys`` lacks a join key or has a clashing column; views of
            different join keys without ``keys``; a request field neither given nor a
            column of ``keys``, or given but read by no view.
    """
    table = None if keys is None else _keys_table(engine, keys)
    constants = _constants(refs, on_demand_views, request, keys=table)
    if table is not None:
        _check_columns(table, [timestamp_column, *request])

    def join(
        requests: list[tuple[ViewRecord, list[str]]], names: dict[FeatureRef, str]
    ) -> SnapshotFrame:
        return _frame(
            engine,
            requests,
            names,
            as_of=as_of,
            keys=table,
            constants=constants,
            timestamp_column=timestamp_column,
            point_in_time=point_in_time,
        )

    if on_demand_views:
        from featurestore.offline.on_demand import on_demand_training_frame

        return on_demand_training_frame(
            engine,
            table,
            refs,
            output_names,
            feature_views=feature_views,
            on_demand_views=on_demand_views,
            timestamp_column=timestamp_column,
            point_in_time=point_in_time,
            join=join,
        )
    by_view: dict[str, list[str]] = {}
    for ref in refs:
        by_view.setdefault(ref.view, []).append(ref.feature)
    return join([(feature_views[v], fs) for v, fs in by_view.items()], dict(output_names))


def _check_columns(keys: pa.Table, fixed: list[str]) -> None:
    """Refuse a keys column the snapshot sets itself (the timestamp column, request values)."""
    taken = [c for c in fixed if c in keys.column_names]
    if not taken:
        return
    how = (
        f", or pass {term('timestamp_column=<another name>', cli='--timestamp-column NAME')}"
        if taken[0] == fixed[0]
        else f", or the value from {term('request=', cli='--request')}"
    )
    msg = (
        f"The keys frame has a column '{taken[0]}', which the snapshot sets (to as_of, or to "
        f"the request value). Drop the column from the keys{how}."
    )
    raise EntityFrameError(msg)


def _constants(
    refs: list[FeatureRef],
    on_demand_views: Mapping[str, OnDemandFeatureView],
    request: Mapping[str, object],
    *,
    keys: pa.Table | None,
) -> list[RequestConstant]:
    """The request values as typed constants, checked against what the views read."""
    fields: dict[str, DType] = {}
    if on_demand_views:
        from featurestore.transformations.graph import plan_on_demand

        plan = plan_on_demand(refs, on_demand_views)
        fields = {f.name: f.dtype for f in plan.request_fields}
    unknown = [name for name in request if name not in fields]
    if unknown:
        known = ", ".join(fields) or "none"
        msg = (
            f"'{unknown[0]}' is not a request field of the requested on-demand views "
            f"(request fields: {known}). Remove it from "
            f"{term('request=', cli='--request')}."
        )
        raise EntityFrameError(msg)
    constants: list[RequestConstant] = []
    for name, value in request.items():
        try:
            pa.array([value], to_arrow(fields[name]))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            msg = (
                f"Request field '{name}' is {fields[name]}, and {value!r} is not a value of "
                f"that type ({exc}). Pass a {fields[name]} value."
            )
            raise EntityFrameError(msg) from exc
        constants.append(RequestConstant(name, value, fields[name]))
    columns = set() if keys is None else set(keys.column_names)
    missing = [n for n in fields if n not in request and n not in columns]
    if missing:
        msg = (
            f"The on-demand views read request field '{missing[0]}'. Give it one value for "
            f"every row with {term(f'request={{{missing[0]!r}: ...}}', cli=f'--request {missing[0]}=VALUE')}"
            f", or a column '{missing[0]}' in {term('keys', cli='--keys')}."
        )
        raise EntityFrameError(msg)
    return constants
