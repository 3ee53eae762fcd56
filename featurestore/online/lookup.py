"""The online read path: check entity rows, read every view in one round trip, decode.

A stored record of view V for key K is served at request time T (status ``PRESENT``) iff it
was written with V's applied fingerprint and it is a point-in-time candidate at T under the
training join's rule (:func:`featurestore.window.in_window`): ``event_ts <= T`` and, when V
has a ttl L, ``event_ts >= T - L`` (both inclusive). Otherwise the value is null with ``NOT_FOUND`` (nothing stored),
``STALE_DEFINITION`` (other fingerprint) or ``OUTSIDE_MAX_AGE`` (too old, or newer than T).
Because the stored record is the newest row below the watermark, a PRESENT value is exactly
the training frame's value for (K, T) (DESIGN G3).

That holds only while the store still holds what the watermarks describe: at most every
:data:`EPOCH_CHECK_S` seconds the reader compares the store's epoch with the one each
watermark was recorded under (:mod:`featurestore.online.epoch`), and refuses requests for a
lost view with :class:`~featurestore.errors.OnlineStoreIntegrityError`.
"""

from __future__ import annotations

import math
import numbers
import struct
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from featurestore._time import parse_timestamp, to_micros, utc_now
from featurestore.definitions import FeatureRef, output_names
from featurestore.errors import EntityFrameError, OnlineStoreIntegrityError, term
from featurestore.online.base import AsyncReads, FieldStatus, ReadRequest
from featurestore.online.codec import KeyEncoder, RecordCodec
from featurestore.online.epoch import lost_reason, lost_views
from featurestore.online.layout import (
    BITMAP_FIELD,
    EVENT_FIELD,
    FINGERPRINT_FIELD,
    HEAD_FORMAT,
    HEAD_SIZE,
    RECORD_VERSION,
    VERSION_FIELD,
    event_us_column,
    event_us_of,
)
from featurestore.online.on_demand import OnlineOnDemand, hidden_name
from featurestore.online.response import OnlineResponse
from featurestore.online.tiles import TilePlan, combine
from featurestore.repo.registry import resolve_refs
from featurestore.transformations.graph import plan_on_demand
from featurestore.window import in_window, ttl_micros

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from featurestore.online.base import OnlineStore
    from featurestore.repo.registry import RegistrySnapshot, ViewRecord
    from featurestore.transformations.decorator import OnDemandFeatureView
    from featurestore.types import DType

    OnDemandLoader = Callable[[list[FeatureRef]], dict[str, OnDemandFeatureView]]
    """Refs -> the on-demand views they need, checked against the applied fingerprints."""

__all__ = ["EPOCH_CHECK_S", "OnlineReader"]

EPOCH_CHECK_S = 1.0
"""Seconds between two checks of the store epoch by a reader (one small read each)."""

_HEAD = struct.Struct(HEAD_FORMAT)
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_PRESENT = FieldStatus.PRESENT
_NOT_FOUND = FieldStatus.NOT_FOUND
_OUTSIDE = FieldStatus.OUTSIDE_MAX_AGE
_STALE = FieldStatus.STALE_DEFINITION


@dataclass(frozen=True, slots=True)
class _ViewPlan:
    """What to read and decode for one view of a request."""

    name: str
    join_keys: tuple[str, ...]
    indexes: tuple[int, ...]
    """Schema positions of the requested features."""
    outputs: tuple[str, ...]
    """Output column names, parallel to ``indexes``."""
    codec: RecordCodec
    ttl_us: int | None
    tiles: TilePlan | None = None
    """An aggregation view's tiles (G7): its tile block is read and combined at request time."""
    watermark_us: int | None = None
    """An aggregation view's watermark (its tiles' statuses depend on it)."""


