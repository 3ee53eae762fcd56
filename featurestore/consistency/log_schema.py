"""The feature log's rows (DESIGN G5): what one logged request holds, column by column.

One Parquet row per entity row of a logged request. Columns, for a service whose features
read stored views ``V``:

* ``request_id`` (string), ``request_time`` (timestamp, UTC), ``service`` (string);
* ``key:<join key>``: each join key, typed as the key;
* ``request:<field>``: each request field of the service's on-demand views, typed as declared;
* per feature ref ``view:feature``: ``value:view:feature`` (the served value, typed as the
  feature), ``status:view:feature`` (the :class:`~featurestore.online.base.FieldStatus`
  name) and ``event_timestamp:view:feature`` (the served record's event timestamp);
* per stored view read (on-demand inputs included): ``fingerprint:<view>`` and
  ``watermark:<view>`` as the serving registry knew them at the read.

Nothing else is logged: no header, so never an API key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from featurestore.online.response import arrow_column
from featurestore.types import to_arrow

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from featurestore.definitions import FeatureRef
    from featurestore.online.response import OnlineResponse
    from featurestore.repo.registry import RegistrySnapshot
    from featurestore.types import DType

__all__ = [
    "EVENT",
    "FINGERPRINT",
    "KEY",
    "REQUEST",
    "REQUEST_ID",
    "REQUEST_TIME",
    "SERVICE",
    "STATUS",
    "VALUE",
    "WATERMARK",
    "ServiceLog",
    "service_log",
    "stored_views_of",
]

REQUEST_ID = "request_id"
REQUEST_TIME = "request_time"
SERVICE = "service"
KEY = "key:"
REQUEST = "request:"
VALUE = "value:"
STATUS = "status:"
EVENT = "event_timestamp:"
FINGERPRINT = "fingerprint:"
WATERMARK = "watermark:"

_TIMESTAMP = pa.timestamp("us", tz="UTC")


def stored_views_of(snapshot: RegistrySnapshot, ref: FeatureRef) -> tuple[str, ...]:
    """The stored views ``ref``'s value comes from: its own, or an on-demand view's inputs."""
    if ref.view in snapshot.feature_views:
        return (ref.view,)
    found: dict[str, None] = {}
    pending = [ref.view]
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        record = snapshot.on_demand_views[name]
        for item in record.view_inputs:
            if item.view in snapshot.feature_views:
                found.setdefault(item.view)
            else:
                pending.append(item.view)
        pending.extend(record.upstream)
    return tuple(found)


def _request_fields(snapshot: RegistrySnapshot, refs: Sequence[FeatureRef]) -> dict[str, DType]:
    fields: dict[str, DType] = {}
    pending = [r.view for r in refs if r.view in snapshot.on_demand_views]
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        record = snapshot.on_demand_views[name]
        for field in record.request_fields:
            fields.setdefault(field.name, field.dtype)
        pending.extend(record.upstream)
        pending.extend(r.view for r in record.view_inputs if r.view in snapshot.on_demand_views)
    return fields


@dataclass(frozen=True, slots=True)
class ServiceLog:
    """How one service's requests become log rows, for one registry snapshot."""

    service: str
    sample_rate: float
    refs: tuple[FeatureRef, ...]
    request_fields: dict[str, DType]
    views: dict[str, tuple[str, datetime | None]]
    """Each stored view read: its fingerprint and watermark in the serving registry."""

    def table(
        self,
        *,
        request_id: str,
        request_time_us: int,
        entity_rows: list[dict[str, object]] | Mapping[str, Sequence[object]],
        response: OnlineResponse,
    ) -> pa.Table:
        """The log rows of one served request (run by the log writer, off the request path).

        The response's feature columns come in the service's ref order; each becomes an Arrow
        column in one conversion.
        """
        n = len(response)
        columns: dict[str, pa.Array] = {
            REQUEST_ID: pa.repeat(request_id, n).cast(pa.string()),
            REQUEST_TIME: pa.repeat(pa.scalar(request_time_us, pa.int64()), n).cast(_TIMESTAMP),
            SERVICE: pa.repeat(self.service, n).cast(pa.string()),
        }
        for name, values in response.join_keys.items():
            columns[KEY + name] = arrow_column(values, response.dtypes[name])
        for name, dtype in self.request_fields.items():
            columns[REQUEST + name] = _request_column(entity_rows, name, dtype)
        for ref, name in zip(self.refs, response.features, strict=True):
            columns[VALUE + str(ref)] = arrow_column(response.features[name], response.dtypes[name])
            columns[STATUS + str(ref)] = pa.array(
                [s.value for s in response.statuses[name]], pa.string()
            )
            columns[EVENT + str(ref)] = pa.array(response.event_micros[name], pa.int64()).cast(
                _TIMESTAMP
            )
        for view, (fingerprint, watermark) in self.views.items():
            columns[FINGERPRINT + view] = pa.repeat(fingerprint, n).cast(pa.string())
            columns[WATERMARK + view] = pa.repeat(pa.scalar(watermark, _TIMESTAMP), n)
        return pa.table(columns)


def _request_column(
    entity_rows: list[dict[str, object]] | Mapping[str, Sequence[object]],
    name: str,
    dtype: DType,
) -> pa.Array:
    values: Sequence[Any]
    if isinstance(entity_rows, list):
        values = [row.get(name) for row in entity_rows]
    else:
        values = entity_rows[name]
    return pa.array(values, to_arrow(dtype))


def service_log(snapshot: RegistrySnapshot, service: str) -> ServiceLog | None:
    """The log plan of ``service``, or None when it does not log (or is not applied)."""
    definition = snapshot.feature_services.get(service)
    if definition is None or definition.logging is None or not definition.logging.sample_rate:
        return None
    refs = definition.refs
    views: dict[str, tuple[str, datetime | None]] = {}
    for ref in refs:
        for view in stored_views_of(snapshot, ref):
            record = snapshot.feature_views[view]
            views.setdefault(view, (record.fingerprint, record.watermark))
    return ServiceLog(
        service=service,
        sample_rate=definition.logging.sample_rate,
        refs=refs,
        request_fields=_request_fields(snapshot, refs),
        views=views,
    )
