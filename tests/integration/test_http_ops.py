"""Server operations through real HTTP: auth, limits, hot reload, refusing to start, Redis down."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from featurestore.errors import RegistryConflictError
from featurestore.serving.app import create_app
from featurestore.store import FeatureStore
from tests.integration.test_http_support import (
    FEATURES_PY,
    build_repo,
    free_port,
    poll,
    running_server,
    serve_command,
)
from tests.redis_server import RedisServer

BODY = {"entities": {"user_id": [1]}, "features": ["user_stats:txn_count"]}
SLACK_S = 1.5
"""Allowed on top of a configured limit (scheduling on a loaded 2-core machine)."""


# -- auth -------------------------------------------------------------------------------------


def test_api_keys_bearer_or_x_api_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FS_TEST_KEY", "k-1")
    repo, _ = build_repo(tmp_path / "repo", serving="{api_keys: ['${FS_TEST_KEY}', other-key]}")
    with running_server(create_app(repo_path=repo)) as url, httpx.Client(base_url=url) as client:
        for headers in (
            {},
            {"authorization": "Bearer nope"},
            {"x-api-key": "k-2"},
            {"authorization": "Basic k-1"},
            {"authorization": "k-1"},
        ):
            refused = client.post("/get-online-features", json=BODY, headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["www-authenticate"] == "Bearer"
            assert "serving.api_keys" in refused.json()["detail"]
            assert "k-1" not in refused.text
        for headers in (
            {"authorization": "Bearer k-1"},
            {"authorization": "bearer other-key"},
            {"x-api-key": "k-1"},
        ):
            ok = client.post("/get-online-features", json=BODY, headers=headers)
            assert ok.status_code == 200, headers
            assert ok.json()["results"][1]["values"] == [43]
        assert client.get("/v1/catalog").status_code == 401
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"x-api-key": "k-1"}).status_code == 200
        assert client.get("/health").status_code == 200  # probes stay open
        assert client.get("/ready").status_code == 200


# -- limits -----------------------------------------------------------------------------------


def test_entity_and_body_limits_give_413(tmp_path: Path) -> None:
    repo, _ = build_repo(tmp_path / "repo", serving="{max_entities: 5, max_body_bytes: 2048}")
    with running_server(create_app(repo_path=repo)) as url, httpx.Client(base_url=url) as client:
        ok = client.post("/get-online-features", json={**BODY, "entities": {"user_id": [1] * 5}})
        assert ok.status_code == 200
        many = client.post("/get-online-features", json={**BODY, "entities": {"user_id": [1] * 6}})
        assert many.status_code == 413
        assert "at most 5" in many.json()["detail"]
        big = {**BODY, "padding": "x" * 4000}
        declared = client.post("/get-online-features", json=big)
        assert declared.status_code == 413
        assert "2048 bytes" in declared.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while reading
            yield b'{"entities": {"user_id": [1]}, "pad": "'
            for _ in range(10):
                yield b"y" * 500
            yield b'"}'

        streamed = client.post(
            "/get-online-features", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        assert streamed.json()["request_id"]


# -- hot reload -------------------------------------------------------------------------------


def test_registry_changes_are_picked_up_without_restart(tmp_path: Path) -> None:
    repo, now = build_repo(tmp_path / "repo")
    with running_server(create_app(repo_path=repo)) as url, httpx.Client(base_url=url) as client:
        new_feature = {**BODY, "features": ["user_stats:txn_count", "user_stats:new_count"]}
        assert client.post("/get-online-features", json=new_feature).status_code == 404
        # A later apply adds a feature: the view's fingerprint changes, so stored rows are stale.
        changed = FEATURES_PY.replace(
            'Field("txn_count", Int64),', 'Field("txn_count", Int64), Field("new_count", Int64),'
        )
        (repo / "features.py").write_text(changed)
        import pyarrow.parquet as pq

        table = pq.read_table(repo / "data/user_stats.parquet")
        pq.write_table(
            table.append_column("new_count", table["txn_count"]), repo / "data/user_stats.parquet"
        )
        with FeatureStore(repo) as store:
            store.apply()
        assert poll(
            lambda: client.post("/get-online-features", json=new_feature).status_code == 200
        )
        stale = client.post("/get-online-features", json=new_feature).json()
        assert stale["results"][1]["statuses"] == ["STALE_DEFINITION"]
        assert stale["results"][1]["values"] == [None]
        catalog = client.get("/v1/catalog").json()
        assert catalog["registry_serial"] == 2
        # Re-materializing makes it servable again: the watermark write is picked up too.
        with FeatureStore(repo) as store:
            from datetime import timedelta

            store.materialize(now - timedelta(days=60), now + timedelta(seconds=1))
        fresh = client.post("/get-online-features", json=new_feature).json()
        assert fresh["results"][2]["values"] == [43]
        assert fresh["results"][2]["statuses"] == ["PRESENT"]
        metrics = client.get("/metrics").text
        assert "featurestore_registry_reloads_total" in metrics


# -- refusing to start ------------------------------------------------------------------------


def _unapplied(tmp_path: Path) -> Path:
    repo, _ = build_repo(tmp_path / "repo")
    (repo / "features.py").write_text(
        FEATURES_PY.replace("ttl=timedelta(days=2)", "ttl=timedelta(days=3)")
    )
    return repo


def test_app_refuses_to_start_with_unapplied_changes(tmp_path: Path) -> None:
    repo = _unapplied(tmp_path)
    app = create_app(repo_path=repo)

    async def start() -> None:
        async with app.router.lifespan_context(app):
            pytest.fail("the server started with unapplied changes")

    import asyncio

    with pytest.raises(
        RegistryConflictError, match=r"feature view 'user_stats' \(change\).*featurestore apply"
    ):
        asyncio.run(start())


def test_cli_serve_refuses_to_start_with_unapplied_changes(tmp_path: Path) -> None:
    repo = _unapplied(tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "featurestore",
            "--repo",
            str(repo),
            "serve",
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "differ from the applied registry" in result.stderr
    assert "featurestore apply" in result.stderr


def test_cli_serve_answers_http(tmp_path: Path) -> None:
    repo, _ = build_repo(tmp_path / "repo")
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        serve_command(repo, port),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{url}/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        assert poll(up, 30), (tmp_path / "serve.log").read_text()
        answer = httpx.post(f"{url}/get-online-features", json=BODY, timeout=5)
        assert answer.json()["results"][1]["values"] == [43]
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


# -- Redis unreachable ------------------------------------------------------------------------


def test_redis_down_gives_503_promptly_and_not_ready(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)
    port = redis.port
    try:
        online = f"{{type: redis, url: 'redis://127.0.0.1:{port}/0', timeout_s: 0.5}}"
        repo, _ = build_repo(tmp_path / "repo", online=online)
        with (
            running_server(create_app(repo_path=repo)) as url,
            httpx.Client(base_url=url) as client,
        ):
            assert client.post("/get-online-features", json=BODY).status_code == 200
            redis.stop()
            start = time.monotonic()
            down = client.post("/get-online-features", json=BODY, timeout=10)
            assert time.monotonic() - start < 5
            assert down.status_code == 503
            assert down.headers["retry-after"] == "1"
            assert "unavailable" in down.json()["detail"]
            assert str(port) not in down.json()["detail"]  # no internals in the body
            not_ready = client.get("/ready", timeout=10)
            assert not_ready.status_code == 503
            assert not_ready.json()["checks"]["online_store"] == "unreachable"
            assert client.get("/health").status_code == 200
    finally:
        redis.stop()


# -- definitions changed from another checkout ------------------------------------------------

ON_DEMAND_PY = (
    FEATURES_PY
    + """
