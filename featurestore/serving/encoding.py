"""Column-wise JSON encoding of online responses (Feast's shape) and of the catalog.

The body is built by one ``orjson.dumps`` over per-column Python lists: ints stay JSON
integers, floats keep a decimal point, non-finite floats and nulls become ``null``, datetimes
become RFC 3339 UTC with ``Z``. Per-value Python work happens only where JSON has no native
form (Timestamp and Bytes feature values) and for event timestamps, which are formatted once
per (view, entity) and shared by all of that view's columns.

Every timestamp on the wire (event timestamps, Timestamp values, catalog times) is written by
one formatter, ``_format_micros`` (numpy, a column at a time); short columns and single values
go through a small cache in front of it, because numpy's per-call cost exceeds the work there.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
import orjson

from featurestore._time import to_micros
from featurestore.online.base import FieldStatus

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from featurestore.online.response import OnlineResponse
    from featurestore.repo.registry import RegistrySnapshot
    from featurestore.serving.metrics import ServingMetrics
    from featurestore.types import DType

__all__ = [
    "EPOCH_TEXT",
    "catalog_of",
    "encode_online_response",
    "rfc3339",
]

EPOCH_TEXT: Final = "1970-01-01T00:00:00Z"
_OPTIONS: Final = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_SERIALIZE_NUMPY
_PRESENT: Final = "PRESENT"


def rfc3339(value: datetime | int | str | None) -> str:
    """RFC 3339 UTC text with ``Z`` of a datetime or of epoch microseconds (None -> epoch).

    Example:
        >>> rfc3339(1_796_000_000_123_456)
        '2026-11-30T00:53:20.123456Z'
        >>> rfc3339(None)
        '1970-01-01T00:00:00Z'
    """
    if value is None:
        return EPOCH_TEXT
    if isinstance(value, str):
        return value
    return _stamp_text(value if isinstance(value, int) else to_micros(value))


def _b64(value: Any) -> Any:
    return base64.b64encode(value).decode() if isinstance(value, bytes | bytearray) else value


_PLAIN: Final = frozenset({"Int32", "Int64", "Float32", "Float64", "String", "Bool"})
"""Types whose codec values JSON carries as they are (also arrays of them)."""


def _wire_values(values: Sequence[Any], dtype: DType | None) -> Sequence[Any]:
    if dtype is None:
        return values
    name = dtype.name
    if name in _PLAIN or (name.startswith("Array(") and name[6:-1] in _PLAIN):
        return values
    if name == "Timestamp":
        texts = _rfc3339_column(values)
        return [None if v is None else t for v, t in zip(values, texts, strict=True)]
    if name == "Bytes":
        return [_b64(v) for v in values]
    if name == "Array(Timestamp)":
        return [v if v is None else [x if x is None else rfc3339(x) for x in v] for v in values]
    if name == "Array(Bytes)":
        return [v if v is None else [_b64(x) for x in v] for v in values]
    return values


def encode_online_response(
    response: OnlineResponse,
    *,
    views: Mapping[str, str] | None = None,
    request_time: datetime | None = None,
    metrics: ServingMetrics | None = None,
) -> bytes:
    """The JSON body of a get-online-features response for ``response`` (the server's hot path).

    Join keys come first (echoed, all ``PRESENT``, epoch event timestamps), then the features.
    The columns of one view share their status and event-time lists, so those are looked at
    (counted, formatted, observed) once per view, not once per column.

    Args:
        response: What ``FeatureStore.get_online_features`` returned.
        views: Output name -> feature view, for the value-age metric.
        request_time: The lookup's request time, for the value-age metric.
        metrics: Where to record value ages (skipped when None).
    """
    rows = len(response)
    dtypes = response.dtypes
    all_present = _shared([_PRESENT] * rows)
    all_epoch = _shared([EPOCH_TEXT] * rows)
    names: list[str] = []
    results: list[dict[str, Any]] = []
    for name, values in response.join_keys.items():
        names.append(name)
        results.append(
            {
                "values": _wire_values(values, _echo_dtype(dtypes.get(name))),
                "statuses": all_present,
                "event_timestamps": all_epoch,
            }
        )
    statuses = response.statuses
    event_micros = response.event_micros
    request_us = to_micros(request_time) if metrics is not None and request_time else None
    aged: set[str] = set()
    seen_statuses: list[FieldStatus] | None = None
    wire_statuses = all_present
    present = True
    seen_stamps: list[int | None] | None = None
    texts = all_epoch
    for name, values in response.features.items():
        names.append(name)
        column_statuses = statuses[name]
        if column_statuses is not seen_statuses:
            seen_statuses = column_statuses
            present = column_statuses.count(FieldStatus.PRESENT) == rows
            # orjson writes str enum members several times slower than str.
            wire_statuses = all_present if present else _shared([s.value for s in column_statuses])
        stamps = event_micros.get(name)
        if stamps is None:
            column_texts = all_epoch
        else:
            if stamps is not seen_stamps:  # the first column of a view (they share stamps)
                seen_stamps = stamps
                texts = _shared(_rfc3339_column(stamps))
                view = views.get(name) if views else None
                if request_us is not None and view is not None and view not in aged:
                    aged.add(view)
                    assert metrics is not None
                    _observe_ages(metrics, view, request_us, stamps, column_statuses, present)
            column_texts = texts
        dtype = dtypes.get(name)
        results.append(
            {
                "values": values
                if dtype is None or dtype.name in _PLAIN
                else _wire_values(values, dtype),
                "statuses": wire_statuses,
                "event_timestamps": column_texts,
            }
        )
    return orjson.dumps({"metadata": {"feature_names": names}, "results": results}, option=_OPTIONS)


def _shared(texts: list[str]) -> list[str] | orjson.Fragment:
    """A list of texts several columns send: serialized once, as a fragment of the body.

    Short lists are left to the body's one ``orjson.dumps``: below ``_SMALL`` rows an extra
    call costs more than writing the list again.
    """
    return orjson.Fragment(orjson.dumps(texts)) if len(texts) > _SMALL else texts


def _echo_dtype(dtype: DType | None) -> DType | None:
    # Echoed keys are sent as the request gave them, except types JSON cannot carry natively.
    if dtype is not None and dtype.name in {"Timestamp", "Bytes"}:
        return dtype
    return None


_SMALL: Final = 16
"""Columns up to this long are formatted / counted in Python: numpy's per-call cost is larger."""
_STAMP_TEXTS: dict[int, str] = {}
"""Epoch microseconds -> RFC 3339 text, for small columns (bounded; event times repeat)."""


def _format_micros(micros: npt.NDArray[np.int64]) -> list[str]:
    """RFC 3339 UTC text with ``Z`` of epoch microseconds: the one timestamp formatter.

    Whole seconds are written without a fraction, others with six digits.
    """
    moments = micros.astype("datetime64[us]")
    fractional = micros % 1_000_000 != 0
    if fractional.all():  # one numpy call when the column needs one unit only
        texts: list[str] = np.datetime_as_string(moments, unit="us", timezone="UTC").tolist()
        return texts
    whole = np.datetime_as_string(moments, unit="s", timezone="UTC")
    if not fractional.any():
        texts = whole.tolist()
        return texts
    fine = np.datetime_as_string(moments, unit="us", timezone="UTC")
    texts = np.where(fractional, fine, whole).tolist()
    return texts


def _stamp_text(micros: int) -> str:
    text = _STAMP_TEXTS.get(micros)
    if text is None:
        if len(_STAMP_TEXTS) >= 4096:
            _STAMP_TEXTS.clear()
        text = _STAMP_TEXTS[micros] = _format_micros(np.array([micros], dtype=np.int64))[0]
    return text


def _rfc3339_column(stamps: Sequence[int | None]) -> list[str]:
    """RFC 3339 text of a column of epoch microseconds (None -> the epoch)."""
    if len(stamps) <= _SMALL:
        return [EPOCH_TEXT if t is None else _stamp_text(t) for t in stamps]
    micros = np.fromiter((0 if t is None else t for t in stamps), dtype=np.int64, count=len(stamps))
    return _format_micros(micros)


def _observe_ages(
    metrics: ServingMetrics,
    view: str,
    request_us: int,
    stamps: Sequence[int | None],
    statuses: Sequence[str],
    all_present: bool,
) -> None:
    if not all_present or None in stamps:
        ages = [
            request_us - stamp
            for stamp, status in zip(stamps, statuses, strict=False)
            if stamp is not None and status == _PRESENT
        ]
    else:
        ages = [request_us - stamp for stamp in stamps]  # type: ignore[operator]  # no None here
    if not ages:
        return
    if len(ages) <= _SMALL:
        metrics.value_age.observe_many([max(age, 0) / 1e6 for age in ages], view)
    else:
        metrics.value_age.observe_array(
            np.maximum(np.asarray(ages, dtype=np.float64), 0) / 1e6, view
        )


def catalog_of(snapshot: RegistrySnapshot) -> dict[str, Any]:
    """The ``GET /v1/catalog`` body (see ``CatalogResponse``) of a registry snapshot."""
    entities = []
    for name, entity in sorted(snapshot.entities.items()):
        entities.append(
            {
                "name": name,
                "join_keys": list(entity.join_keys),
                "key_dtypes": {k: str(t) for k, t in snapshot.entity_key_dtypes(name).items()},
                "description": entity.description,
            }
        )
    views = []
    for name, record in sorted(snapshot.feature_views.items()):
        view = record.view
        views.append(
            {
                "name": name,
                "entities": [e.name for e in view.entities],
                "join_keys": list(view.join_keys),
                "features": [
                    {"name": f.name, "dtype": str(f.dtype), "description": f.description}
                    for f in view.schema
                ],
                "ttl_seconds": view.ttl.total_seconds() if view.ttl else None,
                "online": view.online,
                "fingerprint": record.fingerprint,
                "watermark": rfc3339(record.watermark) if record.watermark else None,
                "description": view.description,
                "owner": view.owner,
                "tags": dict(view.tags),
            }
        )
    services = [
        {
            "name": name,
            "features": [str(r) for r in service.refs],
            "description": service.description,
        }
        for name, service in sorted(snapshot.feature_services.items())
    ]
    return {
        "project": snapshot.project,
        "registry_serial": snapshot.serial,
        "applied_at": rfc3339(snapshot.applied_at) if snapshot.applied_at else None,
        "entities": entities,
        "feature_views": views,
        "feature_services": services,
    }
