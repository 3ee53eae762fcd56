"""Web UI benchmark (issue 18): page load times, example repo and a generated 500-view repo.

    .venv/bin/python benchmarks/bench_ui.py            # default (a few minutes)
    .venv/bin/python benchmarks/bench_ui.py --small    # a quick check (100 views)

Each repo is served as a user runs it, ``featurestore serve`` (the feature server with the UI
at /ui) in its own process, and read over loopback HTTP: per page, the time from sending the
request to the last byte of the HTML, p50 and p95 over the repeats, with the bare HTTP round
trip of ``GET /health`` on the same server measured in the same run (the floor; each page's
p50 is also given as a ratio to it). With chromium and chromedriver installed, the browser's
own page load (navigation start to the load event: HTML, CSS, JS, layout) of each page is
measured too. Targets: under 200 ms for the example repo, under 1 s for 500 views.

The generated repo has 500 feature views of 6 features over 50 entities (one small Parquet
source each), 25 on-demand views and 20 services, applied and materialized. The machine's
load (``uptime``) is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from featurestore import FeatureStore  # noqa: E402
from featurestore.cli.main import template_files  # noqa: E402
from featurestore.sample_data import default_end, generate  # noqa: E402

NOW = datetime.now(tz=UTC).replace(microsecond=0)

GENERATED_PY = textwrap.dedent(
    """
    from datetime import timedelta

    import polars as pl

    from featurestore import (Entity, FeatureService, FeatureView, Field, ParquetSource,
                              RequestSource, on_demand_feature_view)
    from featurestore.types import Float64, Int64

    # The loader collects module-level definitions: each one gets a global name.
    VIEWS, ENTITIES, ON_DEMAND, SERVICES = {views}, 50, 25, 20
    request = RequestSource("req", schema=[Field("x", Float64)])
    for i in range(ENTITIES):
        globals()[f"e{{i}}"] = Entity(f"e{{i}}", join_keys=[f"k{{i}}"], description=f"Entity {{i}}.")
    for v in range(VIEWS):
        globals()[f"view_{{v:03d}}"] = FeatureView(
            name=f"view_{{v:03d}}",
            entities=[globals()[f"e{{v % ENTITIES}}"]],
            source=ParquetSource(path=f"data/v{{v:03d}}.parquet", timestamp_field="ts"),
            schema=[Field(f"f{{j}}", Float64 if j % 2 else Int64, f"Feature {{j}} of {{v}}.")
                    for j in range(6)],
            ttl=timedelta(days=1 + v % 7),
            description=f"Generated view {{v}}.",
            owner=f"team-{{v % 9}}@example.com",
            tags={{"tier": str(v % 3)}},
        )
    for o in range(ON_DEMAND):
        exec(
            f"@on_demand_feature_view(sources=[view_{{o:03d}}[['f1']], request], "
            f"schema=[Field('scaled', Float64)])\\n"
            f"def odfv_{{o:02d}}(df: pl.DataFrame) -> pl.DataFrame:\\n"
            f"    return df.select((pl.col('x') * pl.col('f1')).alias('scaled'))\\n"
        )
    for s in range(SERVICES):
        globals()[f"svc_{{s:02d}}"] = FeatureService(
            f"svc_{{s:02d}}",
            features=[globals()[f"view_{{v:03d}}"] for v in range(s * 5, s * 5 + 5)]
            + [globals()[f"odfv_{{s % ON_DEMAND:02d}}"]],
        )
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def example_repo(root: Path) -> Path:
    """The example repo (``featurestore init``'s files) with its default data."""
    root.mkdir(parents=True)
    for name, text in template_files().items():
        (root / name).write_text(text)
    generate(root / "data", end=default_end())
    return root


def generated_repo(root: Path, views: int) -> Path:
    """``views`` feature views (``GENERATED_PY``), 20 rows each, written up to now."""
    (root / "data").mkdir(parents=True)
    (root / "featurestore.yaml").write_text(
        "project: bench_ui\nregistry: data/registry.json\n"
        "online_store: {type: sqlite, path: data/online.db}\n"
    )
    (root / "features.py").write_text(GENERATED_PY.format(views=views))
    stamps = [NOW - timedelta(hours=h) for h in range(20)]
    for v in range(views):
        columns = {f"k{v % 50}": list(range(20)), "ts": stamps}
        columns |= {f"f{j}": [float(i) if j % 2 else i for i in range(20)] for j in range(6)}
        pq.write_table(pa.table(columns), root / "data" / f"v{v:03d}.parquet")
    return root


