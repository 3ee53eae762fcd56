"""The registry: the applied definitions, their fingerprints and per-view watermarks.

One JSON file, written atomically (temp file + rename) under an exclusive file lock. Every
write is a read-modify-write under that lock and bumps ``serial``; an apply planned against an
older serial is refused, so two concurrent applies can never silently lose one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from featurestore._time import parse_timestamp, to_utc, utc_now
from featurestore.definitions import (
    Entity,
    FeatureRef,
    FeatureService,
    FeatureView,
    Field,
    ParquetSource,
)
from featurestore.dtypes import DType, dtype_from_name
from featurestore.errors import (
    ConfigError,
    DefinitionError,
    FeatureNotFoundError,
    FeatureServiceNotFoundError,
    FeatureViewNotFoundError,
    RegistryConflictError,
)
from featurestore.transformations.batch import transform_fingerprint

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from featurestore.repo.loader import RepoContents
    from featurestore.transformations import OnDemandFeatureView

__all__ = [
    "FORMAT_VERSION",
    "Change",
    "OnDemandRecord",
    "Plan",
    "Registry",
    "RegistrySnapshot",
    "TransformRecord",
    "ViewRecord",
    "on_demand_record",
    "resolve_refs",
    "transform_record",
    "view_fingerprint",
]

FORMAT_VERSION = 1


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


@dataclass(frozen=True)
class TransformRecord:
    """A feature view's batch transform as applied: import location and source fingerprint."""

    function_path: str
    fingerprint: str


def transform_record(view: FeatureView, *, origin: str) -> TransformRecord | None:
    """The registry record of ``view``'s transform (defined in repo file ``origin``), if any."""
    fingerprint = transform_fingerprint(view)
    if fingerprint is None or view.transform is None:
        return None
    name = getattr(view.transform, "__qualname__", repr(view.transform))
    return TransformRecord(function_path=f"{origin}:{name}", fingerprint=fingerprint)


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


ChangeAction = Literal["add", "change", "remove", "unchanged"]


@dataclass(frozen=True)
class Change:
    """One line of a plan: what happens to one definition."""

    kind: Literal["entity", "feature view", "feature service", "on-demand feature view"]
    name: str
    action: ChangeAction
    details: tuple[str, ...] = ()
    needs_materialization: bool = False
    """The view's stored online values no longer match its definition (fingerprint changed)."""


@dataclass(frozen=True)
class Plan:
    """What ``apply`` would do, computed against registry serial ``base_serial``."""

    base_serial: int
    changes: tuple[Change, ...]
    target: RegistrySnapshot

    @property
    def has_changes(self) -> bool:
        """Whether applying would change the registry."""
        return any(c.action != "unchanged" for c in self.changes)


def view_fingerprint(view: FeatureView, key_dtypes: Mapping[str, DType]) -> str:
    """Hash of everything that determines a view's stored values.

    Covers the schema, the join keys and their types, the source's identity and the batch
    transform's source code (with the same-module helpers it calls). The ttl, description,
    owner, tags and online flag are not covered: they change how values are served or shown,
    not what is stored. ``view`` must carry its transform (a repo definition, not a view read
    back from the registry file, which has none).
    """
    payload: dict[str, Any] = {
        "schema": [[f.name, str(f.dtype)] for f in view.schema],
        "join_keys": [[k, str(key_dtypes.get(k))] for k in view.join_keys],
        "source": _encode_source(view.source),
    }
    transform = transform_fingerprint(view)
    if transform is not None:  # absent key: views without a transform keep their fingerprint
        payload["transform"] = transform
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return digest[:16]


# -- JSON encoding of definitions ------------------------------------------------------------


def _encode_source(source: ParquetSource) -> dict[str, Any]:
    return {
        "path": source.path,
        "timestamp_field": source.timestamp_field,
        "created_timestamp_field": source.created_timestamp_field,
        "field_mapping": dict(sorted(source.field_mapping.items())),
    }


def _encode_entity(entity: Entity) -> dict[str, Any]:
    return {
        "join_keys": list(entity.join_keys),
        "description": entity.description,
        "tags": entity.tags,
    }