@dataclass(frozen=True, slots=True)
class _Plan:
    views: tuple[_ViewPlan, ...]
    key_dtypes: dict[str, DType]
    """Every join key the request needs, in first-use order, with its type."""
    key_sets: tuple[tuple[tuple[str, ...], KeyEncoder, tuple[int, ...]], ...]
    """Distinct join key sets: the keys, their encoder, and the views (positions) using it."""
    dtypes: dict[str, DType]
    names: tuple[str, ...]
    """The output columns in response order: the refs' order (hidden inputs left out)."""
    on_demand: OnlineOnDemand | None = None
    """The on-demand views to run after the read (None when no ref needs one)."""
    decoded_in_order: bool = False
    """Decoding (key set by key set) already yields ``names`` in order: no reordering."""
    set_views: tuple[tuple[str, ...], ...] = ()
    """Per key set, the names of its views (what each read request asks for)."""

    def __post_init__(self) -> None:
        decoded = tuple(
            name
            for _, _, positions in self.key_sets
            for p in positions
            for name in self.views[p].outputs
        )
        object.__setattr__(
            self, "decoded_in_order", self.on_demand is None and decoded == self.names
        )
        object.__setattr__(
            self,
            "set_views",
            tuple(
                tuple(self.views[p].name for p in positions) for _, _, positions in self.key_sets
            ),
        )


@dataclass(slots=True)
class _Batch:
    """One lookup between planning and decoding: what to read, and how to decode it."""

    plan: _Plan
    now: int
    """The request time, in microseconds."""
    keys: dict[str, list[Any]]
    """The checked join key columns."""
    n: int
    """How many entity rows."""
    request: dict[str, Any]
    """The checked request fields of on-demand views."""
    requests: list[ReadRequest]
    slots: list[list[int]]
    """Per key set, for each entity row, the index of its read request."""


