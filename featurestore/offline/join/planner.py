"""The one place a training-frame join strategy is picked, planned, and fallen back from.

``"auto"`` picks ``range`` when the frame has at most :data:`RANGE_MAX_ENTITY_ROWS` rows; else
``arrays`` when its memory estimate fits (:data:`ARRAYS_MEMORY_FRACTION`) and the frame has
more than :data:`ARRAYS_MIN_ENTITY_FRACTION` of the largest source's rows; else ``range`` up
to :data:`RANGE_MAX_ENTITY_FRACTION` of them; else ``asof`` (``range`` for
``point_in_time="available"``, which the ASOF JOIN cannot compute). See
``benchmarks/README.md`` for the measurements behind the numbers.

``arrays`` falls back to SQL (``asof``, or ``range`` for ``"available"``) when a view's keys
and times do not pack into 62 bits. Its module (numpy, polars) is imported only for frames
large enough to consider it, so a small frame's process never loads polars.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from featurestore.offline.join.aggregation import aggregation_join
from featurestore.offline.join.asof import asof_join
from featurestore.offline.join.query import training_query
from featurestore.offline.join.range import range_join

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from featurestore.offline.join.spec import (
        EntityStats,
        JoinSpec,
        JoinStrategy,
        PointInTime,
        ViewRequest,
    )
    from featurestore.offline.sql import Query

__all__ = [
    "ARRAYS_MEMORY_FRACTION",
    "ARRAYS_MIN_ENTITY_FRACTION",
    "RANGE_MAX_ENTITY_FRACTION",
    "RANGE_MAX_ENTITY_ROWS",
    "JoinPlan",
    "choose_strategy",
    "needs_source_rows",
    "plan_join",
]

logger = logging.getLogger(__name__)

RANGE_MAX_ENTITY_ROWS = 10_000
"""``auto`` always uses the range join up to this many entity rows (cheap whatever the source)."""
RANGE_MAX_ENTITY_FRACTION = 0.05
"""... and, when the ``arrays`` join does not fit in memory, also while the frame has at most
this fraction of the largest source's row count (the crossover with the ASOF JOIN).

Measured on 2 x 5M-row sources (100k / 50k keys, 90 days, ttl 30 d), seconds range vs asof:
10k entity rows 1.5 vs 7.8; 100k 4.0 vs 16.6; 300k 10.1 vs 16.2; 1M 55 vs 8.0 (commit e6d3498;
again at commit 01205a4: 0.67 vs 4.23, 1.53 vs 3.33, 3.38 vs 4.03, 10.75 vs 8.25). The range
join costs about entity rows x source rows per key, the ASOF JOIN a sort of the whole source,
so the crossover scales with the source size: ~6% of it here; 5% keeps a margin.
"""
ARRAYS_MIN_ENTITY_FRACTION = 0.01
"""``auto`` prefers the ``arrays`` join (when it fits) over the range join above this fraction
of the largest source's row count.

The arrays join costs about one pass over each source whatever the frame's size. Same data,
commit 01205a4, seconds range vs arrays: 10k 0.67 vs 1.13; 100k 1.53 vs 1.12; 300k 3.38 vs
1.08; 1M 10.75 vs 2.98: the crossover is near 60k rows, 1.2% of the source.
"""
ARRAYS_MEMORY_FRACTION = 0.5
"""``auto`` uses the in-memory ``arrays`` strategy while its estimated peak memory stays below
this fraction of DuckDB's ``memory_limit`` (80 % of RAM unless configured); above, DuckDB's
ASOF JOIN, which spills to disk and streams ``to_parquet``."""

Chosen = Literal["asof", "range", "arrays", "snapshot"]
"""A planned strategy; ``"snapshot"`` is the single-time plan of :mod:`featurestore.offline.snapshot`."""


def needs_source_rows(entity_rows: int) -> bool:
    """Whether ``auto`` compares the frame with its sources' sizes (else: ``range``)."""
    return entity_rows > RANGE_MAX_ENTITY_ROWS


