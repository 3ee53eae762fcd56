"""Aggregation views (DESIGN G7) on Spark: training-frame aggregates and materialization tiles.

The twin of :mod:`featurestore.offline.join.aggregation`, under the same rule
(:func:`featurestore.window.agg_start`): an event at ``e`` is in the window of width ``w``
read at ``t`` when ``floor(t, hop) - w <= e <= t``.

* :func:`aggregation_join`: the entity rows are joined to the view's events on the keys with
  the widest window as inequality conditions (Spark runs it as a sort-merge join on the keys
  with a range filter: no cross product of entity rows and events), then grouped by entity
  row with one filtered aggregate per window (``when(in window, value)``, since every
  aggregate skips nulls as a ``FILTER`` does). A left join keeps entity rows without events:
  count 0, the others null. ``last`` is ``max_by`` of the one total order
  (:func:`~featurestore.offline.spark.join.newer_columns`).
* :func:`spark_tiles`: per (key, tile) partial aggregates, the columns and order of
  :func:`~featurestore.offline.join.aggregation.tiles_query`.

Times are compared as microseconds since the epoch (``unix_micros``), as DuckDB's form does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurestore._time import to_micros
from featurestore.definitions.aggregation import tile_parts
from featurestore.offline.join.aggregation import TILE_TIME
from featurestore.offline.join.spec import ROW_COL
from featurestore.offline.spark.join import VALUES, newer_columns
from featurestore.offline.sql import CREATED_TS, EVENT_TS
from featurestore.types import to_arrow
from featurestore.window import MAX_TTL_US

if TYPE_CHECKING:
    from datetime import datetime

    import pyarrow as pa
    from pyspark.sql import Column, DataFrame

    from featurestore.definitions import Aggregation, FeatureView
    from featurestore.offline.join import PointInTime
    from featurestore.types import DType

__all__ = ["agg_start_column", "aggregation_join", "spark_tiles", "tile_types"]

_T = "__fs_t"
_US = "__fs_us"


def agg_start_column(t_us: Column, hop_us: int, window_us: int) -> Column:
    """:func:`featurestore.window.agg_start` on a Spark ``BIGINT`` column of microseconds.

    ``pmod`` floors like Python's ``%`` for a positive hop. Sizes above
    :data:`~featurestore.window.MAX_TTL_US` (~146,000 years) are capped there: that changes
    no answer for times a timestamp can hold, and keeps the arithmetic inside ``BIGINT``.
    """
    from pyspark.sql import functions as F

    hop = F.lit(min(hop_us, MAX_TTL_US)).cast("BIGINT")
    t = t_us.cast("BIGINT")
    return t - F.pmod(t, hop) - F.lit(min(window_us, MAX_TTL_US)).cast("BIGINT")


def _aggregate(aggregation: Aggregation, inside: Column) -> Column:
    """One aggregate over the joined events for which ``inside`` holds."""
    from pyspark.sql import functions as F

    if aggregation.column is None:
        return F.count(F.when(inside, F.lit(1)))
    column = F.col(f"s.`{aggregation.column}`")
    if aggregation.function == "last":
        order = F.struct(*[c.alias(f"o{i}") for i, c in enumerate(newer_columns("s."))])
        return F.max_by(column, F.when(inside & column.isNotNull(), order))
    function = {
        "count": F.count,
        "sum": F.sum,
        "mean": F.avg,
        "min": F.min,
        "max": F.max,
        "stddev": F.stddev_samp,
    }[aggregation.function]
    return function(F.when(inside, column))


def aggregation_join(
    entity: DataFrame,
    scan: DataFrame,
    view: FeatureView,
    features: list[str],
    *,
    point_in_time: PointInTime,
    time_range: tuple[datetime, datetime] | None = None,
) -> DataFrame:
    """Per entity row (``__fs_row``, keys, ``__fs_t``), the aggregates of ``features``.

    ``scan`` is the view's events (:meth:`FeatureView.event_view` columns). ``time_range``
    (the entity frame's earliest and latest time, when known) prunes the events first.
    Returns ``__fs_row`` and :data:`~featurestore.offline.spark.join.VALUES`: ``v0..vn``
    (the features) and ``e`` (the newest event time of the widest window, what online reads
    report). Entity rows with a null key or time get no row (their values are null).
    """
    from pyspark.sql import functions as F

    keys = list(view.join_keys)
    hop = view.hop_us
    by_name = {a.output_name: a for a in view.aggregations}
    wanted = [by_name[f] for f in features]
    windows = sorted({a.window_us for a in view.aggregations})
    widest = windows[-1]
    t_us = F.unix_micros(F.col(_T))
    matchable = F.col(_T).isNotNull()
    for key in keys:
        matchable = matchable & F.col(f"`{key}`").isNotNull()
    e = entity.where(matchable).select(
        ROW_COL,
        *[F.col(f"`{k}`") for k in keys],
        t_us.alias(_US),
        *[agg_start_column(t_us, hop, w).alias(f"__fs_start{w}") for w in windows],
    )
    events = scan.withColumn(_US, F.unix_micros(F.col(EVENT_TS)))
    if time_range is not None:
        lo, hi = (to_micros(x) for x in time_range)
        events = events.where(
            (F.col(_US) <= F.lit(hi)) & (F.col(_US) >= agg_start_column(F.lit(lo), hop, widest))
        )
    e, s = e.alias("e"), events.alias("s")
    condition = F.col(f"s.{_US}") <= F.col(f"e.{_US}")
    condition &= F.col(f"s.{_US}") >= F.col(f"e.__fs_start{widest}")
    for key in keys:
        condition &= F.col(f"e.`{key}`") == F.col(f"s.`{key}`")
    if point_in_time == "available":
        created = F.col(f"s.{CREATED_TS}")
        condition &= created.isNull() | (F.unix_micros(created) <= F.col(f"e.{_US}"))
    values = [
        _aggregate(a, F.col(f"s.{_US}") >= F.col(f"e.__fs_start{a.window_us}")).alias(f"v{j}")
        for j, a in enumerate(wanted)
    ]
    values.append(F.max(F.col(f"s.{EVENT_TS}")).alias("e"))
    # Grouping by the keys too lets Spark aggregate the join's key partitions in place.
    grouped = e.join(s, condition, "left").groupBy(
        F.col(f"e.{ROW_COL}"), *[F.col(f"e.`{k}`") for k in keys]
    )
    return grouped.agg(F.struct(*values).alias(VALUES)).select(ROW_COL, VALUES)


def spark_tiles(
    scan: DataFrame, view: FeatureView, lo: datetime, hi: datetime, *, wanted: DataFrame | None
) -> DataFrame:
    """Per (key, tile) partial aggregates of the events with ``lo <= event < hi`` (G7 tiles).

    The columns, values and order of
    :func:`~featurestore.offline.join.aggregation.tiles_query`: the join keys,
    ``__fs_tile`` (the tile's start, microseconds), ``__fs_n``, ``__fs_max``, then each
    aggregated column's parts (non-null count, sum, sum of squared deviations, min, max,
    newest non-null value), sorted by keys then tile. ``wanted`` (join keys and
    ``__fs_tile``) keeps only those tiles.
    """
    from pyspark.sql import functions as F

    keys = [f"`{k}`" for k in view.join_keys]
    hop = view.hop_us
    us = F.unix_micros(F.col(EVENT_TS))
    events = scan.where((F.col(EVENT_TS) >= F.lit(lo)) & (F.col(EVENT_TS) < F.lit(hi)))
    events = events.withColumn(_US, us).withColumn(TILE_TIME, us - F.pmod(us, F.lit(hop)))
    if wanted is not None:
        events = events.join(wanted, [*view.join_keys, TILE_TIME], "left_semi")
    order = F.struct(*[c.alias(f"o{i}") for i, c in enumerate(newer_columns())])
    parts = [F.count(F.lit(1)).alias("__fs_n"), F.max(_US).alias("__fs_max")]
    for i, (name, kept) in enumerate(tile_parts(view.aggregations)):
        c = F.col(f"`{name}`")
        part = {
            "count": F.count(c),
            "sum": F.sum(c),
            "m2": F.var_pop(c) * F.count(c),
            "min": F.min(c),
            "max": F.max(c),
            "last": F.max_by(c, F.when(c.isNotNull(), order)),
        }
        parts += [part[p].alias(f"__fs_c{i}_{p}") for p in kept]
    return events.groupBy(*keys, TILE_TIME).agg(*parts).orderBy(*keys, TILE_TIME)


def tile_types(view: FeatureView, key_dtypes: dict[str, DType]) -> dict[str, pa.DataType]:
    """The Arrow type of each column of :func:`spark_tiles`, as DuckDB's tiles query types it."""
    import pyarrow as pa

    types = {k: to_arrow(key_dtypes[k]) for k in view.join_keys}
    types.update({TILE_TIME: pa.int64(), "__fs_n": pa.int64(), "__fs_max": pa.int64()})
    for i, (_, kept) in enumerate(tile_parts(view.aggregations)):
        for part in kept:
            types[f"__fs_c{i}_{part}"] = pa.int64() if part == "count" else pa.float64()
    return types
