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
from itertools import chain, compress
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurestore.online.response import arrow_column
from featurestore.types import Timestamp, to_arrow

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence
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
    "ServiceLog",
    int,
    "list[dict[str, object]] | Mapping[str, Sequence[object]]",
    "OnlineResponse",
    int,
]
"""One served request waiting to be logged: ``(log, request time in microseconds, entity rows,
response, its rows)``, references to what was served (a plain tuple: the request path builds
nothing)."""


_BLOCK_ROWS = 2048
"""Gathered rows converted to Arrow together, one column at a time: enough that per-call costs
vanish (one ``pa.array`` per column over thousands of values), few enough that one column's
conversion is a pause of tens of microseconds."""


class _Block:
    """Gathered rows: one Python list per log column, aligned."""

    def __init__(self, keys: int, fields: int, features: int) -> None:
        self.rows = 0
        self.suspect = False
        """A request field value is not of its type: only a thorough step converts it."""
        self.ids: list[int] = []
        self.times: list[int] = []
        self.counts: list[int] = []
        """Log rows per request (its entity rows)."""
        self.keys: list[list[Any]] = [[] for _ in range(keys)]
        self.fields: list[list[Any]] = [[] for _ in range(fields)]
        self.values: list[list[Any]] = [[] for _ in range(features)]
        self.statuses: list[list[Any]] = [[] for _ in range(features)]
        self.events: list[list[Any]] = [[] for _ in range(features)]

    def drop(self, bad: set[int]) -> int:
        """Drop the requests at positions ``bad`` from every column; returns their rows."""
        keep = [r not in bad for r in range(len(self.counts))]
        rows = [kept for kept, count in zip(keep, self.counts, strict=True) for _ in range(count)]
        self.ids = list(compress(self.ids, keep))
        self.times = list(compress(self.times, keep))
        self.counts = list(compress(self.counts, keep))
        for columns in (self.keys, self.fields, self.values, self.statuses, self.events):
            columns[:] = [list(compress(values, rows)) for values in columns]
        dropped = rows.count(False)
        self.rows -= dropped
        return dropped