def prepare(repo: Path) -> float:
    started = time.perf_counter()
    with FeatureStore(repo) as store:
        store.apply()
        store.materialize_incremental()
    return time.perf_counter() - started


class Server:
    """``featurestore serve`` on a free loopback port, in its own process."""

    def __init__(self, repo: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "featurestore", "--repo", str(repo), "serve"]
        self.log = repo / "server.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port)],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                err = self.log.read_text(errors="replace")
                self.process.kill()
                raise RuntimeError(f"server did not start: {err[-2000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _times(client: httpx.Client, url: str, repeats: int) -> tuple[float, float, int]:
    """p50 and p95 in ms of GET ``url`` (after one warm-up), and the page's size in bytes."""
    size = len(client.get(url).content)
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(url)
        response.read()
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))], size


def _browser_loads_ms(base: str, pages: list[str], repeats: int) -> dict[str, float] | None:
    """Per page, chromium's p50 from navigation start to the load event (None: no chromium)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    script = (
        "const t = performance.getEntriesByType('navigation')[0];"
        "return t.loadEventEnd - t.startTime;"
    )
    loads = {}
    try:
        for page in pages:
            driver.get(base + page)  # warm-up: cached assets, as on a user's second page
            samples = []
            for _ in range(repeats):
                driver.get(base + page)
                samples.append(driver.execute_script(script))
            loads[page] = float(statistics.median(samples))
    finally:
        driver.quit()
    return loads


def measure(name: str, repo: Path, pages: list[str], repeats: int, target_ms: float) -> None:
    server = Server(repo)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            before, _, _ = _times(client, "/health", repeats)
            rows = [(page, *_times(client, page, repeats)) for page in pages]
            after, _, _ = _times(client, "/health", repeats)
        floor = min(before, after)  # the floor, before and after the pages: the quieter one
        print(f"\n{name}: {repo}")
        print(f"  GET /health (bare HTTP round trip, the floor): p50 {floor:.2f} ms")
        print(f"  {'page':<40} {'p50 ms':>8} {'p95 ms':>8} {'x /health':>10} {'KB':>8}")
        for page, p50, p95, size in rows:
            print(f"  {page:<40} {p50:8.2f} {p95:8.2f} {p50 / floor:10.1f} {size / 1024:8.1f}")
        worst = max(p95 for _, _, p95, _ in rows)
        verdict = "met" if worst < target_ms else "MISSED"
        print(f"  slowest p95 {worst:.1f} ms: target {target_ms:.0f} ms {verdict}")
        loads = _browser_loads_ms(server.url, pages, max(repeats // 6, 3))
        if loads is not None:
            print("  chromium, navigation start to load event (HTML, CSS, JS, layout), p50:")
            for page, ms in loads.items():
                print(f"  {page:<40} {ms:8.1f} ms")
            slowest = max(loads.values())
            verdict = "met" if slowest < target_ms else "MISSED"
            print(f"  slowest browser load {slowest:.1f} ms: target {target_ms:.0f} ms {verdict}")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="100 views, fewer repeats")
    args = parser.parse_args()
    views = 100 if args.small else 500
    repeats = 10 if args.small else 30
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min)")
    with tempfile.TemporaryDirectory(prefix="bench_ui_") as tmp:
        example = example_repo(Path(tmp) / "example")
        print(f"example repo applied and materialized in {prepare(example):.1f} s")
        measure(
            "example repo",
            example,
            [
                "/ui/",
                "/ui/features",
                "/ui/freshness",
                "/ui/views/user_stats",
                "/ui/views/txn_features",
                "/ui/services/fraud_v1",
                "/ui/lookup?features=fraud_v1",
                "/ui/lookup?features=fraud_v1&user_id=7&merchant_id=m_00035&amount=120",
                "/ui/skew",
            ],
            repeats,
            200.0,
        )
        generated = generated_repo(Path(tmp) / "generated", views)
        print(f"\n{views}-view repo applied and materialized in {prepare(generated):.1f} s")
        measure(
            f"generated repo of {views} views",
            generated,
            [
                "/ui/",
                "/ui/features",
                "/ui/freshness",
                "/ui/views/view_000",
                "/ui/views/odfv_00",
                "/ui/services/svc_00",
                "/ui/lookup?features=svc_00",
                "/ui/skew",
            ],
            repeats,
            1000.0,
        )
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