def _decode_entity(name: str, data: dict[str, Any]) -> Entity:
    return Entity(
        name, join_keys=data["join_keys"], description=data["description"], tags=data["tags"]
    )


def _encode_view(record: ViewRecord) -> dict[str, Any]:
    view = record.view
    ttl = view.ttl.total_seconds() if view.ttl is not None else None
    return {
        "entities": [e.name for e in view.entities],
        "source": _encode_source(view.source),
        "schema": _encode_fields(tuple(view.schema)),
        "ttl_seconds": ttl,
        "online": view.online,
        "description": view.description,
        "owner": view.owner,
        "tags": view.tags,
        "key_dtypes": {k: str(t) for k, t in record.key_dtypes.items()},
        "fingerprint": record.fingerprint,
        "watermark": record.watermark.isoformat() if record.watermark else None,
        "transform": (
            {
                "function_path": record.transform.function_path,
                "fingerprint": record.transform.fingerprint,
            }
            if record.transform is not None
            else None
        ),
    }


def _decode_view(name: str, data: dict[str, Any], entities: dict[str, Entity]) -> ViewRecord:
    ttl = data["ttl_seconds"]
    view = FeatureView(
        name=name,
        entities=[entities[e] for e in data["entities"]],
        source=ParquetSource(**data["source"]),
        schema=_decode_fields(data["schema"]),
        ttl=timedelta(seconds=ttl) if ttl is not None else None,
        online=data["online"],
        description=data["description"],
        owner=data["owner"],
        tags=data["tags"],
    )
    watermark = data["watermark"]
    transform = data.get("transform")
    return ViewRecord(
        view=view,
        key_dtypes={k: dtype_from_name(t) for k, t in data["key_dtypes"].items()},
        fingerprint=data["fingerprint"],
        watermark=parse_timestamp(watermark) if watermark else None,
        transform=TransformRecord(**transform) if transform else None,
    )


def _encode_service(service: FeatureService) -> dict[str, Any]:
    return {
        "features": [str(r) for r in service.refs],
        "description": service.description,
        "owner": service.owner,
        "tags": service.tags,
    }


def _decode_service(name: str, data: dict[str, Any]) -> FeatureService:
    return FeatureService(
        name,
        features=data["features"],
        description=data["description"],
        owner=data["owner"],
        tags=data["tags"],
    )


def _encode_fields(fields: tuple[Field, ...]) -> list[dict[str, str]]:
    return [{"name": f.name, "dtype": str(f.dtype), "description": f.description} for f in fields]


def _decode_fields(data: list[dict[str, str]]) -> tuple[Field, ...]:
    return tuple(Field(f["name"], dtype_from_name(f["dtype"]), f["description"]) for f in data)


def _encode_on_demand(record: OnDemandRecord) -> dict[str, Any]:
    return {
        "schema": _encode_fields(record.schema),
        "view_inputs": [str(r) for r in record.view_inputs],
        "request_fields": _encode_fields(record.request_fields),
        "upstream": list(record.upstream),
        "mode": record.mode,
        "fingerprint": record.fingerprint,
        "function_path": record.function_path,
        "description": record.description,
        "owner": record.owner,
        "tags": record.tags,
    }


def _decode_on_demand(name: str, data: dict[str, Any]) -> OnDemandRecord:
    return OnDemandRecord(
        name=name,
        schema=_decode_fields(data["schema"]),
        view_inputs=tuple(FeatureRef.parse(r) for r in data["view_inputs"]),
        request_fields=_decode_fields(data["request_fields"]),
        upstream=tuple(data["upstream"]),
        mode=data["mode"],
        fingerprint=data["fingerprint"],
        function_path=data["function_path"],
        description=data["description"],
        owner=data["owner"],
        tags=data["tags"],
    )


def _encode(snapshot: RegistrySnapshot) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "project": snapshot.project,
        "serial": snapshot.serial,
        "applied_at": snapshot.applied_at.isoformat() if snapshot.applied_at else None,
        "entities": {n: _encode_entity(e) for n, e in sorted(snapshot.entities.items())},
        "feature_views": {n: _encode_view(r) for n, r in sorted(snapshot.feature_views.items())},
        "feature_services": {
            n: _encode_service(s) for n, s in sorted(snapshot.feature_services.items())
        },
        "on_demand_views": {
            n: _encode_on_demand(r) for n, r in sorted(snapshot.on_demand_views.items())
        },
    }


