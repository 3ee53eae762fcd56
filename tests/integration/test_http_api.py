"""The feature server through real HTTP (uvicorn on loopback) against SQLite and Redis.

Responses must equal ``FeatureStore.get_online_features`` for the same request, in Feast's
wire shape; bad input gets a JSON 4xx, never a 5xx.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from featurestore.serving.app import create_app
from featurestore.store import FeatureStore
from tests.integration.test_http_support import USER_FEATURES, build_repo, running_server

ALL_FEATURES = [
    *USER_FEATURES,
    "merchant_stats:fraud_rate",
    "merchant_stats:txn_count",
    "pair_stats:pair_txn_count",
]


class Served:
    """A running server over a built repo, with a direct FeatureStore on the same repo."""

    def __init__(self, url: str, repo: Path, now: datetime, store: FeatureStore) -> None:
        self.url = url
        self.repo = repo
        self.now = now
        self.store = store
        self.client = httpx.Client(base_url=url, timeout=10)

    def post(self, body: Any, path: str = "/get-online-features", **kwargs: Any) -> httpx.Response:
        return self.client.post(path, json=body, **kwargs)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    online = "{type: sqlite, path: data/online.db}"
    if request.param == "redis":
        url = request.getfixturevalue("redis_server_url")
        prefix = f"fshttp{tmp_path_factory.mktemp('k').name[-6:]}"
        online = f"{{type: redis, url: '{url}', key_prefix: {prefix}}}"
    repo, now = build_repo(tmp_path_factory.mktemp("repo") / "repo", online=online)
    store = FeatureStore(repo)
    with running_server(create_app(repo_path=repo)) as url:
        served = Served(url, repo, now, store)
        yield served
        served.client.close()
    store.close()


def _rfc3339(value: datetime | None) -> str:
    if value is None:
        return "1970-01-01T00:00:00Z"
    text = value.isoformat().replace("+00:00", "Z")
    return text


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return _rfc3339(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def expected_body(store: FeatureStore, body: dict[str, Any]) -> dict[str, Any]:
    """What the server must answer: the direct call's response in Feast's wire shape."""
    features = body.get("features") or body["feature_service"]
    response = store.get_online_features(
        features, body["entities"], full_feature_names=body.get("full_feature_names", False)
    )
    data = response.to_dict()
    stamps = response.event_timestamps
    results = []
    for name, values in data.items():
        if name in response.join_keys:
            statuses = ["PRESENT"] * len(values)
            times = ["1970-01-01T00:00:00Z"] * len(values)
        else:
            statuses = [s.value for s in response.statuses[name]]
            times = [_rfc3339(t) for t in stamps[name]]
        results.append(
            {
                "values": [_json_value(v) for v in values],
                "statuses": statuses,
                "event_timestamps": times,
            }
        )
    return {"metadata": {"feature_names": list(data)}, "results": results}


# -- equality with the direct call ------------------------------------------------------------

user_ids = st.sampled_from([1, 2, 3, 99, -5, 2**62])
merchant_ids = st.sampled_from(["m0", "m1", "missing", ""])


@given(
    rows=st.lists(st.tuples(user_ids, merchant_ids), min_size=1, max_size=8),
    features=st.lists(st.sampled_from(ALL_FEATURES), min_size=1, max_size=8, unique=True),
    full=st.booleans(),
)
def test_http_response_equals_direct_call(
    served: Served, rows: list[tuple[int, str]], features: list[str], full: bool
) -> None:
    if not full and {"user_stats:txn_count", "merchant_stats:txn_count"} <= set(features):
        full = True  # the same output name twice is a (tested) 422
    body = {
        "entities": {"user_id": [r[0] for r in rows], "merchant_id": [r[1] for r in rows]},
        "features": features,
        "full_feature_names": full,
        "include_feature_view_version_metadata": False,
    }
    response = served.post(body)
    assert response.status_code == 200, response.text
    assert response.json() == expected_body(served.store, body)


def test_feature_service_equals_direct_call_and_v1_alias(served: Served) -> None:
    body = {
        "entities": {"user_id": [1, 2, 7], "merchant_id": ["m0", "m1", "m0"]},
        "feature_service": "fraud_v1",
        "full_feature_names": False,
    }
    first = served.post(body)
    second = served.post(body, path="/v1/get-online-features")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() == expected_body(served.store, body)
    assert first.json()["metadata"]["feature_names"] == [
        "user_id",
        "merchant_id",
        "txn_count",
        "avg_amount",
        "fraud_rate",
        "pair_txn_count",
    ]


def test_route_under_a_root_path_answers_like_the_endpoint(served: Served) -> None:
    """Under a root path the FastAPI route answers lookups: same body, same body limit."""
    app = create_app(served.store)
    body = {"entities": {"user_id": [1, 2, 3, 99]}, "features": USER_FEATURES}
    limit = served.store.config.serving.max_body_bytes

    async def oversized() -> AsyncIterator[bytes]:  # no Content-Length: checked while reading
        yield b'{"entities": {"user_id": [1]}, "pad": "'
        for _ in range(limit // 65536 + 1):
            yield b"y" * 65536
        yield b'"}'

    async def call() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app, root_path="/fs")
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        ):
            ok = await client.post("/fs/v1/get-online-features", json=body)
            big = await client.post(
                "/fs/get-online-features",
                content=oversized(),
                headers={"content-type": "application/json"},
            )
        return ok, big

    ok, big = asyncio.run(call())
    assert ok.status_code == 200, ok.text
    assert ok.json() == served.post(body).json()
    assert big.status_code == 413, big.text
    assert f"limit of {limit} bytes (serving.max_body_bytes)" in big.json()["detail"]


# -- wire format details ----------------------------------------------------------------------


def test_statuses_timestamps_and_json_types(served: Served) -> None:
    body = {
        "entities": {"user_id": [1, 2, 3, 99]},
        "features": USER_FEATURES,
        "include_feature_view_version_metadata": True,
        "some_future_field": {"x": 1},
    }
    response = served.post(body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    names = data["metadata"]["feature_names"]
    assert names == ["user_id", "txn_count", "avg_amount", "segment", "is_vip", "last_seen"]
    col = dict(zip(names, data["results"], strict=True))
    assert col["user_id"] == {
        "values": [1, 2, 3, 99],
        "statuses": ["PRESENT"] * 4,
        "event_timestamps": ["1970-01-01T00:00:00Z"] * 4,
    }
    # user 1: fresh; user 2: a stored null is PRESENT; user 3: expired; 99: unknown.
    assert col["txn_count"]["values"] == [43, 6, None, None]
    assert col["txn_count"]["statuses"] == ["PRESENT", "PRESENT", "OUTSIDE_MAX_AGE", "NOT_FOUND"]
    assert col["avg_amount"]["values"] == [12.0, None, None, None]
    assert col["segment"]["values"] == ["gold", None, None, None]
    assert col["is_vip"]["values"] == [True, False, None, None]
    newest = served.now.replace(microsecond=0)
    stamps = col["txn_count"]["event_timestamps"]
    assert stamps[0].endswith(".123456Z")  # microseconds kept, UTC 'Z'
    assert stamps[3] == "1970-01-01T00:00:00Z"
    assert all(s.endswith("Z") for s in stamps)
    assert col["last_seen"]["values"][0].endswith("Z")
    assert datetime.fromisoformat(col["last_seen"]["values"][0]) < newest.replace(
        year=newest.year + 1
    )
    # Feast's client infers types from the JSON text: ints as integers, floats with a point.
    text = response.text
    assert '"values":[43,6,null,null]' in text
    assert '"values":[12.0,null,null,null]' in text
    assert "NaN" not in text


def test_non_finite_float_is_null(served: Served) -> None:
    response = served.post(
        {"entities": {"merchant_id": ["m1", "m0"]}, "features": ["merchant_stats:fraud_rate"]}
    )
    assert response.status_code == 200
    result = response.json()["results"][1]
    assert result["values"] == [None, 0.25]
    assert result["statuses"] == ["PRESENT", "PRESENT"]
    assert "NaN" not in response.text


# -- bad input --------------------------------------------------------------------------------

BAD_REQUESTS: list[tuple[str, bytes, int, str]] = [
    ("not json", b"{", 422, "not valid JSON"),
    ("not an object", b"[1, 2]", 422, "expected a JSON object"),
    ("no entities", b'{"features": ["user_stats:txn_count"]}', 422, "entities"),
    ("no features", b'{"entities": {"user_id": [1]}}', 422, "exactly one of"),
    (
        "both",
        json.dumps(
            {
                "entities": {"user_id": [1]},
                "features": ["user_stats:txn_count"],
                "feature_service": "fraud_v1",
            }
        ).encode(),
        422,
        "exactly one of",
    ),
    ("empty features", b'{"entities": {"user_id": [1]}, "features": []}', 422, "empty"),
    (
        "ragged",
        json.dumps(
            {"entities": {"user_id": [1, 2], "merchant_id": ["m0"]}, "feature_service": "fraud_v1"}
        ).encode(),
        422,
        "one value per row",
    ),
    (
        "no rows",
        b'{"entities": {"user_id": []}, "features": ["user_stats:txn_count"]}',
        422,
        "no rows",
    ),
    (
        "entities not a mapping",
        b'{"entities": [1], "features": ["user_stats:txn_count"]}',
        422,
        "entities",
    ),
    (
        "object as key",
        b'{"entities": {"user_id": [{"a": 1}]}, "features": ["user_stats:txn_count"]}',
        422,
        "entities.user_id",
    ),
    (
        "string key for Int64",
        b'{"entities": {"user_id": ["7"]}, "features": ["user_stats:txn_count"]}',
        422,
        "user_id",
    ),
    (
        "float key for Int64",
        b'{"entities": {"user_id": [7.5]}, "features": ["user_stats:txn_count"]}',
        422,
        "user_id",
    ),
    (
        "bool key for Int64",
        b'{"entities": {"user_id": [true]}, "features": ["user_stats:txn_count"]}',
        422,
        "user_id",
    ),
    (
        "missing join key",
        b'{"entities": {"merchant_id": ["m0"]}, "features": ["user_stats:txn_count"]}',
        422,
        "user_id",
    ),
    (
        "malformed ref",
        b'{"entities": {"user_id": [1]}, "features": ["txn_count"]}',
        422,
        "view:feature",
    ),
    (
        "unknown view",
        b'{"entities": {"user_id": [1]}, "features": ["user_stat:txn_count"]}',
        404,
        "Did you mean 'user_stats'",
    ),
    (
        "unknown feature",
        b'{"entities": {"user_id": [1]}, "features": ["user_stats:txn_cnt"]}',
        404,
        "user_stats:txn_count",
    ),
    (
        "unknown service",
        b'{"entities": {"user_id": [1]}, "feature_service": "fraud_v2"}',
        404,
        "fraud_v1",
    ),
    (
        "name collision",
        json.dumps(
            {
                "entities": {"user_id": [1], "merchant_id": ["m0"]},
                "features": ["user_stats:txn_count", "merchant_stats:txn_count"],
            }
        ).encode(),
        422,
        "full_feature_names",
    ),
    (
        "wrong type for flag",
        b'{"entities": {"user_id": [1]}, "features": ["user_stats:txn_count"], '
        b'"full_feature_names": "yes"}',
        422,
        "full_feature_names",
    ),
]


@pytest.mark.parametrize(
    ("body", "status", "needle"), [b[1:] for b in BAD_REQUESTS], ids=[b[0] for b in BAD_REQUESTS]
)
def test_bad_requests_get_json_4xx_with_a_message(
    served: Served, body: bytes, status: int, needle: str
) -> None:
    response = served.client.post(
        "/get-online-features", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    data = response.json()
    assert set(data) == {"detail", "request_id"}
    assert needle in data["detail"]
    assert data["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in data["detail"]


def test_unknown_route_and_wrong_method_are_json(served: Served) -> None:
    missing = served.client.get("/nope")
    assert missing.status_code == 404
    assert missing.json()["detail"]
    wrong = served.client.get("/get-online-features")
    assert wrong.status_code == 405
    assert wrong.json()["detail"]


def test_client_request_id_is_echoed(served: Served) -> None:
    response = served.client.get("/health", headers={"x-request-id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    forged = served.client.get("/health", headers={"x-request-id": "bad id\twith spaces"})
    assert forged.headers["x-request-id"] != "bad id\twith spaces"


# -- operations -------------------------------------------------------------------------------


def test_health_ready_catalog_and_metrics(served: Served) -> None:
    assert served.client.get("/health").json() == {"status": "ok", "checks": {}}
    ready = served.client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["online_store"] == "reachable"

    catalog = served.client.get("/v1/catalog").json()
    assert catalog["project"] == "httptest"
    views = {v["name"]: v for v in catalog["feature_views"]}
    assert set(views) == {"user_stats", "merchant_stats", "pair_stats"}
    user = views["user_stats"]
    assert user["features"][0] == {"name": "txn_count", "dtype": "Int64", "description": ""}
    assert user["ttl_seconds"] == 2 * 86400
    assert user["watermark"].endswith("Z")
    assert user["fingerprint"] == served.store.snapshot.feature_views["user_stats"].fingerprint
    assert {e["name"]: e["key_dtypes"] for e in catalog["entities"]}["user"] == {"user_id": "Int64"}
    assert catalog["feature_services"][0]["name"] == "fraud_v1"

    served.post({"entities": {"user_id": [1, 2, 3]}, "features": ["user_stats:txn_count"]})
    served.post({"entities": {"user_id": ["x"]}, "features": ["user_stats:txn_count"]})
    metrics = served.client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'featurestore_http_requests_total{route="/get-online-features",status="200"}' in text
    assert 'featurestore_http_requests_total{route="/get-online-features",status="422"}' in text
    assert (
        'featurestore_http_request_duration_seconds_bucket{route="/get-online-features",le="+Inf"}'
        in text
    )
    assert "featurestore_online_read_duration_seconds_count" in text
    assert 'featurestore_entities_per_request_bucket{le="5"}' in text
    assert 'featurestore_served_value_age_seconds_count{view="user_stats"}' in text
