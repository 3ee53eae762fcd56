"""Registry snapshots: the applied views, on-demand views and services, with fingerprints.

A snapshot is what readers (training frames, materialization, serving) work from; it is
written and read by :mod:`featurestore.repo.registry`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from featurestore.definitions import (
    Entity,
    FeatureRef,
    FeatureService,
    FeatureView,
    Field,
    ParquetSource,
)
from featurestore.errors import (
    DefinitionError,
    FeatureNotFoundError,
    FeatureServiceNotFoundError,
    FeatureViewNotFoundError,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import datetime

    from featurestore.transformations import OnDemandFeatureView
    from featurestore.types import DType


@dataclass(frozen=True)
class ViewRecord:
    """A feature view as applied: its definition, key types, fingerprint and watermark."""

    view: FeatureView
    key_dtypes: dict[str, DType]
    fingerprint: str
    watermark: datetime | None = None
    """Rows with ``event_timestamp < watermark`` are materialized (None = never)."""
    transform: TransformRecord | None = None
    """Where the view's batch transform lives and its source fingerprint (None = no transform).
    The function itself is not stored: readers load it from the repo (``view.transform`` is
    None in a snapshot read from disk) and check it against ``fingerprint``."""
    epoch: str | None = None
    """The online store epoch the watermark was recorded under (``featurestore.online.epoch``):
    None when never materialized, or materialized before epochs existed."""


@dataclass(frozen=True)
class TransformRecord:
    """A feature view's batch transform as applied: import location and source fingerprint."""

    function_path: str
    fingerprint: str


def transform_record(view: FeatureView, *, origin: str) -> TransformRecord | None:
    """The registry record of ``view``'s transform (defined in repo file ``origin``), if any."""
    fingerprint = _transform_fingerprint(view)
    if fingerprint is None or view.transform is None:
        return None
    name = getattr(view.transform, "__qualname__", repr(view.transform))
    return TransformRecord(function_path=f"{origin}:{name}", fingerprint=fingerprint)


def _transform_fingerprint(view: FeatureView) -> str | None:
    """The view's transform fingerprint, or None (``transform_fingerprint``).

    The transformation modules are imported only for a view that carries its transform; a view
    read from the registry carries none, so reading a registry imports none of them.
    """
    if view.transform is None:
        return None
    from featurestore.transformations.batch import transform_fingerprint

    return transform_fingerprint(view)


@dataclass(frozen=True)
class OnDemandRecord:
    """An on-demand feature view as applied.

    The function itself is not stored (never a pickle): ``function_path`` says where it lives in
    the repo, and ``fingerprint`` lets a reader check that the code it loaded is the applied one.
    """

    name: str
    schema: tuple[Field, ...]
    view_inputs: tuple[FeatureRef, ...]
    request_fields: tuple[Field, ...]
    upstream: tuple[str, ...]
    mode: str
    fingerprint: str
    function_path: str
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The names of the computed features, in schema order."""
        return tuple(f.name for f in self.schema)


def on_demand_record(view: OnDemandFeatureView, *, origin: str) -> OnDemandRecord:
    """The registry record of an on-demand feature view defined in repo file ``origin``."""
    return OnDemandRecord(
        name=view.name,
        schema=view.schema,
        view_inputs=view.view_inputs,
        request_fields=tuple(f for s in view.request_sources for f in s.schema),
        upstream=tuple(u.name for u in view.upstream),
        mode=view.mode,
        fingerprint=view.fingerprint,
        function_path=f"{origin}:{view.function.__qualname__}",
        description=view.description,
        owner=view.owner,
        tags=view.tags,
    )


@dataclass(frozen=True)
class RegistrySnapshot:
    """The registry's contents at one serial."""

    project: str
    serial: int = 0
    applied_at: datetime | None = None
    entities: dict[str, Entity] = field(default_factory=dict)
    feature_views: dict[str, ViewRecord] = field(default_factory=dict)
    feature_services: dict[str, FeatureService] = field(default_factory=dict)
    on_demand_views: dict[str, OnDemandRecord] = field(default_factory=dict)

    def feature_names_of(self, view: str) -> tuple[str, ...] | None:
        """The features of a feature view or on-demand view, None when no view has that name."""
        record = self.feature_views.get(view)
        if record is not None:
            return record.view.feature_names
        odfv = self.on_demand_views.get(view)
        return odfv.feature_names if odfv is not None else None

    def entity_key_dtypes(self, entity: str) -> dict[str, DType]:
        """The inferred types of an entity's join keys (from any view that uses it)."""
        for record in self.feature_views.values():
            if any(e.name == entity for e in record.view.entities):
                keys = self.entities[entity].join_keys
                return {k: record.key_dtypes[k] for k in keys}
        return {}


