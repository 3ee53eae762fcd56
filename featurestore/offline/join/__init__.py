"""The point-in-time join that produces training frames (G1 in docs/concepts.md), written once.

The rule
--------
Let an entity row have join keys ``K`` and timestamp ``t`` (UTC, microseconds), and let feature
view ``V`` have ttl ``L`` (``None`` or zero means unlimited). The *candidates* for the row are
V's source rows ``r`` with

* ``r.keys == K`` (every join key equal; a null key on either side never matches),
* ``t - L <= r.event_timestamp <= t`` (both bounds inclusive; no lower bound when ``L`` is
  unlimited): the candidate window, :func:`featurestore.window.in_window`,
* with ``point_in_time="available"`` also ``r.created_timestamp <= t``. A row whose created
  timestamp is null has an unknown creation time and is treated as available (consistent with
  null being the *lowest* created timestamp in the order below).

The *newest* candidate supplies **all** of the requested features of V; no candidate (or a null
key / null ``t`` in the entity row) gives nulls. "Newest" is the one total order "newer" of
docs/concepts.md ("Guarantees"), :class:`featurestore.ordering.OrderKey`: ``(event_timestamp,
created_timestamp with null lowest, file path, row number within the file)``, largest wins.
Source rows with a null event timestamp or a null join key are never candidates.

Every entity row is returned exactly once, in input order (duplicates included), with all of
its columns, followed by the feature columns in request order. A view requested with an
``event_column`` (:class:`~featurestore.offline.join.spec.ViewRequest`) also returns the newest
candidate's event timestamp there (null where there is none), taken from the same row as its
features.

Three strategies compute the same result
----------------------------------------
Each is a module of this package; :mod:`~featurestore.offline.join.planner` picks one by size
(and falls back when the in-memory one cannot pack a view), all take one
:class:`~featurestore.offline.join.spec.JoinSpec`:

* :mod:`~featurestore.offline.join.range` (small entity frames): prune, join on keys with the
  window as inequality conditions, keep the newest per entity row.
* :mod:`~featurestore.offline.join.asof` (large frames, ``"event"`` only): DuckDB's ASOF JOIN
  on the whole order key.
* :mod:`~featurestore.offline.join.arrays` (large frames that fit in memory): packed ``int64``
  keys with numpy, also for ``"available"``.

``tests/oracle.py`` states the rule again as a brute-force loop, and the property tests run it
against every strategy.
"""

from __future__ import annotations

from featurestore.offline.join.planner import JoinPlan, choose_strategy, plan_join
from featurestore.offline.join.spec import (
    ROW_COL,
    EntityStats,
    JoinSpec,
    JoinStrategy,
    PointInTime,
    ViewRequest,
)

__all__ = [
    "ROW_COL",
    "EntityStats",
    "JoinPlan",
    "JoinSpec",
    "JoinStrategy",
    "PointInTime",
    "ViewRequest",
    "choose_strategy",
    "plan_join",
]
