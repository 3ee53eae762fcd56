"""The metrics of ``serve --workers N``: every worker's series, once, labelled, in valid text.

Random workers increment random series (label values with quotes, braces, backslashes and
line breaks); the merged text is parsed line by line against the Prometheus text format and
compared with what each worker's counters and histograms hold.
"""

from __future__ import annotations

import os
import re
from collections import Counter as Multiset
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore.serving.metrics import MetricsRegistry
from featurestore.serving.workers import WorkerMetrics, label_samples, merge_families

LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
SAMPLE = re.compile(r"^(\w+)(?:\{(.*)\})? (\S+)$")
values = st.text(alphabet='ab{}" \\\n,=', max_size=6)
increments = st.lists(st.tuples(st.sampled_from(["hits", "latency"]), values, st.integers(1, 3)))


def registry_of(steps) -> MetricsRegistry:
    registry = MetricsRegistry()
    hits = registry.counter("demo_hits_total", "Hits.", ("route",))
    latency = registry.histogram("demo_seconds", "Latency.", (0.1, 1.0), ("route",))
    for kind, route, amount in steps:
        if kind == "hits":
            hits.inc(route, amount=amount)
        else:
            latency.observe(amount / 2, route)
    return registry


def unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], value)


def parse(text: str) -> tuple[list[str], Multiset]:
    """Family names in order (checking HELP/TYPE come once, first) and every sample."""
    families: list[str] = []
    samples: Multiset = Multiset()
    current = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            current = line.split(" ")[2]
            assert current not in families, f"family {current} appears twice"
            families.append(current)
            continue
        if line.startswith("# TYPE "):
            assert line.split(" ")[2] == current
            continue
        match = SAMPLE.match(line)
        assert match, line
        name, labels, value = match.groups()
        assert current is not None
        assert name.startswith(current), f"{name} outside its family {current}"
        pairs = LABEL.findall(labels or "")
        assert ",".join(f'{k}="{v}"' for k, v in pairs) == (labels or "")
        samples[(name, frozenset((k, unescape(v)) for k, v in pairs), float(value))] += 1
    return families, samples


def expected(registry: MetricsRegistry, worker: str) -> Multiset:
    """The samples one worker holds: counters by route, histogram counts and sums by route."""
    found: Multiset = Multiset()
    hits, latency = registry._metrics
    for (route,), value in hits._values.items():  # type: ignore[union-attr]
        found[("demo_hits_total", frozenset({("worker", worker), ("route", route)}), value)] += 1
    for (route,), series in latency._series.items():  # type: ignore[union-attr]
        labels = frozenset({("worker", worker), ("route", route)})
        found[("demo_seconds_count", labels, float(series.count))] += 1
        found[("demo_seconds_sum", labels, series.total)] += 1
    return found


@settings(max_examples=40, deadline=None)
@given(workers=st.lists(increments, min_size=1, max_size=4))
def test_merged_metrics_hold_every_workers_series_once(workers):
    registries = [registry_of(steps) for steps in workers]
    texts = [label_samples(r.render(), "worker", str(i)) for i, r in enumerate(registries)]
    families, samples = parse(merge_families(texts))
    assert families == ["demo_hits_total", "demo_seconds"]
    wanted: Multiset = Multiset()
    for i, registry in enumerate(registries):
        wanted += expected(registry, str(i))
    got = Multiset({k: n for k, n in samples.items() if not k[0].endswith("_bucket")})
    assert got == wanted


def test_a_dead_workers_file_is_dropped_and_a_live_ones_kept(tmp_path: Path):
    (tmp_path / "999999999.prom").write_text('# TYPE x counter\nx{worker="999999999"} 1\n')
    parent = os.getppid()  # alive: stands for another worker
    (tmp_path / f"{parent}.prom").write_text(f'# TYPE x counter\nx{{worker="{parent}"}} 2\n')
    mine = WorkerMetrics(tmp_path, lambda: "# TYPE x counter\nx 3\n")
    text = mine.collect()
    assert text == (f'# TYPE x counter\nx{{worker="{os.getpid()}"}} 3\nx{{worker="{parent}"}} 2\n')
    assert not (tmp_path / "999999999.prom").exists()
    assert (tmp_path / f"{os.getpid()}.prom").exists()
