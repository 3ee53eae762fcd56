from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from featurestore._time import from_micros, parse_timestamp, to_micros, to_utc, to_utc_array
from featurestore.errors import EntityFrameError


def test_naive_means_utc():
    assert to_utc(datetime(2026, 1, 1, 12)) == datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_aware_is_converted():
    plus2 = timezone(timedelta(hours=2))
    assert to_utc(datetime(2026, 1, 1, 12, tzinfo=plus2)) == datetime(2026, 1, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T09:00:00Z", datetime(2026, 11, 27, 9, tzinfo=UTC)),
        ("2026-11-27T09:00:00", datetime(2026, 11, 27, 9, tzinfo=UTC)),
        ("2026-11-27T11:00:00+02:00", datetime(2026, 11, 27, 9, tzinfo=UTC)),
        ("2026-11-27", datetime(2026, 11, 27, tzinfo=UTC)),
    ],
)
def test_parse_timestamp(text, expected):
    assert parse_timestamp(text) == expected


def test_unparsable_timestamp_names_the_value_and_format():
    with pytest.raises(EntityFrameError, match=r"Cannot parse end 'yesterday'.*ISO 8601"):
        parse_timestamp("yesterday", what="end")


@given(st.datetimes(timezones=st.just(UTC)))
def test_micros_roundtrip(value):
    assert from_micros(to_micros(value)) == value


def test_array_conversion_of_naive_aware_string_and_date():
    naive = pa.array([datetime(2026, 1, 1, 1)], type=pa.timestamp("ns"))
    tokyo = timezone(timedelta(hours=9))
    aware = pa.array(
        [datetime(2026, 1, 1, 10, tzinfo=tokyo)], type=pa.timestamp("s", tz="Asia/Tokyo")
    )
    strings = pa.array(["2026-01-01T01:00:00Z", None])
    dates = pa.array([datetime(2026, 1, 1).date()])
    one_am = datetime(2026, 1, 1, 1, tzinfo=UTC)
    expected = {"naive": [one_am], "aware": [one_am], "strings": [one_am, None]}
    expected["dates"] = [datetime(2026, 1, 1, tzinfo=UTC)]
    for name, arr in {"naive": naive, "aware": aware, "strings": strings, "dates": dates}.items():
        out = to_utc_array(arr, column="ts")
        assert out.type == pa.timestamp("us", tz="UTC")
        assert out.to_pylist() == expected[name], name
    assert to_utc_array(strings, column="ts").to_pylist()[1] is None


def test_array_conversion_refuses_numbers_naming_the_column():
    with pytest.raises(EntityFrameError, match="Column 'when' must hold timestamps"):
        to_utc_array(pa.array([1, 2]), column="when")
