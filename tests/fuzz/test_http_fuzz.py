"""Fuzzing the feature server: no generated request may get a 5xx.

Two fuzzers, both against a real uvicorn server on an applied, materialized SQLite repo:

* schemathesis over the app's OpenAPI schema (positive and negative bodies, every route);
* a Hypothesis strategy that keeps the feature references valid and the body well-formed but
  throws arbitrary JSON at the entity values (huge ints, floats, unicode, nesting, mismatched
  columns), so the store's own validation is exercised, not only the schema's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from featurestore.repo.config import RepoConfig
from featurestore.serving.app import create_app
from tests.integration.test_http_support import USER_FEATURES, build_repo, running_server

# The schema does not depend on the repo: read it from an app that is never started.
_SCHEMA_APP = create_app(config=RepoConfig(project="fuzz"), repo_path=Path(tempfile.gettempdir()))
schema = schemathesis.openapi.from_dict(_SCHEMA_APP.openapi())
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    repo, _ = build_repo(tmp_path_factory.mktemp("fuzz") / "repo", serving="{max_entities: 50}")
    with running_server(create_app(repo_path=repo)) as url:
        yield url


def _check_error_body(response: Any) -> None:
    if response.status_code >= 400 and response.headers.get("content-type") == ["application/json"]:
        body = response.json()
        assert isinstance(body, dict)
        assert isinstance(body.get("detail"), str)


@schema.parametrize()
def test_openapi_fuzz_never_gets_a_server_error(
    case: schemathesis.Case,  # type: ignore[type-arg]  # Case is generic in its stubs only
    server_url: str,
) -> None:
    response = case.call_and_validate(base_url=server_url, checks=[not_a_server_error])
    assert response.status_code < 500, response.text
    _check_error_body(response)


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
# Mostly plausible keys and values, so that most bodies pass the schema and reach the store.
plausible = {
    "user_id": st.sampled_from([1, 2, 3, 99])
    | st.integers(min_value=-(2**63), max_value=2**63 - 1),
    "merchant_id": st.sampled_from(["m0", "m1", "zz"]) | st.text(max_size=10),
}
key_names = st.sampled_from(
    ["user_id", "user_id", "merchant_id", "merchant_id", "amount", "", "k" * 100]
)
refs = st.sampled_from(
    [
        *USER_FEATURES,
        "merchant_stats:fraud_rate",
        "pair_stats:pair_txn_count",
        "user_stats:",
        ":x",
        "a:b:c",
        "fraud_v1",
        "nope:x",
    ]
)


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    rows = draw(st.integers(min_value=1, max_value=4))
    columns = draw(st.lists(key_names, min_size=1, max_size=3, unique=True))
    entities: dict[str, Any] = {}
    for column in columns:
        good = plausible.get(column, json_scalars)
        values = st.one_of(good, good, good, json_scalars, json_values)
        ragged = draw(st.integers(min_value=0, max_value=9)) == 0
        size = draw(st.integers(min_value=0, max_value=5)) if ragged else rows
        entities[column] = draw(st.lists(values, min_size=size, max_size=size))
    body: dict[str, Any] = {"entities": entities}
    if draw(st.integers(min_value=0, max_value=4)):
        body["features"] = draw(st.lists(refs, min_size=1, max_size=4))
    else:
        body["feature_service"] = draw(st.sampled_from(["fraud_v1", "nope", ""]))
    if draw(st.booleans()):
        body["full_feature_names"] = draw(st.booleans() | json_values)
    return body


@given(body=bodies())
def test_entity_value_fuzz_never_gets_a_server_error(server_url: str, body: dict[str, Any]) -> None:
    response = httpx.post(f"{server_url}/get-online-features", json=body, timeout=10)
    assert response.status_code < 500, (body, response.text)
    assert response.status_code in {200, 404, 413, 422}, response.text
    if response.status_code != 200:
        assert isinstance(response.json()["detail"], str)