@dataclass(frozen=True, slots=True)
class KeyTypeConflict:
    """A join key typed ``first_dtype`` in view ``first`` but ``dtype`` in view ``view``."""

    key: str
    first: str
    first_dtype: DType
    view: str
    dtype: DType


def key_type_conflict(
    views: Iterable[FeatureView], key_dtypes: Mapping[str, Mapping[str, DType]]
) -> KeyTypeConflict | None:
    """The first join key with different types in two of ``views``, or None.

    A join key has one type in every view that uses it (entity rows are typed per key).
    """
    seen: dict[str, tuple[str, DType]] = {}
    for view in views:
        for key in view.join_keys:
            dtype = key_dtypes[view.name][key]
            if key in seen and seen[key][1] != dtype:
                return KeyTypeConflict(key, *seen[key], view.name, dtype)
            seen.setdefault(key, (view.name, dtype))
    return None


def source_identity(source: ParquetSource) -> dict[str, Any]:
    """What identifies a source in fingerprints and in the registry file."""
    return {
        "path": source.path,
        "timestamp_field": source.timestamp_field,
        "created_timestamp_field": source.created_timestamp_field,
        "field_mapping": dict(sorted(source.field_mapping.items())),
    }


def view_fingerprint(
    view: FeatureView, key_dtypes: Mapping[str, DType], *, applied: TransformRecord | None = None
) -> str:
    """Hash of everything that determines a view's stored values.

    Covers the schema, the join keys and their types, the source's identity, an aggregation
    view's aggregations and hop, and the batch transform's source code (with the same-module helpers it calls). The ttl, description,
    owner, tags and online flag are not covered: they change how values are served or shown,
    not what is stored. A repo definition carries its transform; a view read back from the
    registry file has none, and ``applied`` (its transform record) stands in for it.
    """
    payload: dict[str, Any] = {
        "schema": [[f.name, str(f.dtype)] for f in view.schema],
        "join_keys": [[k, str(key_dtypes.get(k))] for k in view.join_keys],
        "source": source_identity(view.source),
    }
    if view.aggregations:  # absent key: plain views keep their fingerprint
        payload["aggregations"] = [
            [a.output_name, a.column, a.function, a.window_us] for a in view.aggregations
        ]
        payload["hop_us"] = view.hop_us
    transform = _transform_fingerprint(view)
    if transform is None and applied is not None:
        transform = applied.fingerprint
    if transform is not None:  # absent key: views without a transform keep their fingerprint
        payload["transform"] = transform
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return digest[:16]


def resolve_refs(snapshot: RegistrySnapshot, features: str | list[str]) -> list[FeatureRef]:
    """Turn a service name or a list of ``"view:feature"`` refs into checked refs.

    Duplicate refs are dropped (first one kept), so every output column appears once.

    Raises:
        FeatureServiceNotFoundError: ``features`` names no known service.
        FeatureViewNotFoundError: A ref names an unknown view.
        FeatureNotFoundError: A ref names a feature its view lacks.
    """
    if isinstance(features, str):
        if ":" in features:
            features = [features]
        else:
            service = snapshot.feature_services.get(features)
            if service is None:
                raise FeatureServiceNotFoundError(
                    name=features, candidates=snapshot.feature_services
                )
            return list(service.refs)
    if not features:
        msg = "No features requested: pass 'view:feature' refs or a feature service name."
        raise DefinitionError(msg)
    refs: list[FeatureRef] = []
    for text in features:
        if ":" not in text and text in snapshot.feature_services:
            refs.extend(snapshot.feature_services[text].refs)
            continue
        ref = FeatureRef.parse(text)
        names = snapshot.feature_names_of(ref.view)
        if names is None:
            raise FeatureViewNotFoundError(
                name=ref.view, candidates=[*snapshot.feature_views, *snapshot.on_demand_views]
            )
        if ref.feature not in names:
            raise FeatureNotFoundError(view=ref.view, name=ref.feature, candidates=names)
        refs.append(ref)
    return list(dict.fromkeys(refs))
