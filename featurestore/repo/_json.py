"""The registry's JSON encoding of definitions and records (versioned by FORMAT_VERSION).

Decoding checks the whole document before anything uses it: every key's presence and type,
every definition's own rules, and every reference between definitions. A document that fails
is refused with one :class:`RegistryFileError` naming the file and the path inside it
(``feature_views.user_stats.fingerprint``). Keys this version does not know are ignored, so a
later version may add optional keys without a new format version.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar, get_args

from featurestore._time import parse_timestamp
from featurestore.definitions import (
    Aggregation,
    Entity,
    FeatureRef,
    FeatureService,
    FeatureView,
    Field,
    ParquetSource,
)
from featurestore.definitions._names import check_name
from featurestore.definitions.feature_service import LoggingConfig
from featurestore.errors import DefinitionError, EntityFrameError, RegistryFileError
from featurestore.types import dtype_from_name

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime
    from pathlib import Path

from featurestore.repo.snapshot import (
    OnDemandRecord,
    RegistrySnapshot,
    TransformRecord,
    ViewRecord,
    key_type_conflict,
    source_identity,
    view_fingerprint,
)

FORMAT_VERSION = 1
_MAX_US = timedelta.max // timedelta(microseconds=1)


# -- JSON encoding of definitions ------------------------------------------------------------


def _encode_entity(entity: Entity) -> dict[str, Any]:
    return {
        "join_keys": list(entity.join_keys),
        "description": entity.description,
        "tags": entity.tags,
    }


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
        "epoch": record.epoch,
        "transform": (
            {
                "function_path": record.transform.function_path,
                "fingerprint": record.transform.fingerprint,
            }
            if record.transform is not None
            else None
        ),
        # GE's JSON of the suite (DESIGN G6), never a pickle; not in the fingerprint.
        "expectations": json.loads(view.suite_json) if view.suite_json is not None else None,
        "on_failure": view.on_failure,
        **_encode_aggregations(view),
    }


def _encode_aggregations(view: FeatureView) -> dict[str, Any]:
    """An aggregation view's aggregations and hop (microseconds: exact); nothing otherwise."""
    if not view.aggregations:
        return {}
    return {
        "aggregations": [
            {"column": a.column, "function": a.function, "window_us": a.window_us, "name": a.name}
            for a in view.aggregations
        ],
        "hop_us": view.hop_us if view.hop is not None else None,
    }


def encode_service(service: FeatureService) -> dict[str, Any]:
    return {
        "features": [str(r) for r in service.refs],
        "description": service.description,
        "owner": service.owner,
        "tags": service.tags,
        "logging": (
            {"sample_rate": service.logging.sample_rate} if service.logging is not None else None
        ),
    }


def _encode_fields(fields: tuple[Field, ...]) -> list[dict[str, str]]:
    return [{"name": f.name, "dtype": str(f.dtype), "description": f.description} for f in fields]


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


# -- decoding, every value checked ------------------------------------------------------------

_MAX_SERIAL = 2**63 - 1
_MAX_SECONDS = int(timedelta.max.total_seconds())
_SHOWN_CHARS = 40
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_P = ParamSpec("_P")
_T = TypeVar("_T")


def _show(value: object) -> str:
    """A value as it is written in the file, with its JSON type."""
    kinds: tuple[tuple[type, str], ...] = (
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a number"),
        (str, "a string"),
        (list, "a list"),
        (dict, "an object"),
    )
    if value is None:
        return "null"
    kind = next(k for t, k in kinds if isinstance(value, t))
    text = json.dumps(value)
    if len(text) > _SHOWN_CHARS:
        text = text[: _SHOWN_CHARS - 3] + "..."
    return f"{kind} ({text})"