class OnlineReader:
    """Serves online lookups for one registry snapshot (plans are cached per feature list).

    Args:
        snapshot: The applied definitions (fingerprints, ttls, key types).
        store: The online store to read.
        on_demand: Loads the on-demand views a request needs (None: the registry has none).
        epoch_check_s: Seconds between two checks of the store epoch (0: every request).
    """

    def __init__(
        self,
        snapshot: RegistrySnapshot,
        store: OnlineStore,
        *,
        on_demand: OnDemandLoader | None = None,
        epoch_check_s: float = EPOCH_CHECK_S,
    ) -> None:
        self.snapshot = snapshot
        self.store = store
        self._load_on_demand = on_demand
        self._plans: dict[tuple[str | tuple[str, ...], bool], _Plan] = {}
        self._epoch_check_s = epoch_check_s
        self._epoch_checked = -math.inf
        self._lost: dict[str, ViewRecord] = {}
        self._store_epoch: str | None = None
        self._async = store if isinstance(store, AsyncReads) else None

    def _epoch_due(self) -> bool:
        return time.monotonic() - self._epoch_checked >= self._epoch_check_s

    def _record_epoch(self, epoch: str | None) -> None:
        """Remember the store epoch just read, and which views it says are lost."""
        lost = lost_views(self.snapshot.feature_views.values(), epoch)
        self._lost, self._store_epoch = {r.view.name: r for r in lost}, epoch
        self._epoch_checked = time.monotonic()

    def _refuse_lost(self, plan: _Plan) -> None:
        """Refuse a request that reads a lost view (per the last epoch read).

        Raises:
            OnlineStoreIntegrityError: A view of ``plan`` is lost, or the store's file was
                deleted.
        """
        if self._lost:
            records = [self._lost[v.name] for v in plan.views if v.name in self._lost]
            if records:
                reason = lost_reason(records, self._store_epoch, self.store.location)
                raise OnlineStoreIntegrityError(reason)

    def get_online_features(
        self,
        features: str | list[str],
        entity_rows: list[dict[str, object]] | Mapping[str, Sequence[object]],
        *,
        full_feature_names: bool = False,
        request_time: datetime | None = None,
    ) -> OnlineResponse:
        """Look up features for entity rows (see the module docstring for the rules).

        Args:
            features: ``"view:feature"`` refs, or a feature service name.
            entity_rows: A list of dicts, or a dict of columns, holding the join keys of every
                requested view and the request fields of on-demand views (other fields are
                ignored).
            full_feature_names: Name output columns ``view__feature``.
            request_time: When the values must be valid (default: now; naive means UTC).

        Raises:
            EntityFrameError: A join key is missing, null or of the wrong type (checked before
                any lookup).
            NotFoundError: A view, feature or service is unknown.
            OnlineStoreUnavailableError: The store cannot be reached.
            OnlineStoreIntegrityError: The store lost a requested view's values (see
                :mod:`featurestore.online.epoch`).
        """
        batch = self._prepare(features, entity_rows, full_feature_names, request_time)
        if not batch.requests:
            return self._finish(batch, [])
        if self._epoch_due():
            self._record_epoch(self.store.read_epoch())
        self._refuse_lost(batch.plan)
        return self._finish(batch, self.store.read_records(batch.requests))

    async def aget_online_features(
        self,
        features: str | list[str],
        entity_rows: list[dict[str, object]] | Mapping[str, Sequence[object]],
        *,
        full_feature_names: bool = False,
        request_time: datetime | None = None,
    ) -> OnlineResponse:
        """:meth:`get_online_features` without blocking the running event loop on I/O.

        The same planning and decoding; a store with :class:`~featurestore.online.base.AsyncReads`
        (Redis) is read asynchronously, a local one (SQLite) inline.
        """
        if self._async is None:
            return self.get_online_features(
                features,
                entity_rows,
                full_feature_names=full_feature_names,
                request_time=request_time,
            )
        batch = self._prepare(features, entity_rows, full_feature_names, request_time)
        if not batch.requests:
            return self._finish(batch, [])
        if self._epoch_due():
            self._record_epoch(await self._async.aread_epoch())
        self._refuse_lost(batch.plan)
        return self._finish(batch, await self._async.aread_records(batch.requests))

    def _prepare(
        self,
        features: str | list[str],
        entity_rows: list[dict[str, object]] | Mapping[str, Sequence[object]],
        full_feature_names: bool,
        request_time: datetime | None,
    ) -> _Batch:
        """Check the entity rows and build the read requests (no I/O)."""
        plan = self._plan(features, full_feature_names)
        now = to_micros(request_time if request_time is not None else utc_now())  # naive: UTC
        keys, n = _key_columns(entity_rows, plan.key_dtypes)
        request = plan.on_demand.check_request(entity_rows, n) if plan.on_demand else {}
        requests: list[ReadRequest] = []
        # Per key set: for each entity row, the index of its request.
        slots: list[list[int]] = []
        for (names, encoder, _), views in zip(plan.key_sets, plan.set_views, strict=True):
            encoded = encoder.encode_columns([keys[k] for k in names])
            seen: dict[bytes, int] = {}
            row_slots = []
            for key in encoded:
                slot = seen.get(key)
                if slot is None:
                    slot = seen[key] = len(requests)
                    requests.append(ReadRequest(key, views))
                row_slots.append(slot)
            slots.append(row_slots)
        return _Batch(plan, now, keys, n, request, requests, slots)

    def _finish(self, batch: _Batch, results: list[list[bytes | None]]) -> OnlineResponse:
        """Decode the records read for ``batch`` into the response (no I/O)."""
        plan, now, keys, n, slots = batch.plan, batch.now, batch.keys, batch.n, batch.slots
        features_out: dict[str, list[Any]] = {}
        statuses: dict[str, list[FieldStatus]] = {}
        event_micros: dict[str, list[int | None]] = {}
        for set_index, (_, _, view_positions) in enumerate(plan.key_sets):
            row_slots = slots[set_index]
            for field, position in enumerate(view_positions):
                view = plan.views[position]
                records = [results[s][field] for s in row_slots]
                if view.tiles is not None:
                    _combine_view(view, records, now, features_out, statuses, event_micros)
                    continue
                _decode_view(view, records, now, features_out, statuses, event_micros)
        if plan.on_demand is not None:
            plan.on_demand.compute(batch.request, n, features_out, statuses, event_micros)
        if plan.decoded_in_order:  # the common case: columns are already in response order
            return OnlineResponse(
                join_keys=keys,
                features=features_out,
                statuses=statuses,
                event_micros=event_micros,
                dtypes=plan.dtypes,
            )
        names = plan.names
        return OnlineResponse(
            join_keys={k: keys[k] for k in plan.key_dtypes},
            features={name: features_out[name] for name in names},
            statuses={name: statuses[name] for name in names},
            event_micros={name: event_micros[name] for name in names},
            dtypes=plan.dtypes,
        )

    def _plan(self, features: str | list[str], full_feature_names: bool) -> _Plan:
        cache_key = (features if isinstance(features, str) else tuple(features), full_feature_names)
        plan = self._plans.get(cache_key)
        if plan is None:
            plan = _make_plan(self.snapshot, features, full_feature_names, self._load_on_demand)
            if len(self._plans) < 1024:
                self._plans[cache_key] = plan
        return plan