class LogBatch:
    """Log rows of one plan: served requests gathered column by column, converted in blocks.

    :meth:`add` takes each request's values into one Python list per column (C loops: map,
    itemgetter, chain), so no served response outlives the few dozen requests gathered
    together: a response is a few dozen objects the garbage collector would otherwise walk
    again and again, while the gathered values (numbers, strings, the status members) are not
    tracked by it at all. Every :data:`_BLOCK_ROWS` rows make a block, which :meth:`step`
    converts to Arrow a column at a time (so the thread that does it never pauses long) and
    :meth:`finish` converts whole; :meth:`finish` returns every converted row as one table.
    """

    def __init__(self, log: ServiceLog, token: str) -> None:
        self.log = log
        self._token = token
        self._parts: list[pa.Table] = []
        self._key_names: list[str] = []
        self._key_dtypes: list[DType] = []
        self._dtypes: list[DType] = []
        self._block: _Block | None = None
        self._sealed: list[_Block] = []
        self._converting: Iterator[int] | None = None
        self._dropped = 0

    @property
    def rows(self) -> int:
        """Rows taken and not yet returned by :meth:`finish` (dropped ones aside)."""
        gathered = sum(block.rows for block in self._sealed)
        if self._block is not None:
            gathered += self._block.rows
        return gathered + sum(int(part.num_rows) for part in self._parts)

    @property
    def columns(self) -> int:
        """Log columns converted value by value (per-request and constant ones aside)."""
        return 3 * len(self.log.refs) + len(self._key_names) + len(self.log.request_fields)

    @property
    def converting(self) -> bool:
        """Whether sealed blocks wait for :meth:`step`."""
        return bool(self._sealed)

    def add(self, requests: Sequence[LoggedRequest], first_id: int) -> int:
        """Take ``requests`` (ids ``first_id``, ``first_id + 1``, ...); returns their rows.

        Either every column takes a request's values or none does (a malformed request raises
        before any column is extended).
        """
        responses = list(map(itemgetter(3), requests))
        block = self._block
        if block is None:
            if not self._dtypes:
                first = responses[0]
                self._key_names = list(first.join_keys)
                self._key_dtypes = [first.dtypes[name] for name in first.join_keys]
                self._dtypes = [first.dtypes[name] for name in first.features]
            block = _Block(len(self._key_names), len(self.log.request_fields), len(self._dtypes))
        counts: list[int] = list(map(itemgetter(4), requests))
        keys = list(map(attrgetter("join_keys"), responses))
        key_columns = [_flat(map(itemgetter(name), keys)) for name in self._key_names]
        field_columns = [
            _flat(_request_values(r[2], name) for r in requests) for name in self.log.request_fields
        ]
        # By position: a request may name its features in full (view__feature) or not.
        width = len(self._dtypes)
        values = _transposed(map(attrgetter("features"), responses), width)
        status_columns = _transposed(map(attrgetter("statuses"), responses), width)
        event_columns = _transposed(map(attrgetter("event_micros"), responses), width)
        block.ids.extend(range(first_id, first_id + len(requests)))
        block.times.extend(map(itemgetter(1), requests))
        block.counts.extend(counts)
        for gathered, column in chain(
            zip(block.keys, key_columns, strict=True),
            zip(block.fields, field_columns, strict=True),
            zip(block.values, values, strict=True),
            zip(block.statuses, status_columns, strict=True),
            zip(block.events, event_columns, strict=True),
        ):
            gathered.extend(column)
        rows = sum(counts)
        block.rows += rows
        self._block = block
        if block.rows >= _BLOCK_ROWS:
            self.seal()
        return rows

    def seal(self) -> None:
        """Close the block being gathered: from now on :meth:`step` may convert it."""
        if self._block is not None and self._block.rows:
            self._sealed.append(self._block)
        self._block = None

    def step(self, cells: int, *, thorough: bool = False) -> None:
        """Convert at least ``cells`` values of sealed blocks (whole columns), if any wait.

        A block with a request field value not of the field's type needs a check per row:
        only a ``thorough`` step does it (the writer thread's, never a served request's), the
        others leave the block waiting. A block that fails to convert for another reason is
        dropped (logged, counted by :meth:`finish`). This never raises.
        """
        while cells > 0 and self._sealed:
            block = self._sealed[0]
            try:
                if self._converting is None:
                    if block.suspect and not thorough:
                        return
                    fields = self._checked_fields(block, thorough=thorough)
                    if fields is None:
                        return
                    self._converting = self._convert(block, fields)
                converted = next(self._converting, None)
            except Exception:  # never fail a served request for its log
                logger.exception("feature log: %d rows could not be converted", block.rows)
                self._dropped += block.rows
                converted = None
            if converted is None:
                self._converting = None
                self._sealed.pop(0)
            else:
                cells -= converted

    def _checked_fields(self, block: _Block, *, thorough: bool) -> list[pa.Array] | None:
        """The block's request field columns, checked row by row when one is not typed right.

        None when a value is not of its field's type and the step is not ``thorough``: the
        block is marked and left.
        """
        try:
            return self._field_arrays(block)
        except (pa.ArrowException, TypeError, ValueError):
            if not thorough:
                block.suspect = True
                return None
        self._dropped += self._drop_unconvertible(block)
        return self._field_arrays(block)

    def finish(self) -> tuple[pa.Table | None, int]:
        """Every row taken as one Arrow table (None when none), and the rows dropped.

        Rows are dropped when a request field has values not of its type (the whole request,
        logged as a warning), and a block's rows when it fails to convert otherwise (logged).
        The batch is empty afterwards.
        """
        self.seal()
        while self._sealed:
            self.step(1 << 62, thorough=True)
        table = pa.concat_tables(self._parts) if self._parts else None
        dropped, self._dropped, self._parts = self._dropped, 0, []
        return table, dropped

    def _convert(self, block: _Block, fields: list[pa.Array]) -> Iterator[int]:
        """Convert ``block`` to a table in :attr:`_parts`, yielding the values of each column.

        ``fields``: its request field columns, already converted.
        """
        n = block.rows
        if not n:
            return
        log = self.log
        ids = pc.cast(pa.array(block.ids, pa.int64()), pa.string())
        per_request = {
            REQUEST_ID: pc.binary_join_element_wise(f"{self._token}-", ids, ""),
            REQUEST_TIME: arrow_column(block.times, Timestamp),
        }
        if n != len(block.counts) or 0 in block.counts:  # not one row per request
            repeat = pa.array(np.repeat(np.arange(len(block.counts)), block.counts))
            per_request = {name: array.take(repeat) for name, array in per_request.items()}
        columns: dict[str, pa.Array] = {
            **per_request,
            SERVICE: pa.repeat(pa.scalar(log.service, pa.string()), n),
        }
        keys = zip(self._key_names, self._key_dtypes, block.keys, strict=True)
        for name, dtype, values in keys:
            columns[KEY + name] = arrow_column(values, dtype)
        for name, array in zip(log.request_fields, fields, strict=True):
            columns[REQUEST + name] = array
        yield n * (3 + len(self._key_names) + len(fields))
        features = zip(
            log.refs, self._dtypes, block.values, block.statuses, block.events, strict=True
        )
        for ref, dtype, values, statuses, events in features:
            columns[VALUE + str(ref)] = arrow_column(values, dtype)
            # FieldStatus is a StrEnum: Arrow takes each member as its value.
            columns[STATUS + str(ref)] = pa.array(statuses, pa.string())
            columns[EVENT + str(ref)] = arrow_column(events, Timestamp)
            yield 3 * n
        for view, (fingerprint, watermark) in log.views.items():
            columns[FINGERPRINT + view] = pa.repeat(pa.scalar(fingerprint, pa.string()), n)
            columns[WATERMARK + view] = pa.repeat(pa.scalar(watermark, _TIMESTAMP), n)
        self._parts.append(pa.table(columns))

    def _field_arrays(self, block: _Block) -> list[pa.Array]:
        return [
            pa.array(values, to_arrow(dtype))
            for values, dtype in zip(block.fields, self.log.request_fields.values(), strict=True)
        ]

    def _drop_unconvertible(self, block: _Block) -> int:
        """Drop every request with a request field value not of the field's type; its rows."""
        owner = [r for r, count in enumerate(block.counts) for _ in range(count)]
        bad: set[int] = set()
        for values, dtype in zip(block.fields, self.log.request_fields.values(), strict=True):
            arrow_type = to_arrow(dtype)
            for row, value in enumerate(values):
                try:
                    pa.array([value], arrow_type)
                except (pa.ArrowException, TypeError, ValueError):
                    bad.add(owner[row])
        logger.warning(
            "%d request(s) of service %s not logged: a request field has values not of its type",
            len(bad),
            self.log.service,
        )
        return block.drop(bad)


def _flat(columns: Iterable[Sequence[Any]]) -> list[Any]:
    return list(chain.from_iterable(columns))


def _transposed(dicts: Iterable[dict[str, list[Any]]], width: int) -> list[list[Any]]:
    """Per position, the values of that position's list in every dict, one after another.

    Raises:
        ValueError: The dicts hold different numbers of lists, or not ``width``.
    """
    lists = [d.values() for d in dicts]
    columns = [list(chain.from_iterable(c)) for c in zip(*lists, strict=True)]
    if len(columns) != width:
        msg = f"a logged response has {len(columns)} features where its plan has {width}"
        raise ValueError(msg)
    return columns


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
