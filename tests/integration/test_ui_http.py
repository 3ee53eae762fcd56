"""The web UI over HTTP (no browser): API keys, escaping, 404 pages, the server mount.

The repos here are also the browser tests' (test_ui_browser.py): the example fraud repo
(the files ``featurestore init`` writes, with small generated data, applied and
materialized) and a small repo whose views are fresh, stale, never materialized, or failed
their expectations.
"""

from __future__ import annotations

import asyncio
import html.parser
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from featurestore import FeatureStore
from featurestore._time import utc_now
from featurestore.cli.main import template_files
from featurestore.sample_data import default_end, generate
from featurestore.serving.app import REPO_ENV, create_app
from featurestore.ui.app import create_server_from_env, create_ui_app
from featurestore.ui.markup import tag
from tests.conftest import make_repo, write_parquet
from tests.redis_server import free_port

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.types import ASGIApp

SMALL = {"rows": 300, "days": 10, "entity_rows": 40}
KEY = "s3cret-UI-key-0042"


def build_fraud_repo(root: Path, *, api_keys: list[str] | None = None) -> Path:
    """The example repo (``featurestore init``'s files), small data, applied, materialized."""
    for name, text in template_files().items():
        (root / name).write_text(text)
    if api_keys:
        with (root / "featurestore.yaml").open("a") as handle:
            handle.write(f"serving:\n  api_keys: {api_keys!r}\n")
    generate(root / "data", end=default_end(), **SMALL)
    with FeatureStore(root) as store:
        store.apply()
        store.materialize_incremental()
    return root


FLAGS_FEATURES = """
    from datetime import timedelta

    import great_expectations.expectations as gxe

    from featurestore import Entity, FeatureView, Field, ParquetSource
    from featurestore.types import Int64

    item = Entity("item", join_keys=["item_id"], description="<b>An item</b> & more")
    source = ParquetSource(path="data/items.parquet", timestamp_field="ts")


    def view(name, ttl, **extra):
        return FeatureView(
            name=name, entities=[item], source=source, schema=[Field("qty", Int64)], ttl=ttl,
            **extra,
        )


    fresh = view("fresh", timedelta(days=30), description="<script>alert(1)</script>")
    stale = view("stale", timedelta(hours=1))
    never = view("never", timedelta(days=30))
    checked = view(
        "checked",
        timedelta(days=30),
        expectations=[gxe.ExpectColumnValuesToBeBetween(column="qty", min_value=0, max_value=5)],
        on_failure="warn",
    )
"""


def build_flags_repo(root: Path) -> Path:
    """Views fresh, stale (lag over its ttl), never materialized, and failing validation."""
    make_repo(root, FLAGS_FEATURES)
    now = utc_now()
    write_parquet(
        root / "data" / "items.parquet",
        {
            "item_id": [1, 2, 3],
            "qty": [1, 2, 50],  # 50 breaks the 'checked' view's expectation
            "ts": [now - timedelta(days=2, hours=h) for h in range(3)],
        },
    )
    with FeatureStore(root) as store:
        store.apply()
        # Written up to a day ago: 'stale' (ttl 1 h) now serves nothing, 'fresh' (30 d) does.
        store.materialize(
            now - timedelta(days=3), now - timedelta(days=1), views=["fresh", "stale", "checked"]
        )
    return root


@pytest.fixture(scope="module")
def fraud_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fraud_repo(tmp_path_factory.mktemp("ui_fraud"))


@pytest.fixture(scope="module")
def flags_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_flags_repo(tmp_path_factory.mktemp("ui_flags"))


