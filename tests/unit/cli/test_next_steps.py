"""Commands that could do nothing say what to do next, and exit 1 when nothing was done."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from featurestore.cli import render
from featurestore.errors import FeatureStoreError, term
from featurestore.sample_data import default_end

AFTER_END = (default_end() + timedelta(minutes=1)).isoformat()


@pytest.mark.parametrize(
    "args",
    [
        ["materialize-incremental"],
        ["materialize-incremental", AFTER_END, "--json"],
        ["materialize", "2026-01-01", AFTER_END],
    ],
)
def test_materializing_before_apply_fails_and_says_apply(cli, args):
    result = cli(*args)
    assert result.exit_code == 1
    assert "holds no feature views" in result.stderr
    assert "Run 'featurestore apply' first" in result.stderr
    assert result.stdout == ""


def test_materializing_only_offline_views_fails_and_names_them(cli, fraud_repo):
    features = fraud_repo / "features.py"
    text = features.read_text()
    assert "FeatureView(" in text
    features.write_text(text.replace("FeatureView(", "FeatureView(online=False, "))
    cli.ok("apply")
    result = cli("materialize-incremental", AFTER_END)
    assert result.exit_code == 1
    assert "no applied feature view is online" in result.stderr
    assert "user_stats" in result.stderr


def test_get_online_before_materialize_says_materialize_and_exits_1(applied):
    args = ["get-online", "-f", "fraud_v1", "-e", "user_id=7,merchant_id=m_00035"]
    result = applied(*args, "--request", "amount=120.0")
    assert result.exit_code == 1
    assert "NOT_FOUND" in result.stdout
    for view in ("merchant_stats", "user_merchant_stats", "user_stats"):
        assert f"'{view}'" in result.stderr
    assert "never materialized" in result.stderr
    assert "featurestore materialize-incremental" in result.stderr


def test_get_online_after_materialize_gives_no_hint(applied):
    applied.ok("materialize-incremental", AFTER_END)
    result = applied.ok(
        "get-online", "-f", "user_stats:txn_count_7d", "-e", "user_id=7", "-e", "user_id=99999"
    )
    assert "NOT_FOUND" in result.stdout  # an unknown user is an answer, not a missing step
    assert "never materialized" not in result.stderr


def test_get_online_hint_names_only_the_unmaterialized_view(applied):
    applied.ok("materialize-incremental", AFTER_END, "--views", "user_stats")
    result = applied(
        "get-online",
        "--json",
        "-f",
        "user_stats:txn_count_7d,merchant_stats:merchant_fraud_rate_30d",
        "-e",
        "user_id=7,merchant_id=m_00035",
    )
    assert result.exit_code == 0  # user_stats answered: something was served
    assert json.loads(result.stdout)["statuses"]["txn_count_7d"] == ["PRESENT"]
    assert "'merchant_stats'" in result.stderr
    assert "'user_stats'" not in result.stderr


def test_cli_prints_the_cli_wording_of_an_error(capsys):
    render.error(
        FeatureStoreError(f"Pass {term('timestamp_column=...', cli='--timestamp-column')}."),
        debug=False,
    )
    assert capsys.readouterr().err.strip() == "Error: Pass --timestamp-column."


def test_error_wording_per_surface_falls_back_to_python():
    err = FeatureStoreError(
        f"Add {term('entity_rows', cli='--entity', http='entities')} and {term('x')}."
    )
    assert str(err) == "Add entity_rows and x."
    assert err.message("cli") == "Add --entity and x."
    assert err.message("http") == "Add entities and x."
    assert "\x1e" not in repr(str(err))


def test_get_online_without_a_request_field_names_the_flag(applied):
    result = applied("get-online", "-f", "fraud_v1", "-e", "user_id=7,merchant_id=m_00035")
    assert result.exit_code == 1
    assert "request field 'amount'" in result.stderr
    assert "--request name=value" in result.stderr
    assert "entity row" not in result.stderr.replace("Entity row", "")


def test_get_online_without_a_join_key_names_the_flag(applied):
    args = ["get-online", "-f", "user_stats:txn_count_7d", "-e", "merchant_id=m_00035"]
    result = applied(*args)
    assert result.exit_code == 1
    assert "no join key 'user_id'" in result.stderr
    assert "--entity name=value" in result.stderr