def _make_plan(
    snapshot: RegistrySnapshot,
    features: str | list[str],
    full: bool,
    load_on_demand: OnDemandLoader | None = None,
) -> _Plan:
    refs = resolve_refs(snapshot, features)
    odfv_refs = [r for r in refs if r.view in snapshot.on_demand_views]
    on_demand_views = load_on_demand(odfv_refs) if odfv_refs and load_on_demand else {}
    if odfv_refs and not on_demand_views:  # pragma: no cover - the store always passes a loader
        msg = "This reader cannot compute on-demand features; use FeatureStore.get_online_features."
        raise EntityFrameError(msg)
    odfv_plan = plan_on_demand(odfv_refs, on_demand_views)
    stored_refs = [r for r in refs if r.view not in on_demand_views]
    hidden = [r for r in odfv_plan.stored if r not in stored_refs]
    by_view: dict[str, list[FeatureRef]] = {}
    for ref in [*stored_refs, *hidden]:
        by_view.setdefault(ref.view, []).append(ref)
    key_dtypes: dict[str, DType] = {}
    for view_name in by_view:
        keyed = snapshot.feature_views[view_name]
        for key in keyed.view.join_keys:
            key_dtypes.setdefault(key, keyed.key_dtypes[key])
    names = dict(
        zip(refs, output_names(refs, full_feature_names=full, taken=tuple(key_dtypes)), strict=True)
    )
    names.update({r: hidden_name(r) for r in hidden})
    views: list[_ViewPlan] = []
    dtypes: dict[str, DType] = dict(key_dtypes)
    for view_name, view_refs in by_view.items():
        record: ViewRecord = snapshot.feature_views[view_name]
        positions = {f.name: i for i, f in enumerate(record.view.schema)}
        tiles = watermark = None
        if record.view.aggregations:
            tiles = TilePlan.of(record.view, record.fingerprint, [r.feature for r in view_refs])
            watermark = to_micros(record.watermark) if record.watermark is not None else None
        views.append(
            _ViewPlan(
                name=view_name,
                join_keys=record.view.join_keys,
                indexes=tuple(positions[r.feature] for r in view_refs),
                outputs=tuple(names[r] for r in view_refs),
                codec=RecordCodec(
                    [f.dtype for f in record.view.schema], fingerprint=record.fingerprint
                ),
                ttl_us=ttl_micros(record.view.effective_ttl),
                tiles=tiles,
                watermark_us=watermark,
            )
        )
        for ref in view_refs:
            dtypes[names[ref]] = record.view.schema[positions[ref.feature]].dtype
    sets: dict[tuple[str, ...], list[int]] = {}
    for position, view in enumerate(views):
        sets.setdefault(tuple(sorted(view.join_keys)), []).append(position)
    key_sets = tuple(
        (names_, KeyEncoder({k: key_dtypes[k] for k in names_}), tuple(positions_))
        for names_, positions_ in sets.items()
    )
    order = tuple(names[r] for r in refs)
    if not odfv_refs:
        return _Plan(tuple(views), key_dtypes, key_sets, dtypes, order)
    columns_of = {r: names[r] for r in odfv_plan.stored}
    for odfv in odfv_plan.views:
        for f in odfv.schema:
            dtypes[names.get(FeatureRef(odfv.name, f.name), "")] = f.dtype
    dtypes.pop("", None)
    on_demand = OnlineOnDemand(
        plan=odfv_plan,
        columns_of=columns_of,
        dtypes={names[r]: dtypes[names[r]] for r in odfv_plan.stored},
        outputs={r: names[r] for r in odfv_refs},
    )
    for r in hidden:
        dtypes.pop(names[r])
    return _Plan(tuple(views), key_dtypes, key_sets, dtypes, order, on_demand)


