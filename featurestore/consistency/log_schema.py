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

import logging
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np
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

logger = logging.getLogger(__name__)

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


LoggedRequest = tuple[
    "ServiceLog", int, "list[dict[str, object]] | Mapping[str, Sequence[object]]", "OnlineResponse"
]
"""One served request waiting to be logged: ``(log, request time in microseconds, entity rows,
response)``, references to what was served (a plain tuple: the request path builds nothing)."""


class LogBatch:
    """Log rows of one plan: served requests converted to Arrow a few hundred at a time.

    :meth:`add` converts requests column by column over all of them at once (one Arrow array
    per column, not one per request), so the writer thread holds the interpreter briefly and
    keeps no served response once converted; :meth:`table` joins the converted parts.
    """

    def __init__(self, log: ServiceLog, token: str) -> None:
        self.log = log
        self.rows = 0
        self._token = token
        self._parts: list[pa.Table] = []

    def add(self, requests: Sequence[LoggedRequest], first_id: int) -> int:
        """Convert ``requests`` (ids ``first_id``, ``first_id + 1``, ...); returns rows dropped.

        A request whose request field values are not of the field's type is dropped alone
        (counted in the return value); the others are logged.
        """
        ids = list(range(first_id, first_id + len(requests)))
        try:
            part = self._convert(requests, ids)
        except (pa.ArrowException, TypeError, ValueError):
            good = [i for i, r in enumerate(requests) if self._convertible(r)]
            bad = set(range(len(requests))) - set(good)
            logger.warning(
                "%d request(s) of service %s not logged: a request field has values not of its "
                "type",
                len(bad),
                self.log.service,
            )
            if good:
                self._keep(self._convert([requests[i] for i in good], [ids[i] for i in good]))
            return sum(len(requests[i][3]) for i in bad)
        self._keep(part)
        return 0

    def _keep(self, part: pa.Table) -> None:
        self._parts.append(part)
        self.rows += part.num_rows

    def _convertible(self, request: LoggedRequest) -> bool:
        try:
            for name, dtype in self.log.request_fields.items():
                pa.array(_request_values(request[2], name), to_arrow(dtype))
        except (pa.ArrowException, TypeError, ValueError):
            return False
        return True

    def _convert(self, requests: Sequence[LoggedRequest], ids: list[int]) -> pa.Table:
        # Column by column with map/itemgetter and chain: C loops, no Python frame per
        # request (a generator per request and column cost ~8 us per 1 x 10 request).
        # Timestamps are built from their microseconds and constant strings from one typed
        # scalar, never by a cast: a cast costs ~10 us a call, 13 of a 1 x 10 batch's columns.
        log = self.log
        responses = list(map(itemgetter(3), requests))
        first = responses[0]
        dtypes = first.dtypes
        keys = list(map(attrgetter("join_keys"), responses))
        counts = np.fromiter(map(len, map(itemgetter(next(iter(first.join_keys))), keys)),
                             np.int64, len(responses))  # fmt: skip
        n = int(counts.sum())
        per_request = {
            REQUEST_ID: pa.array([f"{self._token}-{i}" for i in ids], pa.string()),
            REQUEST_TIME: pa.array(list(map(itemgetter(1), requests)), _TIMESTAMP),
        }
        if n != len(responses):  # requests of several entity rows: one log row each
            repeat = pa.array(np.repeat(np.arange(len(responses)), counts))
            per_request = {name: array.take(repeat) for name, array in per_request.items()}
        columns: dict[str, pa.Array] = {
            REQUEST_ID: per_request[REQUEST_ID],
            REQUEST_TIME: per_request[REQUEST_TIME],
            SERVICE: pa.repeat(pa.scalar(log.service, pa.string()), n),
        }

        def flat(columns: list[dict[str, list[Any]]], name: str) -> list[Any]:
            return list(chain.from_iterable(map(itemgetter(name), columns)))

        for name in first.join_keys:
            columns[KEY + name] = arrow_column(flat(keys, name), dtypes[name])
        for name, dtype in log.request_fields.items():
            values = list(chain.from_iterable(_request_values(r[2], name) for r in requests))
            columns[REQUEST + name] = pa.array(values, to_arrow(dtype))
        features = list(map(attrgetter("features"), responses))
        statuses = list(map(attrgetter("statuses"), responses))
        events = list(map(attrgetter("event_micros"), responses))
        for ref, name in zip(log.refs, first.features, strict=True):
            columns[VALUE + str(ref)] = arrow_column(flat(features, name), dtypes[name])
            # FieldStatus is a StrEnum: Arrow takes each member as its value.
            columns[STATUS + str(ref)] = pa.array(flat(statuses, name), pa.string())
            columns[EVENT + str(ref)] = pa.array(flat(events, name), _TIMESTAMP)
        for view, (fingerprint, watermark) in log.views.items():
            columns[FINGERPRINT + view] = pa.repeat(pa.scalar(fingerprint, pa.string()), n)
            columns[WATERMARK + view] = pa.repeat(pa.scalar(watermark, _TIMESTAMP), n)
        return pa.table(columns)

    def table(self) -> pa.Table:
        """The converted rows as one Arrow table (see the module docstring for the columns)."""
        return pa.concat_tables(self._parts)


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