import polars as pl

from featurestore import RequestSource, on_demand_feature_view


@on_demand_feature_view(
    sources=[user_stats, RequestSource("txn", schema=[Field("amount", Float64)])],
    schema=[Field("amount_ratio", Float64)],
)
def txn_ratio(df: pl.DataFrame) -> pl.DataFrame:
    return df.select((pl.col("amount") / pl.col("avg_amount")).alias("amount_ratio"))


scored = FeatureService("scored", features=[txn_ratio])
"""
)


def test_on_demand_code_applied_from_another_checkout_gives_503_and_not_ready(
    tmp_path: Path,
) -> None:
    repo, _ = build_repo(tmp_path / "repo", features_py=ON_DEMAND_PY)
    scored = {"entities": {"user_id": [1], "amount": [24.0]}, "feature_service": "scored"}
    with running_server(create_app(repo_path=repo)) as url, httpx.Client(base_url=url) as client:
        before = client.post("/get-online-features", json=scored)
        assert before.status_code == 200
        assert before.json()["results"][-1]["values"] == [2.0]
        # Another checkout changes the function and applies it to the same registry.
        other = tmp_path / "other"
        shutil.copytree(repo, other)
        (other / "features.py").write_text(
            ON_DEMAND_PY.replace('/ pl.col("avg_amount")', '/ pl.col("avg_amount") / 2')
        )
        config = (other / "featurestore.yaml").read_text()
        registry = repo / "data" / "registry.json"
        (other / "featurestore.yaml").write_text(
            config.replace("registry: data/registry.json", f"registry: {registry}")
        )
        with FeatureStore(other) as store:
            store.apply()
        assert poll(lambda: client.post("/get-online-features", json=scored).status_code != 200)
        refused = client.post("/get-online-features", json=scored)
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "1"
        assert "another checkout" in refused.json()["detail"]
        assert str(tmp_path) not in refused.text  # no server paths in the body
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["definitions"].startswith("stale")
        assert client.post("/get-online-features", json=BODY).status_code == 200  # others serve


@pytest.mark.parametrize("amount", [True, False])
def test_a_json_boolean_is_not_a_number_for_a_float64_request_field(
    tmp_path: Path, amount: bool
) -> None:
    repo, _ = build_repo(tmp_path / "repo", features_py=ON_DEMAND_PY)
    scored = {"entities": {"user_id": [1], "amount": [amount]}, "feature_service": "scored"}
    with running_server(create_app(repo_path=repo)) as url, httpx.Client(base_url=url) as client:
        refused = client.post("/get-online-features", json=scored)
        assert refused.status_code == 422, refused.text
        detail = refused.json()["detail"]
        assert "'amount'" in detail
        assert "declared Float64" in detail
        assert "bool" in detail


# -- OpenAPI documentation pages --------------------------------------------------------------


@pytest.mark.parametrize(
    ("serving", "open_"),
    [
        ("{}", True),
        ("{api_keys: [k]}", False),
        ("{api_keys: [k], docs: true}", True),
        ("{docs: false}", False),
    ],
)
def test_docs_pages_follow_the_docs_setting(tmp_path: Path, serving: str, open_: bool) -> None:
    repo, _ = build_repo(tmp_path / "repo", serving=serving)
    with running_server(create_app(repo_path=repo)) as url, httpx.Client(base_url=url) as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (client.get(path).status_code == 200) is open_, path
        if open_:
            paths = client.get("/openapi.json").json()["paths"]
            for online in ("/get-online-features", "/v1/get-online-features"):
                post = paths[online]["post"]
                assert set(post["responses"]) >= {"200", "401", "413", "422", "503"}
                assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"]


# -- a stalled store never blocks the event loop -----------------------------------------------


def test_health_answers_while_lookups_wait_on_a_stalled_redis(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)
    try:
        online = f"{{type: redis, url: 'redis://127.0.0.1:{redis.port}/0', timeout_s: 3}}"
        repo, _ = build_repo(tmp_path / "repo", online=online)
        with (
            running_server(create_app(repo_path=repo)) as url,
            httpx.Client(base_url=url, timeout=10) as client,
        ):
            assert client.post("/get-online-features", json=BODY).status_code == 200
            assert redis.proc is not None
            os.kill(redis.proc.pid, signal.SIGSTOP)  # Redis stalls: accepts, never answers
            statuses: list[int] = []

            def lookup() -> None:
                answer = httpx.post(f"{url}/get-online-features", json=BODY, timeout=15)
                statuses.append(answer.status_code)

            lookups = [threading.Thread(target=lookup) for _ in range(4)]
            try:
                for thread in lookups:
                    thread.start()
                time.sleep(0.5)
                # Small lookups (run on the event loop) wait out the 3 s timeout; meanwhile
                # the loop answers /health, again and again.
                for _ in range(3):
                    assert client.get("/health").status_code == 200
                    time.sleep(0.2)
                assert statuses == [], "a lookup finished before /health was answered"
                for thread in lookups:
                    thread.join(timeout=15)
                assert statuses == [503] * 4  # each after the store's timeout, never a 500
            finally:
                os.kill(redis.proc.pid, signal.SIGCONT)
            assert client.post("/get-online-features", json=BODY).status_code == 200
    finally:
        redis.stop()
