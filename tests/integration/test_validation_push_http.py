"""Pushed rows pass the view's Great Expectations suite (issue 12 item 2, DESIGN G6/G8) over real
HTTP (uvicorn, SQLite, the real GE package): a push that breaks it is answered 422 naming the
expectation, its count and samples, and writes nothing, offline or online; a clean push lands;
the push's run is the view's latest run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from featurestore.serving.app import create_app
from featurestore.serving.push import PUSH_PATH
from featurestore.store import FeatureStore
from tests.integration.test_http_push import body
from tests.integration.test_http_support import FEATURES_PY, build_repo, running_server

CHECKED_PY = "import great_expectations.expectations as gxe\n" + FEATURES_PY.replace(
    "    ttl=timedelta(days=2),\n)\n\nmerchant_stats",
    "    ttl=timedelta(days=2),\n"
    '    expectations=[gxe.ExpectColumnValuesToBeBetween(column="txn_count", min_value=0)],\n'
    ")\n\nmerchant_stats",
)


def read(client: httpx.Client) -> Any:
    reply = client.post(
        "/get-online-features",
        json={"features": ["user_stats:txn_count"], "entities": {"user_id": [7, 1]}},
    )
    assert reply.status_code == 200, reply.text
    return reply.json()["results"][1]["values"]


def test_a_push_breaking_the_suite_gets_422_and_writes_nothing(tmp_path: Path) -> None:
    assert CHECKED_PY.count("expectations=[") == 1
    repo, now = build_repo(tmp_path, features_py=CHECKED_PY)
    with (
        FeatureStore(repo) as store,
        running_server(create_app(store)) as url,
        httpx.Client(base_url=url) as client,
    ):
        before = read(client)
        reply = client.post(
            PUSH_PATH, json=body(now, user_id=[7, 1], txn_count=[-5, 3], **_pair(body(now)))
        )
        assert reply.status_code == 422, reply.text
        detail = reply.json()["detail"]
        assert "Rows pushed to feature view 'user_stats' failed its expectations" in detail
        assert (
            "expect_column_values_to_be_between(column=txn_count, min_value=0.0): "
            "1 of 2 rows unexpected, e.g. [-5]" in detail
        )
        assert store.offline.sources.push_log.files("user_stats") == []
        assert read(client) == before
        result = store.validation_result("user_stats")
        assert result is not None
        assert (result.kind, result.success, result.rows) == ("push", False, 2)

        clean = client.post(PUSH_PATH, json=body(now, txn_count=[0]))
        assert clean.status_code == 200, clean.text
        assert read(client)[0] == 0
        latest = store.validation_result("user_stats")
        assert latest is not None
        assert latest.success


def _pair(one: dict[str, Any]) -> dict[str, list[Any]]:
    """The other columns of ``body``'s single row, twice (a push of two rows)."""
    return {k: v * 2 for k, v in one["df"].items() if k not in {"user_id", "txn_count"}}
