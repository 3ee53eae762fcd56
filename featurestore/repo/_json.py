"""The registry's JSON encoding of definitions and records (versioned by FORMAT_VERSION)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from featurestore._time import parse_timestamp
from featurestore.definitions import (
    Entity,
    FeatureRef,
    FeatureService,
    FeatureView,
    Field,
    ParquetSource,
)
from featurestore.dtypes import dtype_from_name
from featurestore.errors import (
    ConfigError,
)

if TYPE_CHECKING:
    from pathlib import Path

from featurestore.repo.snapshot import (
    OnDemandRecord,
    RegistrySnapshot,
    TransformRecord,
    ViewRecord,
    source_identity,
)

FORMAT_VERSION = 1


# -- JSON encoding of definitions ------------------------------------------------------------


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
        "source": source_identity(view.source),
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


def encode_service(service: FeatureService) -> dict[str, Any]:
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


def encode_snapshot(snapshot: RegistrySnapshot) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "project": snapshot.project,
        "serial": snapshot.serial,
        "applied_at": snapshot.applied_at.isoformat() if snapshot.applied_at else None,
        "entities": {n: _encode_entity(e) for n, e in sorted(snapshot.entities.items())},
        "feature_views": {n: _encode_view(r) for n, r in sorted(snapshot.feature_views.items())},
        "feature_services": {
            n: encode_service(s) for n, s in sorted(snapshot.feature_services.items())
        },
        "on_demand_views": {
            n: _encode_on_demand(r) for n, r in sorted(snapshot.on_demand_views.items())
        },
    }


def decode_snapshot(data: dict[str, Any], *, path: Path) -> RegistrySnapshot:
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
