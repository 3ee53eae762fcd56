"""The skew report's HTML page in a real headless browser (Debian's chromium + chromedriver).

The page must render with no console error and show its plots; assertions are on the rendered
page (elements displayed, their sizes), not on the HTML text. In CI (CI=true) a missing browser
fails the test rather than skipping it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from featurestore import FeatureStore
from featurestore.consistency.html import render_html
from featurestore.consistency.report import CAUSES
from tests.conftest import utc
from tests.integration.test_skew_report import _overwrite_cnt, _serve, store  # noqa: F401


def _driver():  # type: ignore[no-untyped-def]
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        chromium = None
    if chromium is None or chromedriver is None:
        message = "needs chromium, chromium-driver and selenium (.ci/run installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(chromedriver), options=options)


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_html_report_renders_plots_without_console_errors(
    store: FeatureStore,  # noqa: F811 - the fixture, parametrized to SQLite
    tmp_path: Path,
) -> None:
    _overwrite_cnt(store, user=2, value=99)
    _serve(store, utc(2026, 1, 11), [{"user_id": 1, "x": 1.0}, {"user_id": 2, "x": 1.0}])
    report = store.skew_report("svc")
    assert report.cause_counts()["mismatch"] == 1
    page = tmp_path / "skew.html"
    page.write_text(render_html(report))
    driver = _driver()
    from selenium.webdriver.common.by import By

    try:
        driver.get(page.as_uri())
        assert driver.title == "Skew report: svc"
        bars = driver.find_element(By.ID, "feature-bars")
        assert bars.is_displayed()
        assert bars.size["width"] > 100
        assert bars.size["height"] > 50
        mismatch = driver.find_elements(By.CSS_SELECTOR, "#feature-bars rect.bar.mismatch")
        assert len(mismatch) == 1
        assert mismatch[0].is_displayed()
        assert mismatch[0].size["width"] > 0
        equal = driver.find_elements(By.CSS_SELECTOR, "#feature-bars rect.bar.equal")
        assert len(equal) == len(report.features)
        assert driver.find_element(By.ID, "lag-histogram").is_displayed()
        assert driver.find_element(By.ID, "verdict").text.startswith("FAIL")
        assert set(CAUSES) <= {t.text for t in driver.find_elements(By.TAG_NAME, "th")}
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
    finally:
        driver.quit()
