"""The point-in-time join (G1) and the newest row per key (G3) as Spark DataFrames.

The rule is :mod:`featurestore.offline.join`'s, with the order "newer" of
:class:`featurestore.ordering.OrderKey` as the columns of :func:`newer_columns`:
``(event, created is not null, created, file rank, row)``, all ascending, none null.

* ``point_in_time="event"``: the entity rows are unioned into each view's rows and sorted by
  key and that order, an entity row placed after every source row of its time (the ASOF probe
  of :func:`featurestore.ordering.newest_probe_sql`); the newest source row before it is a
  running ``last`` over the sorted partition. ttl then keeps it only when
  ``event >= t - ttl``: the newest row with ``event <= t`` is the newest candidate when any is.
* ``point_in_time="available"``: the candidates also need ``created <= t`` (or a null
  created), which no single sort orders, so it is a join on the keys with the window as
  conditions, and the newest candidate per entity row by a window ``row_number``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurestore.offline.join.spec import ROW_COL
from featurestore.offline.sql import CREATED_TS, EVENT_TS, FILE_INDEX_COL, FILE_ROW_COL
from featurestore.window import ttl_micros

if TYPE_CHECKING:
    from datetime import datetime

    from pyspark.sql import Column, DataFrame

    from featurestore.definitions import FeatureView
    from featurestore.offline.join import PointInTime

__all__ = ["VALUES", "join_view", "latest_per_key", "newer_columns"]

VALUES = "__fs_v"
"""The struct column of a view's joined values: ``v0..vn`` (features), ``e`` (event time)."""
_T = "__fs_t"
_KIND = "__fs_kind"


def newer_columns(prefix: str = "") -> list[Column]:
    """The order "newer" as ascending, never-null sort columns (a null created is lowest)."""
    from pyspark.sql import functions as F

    created = F.col(prefix + CREATED_TS)
    return [
        F.col(prefix + EVENT_TS),
        created.isNotNull(),
        F.coalesce(created, F.lit(0).cast("TIMESTAMP")),
        F.col(prefix + FILE_INDEX_COL),
        F.col(prefix + FILE_ROW_COL),
    ]


def _values(features: list[str], prefix: str = "") -> Column:
    from pyspark.sql import functions as F

    fields = [F.col(f"{prefix}`{f}`").alias(f"v{j}") for j, f in enumerate(features)]
    return F.struct(*fields, F.col(prefix + EVENT_TS).alias("e"))


def join_view(
    entity: DataFrame,
    scan: DataFrame,
    view: FeatureView,
    features: list[str],
    *,
    point_in_time: PointInTime,
) -> DataFrame:
    """Per entity row (``__fs_row``, keys, ``__fs_t``), the newest candidate's values.

    Returns ``__fs_row`` and :data:`VALUES` (null where there is no candidate), one row per
    entity row.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    keys = list(view.join_keys)
    ttl = ttl_micros(view.ttl)
    if point_in_time == "event":
        rows = scan.select(
            *keys,
            *[c.alias(f"__fs_o{i}") for i, c in enumerate(newer_columns())],
            F.lit(0).alias(_KIND),
            F.lit(None).cast("BIGINT").alias(ROW_COL),
            _values(features).alias(VALUES),
        )
        probe = entity.select(
            *keys,
            F.col(_T).alias("__fs_o0"),
            F.lit(True).alias("__fs_o1"),  # after every source row of the same time
            F.col(_T).alias("__fs_o2"),
            F.lit(0).alias("__fs_o3"),
            F.lit(0).cast("BIGINT").alias("__fs_o4"),
            F.lit(1).alias(_KIND),
            F.col(ROW_COL),
            F.lit(None).cast(rows.schema[VALUES].dataType).alias(VALUES),
        )
        order = ["__fs_o0", _KIND, "__fs_o1", "__fs_o2", "__fs_o3", "__fs_o4"]
        window = (
            Window.partitionBy(*keys)
            .orderBy(*order)
            .rowsBetween(Window.unboundedPreceding, Window.currentRow)
        )
        newest = F.last(VALUES, ignorenulls=True).over(window)
        joined = (
            rows.unionByName(probe)
            .select(_KIND, ROW_COL, "__fs_o0", newest.alias(VALUES))
            .where(F.col(_KIND) == 1)
        )
        if ttl is not None:
            expired = F.unix_micros(F.col(f"{VALUES}.e")) < F.unix_micros("__fs_o0") - F.lit(ttl)
            joined = joined.withColumn(
                VALUES, F.when(expired, F.lit(None)).otherwise(F.col(VALUES))
            )
        return joined.select(ROW_COL, VALUES)
    # "available": candidates by a join; the newest per entity row.
    s = scan.alias("s")
    e = entity.select(ROW_COL, _T, *keys).alias("e")
    cond = [F.col(f"e.`{k}`") == F.col(f"s.`{k}`") for k in keys]
    cond.append(F.col(f"s.{EVENT_TS}") <= F.col(f"e.{_T}"))
    cond.append(F.col(f"s.{CREATED_TS}").isNull() | (F.col(f"s.{CREATED_TS}") <= F.col(f"e.{_T}")))
    if ttl is not None:
        cond.append(
            F.unix_micros(F.col(f"s.{EVENT_TS}")) >= F.unix_micros(F.col(f"e.{_T}")) - F.lit(ttl)
        )
    condition = cond[0]
    for c in cond[1:]:
        condition = condition & c
    candidates = e.join(s, condition, "inner").select(
        F.col(f"e.{ROW_COL}").alias(ROW_COL),
        *[c.alias(f"__fs_o{i}") for i, c in enumerate(newer_columns("s."))],
        _values(features, "s.").alias(VALUES),
    )
    rank = Window.partitionBy(ROW_COL).orderBy(*[F.col(f"__fs_o{i}").desc() for i in range(5)])
    return (
        candidates.withColumn("__fs_rank", F.row_number().over(rank))
        .where(F.col("__fs_rank") == 1)
        .select(ROW_COL, VALUES)
    )


def latest_per_key(scan: DataFrame, view: FeatureView, start: datetime, end: datetime) -> DataFrame:
    """Per join-key tuple with a row in ``[start, end)``, its newest row (the G3 rows).

    Columns: the join keys, the features, ``__fs_event_ts``, ``__fs_created_ts``.
    """
    from pyspark.sql import functions as F

    keys = list(view.join_keys)
    features = list(view.feature_names)
    window = scan.where((F.col(EVENT_TS) >= F.lit(start)) & (F.col(EVENT_TS) < F.lit(end)))
    order = F.struct(*[c.alias(f"o{i}") for i, c in enumerate(newer_columns())])
    values = F.struct(
        *[F.col(f"`{f}`").alias(f"v{j}") for j, f in enumerate(features)],
        F.col(EVENT_TS).alias("e"),
        F.col(CREATED_TS).alias("c"),
    )
    newest = window.groupBy(*keys).agg(F.max_by(values, order).alias(VALUES))
    return newest.select(
        *keys,
        *[F.col(f"{VALUES}.v{j}").alias(f) for j, f in enumerate(features)],
        F.col(f"{VALUES}.e").alias(EVENT_TS),
        F.col(f"{VALUES}.c").alias(CREATED_TS),
    )
