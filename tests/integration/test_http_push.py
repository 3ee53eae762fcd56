"""``POST /push`` over real HTTP (uvicorn, SQLite): Feast's body, keys, 422s, read-after-push."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore.serving.app import create_app
from featurestore.serving.push import PUSH_PATH
from featurestore.store import FeatureStore
from tests.integration.test_http_support import build_repo, running_server


def serve(store: FeatureStore):
    return running_server(create_app(store))


def body(now, **columns):
    df = {
        "user_id": [7],
        "event_timestamp": [(now + timedelta(milliseconds=1)).isoformat()],
        "txn_count": [41],
        "avg_amount": [12.5],
        "segment": ["gold"],
        "is_vip": [True],
        "last_seen": [now.isoformat()],
        **columns,
    }
    return {"push_source_name": "user_stats", "df": df, "to": "online_and_offline"}


def test_pushed_row_is_readable_at_once_and_in_training_frames(tmp_path: Path) -> None:
    repo, now = build_repo(tmp_path)
    with FeatureStore(repo) as store, serve(store) as url, httpx.Client(base_url=url) as client:
        reply = client.post(PUSH_PATH, json=body(now))
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"view": "user_stats", "rows": 1, "written": 1}
        read = client.post(
            "/get-online-features",
            json={
                "features": ["user_stats:txn_count", "user_stats:segment"],
                "entities": {"user_id": [7]},
            },
        ).json()
        assert read["results"][1]["values"] == [41]
        assert read["results"][2]["values"] == ["gold"]
        entity = pl.DataFrame({"user_id": [7], "event_timestamp": [now + timedelta(seconds=6)]})
        frame = store.get_training_frame(entity, ["user_stats:txn_count"]).to_polars()
        assert frame["txn_count"].to_list() == [41]


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"txn_count": ["many"]}, "row 0, column 'txn_count'"),
        ({"user_id": [None]}, "row 0 has a null join key 'user_id'"),
        ({"event_timestamp": ["soon"]}, "row 0, column 'event_timestamp'"),
        ({"typo": [1]}, "unknown column(s) 'typo'"),
    ],
)
def test_bad_rows_get_422_naming_column_and_row(tmp_path: Path, change, detail) -> None:
    repo, now = build_repo(tmp_path)
    with FeatureStore(repo) as store, serve(store) as url, httpx.Client(base_url=url) as client:
        reply = client.post(PUSH_PATH, json=body(now, **change))
        assert reply.status_code == 422, reply.text
        assert detail in reply.json()["detail"]
        assert store.offline.sources.push_log.files("user_stats") == []


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        (b"{", 422),
        (b"[]", 422),
        (b'{"df": {}}', 422),
        (b'{"push_source_name": "user_stats", "df": {"user_id": 1}}', 422),
        (b'{"push_source_name": "user_stats", "df": {}, "to": "everywhere"}', 422),
        (b'{"push_source_name": "user_stat", "df": {"user_id": [1]}}', 404),
    ],
)
def test_malformed_bodies_are_refused_without_500(tmp_path: Path, payload, status) -> None:
    repo, _ = build_repo(tmp_path)
    with FeatureStore(repo) as store, serve(store) as url, httpx.Client(base_url=url) as client:
        reply = client.post(PUSH_PATH, content=payload)
        assert reply.status_code == status, reply.text
        assert "request_id" in reply.json()


def test_a_read_only_key_cannot_push(tmp_path: Path) -> None:
    repo, now = build_repo(tmp_path, serving="{api_keys: [reader], push_api_keys: [writer]}")
    with FeatureStore(repo) as store, serve(store) as url, httpx.Client(base_url=url) as client:
        assert client.post(PUSH_PATH, json=body(now)).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert client.post(PUSH_PATH, json=body(now), headers=wrong).status_code == 401
        reader = {"Authorization": "Bearer reader"}
        refused = client.post(PUSH_PATH, json=body(now), headers=reader)
        assert refused.status_code == 403
        assert "push_api_keys" in refused.json()["detail"]
        assert store.offline.sources.push_log.files("user_stats") == []
        writer = {"Authorization": "Bearer writer"}
        assert client.post(PUSH_PATH, json=body(now), headers=writer).status_code == 200
        read = client.post(
            "/get-online-features",
            json={"features": ["user_stats:txn_count"], "entities": {"user_id": [7]}},
            headers=reader,
        )
        assert read.json()["results"][1]["values"] == [41]


def test_a_push_breaking_expectations_gets_422(tmp_path: Path) -> None:
    from tests.integration.test_http_support import FEATURES_PY

    checked = FEATURES_PY.replace(
        "from featurestore import",
        "import great_expectations.expectations as gxe\nfrom featurestore import",
    ).replace(
        "    ttl=timedelta(days=2),\n)",
        "    ttl=timedelta(days=2),\n"
        "    expectations=[gxe.ExpectColumnValuesToBeBetween(column='txn_count', min_value=0)],\n)",
        1,
    )
    assert "expectations=" in checked
    repo, now = build_repo(tmp_path, features_py=checked)
    with FeatureStore(repo) as store, serve(store) as url, httpx.Client(base_url=url) as client:
        reply = client.post(PUSH_PATH, json=body(now, txn_count=[-3]))
        assert reply.status_code == 422, reply.text
        assert "expect_column_values_to_be_between" in reply.json()["detail"]
        assert store.offline.sources.push_log.files("user_stats") == []


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["2026-01-01T00:00:00Z", "2026-13-01", "now"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2)
    ),
    max_leaves=4,
)
columns = st.sampled_from(
    ["user_id", "event_timestamp", "txn_count", "avg_amount", "segment", "is_vip", "last_seen", "x"]
)


FROZEN_HEAP_SERVER = """
import gc, json, sys
import httpx
from featurestore.serving.app import create_app
from featurestore.store import FeatureStore
from tests.integration.test_http_support import running_server