def _decode_view(
    view: _ViewPlan,
    records: list[bytes | None],
    now: int,
    features_out: dict[str, list[Any]],
    statuses_out: dict[str, list[FieldStatus]],
    events_out: dict[str, list[int | None]],
) -> None:
    """Statuses, event times and values of the requested features of one view.

    Views of fixed-width features whose records are all stored are unpacked in one
    ``struct.iter_unpack`` call (header and values); otherwise only the headers are, and
    the values of PRESENT records are decoded record by record. Either way the statuses
    come from :func:`_statuses` on the header columns.
    """
    codec = view.codec
    fields = codec.unpack_columns(records)
    statuses, events, all_present = _statuses(view, records, fields or _head_columns(records), now)
    indexes = view.indexes
    if fields is not None:
        first = codec.first_slot
        columns = [list(fields[first + i]) for i in indexes]
        _apply_bitmaps(columns, indexes, fields[BITMAP_FIELD:first])
        if not all_present:
            for column in columns:
                for row, status in enumerate(statuses):
                    if status is not _PRESENT:
                        column[row] = None
    else:
        decode = codec.decode_selected
        nulls = [None] * len(indexes)
        rows = [
            decode(record, indexes) if status is _PRESENT and record is not None else nulls
            for record, status in zip(records, statuses, strict=True)
        ]
        # One transpose instead of an append per value.
        columns = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in indexes]
    for name, column in zip(view.outputs, columns, strict=True):
        features_out[name] = column
        statuses_out[name] = statuses
        events_out[name] = events


def _combine_view(
    view: _ViewPlan,
    records: list[bytes | None],
    now: int,
    features_out: dict[str, list[Any]],
    statuses_out: dict[str, list[FieldStatus]],
    events_out: dict[str, list[int | None]],
) -> None:
    """The requested aggregates of one aggregation view, per entity, from its tile blocks."""
    plan = cast("TilePlan", view.tiles)
    columns, statuses, events = combine(plan, records, now, view.watermark_us)
    for name, column in zip(view.outputs, columns, strict=True):
        features_out[name] = column
        statuses_out[name] = statuses
        events_out[name] = events


_NO_HEAD = bytes(HEAD_SIZE)  # version 0: never a record's, so never read further


def _head_columns(records: list[bytes | None]) -> list[tuple[Any, ...]]:
    """The header fields of every record, column by column (zeros where none is stored)."""
    heads = b"".join(
        _NO_HEAD if r is None else r[:HEAD_SIZE].ljust(HEAD_SIZE, b"\0") for r in records
    )
    return list(zip(*_HEAD.iter_unpack(heads), strict=True))


def _statuses(
    view: _ViewPlan,
    records: list[bytes | None],
    heads: Sequence[tuple[Any, ...]],
    now: int,
) -> tuple[list[FieldStatus], list[int | None], bool]:
    """THE status of each record (module docstring), from the header columns.

    Returns the statuses, the event times (None when nothing current is stored) and
    whether every status is PRESENT.
    """
    n = len(records)
    if not n:
        return [], [], True
    versions, fingerprints = heads[VERSION_FIELD], heads[FINGERPRINT_FIELD]
    fingerprint, ttl_us = view.codec.fingerprint, view.ttl_us
    events: list[int | None]
    if versions.count(RECORD_VERSION) == n and fingerprints.count(fingerprint) == n:
        # The common case: every record stored and current; one window check of the
        # extremes holds for all (the window is an interval).
        times = event_us_column(heads[EVENT_FIELD])
        events = cast("list[int | None]", times)
        if in_window(min(times), now, ttl_us) and in_window(max(times), now, ttl_us):
            return [_PRESENT] * n, events, True
        statuses = [_PRESENT if in_window(t, now, ttl_us) else _OUTSIDE for t in times]
        return statuses, events, False
    statuses = []
    events = []
    for record, version, key, stored in zip(
        records, versions, heads[EVENT_FIELD], fingerprints, strict=True
    ):
        if record is None:
            statuses.append(_NOT_FOUND)
            events.append(None)
        elif version != RECORD_VERSION or stored != fingerprint:
            statuses.append(_STALE)
            events.append(None)
        else:
            event = event_us_of(key)
            statuses.append(_PRESENT if in_window(event, now, ttl_us) else _OUTSIDE)
            events.append(event)
    return statuses, events, False


def _apply_bitmaps(
    columns: list[list[Any]], indexes: tuple[int, ...], bitmaps: Sequence[tuple[int, ...]]
) -> None:
    """Set the nulls of the null bitmap words (one column per word) in the value columns."""
    for w, bitmap in enumerate(bitmaps):
        if bitmap.count(0) == len(bitmap):
            continue
        for row, bits in enumerate(bitmap):
            if not bits:
                continue
            for column, index in zip(columns, indexes, strict=True):
                if index // 64 == w and bits >> (index % 64) & 1:
                    column[row] = None


