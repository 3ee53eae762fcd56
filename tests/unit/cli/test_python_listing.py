"""The Python side of what the CLI shows: listing helpers, reprs for notebooks, text progress."""

from __future__ import annotations

import io
import json
import sys
import types
from datetime import timedelta

import pytest

from featurestore import FeatureStore, TextProgress
from featurestore.sample_data import default_end

AFTER_END = default_end() + timedelta(minutes=1)


@pytest.mark.parametrize(
    ("method", "command"),
    [
        ("list_entities", "entities"),
        ("list_feature_views", "feature-views"),
        ("list_on_demand_feature_views", "on-demand-feature-views"),
        ("list_feature_services", "feature-services"),
    ],
)
def test_listing_helpers_match_the_cli(applied, method: str, command: str):
    cli_names = [item["name"] for item in json.loads(applied.ok("list", command, "--json").stdout)]
    with FeatureStore(applied.repo) as store:
        listed = getattr(store, method)()
    names = [getattr(item, "name", None) or item.view.name for item in listed]
    assert names == cli_names
    assert names  # the example repo has some of each
    assert names == sorted(names)


def test_listing_before_apply_is_empty(fraud_repo):
    with FeatureStore(fraud_repo) as store:
        assert store.list_entities() == []
        assert store.list_feature_views() == []


def test_repr_names_the_repo_and_counts_only_what_was_read(applied):
    with FeatureStore(applied.repo) as store:
        before = repr(store)
        assert before == (
            f"FeatureStore({str(applied.repo.resolve())!r}, project='fraud', online_store='sqlite')"
        )
        store.list_feature_views()
        after = repr(store)
    assert after.startswith(before[:-1] + ", serial=")
    assert "feature_views=4, on_demand_feature_views=1, feature_services=1)" in after


def test_repr_html_shows_every_applied_definition_escaped(applied):
    with FeatureStore(applied.repo) as store:
        page = store._repr_html_()
        for name in ["user", "merchant", "user_stats", "user_merchant_stats", "txn_features"]:
            assert f"<td>{name}</td>" in page
        assert "<td>fraud_v1</td>" in page
        assert "never materialized" in page
        assert page.count("<table>") == 4


def test_text_progress_writes_a_line_per_finished_view_and_throttles():
    out = io.StringIO()
    with TextProgress(out, interval_s=3600) as progress:
        for done in range(0, 1001, 100):
            progress("user_stats", done, 1000)
        progress("merchant_stats", 5, None)
        progress("merchant_stats", 10, None)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("Materializing user_stats: 1,000/1,000 rows (")
    assert lines[1].startswith("Materializing merchant_stats: 10 rows (")


def test_text_progress_repeats_after_the_interval():
    out = io.StringIO()
    progress = TextProgress(out, interval_s=0)
    progress("v", 1, 3)
    progress("v", 2, 3)
    progress("v", 3, 3)
    progress.close()
    assert [line.split(" rows")[0] for line in out.getvalue().splitlines()] == [
        "Materializing v: 1/3",
        "Materializing v: 2/3",
        "Materializing v: 3/3",
    ]


@pytest.mark.parametrize("in_notebook", [True, False])
def test_materialize_shows_progress_in_a_notebook_only(applied, monkeypatch, capsys, in_notebook):
    if in_notebook:
        monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    else:
        monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    with FeatureStore(applied.repo) as store:
        store.materialize_incremental(AFTER_END)
    err = capsys.readouterr().err
    shown = [line for line in err.splitlines() if line.startswith("Materializing ")]
    if in_notebook:
        assert {line.split(":")[0] for line in shown} == {
            "Materializing merchant_stats",
            "Materializing user_merchant_stats",
            "Materializing user_stats",
        }
    else:
        assert shown == []