@dataclass(frozen=True, slots=True)
class _At:
    """A place in the registry document: the file and the path inside it."""

    file: str | Path
    where: str = ""

    def __truediv__(self, key: str | int) -> _At:
        if isinstance(key, int):
            return _At(self.file, f"{self.where}[{key}]")
        if not _PLAIN_KEY.match(key):  # quoted and escaped: the message stays one line
            return _At(self.file, f"{self.where}[{json.dumps(key)}]")
        return _At(self.file, f"{self.where}.{key}" if self.where else key)

    def fail(self, problem: str) -> NoReturn:
        # Names from the file may hold line breaks: the message stays one line.
        one_line = " ".join(problem.split())
        raise RegistryFileError(path=str(self.file), where=self.where, problem=one_line)

    def expected(self, what: str, value: object) -> NoReturn:
        self.fail(f"expected {what}, got {_show(value)}")

    def build(self, make: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """``make(...)``, with its complaint about the decoded values placed here."""
        try:
            return make(*args, **kwargs)
        except (DefinitionError, EntityFrameError, ValueError, OverflowError) as exc:
            self.fail(str(exc).rstrip("."))


_REQUIRED: Any = object()


class _Object:
    """One JSON object of the document, read key by key with each value's type checked."""

    def __init__(self, value: object, at: _At) -> None:
        if not isinstance(value, dict):
            at.expected("an object", value)
        self.data: dict[str, Any] = value
        self.at = at

    def get(self, key: str, default: Any = _REQUIRED) -> tuple[Any, _At]:
        at = self.at / key
        if key in self.data:
            return self.data[key], at
        if default is _REQUIRED:
            at.fail("the key is missing")
        return default, at

    def text(self, key: str) -> str:
        value, at = self.get(key)
        if not isinstance(value, str):
            at.expected("a string", value)
        return value

    def text_or_none(self, key: str) -> str | None:
        value, at = self.get(key)
        if value is not None and not isinstance(value, str):
            at.expected("a string or null", value)
        return value

    def boolean(self, key: str) -> bool:
        value, at = self.get(key)
        if not isinstance(value, bool):
            at.expected("true or false", value)
        return value

    def integer(self, key: str, *, low: int, high: int) -> int:
        value, at = self.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            at.expected(f"an integer from {low} to {high}", value)
        return value

    def seconds_or_none(self, key: str) -> float | None:
        value, at = self.get(key)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 <= value <= _MAX_SECONDS
        ):
            at.expected(f"a number of seconds from 0 to {_MAX_SECONDS} or null", value)
        return float(value)

    def timestamp_or_none(self, key: str) -> datetime | None:
        text = self.text_or_none(key)
        return None if text is None else (self.at / key).build(parse_timestamp, text)

    def texts(self, key: str) -> list[str]:
        value, at = self.get(key)
        if not isinstance(value, list):
            at.expected("a list of strings", value)
        for i, item in enumerate(value):
            if not isinstance(item, str):
                (at / i).expected("a string", item)
        return value

    def text_map(self, key: str) -> dict[str, str]:
        value, at = self.get(key)
        if not isinstance(value, dict):
            at.expected("an object of strings", value)
        for name, item in value.items():
            if not isinstance(item, str):
                (at / name).expected("a string", item)
        return value

    def child(self, key: str) -> _Object:
        value, at = self.get(key)
        return _Object(value, at)

    def objects(self, key: str) -> list[_Object]:
        value, at = self.get(key)
        if not isinstance(value, list):
            at.expected("a list of objects", value)
        return [_Object(item, at / i) for i, item in enumerate(value)]

    def members(self, key: str, default: Any = _REQUIRED) -> list[tuple[str, _Object]]:
        """The ``name: {...}`` entries of a mapping of definitions."""
        value, at = self.get(key, default)
        if not isinstance(value, dict):
            at.expected("an object mapping names to definitions", value)
        return [(name, _Object(item, at / name)) for name, item in value.items()]


def _decode_field(obj: _Object) -> Field:
    dtype = (obj.at / "dtype").build(dtype_from_name, obj.text("dtype"))
    return obj.at.build(Field, obj.text("name"), dtype, obj.text("description"))


def _decode_fields(obj: _Object, key: str) -> tuple[Field, ...]:
    return tuple(_decode_field(item) for item in obj.objects(key))


def _decode_entity(name: str, obj: _Object) -> Entity:
    return obj.at.build(
        Entity,
        name,
        join_keys=obj.texts("join_keys"),
        description=obj.text("description"),
        tags=obj.text_map("tags"),
    )