# -- entity rows ------------------------------------------------------------------------------


_ENTITIES = term("entity_rows", cli="--entity", http='"entities"')
"""What the entity rows are called where the user wrote them."""


def _key_columns(
    entity_rows: list[dict[str, object]] | Mapping[str, Sequence[object]],
    key_dtypes: Mapping[str, DType],
) -> tuple[dict[str, list[Any]], int]:
    if not isinstance(entity_rows, list) and not hasattr(entity_rows, "keys"):
        msg = (
            "entity_rows must be a list of dicts ([{'user_id': 7}]) or a dict of columns "
            f"({{'user_id': [7, 8]}}), got {type(entity_rows).__name__}."
        )
        raise EntityFrameError(msg)
    columns: dict[str, list[Any]] = {}
    if isinstance(entity_rows, list):
        n = len(entity_rows)
        for key in key_dtypes:
            try:
                columns[key] = [row[key] for row in entity_rows]
            except KeyError:
                index = next(i for i, row in enumerate(entity_rows) if key not in row)
                msg = (
                    f"Entity row {index} has no join key '{key}'; every row needs "
                    f"{', '.join(repr(k) for k in key_dtypes)}"
                    f"{term('', cli=' (pass them with --entity name=value)')}."
                )
                raise EntityFrameError(msg) from None
            except TypeError:
                msg = "entity_rows must be a list of dicts, e.g. [{'user_id': 7}]."
                raise EntityFrameError(msg) from None
    else:
        lengths = set()
        for key in key_dtypes:
            if key not in entity_rows:
                msg = (
                    f"{_ENTITIES} has no join key column '{key}'; pass columns "
                    f"{', '.join(repr(k) for k in key_dtypes)}."
                )
                raise EntityFrameError(msg)
            columns[key] = list(entity_rows[key])
            lengths.add(len(columns[key]))
        for name, values in entity_rows.items():
            if name not in columns:
                lengths.add(len(values))
        if len(lengths) > 1:
            msg = f"{_ENTITIES} columns have different lengths {sorted(lengths)}; make them equal."
            raise EntityFrameError(msg)
        n = lengths.pop() if lengths else 0
    for key, dtype in key_dtypes.items():
        columns[key] = _check_key(key, columns[key], dtype)
    return columns, n


def _check_key(key: str, values: list[Any], dtype: DType) -> list[Any]:
    kind = dtype.name
    if kind in ("Int64", "Int32"):
        if not all(type(v) is int for v in values):
            values = [_as_int(key, v, dtype) for v in values]
        if values and (min(values) < _I64_MIN or max(values) > _I64_MAX):
            bad = next(v for v in values if not _I64_MIN <= v <= _I64_MAX)
            raise EntityFrameError(_wrong(key, bad, dtype, "it is outside the 64-bit range"))
        return values
    checked: type
    if kind == "String":
        checked = str
    elif kind == "Bytes":
        checked = bytes
    elif kind == "Bool":
        checked = bool
    elif kind in ("Float64", "Float32"):
        return [_as_float(key, v, dtype) for v in values]
    elif kind == "Timestamp":
        return [_as_micros(key, v, dtype) for v in values]
    else:  # pragma: no cover - list keys are refused at apply
        raise EntityFrameError(_wrong(key, values[0] if values else None, dtype))
    for v in values:
        if type(v) is not checked:
            raise EntityFrameError(_wrong(key, v, dtype))
    return values


def _wrong(key: str, value: object, dtype: DType, why: str = "") -> str:
    if value is None:
        return f"Join key '{key}' is null in an entity row; every row needs a {dtype} value."
    reason = why or f"it is a {type(value).__name__}"
    return (
        f"Join key '{key}' must be {dtype}, but got {value!r} ({reason}). Pass the key with "
        "its declared type."
    )


def _as_int(key: str, value: object, dtype: DType) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise EntityFrameError(_wrong(key, value, dtype))
    return int(value)


def _as_float(key: str, value: object, dtype: DType) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise EntityFrameError(_wrong(key, value, dtype))
    return float(value)


def _as_micros(key: str, value: object, dtype: DType) -> int:
    if isinstance(value, datetime):
        return to_micros(value)
    if isinstance(value, str):
        return to_micros(parse_timestamp(value, what=f"join key '{key}'"))
    raise EntityFrameError(_wrong(key, value, dtype))
