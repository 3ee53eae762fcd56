"""The bulk decode of fixed-width views equals the record-by-record decode, statuses included."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore.online.base import FieldStatus
from featurestore.online.codec import RecordCodec
from featurestore.online.lookup import _decode_view, _ViewPlan
from featurestore.types import Bool, DType, Float32, Float64, Int32, Int64, Timestamp

FP = "00112233445566ff"
OTHER_FP = "ffeeddccbbaa9988"
NOW = 1_000_000_000
TYPES: list[tuple[DType, st.SearchStrategy[Any]]] = [
    (Int64, st.integers(-(2**63), 2**63 - 1)),
    (Int32, st.integers(-(2**31), 2**31 - 1)),
    (Float64, st.floats(allow_nan=False)),
    (Float32, st.floats(width=32, allow_nan=False)),
    (Bool, st.booleans()),
    (Timestamp, st.integers(-(2**62), 2**62)),
]


@st.composite
def cases(draw: st.DrawFn) -> tuple[_ViewPlan, list[bytes | None], dict[str, list[Any]]]:
    # Few features, or more than 64 (two null bitmap words).
    width = draw(st.integers(1, 8) | st.integers(63, 70))
    kinds = draw(st.lists(st.sampled_from(range(len(TYPES))), min_size=width, max_size=width))
    dtypes = [TYPES[k][0] for k in kinds]
    codec = RecordCodec(dtypes, fingerprint=FP)
    stale = RecordCodec(dtypes, fingerprint=OTHER_FP)
    n = draw(st.integers(1, 12))
    columns = [
        draw(st.lists(st.none() | TYPES[k][1], min_size=n, max_size=n))
        if draw(st.booleans())
        else draw(st.lists(TYPES[k][1], min_size=n, max_size=n))
        for k in kinds
    ]
    # Mostly inside the window [NOW - 100, NOW]; sometimes outside it.
    events = draw(st.lists(st.integers(NOW - 120, NOW + 20), min_size=n, max_size=n))
    if draw(st.booleans()):
        events = [min(max(e, NOW - 100), NOW) for e in events]
    records: list[bytes | None] = list(codec.encode_rows(events, [None] * n, columns))
    if draw(st.booleans()):
        i = draw(st.integers(0, n - 1))
        records[i] = draw(
            st.sampled_from([None, stale.encode_rows([NOW], [None], [[c[i]] for c in columns])[0]])
        )
    indexes = tuple(draw(st.permutations(range(len(dtypes))))[: draw(st.integers(1, len(dtypes)))])
    view = _ViewPlan(
        name="v",
        join_keys=("k",),
        indexes=indexes,
        outputs=tuple(f"f{i}" for i in indexes),
        codec=codec,
        ttl_us=draw(st.sampled_from([None, 100])),
    )
    return view, records, {"columns": columns, "events": events}


def _expected(view: _ViewPlan, records: list[bytes | None]) -> dict[str, Any]:
    oldest = NOW - view.ttl_us if view.ttl_us is not None else None
    out: dict[str, Any] = {name: [] for name in view.outputs}
    statuses, events = [], []
    for record in records:
        head = RecordCodec.head(record) if record is not None else None
        if head is None:
            status, event = FieldStatus.NOT_FOUND, None
        elif head.fingerprint != view.codec.fingerprint:
            status, event = FieldStatus.STALE_DEFINITION, None
        elif head.event_us > NOW or (oldest is not None and head.event_us < oldest):
            status, event = FieldStatus.OUTSIDE_MAX_AGE, head.event_us
        else:
            status, event = FieldStatus.PRESENT, head.event_us
        values = (
            view.codec.decode_selected(record, view.indexes)
            if status is FieldStatus.PRESENT and record is not None
            else [None] * len(view.indexes)
        )
        for name, value in zip(view.outputs, values, strict=True):
            out[name].append(value)
        statuses.append(status)
        events.append(event)
    return {"features": out, "statuses": statuses, "events": events}


@settings(max_examples=300, deadline=None)
@given(cases())
def test_decode_view_matches_record_by_record(case: Any) -> None:
    view, records, _ = case
    features: dict[str, list[Any]] = {}
    statuses: dict[str, list[FieldStatus]] = {}
    events: dict[str, list[int | None]] = {}
    _decode_view(view, records, NOW, features, statuses, events)
    expected = _expected(view, records)
    assert features == expected["features"]
    for name in view.outputs:
        assert statuses[name] == expected["statuses"]
        assert events[name] == expected["events"]
        assert [type(v) for v in features[name]] == [type(v) for v in expected["features"][name]]
