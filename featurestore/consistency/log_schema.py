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
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import datetime

    from featurestore.definitions import FeatureRef
    from featurestore.online.response import OnlineResponse
    from featurestore.repo.registry import RegistrySnapshot
    from featurestore.repo.snapshot import OnDemandRecord
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
    "LoggedRequest",
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


def _on_demand_closure(snapshot: RegistrySnapshot, names: Iterable[str]) -> list[OnDemandRecord]:
    """The on-demand records ``names`` need, each once: the views and everything upstream."""
    out: list[OnDemandRecord] = []
    pending = [n for n in names if n in snapshot.on_demand_views]
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        record = snapshot.on_demand_views[name]
        out.append(record)
        pending.extend(r.view for r in record.view_inputs if r.view in snapshot.on_demand_views)
        pending.extend(record.upstream)
    return out


def stored_views_of(snapshot: RegistrySnapshot, ref: FeatureRef) -> tuple[str, ...]:
    """The stored views ``ref``'s value comes from: its own, or an on-demand view's inputs."""
    if ref.view in snapshot.feature_views:
        return (ref.view,)
    found: dict[str, None] = {}
    for record in _on_demand_closure(snapshot, [ref.view]):
        for item in record.view_inputs:
            if item.view in snapshot.feature_views:
                found.setdefault(item.view)
    return tuple(found)


def _request_fields(snapshot: RegistrySnapshot, refs: Sequence[FeatureRef]) -> dict[str, DType]:
    fields: dict[str, DType] = {}
    for record in _on_demand_closure(snapshot, [r.view for r in refs]):
        for field in record.request_fields:
            fields.setdefault(field.name, field.dtype)
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


class LogBatch:
    """Log rows of one plan gathered column by column as requests arrive (the writer's work).

    Adding a request extends one Python list per column (a little work per request, so the
    writer thread never holds the interpreter long); :meth:`table` converts each column to
    Arrow once.
    """

    def __init__(self, log: ServiceLog) -> None:
        self.log = log
        self.rows = 0
        self._ids: list[str] = []
        self._times: list[int] = []
        self._keys: dict[str, list[Any]] = {}
        self._fields: dict[str, list[pa.Array]] = {f: [] for f in log.request_fields}
        self._values: dict[str, list[Any]] = {}
        self._statuses: dict[str, list[str]] = {}
        self._events: dict[str, list[int | None]] = {}
        self._dtypes: dict[str, DType] = {}

    def add(self, request: LoggedRequest) -> None:
        """Gather the rows of one served request (nothing of it is kept but its values).

        Raises:
            pyarrow.ArrowException: A request field's values are not of its type (checked
                here, so one bad request never spoils a batch).
        """
        response = request.response
        fields = {
            name: pa.array(_request_values(request.entity_rows, name), to_arrow(dtype))
            for name, dtype in self.log.request_fields.items()
        }
        if not self.rows:
            self._dtypes = response.dtypes
            self._keys = {k: [] for k in response.join_keys}
            self._values = {f: [] for f in response.features}
            self._statuses = {f: [] for f in response.features}
            self._events = {f: [] for f in response.features}
        n = len(response)
        self.rows += n
        self._ids.extend([request.request_id] * n)
        self._times.extend([request.request_time_us] * n)
        for name, column in self._keys.items():
            column.extend(response.join_keys[name])
        for name, array in fields.items():
            self._fields[name].append(array)
        for name, values in self._values.items():
            values.extend(response.features[name])
            self._statuses[name].extend([s.value for s in response.statuses[name]])
            self._events[name].extend(response.event_micros[name])

    def table(self) -> pa.Table:
        """The gathered rows as one Arrow table (see the module docstring for the columns)."""
        log, dtypes, n = self.log, self._dtypes, len(self._ids)
        columns: dict[str, pa.Array] = {
            REQUEST_ID: pa.array(self._ids, pa.string()),
            REQUEST_TIME: pa.array(self._times, pa.int64()).cast(_TIMESTAMP),
            SERVICE: pa.repeat(log.service, n).cast(pa.string()),
        }
        for name, column in self._keys.items():
            columns[KEY + name] = arrow_column(column, dtypes[name])
        for name, arrays in self._fields.items():
            arrow_type = to_arrow(log.request_fields[name])
            columns[REQUEST + name] = (
                pa.concat_arrays(arrays) if arrays else pa.array([], arrow_type)
            )
        for ref, name in zip(log.refs, self._values, strict=True):
            columns[VALUE + str(ref)] = arrow_column(self._values[name], dtypes[name])
            columns[STATUS + str(ref)] = pa.array(self._statuses[name], pa.string())
            columns[EVENT + str(ref)] = pa.array(self._events[name], pa.int64()).cast(_TIMESTAMP)
        for view, (fingerprint, watermark) in log.views.items():
            columns[FINGERPRINT + view] = pa.repeat(fingerprint, n).cast(pa.string())
            columns[WATERMARK + view] = pa.repeat(pa.scalar(watermark, _TIMESTAMP), n)
        return pa.table(columns)


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One served request waiting to be logged: references to what was served, no copy."""

    request_id: str
    request_time_us: int
    entity_rows: list[dict[str, object]] | Mapping[str, Sequence[object]]
    response: OnlineResponse


def _request_values(
    entity_rows: list[dict[str, object]] | Mapping[str, Sequence[object]], name: str
) -> Sequence[Any]:
    if isinstance(entity_rows, list):
        return [row.get(name) for row in entity_rows]
    return entity_rows[name]


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