def _decode(data: dict[str, Any], *, path: Path) -> RegistrySnapshot:
    if data.get("format_version") != FORMAT_VERSION:
        msg = (
            f"Registry '{path}' has format version {data.get('format_version')!r}; this "
            f"featurestore reads version {FORMAT_VERSION}. Upgrade featurestore, or delete the "
            "registry and run 'featurestore apply' again."
        )
        raise ConfigError(msg)
    entities = {n: _decode_entity(n, e) for n, e in data["entities"].items()}
    applied_at = data["applied_at"]
    return RegistrySnapshot(
        project=data["project"],
        serial=data["serial"],
        applied_at=parse_timestamp(applied_at) if applied_at else None,
        entities=entities,
        feature_views={n: _decode_view(n, v, entities) for n, v in data["feature_views"].items()},
        feature_services={n: _decode_service(n, s) for n, s in data["feature_services"].items()},
        on_demand_views={
            n: _decode_on_demand(n, r) for n, r in data.get("on_demand_views", {}).items()
        },
    )


# -- diffing ----------------------------------------------------------------------------------


def _describe_ttl(ttl: timedelta | None) -> str:
    return "unlimited" if not ttl else str(ttl)


def _view_details(old: ViewRecord, new: ViewRecord) -> tuple[str, ...]:
    details: list[str] = []
    old_fields = {f.name: f.dtype for f in old.view.schema}
    new_fields = {f.name: f.dtype for f in new.view.schema}
    details += [f"+ feature {n} ({t})" for n, t in new_fields.items() if n not in old_fields]
    details += [f"- feature {n}" for n in old_fields if n not in new_fields]
    details += [
        f"~ feature {n}: {old_fields[n]} -> {t}"
        for n, t in new_fields.items()
        if n in old_fields and old_fields[n] != t
    ]
    if old.view.join_keys != new.view.join_keys or old.key_dtypes != new.key_dtypes:
        details.append(f"~ join keys: {_keys(old)} -> {_keys(new)}")
    if old.view.source != new.view.source:
        details.append(f"~ source: {old.view.source.path} -> {new.view.source.path}")
    old_tf, new_tf = old.transform, new.transform
    if old_tf is None and new_tf is not None:
        details.append(f"+ transform {new_tf.function_path}")
    elif old_tf is not None and new_tf is None:
        details.append(f"- transform {old_tf.function_path}")
    elif old_tf is not None and new_tf is not None and old_tf != new_tf:
        what = "source changed" if old_tf.fingerprint != new_tf.fingerprint else "moved"
        details.append(f"~ transform {new_tf.function_path}: {what}")
    if old.view.effective_ttl != new.view.effective_ttl:
        old_ttl, new_ttl = old.view.effective_ttl, new.view.effective_ttl
        details.append(f"~ ttl: {_describe_ttl(old_ttl)} -> {_describe_ttl(new_ttl)}")
    for attr in ("online", "description", "owner", "tags"):
        if getattr(old.view, attr) != getattr(new.view, attr):
            details.append(f"~ {attr}")
    if not details and old.view != new.view:
        details.append("~ definition")
    return tuple(details)


def _keys(record: ViewRecord) -> str:
    return ", ".join(f"{k} {record.key_dtypes.get(k)}" for k in record.view.join_keys)