store = FeatureStore(sys.argv[1])
app = create_app(store)
app.state.featurestore.freeze_heap = True  # as a server process of its own sets it
counts = []
with running_server(app) as url, httpx.Client(base_url=url) as client:
    counts.append([0, gc.get_freeze_count()])
    for push in json.loads(sys.argv[2]):
        reply = client.post("/push", json=push)
        counts.append([reply.status_code, gc.get_freeze_count()])
store.close()
print(json.dumps(counts))
"""


def test_a_server_freezes_what_its_first_successful_push_imported(tmp_path: Path) -> None:
    """The heap a frozen server grows at its first push is frozen too (full collections walk
    it no more); a failed push does not freeze, later pushes do not freeze again."""
    repo, now = build_repo(tmp_path)
    pushes = [body(now, txn_count=["many"]), body(now), body(now, txn_count=[42])]
    reply = subprocess.run(
        [sys.executable, "-c", FROZEN_HEAP_SERVER, str(repo), json.dumps(pushes)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    (_, started), (bad, after_bad), (ok, after_first), (again, after_second) = json.loads(
        reply.stdout.strip().splitlines()[-1]
    )
    assert (bad, ok, again) == (422, 200, 200)
    # the count shrinks as frozen objects are freed, and grows only by a freeze
    assert after_bad <= started
    assert after_first > after_bad  # the push path's modules (pandas, the Parquet writer)
    assert after_second <= after_first


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory):
    repo, _ = build_repo(tmp_path_factory.mktemp("push-fuzz"))
    with FeatureStore(repo) as store, serve(store) as url:
        yield url


@settings(max_examples=60)
@given(
    df=st.dictionaries(columns, st.lists(json_values, min_size=0, max_size=3), max_size=8),
    to=st.sampled_from(["online", "offline", "online_and_offline", "nowhere", None]),
)
def test_random_push_bodies_never_get_a_server_error(fuzz_server: str, df, to) -> None:
    payload: dict[str, object] = {"push_source_name": "user_stats", "df": df}
    if to is not None:
        payload["to"] = to
    reply = httpx.post(fuzz_server + PUSH_PATH, json=payload, timeout=30)
    assert reply.status_code < 500, reply.text
    if reply.status_code >= 400:
        assert isinstance(reply.json()["detail"], str)