def _decode_source(obj: _Object) -> ParquetSource:
    return obj.at.build(
        ParquetSource,
        obj.text("path"),
        timestamp_field=obj.text("timestamp_field"),
        created_timestamp_field=obj.text_or_none("created_timestamp_field"),
        field_mapping=obj.text_map("field_mapping"),
    )


def _ttl_of(seconds: float) -> timedelta:
    """A ttl back from its stored seconds.

    ``total_seconds()`` of the longest ttls rounds up past ``timedelta.max``: those come back
    as ``timedelta.max``, a window that excludes nothing.
    """
    return timedelta.max if seconds >= _MAX_SECONDS else timedelta(seconds=seconds)


def _decode_view(name: str, obj: _Object, entities: dict[str, Entity]) -> ViewRecord:
    names = obj.texts("entities")
    for i, entity in enumerate(names):
        if entity not in entities:
            (obj.at / "entities" / i).fail(f"there is no entity {entity!r} in 'entities'")
    ttl = obj.seconds_or_none("ttl_seconds")
    expectations, expectations_at = obj.get("expectations", None)
    if expectations is not None and not isinstance(expectations, dict):
        expectations_at.expected(
            "GE's JSON of an expectation suite (an object) or null", expectations
        )
    on_failure, on_failure_at = obj.get("on_failure", "block")
    if on_failure not in ("block", "warn"):
        on_failure_at.expected("'block' or 'warn'", on_failure)
    aggregations = [
        a.at.build(
            Aggregation,
            column=a.text_or_none("column"),
            function=a.text("function"),  # type: ignore[arg-type]  # checked by Aggregation
            window=timedelta(microseconds=a.integer("window_us", low=1, high=_MAX_US)),
            name=a.text_or_none("name"),
        )
        for a in (obj.objects("aggregations") if "aggregations" in obj.data else [])
    ]
    hop_us = obj.data.get("hop_us") if aggregations else None
    view = obj.at.build(
        FeatureView,
        name=name,
        entities=[entities[e] for e in names],
        source=_decode_source(obj.child("source")),
        schema=() if aggregations else _decode_fields(obj, "schema"),
        aggregations=aggregations,
        hop=(
            timedelta(microseconds=obj.integer("hop_us", low=1, high=_MAX_US))
            if hop_us is not None
            else None
        ),
        ttl=_ttl_of(ttl) if ttl is not None else None,
        online=obj.boolean("online"),
        description=obj.text("description"),
        owner=obj.text("owner"),
        tags=obj.text_map("tags"),
        expectations=expectations,
        on_failure=on_failure,
    )
    keys, keys_at = obj.text_map("key_dtypes"), obj.at / "key_dtypes"
    if tuple(keys) != view.join_keys:
        keys_at.fail(f"expected the view's join keys {list(view.join_keys)}, got {list(keys)}")
    transform, transform_at = obj.get("transform", None)
    record = None
    if transform is not None:
        tf = _Object(transform, transform_at)
        record = TransformRecord(tf.text("function_path"), tf.text("fingerprint"))
    key_dtypes = {k: (keys_at / k).build(dtype_from_name, t) for k, t in keys.items()}
    fingerprint = obj.text("fingerprint")
    if fingerprint != view_fingerprint(view, key_dtypes, applied=record):
        # Online records are decoded with the schema this fingerprint stands for.
        (obj.at / "fingerprint").fail(
            "it does not match the view's schema, join key types, source and transform as "
            "written in the file: the file was edited after apply"
        )
    return ViewRecord(
        view=view,
        key_dtypes=key_dtypes,
        fingerprint=fingerprint,
        watermark=obj.timestamp_or_none("watermark"),
        transform=record,
        epoch=obj.text_or_none("epoch") if "epoch" in obj.data else None,
    )


def _decode_service(name: str, obj: _Object) -> FeatureService:
    return obj.at.build(
        FeatureService,
        name,
        features=obj.texts("features"),
        description=obj.text("description"),
        owner=obj.text("owner"),
        tags=obj.text_map("tags"),
        logging=_decode_logging(obj),
    )


def _decode_logging(obj: _Object) -> LoggingConfig | None:
    if obj.data.get("logging") is None:  # absent in registries written before logging
        return None
    logging = obj.child("logging")
    rate, at = logging.get("sample_rate")
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        at.expected("a number from 0 to 1", rate)
    return logging.at.build(LoggingConfig, sample_rate=float(rate))