def _diff(old: RegistrySnapshot, new: RegistrySnapshot) -> tuple[Change, ...]:
    changes: list[Change] = []
    for name in sorted(old.entities.keys() | new.entities.keys()):
        before, after = old.entities.get(name), new.entities.get(name)
        if after is None:
            changes.append(Change("entity", name, "remove"))
        elif before is None:
            changes.append(Change("entity", name, "add"))
        elif before != after or before.tags != after.tags:
            changes.append(Change("entity", name, "change"))
        else:
            changes.append(Change("entity", name, "unchanged"))
    for name in sorted(old.feature_views.keys() | new.feature_views.keys()):
        old_view, new_view = old.feature_views.get(name), new.feature_views.get(name)
        if new_view is None:
            changes.append(Change("feature view", name, "remove"))
        elif old_view is None:
            changes.append(
                Change("feature view", name, "add", needs_materialization=new_view.view.online)
            )
        else:
            details = _view_details(old_view, new_view)
            stale = old_view.fingerprint != new_view.fingerprint and new_view.view.online
            action: ChangeAction = "change" if details else "unchanged"
            changes.append(Change("feature view", name, action, details, stale))
    for name in sorted(old.on_demand_views.keys() | new.on_demand_views.keys()):
        old_odfv, new_odfv = old.on_demand_views.get(name), new.on_demand_views.get(name)
        if new_odfv is None:
            changes.append(Change("on-demand feature view", name, "remove"))
        elif old_odfv is None:
            changes.append(Change("on-demand feature view", name, "add"))
        elif old_odfv != new_odfv:
            details = (
                ("~ function or inputs",) if old_odfv.fingerprint != new_odfv.fingerprint else ()
            )
            details = details or ("~ metadata",)
            changes.append(Change("on-demand feature view", name, "change", details))
        else:
            changes.append(Change("on-demand feature view", name, "unchanged"))
    for name in sorted(old.feature_services.keys() | new.feature_services.keys()):
        old_svc, new_svc = old.feature_services.get(name), new.feature_services.get(name)
        if new_svc is None:
            changes.append(Change("feature service", name, "remove"))
        elif old_svc is None:
            changes.append(Change("feature service", name, "add"))
        elif old_svc.refs != new_svc.refs or _encode_service(old_svc) != _encode_service(new_svc):
            changes.append(Change("feature service", name, "change"))
        else:
            changes.append(Change("feature service", name, "unchanged"))
    return tuple(changes)


def _check_names(contents: RepoContents) -> None:
    for name in contents.on_demand_views.keys() & contents.feature_views.keys():
        msg = (
            f"A feature view and an on-demand feature view are both named '{name}', so "
            f"'{name}:feature' refs would be ambiguous; rename one of them."
        )
        raise DefinitionError(msg)


def _check_services(contents: RepoContents) -> None:
    features: dict[str, tuple[str, ...]] = {
        **{n: v.feature_names for n, v in contents.feature_views.items()},
        **{n: v.feature_names for n, v in contents.on_demand_views.items()},
    }
    for service in contents.feature_services.values():
        for ref in service.refs:
            names = features.get(ref.view)
            if names is None:
                raise FeatureViewNotFoundError(
                    name=ref.view,
                    candidates=features,
                    hint=f"Feature service '{service.name}' refers to it; define the view or "
                    "remove it from the service.",
                )
            if ref.feature not in names:
                raise FeatureNotFoundError(view=ref.view, name=ref.feature, candidates=names)


def _check_key_types(contents: RepoContents, key_dtypes: Mapping[str, Mapping[str, DType]]) -> None:
    seen: dict[str, tuple[str, DType]] = {}
    for view in contents.feature_views.values():
        for key in view.join_keys:
            dtype = key_dtypes[view.name][key]
            if key in seen and seen[key][1] != dtype:
                other, other_dtype = seen[key]
                msg = (
                    f"Join key '{key}' is {other_dtype} in feature view '{other}' but {dtype} in "
                    f"'{view.name}'. Cast one source so the key has one type everywhere."
                )
                raise DefinitionError(msg)
            seen.setdefault(key, (view.name, dtype))


# -- the registry file ------------------------------------------------------------------------