@asynccontextmanager
async def client_of(app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client of ``app`` with its lifespan run (startup and shutdown)."""
    async with app.router.lifespan_context(app):  # type: ignore[attr-defined]
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ui.test") as client:
            yield client


def test_pages_need_an_api_key_and_never_show_it(tmp_path: Path) -> None:
    repo = build_fraud_repo(tmp_path, api_keys=[KEY])

    async def scenario() -> list[httpx.Response]:
        seen = []
        async with client_of(create_ui_app(repo_path=repo)) as client:
            page = await client.get("/ui/freshness")
            assert page.status_code == 401
            assert 'type="password"' in page.text
            assert 'value="/ui/freshness"' in page.text  # back to the page after the login
            seen.append(page)
            css = await client.get("/ui/static/ui.css")  # assets carry nothing secret
            assert css.status_code == 200
            wrong = await client.post("/ui/login", data={"key": "nope", "next": "/ui/"})
            assert wrong.status_code == 401
            assert "not valid" in wrong.text
            seen.append(wrong)
            login = await client.post("/ui/login", data={"key": KEY, "next": "/ui/freshness"})
            assert login.status_code == 303
            assert login.headers["location"] == "/ui/freshness"
            cookie = login.headers["set-cookie"]
            assert "HttpOnly" in cookie
            assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
            assert KEY not in cookie
            seen.append(login)
            for path in ("/ui/", "/ui/freshness", "/ui/views/user_stats", "/ui/lookup"):
                page = await client.get(path)  # the session cookie lets them in
                assert page.status_code == 200, path
                assert "Log out" in page.text
                seen.append(page)
            client.cookies.clear()
            bearer = await client.get("/ui/", headers={"Authorization": f"Bearer {KEY}"})
            assert bearer.status_code == 200
            seen.append(bearer)
            escape = await client.post("/ui/login", data={"key": KEY, "next": "//evil.example/"})
            assert escape.headers["location"] == "/ui/"  # no open redirect
            logout = await client.post("/ui/logout")
            assert logout.status_code == 303
            client.cookies.clear()
            assert (await client.get("/ui/")).status_code == 401
        return seen

    for response in asyncio.run(scenario()):
        assert KEY not in response.text
        assert KEY not in str(response.headers)


def test_registry_text_is_escaped_and_unknown_pages_are_404(flags_repo: Path) -> None:
    async def scenario() -> None:
        async with client_of(create_ui_app(repo_path=flags_repo)) as client:
            catalog = await client.get("/ui/")
            assert catalog.status_code == 200
            assert "<script>alert(1)</script>" not in catalog.text
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in catalog.text
            assert "&lt;b&gt;An item&lt;/b&gt; &amp; more" in catalog.text
            for path, status in [
                ("/ui/views/nope", 404),
                ("/ui/views/fresj", 404),
                ("/ui/services/nope", 404),
                ("/ui/nowhere", 404),
                ("/ui/static/nope.css", 404),
                ("/ui/static/..%2F..%2Fapp.py", 404),
                ("/ui/lookup?features=nope", 404),
                ("/ui/lookup?features=fresh&item_id=abc", 422),
                ("/ui/skew/report?service=nope", 404),
                ("/ui/skew/report?service=x&max_mismatch_rate=2", 422),
                ("/ui/skew/report?service=x&since=yesterday", 422),
            ]:
                page = await client.get(path)
                assert page.status_code == status, (path, page.text)
                assert page.headers["content-type"].startswith("text/html"), path
            closest = await client.get("/ui/views/fresj")
            assert "fresh" in closest.text  # names the closest view

    asyncio.run(scenario())


def test_ui_mounted_on_the_feature_server_beside_the_api(
    fraud_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(REPO_ENV, str(fraud_repo))

    async def scenario() -> None:
        app = create_server_from_env()  # what 'featurestore serve' runs (without --no-ui)
        async with client_of(app) as client:
            assert (await client.get("/ui/")).status_code == 200
            assert (await client.get("/favicon.ico")).status_code == 200
            assert (await client.get("/health")).status_code == 200
            body = {"entities": {"user_id": [7]}, "features": ["user_stats:txn_count_7d"]}
            assert (await client.post("/get-online-features", json=body)).status_code == 200
            missing = await client.get("/ui/views/nope")
            assert missing.status_code == 404
            assert missing.headers["content-type"].startswith("text/html")
        plain = create_app(repo_path=fraud_repo)  # what 'serve --no-ui' runs
        async with client_of(plain) as client:
            assert (await client.get("/ui/")).status_code == 404

    asyncio.run(scenario())


class _Elements(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[dict[str, str | None]] = []
        self.text = ""

    def handle_starttag(self, name: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(name)
        self.attrs.append(dict(attrs))

    def handle_data(self, data: str) -> None:
        self.text += data


@given(text=st.text(), attribute=st.text())
def test_tag_keeps_any_text_as_text(text: str, attribute: str) -> None:
    """Whatever a registry string holds, it renders as that text: never as markup."""
    parser = _Elements()
    parser.feed(tag("td", text, title=attribute))
    parser.close()
    assert parser.tags == ["td"]
    assert parser.attrs == [{"title": attribute}]
    assert parser.text == text


def test_featurestore_ui_command_serves_the_ui_alone(flags_repo: Path, tmp_path: Path) -> None:
    """The real 'featurestore ui' command: the UI at /ui, / redirecting there, no online API."""
    port = free_port()
    command = [sys.executable, "-m", "featurestore", "--repo", str(flags_repo), "ui"]
    log = tmp_path / "ui.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            cwd=Path(__file__).resolve().parents[2],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                page = httpx.get(f"{url}/ui/freshness", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, log.read_text(errors="replace")
                assert time.monotonic() < deadline, "featurestore ui did not start in 120 s"
                time.sleep(0.5)
        assert page.status_code == 200
        assert "stale" in page.text
        home = httpx.get(url + "/", timeout=5)
        assert home.status_code == 307
        assert home.headers["location"] == "/ui/"
        assert httpx.post(f"{url}/get-online-features", json={}, timeout=5).status_code == 404
    finally:
        process.terminate()
        process.wait(timeout=30)
