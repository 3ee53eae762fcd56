"""The web UI in a real headless browser (Debian's chromium + chromedriver, via selenium).

Each page must load with no console error; the catalog must list the example repo's
objects; a lookup through the form must show what 'featurestore get-online' prints; a view
that failed validation and a stale view must be flagged; an unknown view is a 404 page. The
example repo is served as 'featurestore serve' serves it (the feature server with the UI
mounted), the flags repo as 'featurestore ui' does (the UI alone). In CI (CI=true) a missing
browser fails the tests rather than skipping them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from featurestore import FeatureStore
from featurestore.cli.main import app as cli_app
from featurestore.serving.app import create_app
from featurestore.ui.app import create_ui_app, mount_ui
from tests.integration.test_http_support import running_server
from tests.integration.test_skew_html import _driver
from tests.integration.test_ui_http import build_flags_repo, build_fraud_repo

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(scope="module")
def fraud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    repo = build_fraud_repo(tmp_path_factory.mktemp("ui_browser_fraud"))
    app = create_app(repo_path=repo)
    mount_ui(app)
    with running_server(app) as url:
        yield url, repo


@pytest.fixture(scope="module")
def flags(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    repo = build_flags_repo(tmp_path_factory.mktemp("ui_browser_flags"))
    with running_server(create_ui_app(repo_path=repo)) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    driver = _driver()
    try:
        yield driver
    finally:
        driver.quit()


def _errors(driver: Any) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _column(driver: Any, table: str, index: int = 0) -> list[str]:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr")
    return [r.find_elements(By.TAG_NAME, "td")[index].text for r in rows]


def test_every_page_loads_without_console_errors(fraud: tuple[str, Path], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    url, repo = fraud
    snapshot = FeatureStore(repo).snapshot
    paths = [
        "/ui/",
        "/ui/features",
        "/ui/freshness",
        "/ui/lookup",
        "/ui/lookup?features=fraud_v1",
        "/ui/skew",
        *(f"/ui/views/{v}" for v in [*snapshot.feature_views, *snapshot.on_demand_views]),
        *(f"/ui/services/{s}" for s in snapshot.feature_services),
    ]
    for path in paths:
        browser.get(url + path)
        assert browser.find_element(By.TAG_NAME, "h1").is_displayed(), path
        assert _errors(browser) == [], path
        # The stylesheet applied: the header bar is coloured, not the browser's default.
        header = browser.find_element(By.TAG_NAME, "header")
        assert header.value_of_css_property("display") == "flex", path
    browser.get(url + "/ui/views/user_stats")
    graph = browser.find_element(By.CSS_SELECTOR, "svg.lineage")
    assert graph.is_displayed()
    assert graph.size["width"] > 300
    assert browser.find_elements(By.CSS_SELECTOR, "svg.lineage g.focus")


def test_catalog_lists_the_example_repo_objects(fraud: tuple[str, Path], browser: Any) -> None:
    from selenium.webdriver.common.by import By

    url, repo = fraud
    with FeatureStore(repo) as store:
        entities = sorted(e.name for e in store.list_entities())
        views = sorted(r.view.name for r in store.list_feature_views())
        on_demand = sorted(r.name for r in store.list_on_demand_feature_views())
        services = sorted(s.name for s in store.list_feature_services())
        snapshot = store.snapshot
    features = sorted(
        [f"{n}:{f}" for n, r in snapshot.feature_views.items() for f in r.view.feature_names]
        + [f"{n}:{f}" for n, r in snapshot.on_demand_views.items() for f in r.feature_names]
    )
    for names in (entities, views, on_demand, services):
        assert names
    browser.get(url + "/ui/")
    assert sorted(_column(browser, "entities-table")) == entities
    assert sorted(_column(browser, "views-table")) == views
    assert sorted(_column(browser, "on-demand-table")) == on_demand
    assert sorted(_column(browser, "services-table")) == services
    nodes = {
        t.get_attribute("textContent")
        for t in browser.find_elements(By.CSS_SELECTOR, "#lineage svg g.node > title")
    }
    assert {*views, *on_demand, *services} <= nodes
    assert {r.view.source.path for r in snapshot.feature_views.values()} <= nodes
    # The filter box hides the rows that do not match.
    browser.find_element(By.ID, "filter").send_keys(views[0])
    shown = [
        r.text.split(" ")[0]
        for r in browser.find_elements(By.CSS_SELECTOR, "#views-table tbody tr")
        if r.is_displayed()
    ]
    assert views[0] in shown
    assert len(shown) < len(views)
    assert _errors(browser) == []
    browser.get(url + "/ui/features")
    # textContent: sections off screen are not laid out (content-visibility), so no .text.
    cells = browser.find_elements(By.CSS_SELECTOR, "table.features tbody tr td:first-child")
    assert sorted(c.get_attribute("textContent") for c in cells) == features
    assert _errors(browser) == []


def _example_entity(repo: Path) -> tuple[int, str]:
    """A (user, merchant) pair the example data has a pair record for."""
    row = pq.read_table(repo / "data" / "user_merchant_stats.parquet").slice(0, 1).to_pylist()[0]
    return int(row["user_id"]), str(row["merchant_id"])


def test_lookup_form_shows_the_values_of_get_online(fraud: tuple[str, Path], browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    url, repo = fraud
    user, merchant = _example_entity(repo)
    browser.get(url + "/ui/lookup")
    Select(browser.find_element(By.ID, "features")).select_by_value("fraud_v1")  # submits
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "input-user_id"))
    for name, value in (("user_id", user), ("merchant_id", merchant), ("amount", "120.0")):
        browser.find_element(By.ID, f"input-{name}").send_keys(str(value))
    browser.find_element(By.ID, "go").click()
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "lookup-result"))
    shown = {}
    for row in browser.find_elements(By.CSS_SELECTOR, "#lookup-result tbody tr"):
        feature, value, status, event_time = (c.text for c in row.find_elements(By.TAG_NAME, "td"))
        shown[feature] = (value, status, event_time)
    assert _errors(browser) == []

    result = CliRunner().invoke(
        cli_app,
        ["--repo", str(repo), "get-online", "--features", "fraud_v1", "--entity",
         f"user_id={user},merchant_id={merchant}", "--request", "amount=120.0", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    cli = json.loads(result.stdout)
    features = list(cli["statuses"])
    assert list(shown) == features
    assert "PRESENT" in {cli["statuses"][f][0] for f in features}
    for feature in features:
        value, status, event_time = shown[feature]
        expected = cli["values"][feature][0]
        assert (value if isinstance(expected, str) else json.loads(value)) == expected, feature
        assert status == cli["statuses"][feature][0], feature
        stamp = cli["event_timestamps"][feature][0]
        assert event_time == (stamp if stamp is not None else "-"), feature

    # That lookup was logged (fraud_v1 logs every request): its skew report renders.
    browser.get(f"{url}/ui/skew/report?service=fraud_v1")
    assert browser.title == "Skew report: fraud_v1"
    assert browser.find_element(By.ID, "feature-bars").is_displayed()
    assert browser.find_element(By.ID, "verdict").text.startswith("PASS")
    assert _errors(browser) == []


def test_failed_validation_and_stale_view_are_flagged(flags: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    browser.get(flags + "/ui/freshness")
    assert _errors(browser) == []
    rows = {}
    for row in browser.find_elements(By.CSS_SELECTOR, "#freshness-table tbody tr"):
        cells = row.find_elements(By.TAG_NAME, "td")
        rows[cells[0].text] = (row.get_attribute("class"), cells[1].text, cells[5].text)
    assert rows["stale"] == ("flagged", "stale", "-")
    assert rows["checked"] == ("flagged", "fresh", "failed")
    assert rows["never"] == ("flagged", "never materialized", "-")
    assert rows["fresh"] == ("", "fresh", "-")
    # Most behind first: never materialized, then by lag (all materialized to the same time).
    assert next(iter(rows)) == "never"
    for view, flag in (("checked", "validation failed"), ("stale", "stale")):
        browser.get(f"{flags}/ui/views/{view}")
        badges = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "h1 .badge.bad")]
        assert flag in badges, view
        assert _errors(browser) == []
    browser.get(f"{flags}/ui/views/checked")
    failures = _column(browser, "validation-failures")
    assert len(failures) == 1
    assert "expect_column_values_to_be_between" in failures[0]
    assert "1 of 3 rows unexpected" in failures[0]
    # The materialization wrote one validated window: the validated windows list it...
    assert _column(browser, "validated-table", 2) == ["materialization"]
    assert _column(browser, "validated-table", 4) == ["failed 1"]
    # ... and the materialization history its one run, which read the fixture's 3 items.
    assert _column(browser, "history-table", 2) == ["3"]


def test_unknown_view_is_a_404_page(flags: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    response = httpx.get(f"{flags}/ui/views/no_such_view")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    browser.get(f"{flags}/ui/views/no_such_view")
    assert browser.find_element(By.ID, "error-title").text == "404 Not found"
    assert "no_such_view" in browser.find_element(By.ID, "error-message").text
    # The only console error is the page's own 404 status; its assets all loaded.
    errors = _errors(browser)
    assert all("404" in e["message"] and "no_such_view" in e["message"] for e in errors)
    header = browser.find_element(By.TAG_NAME, "header")
    assert header.value_of_css_property("display") == "flex"
