"""The serving hot path: one request parser, and shortcuts that agree with the general code.

- ``parse_request`` is the request model: what the model accepts it returns unchanged, and
  every body the model refuses gets a worded 422; its hand-written check of the common shape
  accepts only what the model accepts, with the same query.
- Short timestamp columns are formatted from a cache instead of numpy: same text.
- Short lists of value ages are counted without numpy: same histogram.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from featurestore.serving.encoding import _rfc3339_column, _wire_values, rfc3339
from featurestore.serving.errors import ServingError
from featurestore.serving.metrics import ServingMetrics
from featurestore.serving.schemas import (
    GetOnlineFeaturesRequest,
    OnlineQuery,
    _common_shape,
    parse_request,
)
from featurestore.types import Timestamp

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=5),
)
entity_values = st.one_of(
    scalars, st.lists(scalars, max_size=2), st.dictionaries(st.text(), scalars, max_size=1)
)
columns = st.lists(entity_values, max_size=4)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "entities": st.one_of(
            st.dictionaries(st.sampled_from(["user_id", "merchant_id"]), columns, max_size=2),
            st.lists(st.integers(), max_size=2),
            st.none(),
        ),
        "features": st.one_of(
            st.none(), st.lists(st.one_of(st.text(max_size=8), st.integers()), max_size=3)
        ),
        "feature_service": st.one_of(st.none(), st.text(max_size=5), st.integers()),
        "full_feature_names": st.one_of(st.booleans(), st.none(), st.integers(0, 1), st.text()),
        "include_feature_view_version_metadata": st.booleans(),
    },
)


# Bodies of the common shape (and near it): the hand-written check's territory.
refs = st.lists(st.sampled_from(["a:x", "a:y", "b:z", ""]), max_size=3)
same_length_columns = st.integers(0, 3).flatmap(
    lambda n: st.dictionaries(
        st.sampled_from(["user_id", "merchant_id", "amount"]),
        st.lists(scalars, min_size=n, max_size=n),
        max_size=3,
    )
)
common_bodies = st.fixed_dictionaries(
    {"entities": same_length_columns},
    optional={
        "features": st.one_of(st.none(), refs),
        "feature_service": st.one_of(st.none(), st.sampled_from(["svc", ""])),
        "full_feature_names": st.one_of(st.booleans(), st.none(), st.integers(0, 1)),
        "include_feature_view_version_metadata": st.booleans(),
    },
)


@given(st.one_of(bodies, common_bodies))
def test_parse_request_is_the_model_and_words_every_refusal(body: dict[str, Any]) -> None:
    try:
        model: GetOnlineFeaturesRequest | None = GetOnlineFeaturesRequest.model_validate(body)
    except ValidationError:
        model = None
    shortcut = _common_shape(body)
    if model is None:
        assert shortcut is None  # the shortcut never accepts what the model refuses
        with pytest.raises(ServingError, match="Invalid request body") as refused:
            parse_request(body)
        assert refused.value.status_code == 422
    else:
        query = parse_request(body)
        expected = OnlineQuery.of(model)
        assert query == expected
        assert shortcut is None or shortcut == expected
        for column, values in query.entities.items():  # the same values of the same types
            assert [type(v) for v in values] == [type(v) for v in model.entities[column]]
        assert query.row_count == len(next(iter(body["entities"].values())))
        assert query.selection_key == (
            body["feature_service"]
            if query.feature_service is not None
            else tuple(body["features"])
        )


def test_the_shortcut_takes_the_common_requests() -> None:
    # What Feast's client and bench_http send: recognized by hand, not handed to the model.
    for body in (
        {"entities": {"user_id": [1, 7]}, "features": ["a:x"], "full_feature_names": False},
        {"entities": {"user_id": ["u"]}, "feature_service": "svc"},
        {
            "entities": {"user_id": [1], "amount": [2.5]},
            "features": ["a:x", "b:z"],
            "include_feature_view_version_metadata": False,
        },
    ):
        assert _common_shape(body) == OnlineQuery.of(GetOnlineFeaturesRequest.model_validate(body))


def test_selection_key_is_hashable_and_names_the_selection() -> None:
    by_refs = parse_request({"entities": {"user_id": [1]}, "features": ["a:b", "a:c"]})
    by_service = parse_request({"entities": {"user_id": [1]}, "feature_service": "svc"})
    assert by_refs.selection_key == ("a:b", "a:c")
    assert by_service.selection_key == "svc"
    assert len({by_refs.selection_key, by_service.selection_key}) == 2


micros = st.one_of(
    st.none(), st.integers(-(2**55), 2**57), st.integers(0, 2**37).map(lambda s: s * 1_000_000)
)


@given(st.lists(micros, min_size=1, max_size=16))
def test_short_timestamp_columns_match_the_numpy_path(stamps: list[int | None]) -> None:
    padded = stamps * (17 // len(stamps) + 1)  # long enough for the numpy path
    assert _rfc3339_column(stamps) == _rfc3339_column(padded)[: len(stamps)]


@given(st.lists(st.floats(0, 1e7), min_size=1, max_size=16))
def test_observe_many_counts_like_observe_array(ages: list[float]) -> None:
    one, other = ServingMetrics(), ServingMetrics()
    one.value_age.observe_many(ages, "v")
    other.value_age.observe_array(np.asarray(ages, dtype=np.float64), "v")
    assert one.value_age.render()[2:-2] == other.value_age.render()[2:-2]  # buckets
    assert one.value_age.count("v") == other.value_age.count("v") == len(ages)


def _oracle(micros: int | None) -> str:
    """RFC 3339 UTC text by hand from Python's datetime (None -> the epoch)."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros or 0)
    fraction = f".{moment.microsecond:06d}" if moment.microsecond else ""
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
        f"{moment.minute:02d}:{moment.second:02d}{fraction}Z"
    )


@given(st.lists(micros, min_size=1, max_size=40))
def test_every_timestamp_path_writes_what_the_oracle_writes(stamps: list[int | None]) -> None:
    # Short and long columns, single values and Timestamp feature values: one formatter.
    expected = [_oracle(t) for t in stamps]
    assert _rfc3339_column(stamps) == expected
    assert [rfc3339(t) for t in stamps] == expected
    assert _wire_values(stamps, Timestamp) == [
        None if t is None else text for t, text in zip(stamps, expected, strict=True)
    ]