class Registry:
    """The registry file of one project.

    Example:
        >>> import tempfile, pathlib
        >>> reg = Registry(pathlib.Path(tempfile.mkdtemp()) / "registry.json", project="demo")
        >>> reg.load().serial
        0
    """

    def __init__(self, path: Path, *, project: str) -> None:
        self.path = path
        self.project = project

    def load(self) -> RegistrySnapshot:
        """Read the registry; a missing file is an empty registry at serial 0."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return RegistrySnapshot(project=self.project)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            msg = (
                f"Registry '{self.path}' is not valid JSON ({exc}). Restore it from version "
                "control or delete it and run 'featurestore apply'."
            )
            raise ConfigError(msg) from exc
        snapshot = _decode(data, path=self.path)
        if snapshot.project != self.project:
            msg = (
                f"Registry '{self.path}' belongs to project '{snapshot.project}', not "
                f"'{self.project}'. Point 'registry:' in featurestore.yaml at this project's file."
            )
            raise ConfigError(msg)
        return snapshot

    def plan(
        self,
        contents: RepoContents,
        key_dtypes: Mapping[str, Mapping[str, DType]],
        *,
        current: RegistrySnapshot | None = None,
    ) -> Plan:
        """Diff the repo's definitions against the registry.

        Args:
            contents: The definitions loaded from the repo.
            key_dtypes: Per view, the inferred type of each join key (from its source).
            current: The snapshot to diff against; read from disk when None.

        Raises:
            DefinitionError: A service refers to an unknown view or feature, or a join key has
                different types in different views.
        """
        _check_names(contents)
        _check_services(contents)
        _check_key_types(contents, key_dtypes)
        current = current if current is not None else self.load()
        views: dict[str, ViewRecord] = {}
        for name, view in contents.feature_views.items():
            keys = {k: key_dtypes[name][k] for k in view.join_keys}
            fingerprint = view_fingerprint(view, keys)
            old = current.feature_views.get(name)
            watermark = old.watermark if old and old.fingerprint == fingerprint else None
            origin = contents.origins.get(f"feature view:{name}", "?")
            transform = transform_record(view, origin=origin)
            views[name] = ViewRecord(view, keys, fingerprint, watermark, transform)
        target = RegistrySnapshot(
            project=self.project,
            serial=current.serial,
            applied_at=current.applied_at,
            entities=dict(contents.entities),
            feature_views=views,
            feature_services=dict(contents.feature_services),
            on_demand_views={
                name: on_demand_record(
                    odfv, origin=contents.origins.get(f"on-demand feature view:{name}", "?")
                )
                for name, odfv in contents.on_demand_views.items()
            },
        )
        return Plan(base_serial=current.serial, changes=_diff(current, target), target=target)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[RegistrySnapshot]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with lock_path.open("a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield self.load()
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _write(self, snapshot: RegistrySnapshot) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".registry-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(_encode(snapshot), handle, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            Path(tmp).replace(self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def apply(self, plan: Plan) -> RegistrySnapshot:
        """Write ``plan``'s target, atomically, if the registry has not moved since the plan.

        Raises:
            RegistryConflictError: Another apply (or a watermark update of a changed view)
                landed after this plan was computed; plan again.
        """
        with self._locked() as current:
            if current.serial != plan.base_serial:
                msg = (
                    f"Registry '{self.path}' changed while this apply was being planned (serial "
                    f"{plan.base_serial} -> {current.serial}): another apply or materialization "
                    "landed. Run 'featurestore plan' again and re-apply."
                )
                raise RegistryConflictError(msg)
            views = {
                name: _keep_newer_watermark(record, current.feature_views.get(name))
                for name, record in plan.target.feature_views.items()
            }
            snapshot = replace(
                plan.target, serial=current.serial + 1, applied_at=utc_now(), feature_views=views
            )
            self._write(snapshot)
            return snapshot

    def set_watermark(self, view: str, watermark: datetime, *, fingerprint: str) -> bool:
        """Advance ``view``'s watermark to ``watermark`` if its fingerprint is still current.

        The watermark never moves backwards. Returns False (and writes nothing) when the view
        was removed or redefined since the materialization that computed ``watermark`` started.
        """
        with self._locked() as current:
            record = current.feature_views.get(view)
            if record is None or record.fingerprint != fingerprint:
                return False
            new = to_utc(watermark)
            if record.watermark is not None and record.watermark >= new:
                return True
            views = dict(current.feature_views)
            views[view] = replace(record, watermark=new)
            # Watermarks are not definitions: the serial (which guards applies) stays.
            self._write(replace(current, feature_views=views))
            return True


def _keep_newer_watermark(record: ViewRecord, current: ViewRecord | None) -> ViewRecord:
    if current is None or current.fingerprint != record.fingerprint:
        return record
    return replace(record, watermark=current.watermark)


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
