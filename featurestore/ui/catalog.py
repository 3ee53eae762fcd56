"""What the catalog pages say about the applied definitions, from a registry snapshot.

Where each feature comes from, which services use it, and how fresh each view is: pure
functions, no I/O.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from featurestore.definitions.aggregation import window_label

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from featurestore.repo.registry import OnDemandRecord, RegistrySnapshot, ViewRecord

__all__ = [
    "FeatureInfo",
    "Freshness",
    "FreshnessState",
    "feature_infos",
    "freshness_of",
    "origin_of",
    "services_using",
    "view_kind",
]

FreshnessState = Literal["fresh", "stale", "never materialized", "offline only"]


def view_kind(record: ViewRecord) -> str:
    """``aggregation``, ``batch transform`` or ``feature view``."""
    if record.view.aggregations:
        return "aggregation"
    if record.transform is not None:
        return "batch transform"
    return "feature view"


def origin_of(record: ViewRecord, feature: str) -> str:
    """Where a feature view's feature comes from, in one line.

    A plain view's feature is a source column (renamed by ``field_mapping``); an aggregation
    view's is an aggregate of an event column over a window; a batch transform's is an output
    of the transform function run over the source.
    """
    view = record.view
    path = view.source.path
    for aggregation in view.aggregations:
        if aggregation.output_name == feature:
            column = aggregation.column or "events"
            return (
                f"{aggregation.function}({column}) over {window_label(aggregation.window)} "
                f"of {path}"
            )
    if record.transform is not None:
        return f"{record.transform.function_path} over {path}"
    column = next(
        (src for src, dst in view.source.field_mapping.items() if dst == feature), feature
    )
    return f"{path} column {column}"


def _on_demand_origin(record: OnDemandRecord) -> str:
    inputs = [f"{r.view}:{r.feature}" for r in record.view_inputs]
    inputs += [f"request.{f.name}" for f in record.request_fields]
    inputs += [f"{u} (on-demand)" for u in record.upstream]
    return f"{record.function_path}({', '.join(inputs)})"


def services_using(snapshot: RegistrySnapshot) -> dict[tuple[str, str], list[str]]:
    """(view, feature) -> the services that serve it.

    Each entry is ``svc``, or ``svc via odfv`` for an input of an on-demand view the service
    serves (through any chain of on-demand views).
    """
    consumers: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for record in snapshot.on_demand_views.values():
        for ref in record.view_inputs:
            consumers[record.name].append((ref.view, ref.feature))
        for upstream in record.upstream:
            inner = snapshot.on_demand_views.get(upstream)
            if inner is not None:
                consumers[record.name] += [(upstream, f) for f in inner.feature_names]
    used: dict[tuple[str, str], list[str]] = defaultdict(list)
    for service in sorted(snapshot.feature_services.values(), key=lambda s: s.name):
        seen: set[tuple[str, str]] = set()
        for ref in service.refs:
            key = (ref.view, ref.feature)
            if key not in seen:
                seen.add(key)
                used[key].append(service.name)
        todo = sorted({ref.view for ref in service.refs if ref.view in consumers})
        visited: set[str] = set()
        while todo:
            odfv = todo.pop()
            if odfv in visited:
                continue
            visited.add(odfv)
            for key in consumers[odfv]:
                if key not in seen:
                    seen.add(key)
                    used[key].append(f"{service.name} via {odfv}")
                if key[0] in consumers:
                    todo.append(key[0])
    return used


@dataclass(frozen=True, slots=True)
class FeatureInfo:
    """One feature of the catalog: its view, type, origin and the services that use it."""

    view: str
    name: str
    dtype: str
    description: str
    origin: str
    services: tuple[str, ...]
    on_demand: bool


def feature_infos(snapshot: RegistrySnapshot) -> list[FeatureInfo]:
    """Every feature of every feature view and on-demand view, by view then schema order."""
    used = services_using(snapshot)
    out = []
    for name, record in sorted(snapshot.feature_views.items()):
        out += [
            FeatureInfo(
                view=name,
                name=f.name,
                dtype=str(f.dtype),
                description=f.description,
                origin=origin_of(record, f.name),
                services=tuple(used.get((name, f.name), ())),
                on_demand=False,
            )
            for f in record.view.schema
        ]
    for name, odfv in sorted(snapshot.on_demand_views.items()):
        origin = _on_demand_origin(odfv)
        out += [
            FeatureInfo(
                view=name,
                name=f.name,
                dtype=str(f.dtype),
                description=f.description,
                origin=origin,
                services=tuple(used.get((name, f.name), ())),
                on_demand=True,
            )
            for f in odfv.schema
        ]
    return out


@dataclass(frozen=True, slots=True)
class Freshness:
    """How far a feature view's online values trail now.

    ``limit`` is the view's ttl, or for an aggregation view without one its longest window:
    once the lag passes it, every stored value is too old to serve (reads answer
    ``OUTSIDE_MAX_AGE``, or empty windows), and the view is ``stale``.
    """

    view: str
    watermark: datetime | None
    lag: timedelta | None
    limit: timedelta | None
    state: FreshnessState


def freshness_of(record: ViewRecord, now: datetime) -> Freshness:
    """The freshness of one applied view at ``now``."""
    view = record.view
    limit = view.effective_ttl
    if limit is None and view.aggregations:
        limit = max(a.window for a in view.aggregations)
    watermark = record.watermark
    lag = now - watermark if watermark is not None else None
    state: FreshnessState
    if not view.online:
        state = "offline only"
    elif lag is None:
        state = "never materialized"
    elif limit is not None and lag > limit:
        state = "stale"
    else:
        state = "fresh"
    return Freshness(view=view.name, watermark=watermark, lag=lag, limit=limit, state=state)