def choose_strategy(
    stats: EntityStats,
    requests: list[ViewRequest],
    *,
    point_in_time: PointInTime,
    strategy: JoinStrategy = "auto",
    arrays_fit: bool = False,
) -> Chosen:
    """The join strategy to use (module docstring).

    A forced ``asof`` is ``range`` for ``point_in_time="available"``.
    """
    if strategy != "auto":
        if strategy == "asof" and point_in_time == "available":
            return "range"
        return strategy
    largest = max((r.source_rows for r in requests), default=0)
    if not needs_source_rows(stats.rows):
        return "range"
    if arrays_fit and stats.rows > ARRAYS_MIN_ENTITY_FRACTION * largest:
        return "arrays"
    if stats.rows <= RANGE_MAX_ENTITY_FRACTION * largest:
        return "range"
    return "range" if point_in_time == "available" else "asof"


@dataclass(frozen=True)
class JoinPlan:
    """A planned join: the strategy, and the SQL that computes it (or is its fallback).

    Attributes:
        strategy: The chosen strategy.
        spec: The join.
        query: The SQL query of the join: the strategy itself for ``range`` and ``asof``,
            the fallback for ``arrays``.
    """

    strategy: Chosen
    spec: JoinSpec
    query: Query

    def compute(self, cursor: duckdb.DuckDBPyConnection) -> pa.Table | None:
        """The frame as Arrow from the ``arrays`` strategy, or None to run :attr:`query`.

        None for the SQL strategies, and when ``arrays`` falls back.

        Raises:
            SourceError: A source changed between the two scans of a view.
            duckdb.Error: A scan failed (the caller translates it).
        """
        if self.strategy != "arrays":
            return None
        from featurestore.offline.join.arrays import DoesNotFit, arrays_join

        try:
            return arrays_join(cursor, self.spec)
        except DoesNotFit as exc:
            logger.info("arrays strategy does not apply (%s); using DuckDB", exc)
            return None


def plan_join(
    cursor: duckdb.DuckDBPyConnection, spec: JoinSpec, strategy: JoinStrategy = "auto"
) -> JoinPlan:
    """Pick the strategy of ``spec`` (``strategy`` forces one) and plan it."""
    fits = False
    # The arrays join knows no aggregations (G7): a frame with one never estimates it (the
    # estimate imports polars, ~0.15 s).
    aggregating = any(r.record.view.aggregations for r in spec.requests)
    if strategy == "auto" and not aggregating and needs_source_rows(spec.stats.rows):
        from featurestore.offline.join.arrays import estimate_bytes, memory_limit_bytes

        limit = memory_limit_bytes(cursor)
        need = estimate_bytes(
            spec.stats.rows,
            len(spec.entity_columns),
            spec.requests,
            point_in_time=spec.point_in_time,
        )
        fits = limit is not None and need <= ARRAYS_MEMORY_FRACTION * limit
    chosen = choose_strategy(
        spec.stats,
        spec.requests,
        point_in_time=spec.point_in_time,
        strategy=strategy,
        arrays_fit=fits,
    )
    if chosen == "arrays" and aggregating:  # forced: the arrays join knows no aggregations
        chosen = "range" if spec.point_in_time == "available" else "asof"
    sql = chosen
    if sql == "arrays":
        sql = "range" if spec.point_in_time == "available" else "asof"
    plain = asof_join if sql == "asof" else range_join

    def view_join(spec: JoinSpec, request: ViewRequest) -> Query:
        if request.record.view.aggregations:
            return aggregation_join(spec, request)
        return plain(spec, request)

    query = training_query(spec, view_join, flat=lambda r: bool(r.record.view.aggregations))
    logger.debug("training frame: %d entity rows, strategy %s", spec.stats.rows, chosen)
    return JoinPlan(chosen, spec, query)
