"""The serving hot path's shortcuts agree with the slow, general code they bypass.

- ``parse_request`` validates the common body by hand: whatever it accepts, the pydantic
  model accepts with the same result; whatever the model refuses still gets the model's message.
- Short timestamp columns are formatted from a cache instead of numpy: same text.
- Short lists of value ages are counted without numpy: same histogram.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from featurestore.serving.encoding import _rfc3339_column
from featurestore.serving.errors import ServingError
from featurestore.serving.metrics import ServingMetrics
from featurestore.serving.schemas import GetOnlineFeaturesRequest, _fast_parse, parse_request

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


@given(bodies)
def test_hand_validation_agrees_with_the_model(body: dict[str, Any]) -> None:
    try:
        model: GetOnlineFeaturesRequest | None = GetOnlineFeaturesRequest.model_validate(body)
    except ValidationError:
        model = None
    fast = _fast_parse(body)
    if fast is not None:  # the shortcut only ever accepts what the model accepts, identically
        assert model is not None
        assert fast.entities == model.entities
        assert fast.feature_selection == model.feature_selection
        assert fast.full_feature_names == model.full_feature_names
        assert fast.row_count == model.row_count
    if model is None:
        with pytest.raises(ServingError, match="Invalid request body"):
            parse_request(body)
    else:
        query = parse_request(body)
        assert query.entities == model.entities
        assert query.feature_selection == model.feature_selection
        assert query.row_count == model.row_count


def test_common_bodies_take_the_shortcut() -> None:
    body = {
        "entities": {"user_id": [1, 2], "merchant_id": ["m0", None]},
        "features": ["user_stats:txn_count"],
        "include_feature_view_version_metadata": False,
    }
    fast = _fast_parse(body)
    assert fast is not None
    assert fast.row_count == 2
    assert fast.feature_selection == ["user_stats:txn_count"]
    assert _fast_parse({"entities": {"user_id": [1]}, "feature_service": "svc"}) is not None
    # Array request fields are valid but left to the model.
    assert _fast_parse({"entities": {"user_id": [[1, 2]]}, "features": ["a:b"]}) is None


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