def _decode_on_demand(name: str, obj: _Object) -> OnDemandRecord:
    from featurestore.transformations.decorator import TransformMode  # only with such views

    obj.at.build(check_name, name, kind="On-demand feature view")
    modes: tuple[str, ...] = get_args(TransformMode)
    mode = obj.text("mode")
    if mode not in modes:
        (obj.at / "mode").fail(f"expected one of {', '.join(modes)}, got {_show(mode)}")
    inputs_at = obj.at / "view_inputs"
    return OnDemandRecord(
        name=name,
        schema=_decode_fields(obj, "schema"),
        view_inputs=tuple(
            (inputs_at / i).build(FeatureRef.parse, text)
            for i, text in enumerate(obj.texts("view_inputs"))
        ),
        request_fields=_decode_fields(obj, "request_fields"),
        upstream=tuple(obj.texts("upstream")),
        mode=mode,
        fingerprint=obj.text("fingerprint"),
        function_path=obj.text("function_path"),
        description=obj.text("description"),
        owner=obj.text("owner"),
        tags=obj.text_map("tags"),
    )


def _check_refs(snapshot: RegistrySnapshot, root: _At) -> None:
    """Every reference between definitions names a definition of the document."""
    views, on_demand = snapshot.feature_views, snapshot.on_demand_views
    for name in views.keys() & on_demand.keys():
        (root / "on_demand_views" / name).fail("a feature view has the same name")

    def check(ref: FeatureRef, at: _At) -> None:
        names = snapshot.feature_names_of(ref.view)
        if names is None:
            at.fail(f"there is no view {ref.view!r} in 'feature_views' or 'on_demand_views'")
        if ref.feature not in names:
            at.fail(f"view {ref.view!r} has no feature {ref.feature!r}")

    records = snapshot.feature_views
    keys = {name: record.key_dtypes for name, record in records.items()}
    conflict = key_type_conflict((r.view for r in records.values()), keys)
    if conflict is not None:
        (root / "feature_views" / conflict.view / "key_dtypes" / conflict.key).fail(
            f"join key {conflict.key!r} is {conflict.dtype} here but {conflict.first_dtype} in "
            f"feature view {conflict.first!r}"
        )
    for name, service in snapshot.feature_services.items():
        for i, ref in enumerate(service.refs):
            check(ref, root / "feature_services" / name / "features" / i)
    for name, record in on_demand.items():
        at = root / "on_demand_views" / name
        for i, ref in enumerate(record.view_inputs):
            check(ref, at / "view_inputs" / i)
        for i, upstream in enumerate(record.upstream):
            if upstream not in on_demand:
                (at / "upstream" / i).fail(f"there is no on-demand view {upstream!r}")


def decode_snapshot(data: object, *, path: str | Path) -> RegistrySnapshot:
    """The snapshot a parsed registry document describes, checked throughout.

    Raises:
        RegistryFileError: The document is not a registry of this format version; the error
            names the first bad value's path inside the document.
    """
    root = _At(path)
    doc = _Object(data, root)
    version = doc.data.get("format_version")
    if version != FORMAT_VERSION:
        raise RegistryFileError(
            path=str(path),
            where="format_version",
            problem=f"the file has format version {_show(version)}; this featurestore reads "
            f"version {FORMAT_VERSION}",
            fix="Upgrade featurestore, or delete the registry and run 'featurestore apply' again.",
        )
    entities = {n: _decode_entity(n, e) for n, e in doc.members("entities")}
    snapshot = RegistrySnapshot(
        project=doc.text("project"),
        serial=doc.integer("serial", low=0, high=_MAX_SERIAL),
        applied_at=doc.timestamp_or_none("applied_at"),
        entities=entities,
        feature_views={n: _decode_view(n, v, entities) for n, v in doc.members("feature_views")},
        feature_services={n: _decode_service(n, s) for n, s in doc.members("feature_services")},
        on_demand_views={n: _decode_on_demand(n, r) for n, r in doc.members("on_demand_views", {})},
    )
    _check_refs(snapshot, root)
    return snapshot
