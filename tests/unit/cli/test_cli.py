"""Every CLI command through the Typer app: human and --json output, exit codes, messages."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from featurestore.cli.main import app, template_files
from featurestore.sample_data import default_end


def _commands() -> dict[str, list[str]]:
    """Command path -> help text, for every command of the app (groups included)."""
    import typer.main

    root = typer.main.get_command(app)
    found: dict[str, list[str]] = {}

    def walk(command, path):
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])
        if path:
            found[" ".join(path)] = sub_help(command)

    def sub_help(command):
        return [command.help or ""]

    walk(root, [])
    return found


# -- global behaviour -------------------------------------------------------------------------


def test_every_command_has_help_with_an_example():
    commands = _commands()
    assert {
        "init",
        "plan",
        "apply",
        "list entities",
        "describe",
        "training-frame",
        "materialize",
        "materialize-incremental",
        "get-online",
        "status",
    } <= set(commands)
    for name, (text,) in commands.items():
        assert "Example:" in text, f"'featurestore {name}' help lacks an Example: block"


def test_each_command_is_registered_once():
    # A second registration of a name keeps its first place in --help, out of main.py's order.
    names = [c.name or c.callback.__name__ for c in app.registered_commands]  # type: ignore[union-attr]
    assert len(names) == len(set(names)), names


def test_version_flag_prints_the_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("featurestore ")


def test_missing_repo_is_a_one_line_error_with_exit_code_1(tmp_path: Path):
    result = CliRunner().invoke(app, ["--repo", str(tmp_path), "plan"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "Error: No featurestore.yaml in" in result.stderr
    assert "featurestore init" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_adds_the_traceback(tmp_path: Path):
    result = CliRunner().invoke(app, ["--repo", str(tmp_path), "--debug", "plan"])
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert "ConfigError" in result.stderr


def test_unknown_option_value_is_a_usage_error():
    result = CliRunner().invoke(app, ["--log-level", "loud", "plan"])
    assert result.exit_code == 2


def test_log_level_debug_logs_to_stderr(applied):
    result = applied("--log-level", "debug", "plan")
    assert result.exit_code == 0
    assert "DEBUG featurestore" in result.stderr
    assert "DEBUG" not in result.stdout


def test_log_level_from_environment(applied):
    result = applied.runner.invoke(
        app, ["--repo", str(applied.repo), "plan"], env={"FEATURESTORE_LOG_LEVEL": "debug"}
    )
    assert result.exit_code == 0
    assert "DEBUG featurestore" in result.stderr


# -- init -------------------------------------------------------------------------------------


def test_init_writes_a_repo_that_applies_at_once(tmp_path: Path):
    target = tmp_path / "new_repo"
    runner = CliRunner()
    result = runner.invoke(app, ["init", str(target), "--rows", "300"])
    assert result.exit_code == 0, result.stderr
    for name, text in template_files().items():
        assert (target / name).read_text() == text
    assert pq.ParquetFile(target / "data" / "user_stats.parquet").metadata.num_rows == 300
    assert (target / "data" / "entities.parquet").is_file()
    applied = runner.invoke(app, ["--repo", str(target), "apply"])
    assert applied.exit_code == 0, applied.stderr
    assert "+ feature view user_stats" in applied.stdout


def test_init_refuses_an_existing_repo(fraud_repo: Path):
    before = (fraud_repo / "features.py").read_text()
    result = CliRunner().invoke(app, ["init", str(fraud_repo), "--no-data"])
    assert result.exit_code == 1
    assert "already holds a feature repo" in result.stderr
    assert (fraud_repo / "features.py").read_text() == before


def test_init_no_data_writes_only_the_files(tmp_path: Path):
    result = CliRunner().invoke(app, ["init", str(tmp_path / "r"), "--no-data"])
    assert result.exit_code == 0
    assert not (tmp_path / "r" / "data").exists()
    assert (tmp_path / "r" / ".featurestoreignore").read_text().strip().endswith("generate_data.py")


# -- plan and apply ---------------------------------------------------------------------------


def test_plan_lists_additions_and_views_needing_materialization(cli):
    result = cli.ok("plan")
    assert "+ entity user" in result.stdout
    assert "+ feature view user_merchant_stats  (needs materialization)" in result.stdout
    assert "+ feature service fraud_v1" in result.stdout
    assert "Plan: 8 to add, 0 to change, 0 to remove." in result.stdout
    # plan writes nothing
    assert "No changes" not in cli.ok("plan").stdout


def test_plan_json_is_machine_readable(cli):
    data = json.loads(cli.ok("plan", "--json").stdout)
    assert data["has_changes"] is True
    by_name = {(c["kind"], c["name"]): c for c in data["changes"]}
    assert by_name[("feature view", "user_stats")]["action"] == "add"
    assert by_name[("feature view", "user_stats")]["needs_materialization"] is True
    assert by_name[("entity", "merchant")]["needs_materialization"] is False


def test_apply_then_plan_has_no_changes(cli):
    assert "Applied: 8 to add" in cli.ok("apply").stdout
    assert "No changes" in cli.ok("plan").stdout
    assert json.loads(cli.ok("apply", "--json").stdout)["has_changes"] is False


def test_apply_reports_a_changed_view_and_a_removed_service(applied):
    features = applied.repo / "features.py"
    text = features.read_text()
    text = text.replace(
        '        Field("max_amount_7d", Float64, "Largest amount over 7 days; null without transactions."),\n',
        "",
    )
    text = text[: text.index("fraud_v1 = FeatureService(")]
    features.write_text(text)
    result = applied.ok("apply")
    assert "~ feature view user_stats  (needs materialization)" in result.stdout
    assert "- feature max_amount_7d" in result.stdout
    assert "- feature service fraud_v1" in result.stdout
    assert "materialize-incremental" in result.stdout


def test_apply_reports_a_broken_repo_file(cli):
    (cli.repo / "broken.py").write_text("import no_such_module_here\n")
    result = cli("apply")
    assert result.exit_code == 1
    assert "broken.py" in result.stderr
    assert "no_such_module_here" in result.stderr


# -- list and describe ------------------------------------------------------------------------


def test_list_commands_human_and_json(applied):
    assert "user_id (Int64)" in applied.ok("list", "entities").stdout
    entities = json.loads(applied.ok("list", "entities", "--json").stdout)
    assert [e["name"] for e in entities] == ["merchant", "user"]
    assert entities[0]["join_keys"] == {"merchant_id": "String"}
    assert entities[1]["feature_views"] == ["user_merchant_stats", "user_stats", "user_txn_windows"]

    views = json.loads(applied.ok("list", "feature-views", "--json").stdout)
    assert [v["name"] for v in views] == [
        "merchant_stats",
        "user_merchant_stats",
        "user_stats",
        "user_txn_windows",
    ]
    pair = views[1]
    assert pair["join_keys"] == {"user_id": "Int64", "merchant_id": "String"}
    assert pair["ttl_seconds"] == timedelta(days=7).total_seconds()
    assert pair["watermark"] is None
    assert "user_merchant_stats" in applied.ok("list", "feature-views").stdout

    services = json.loads(applied.ok("list", "feature-services", "--json").stdout)
    assert services[0]["name"] == "fraud_v1"
    assert "merchant_stats:merchant_fraud_rate_30d" in services[0]["features"]
    assert "merchant_stats:merchant_category" not in services[0]["features"]
    assert "fraud_v1" in applied.ok("list", "feature-services").stdout


def test_list_and_describe_on_demand_views(applied):
    views = json.loads(applied.ok("list", "on-demand-feature-views", "--json").stdout)
    assert [v["name"] for v in views] == ["txn_features"]
    assert views[0]["inputs"] == ["user_stats:avg_amount_7d"]
    assert views[0]["request_fields"] == [{"name": "amount", "dtype": "Float64"}]
    assert "amount_vs_avg" in applied.ok("list", "on-demand-feature-views").stdout
    described = applied.ok("describe", "txn_features").stdout
    assert "On-demand feature view txn_features" in described
    assert "features.py:txn_features" in described
    assert json.loads(applied.ok("describe", "txn_features", "--json").stdout)["kind"] == (
        "on-demand feature view"
    )


def test_help_keeps_the_example_on_its_own_lines():
    result = CliRunner().invoke(app, ["training-frame", "--help"])
    assert result.exit_code == 0
    assert "  Example:\n      featurestore training-frame --entities" in result.stdout


def test_list_before_apply_is_empty(cli):
    assert json.loads(cli.ok("list", "feature-views", "--json").stdout) == []


def test_describe_view_entity_and_service(applied):
    view = applied.ok("describe", "user_stats").stdout
    assert "Feature view user_stats" in view
    assert "2 days, 0:00:00" in view
    assert "avg_amount_7d" in view
    data = json.loads(applied.ok("describe", "user_stats", "--json").stdout)
    assert data["source"]["created_timestamp_field"] == "created"
    assert [f["name"] for f in data["features"]][:2] == ["txn_count_7d", "avg_amount_7d"]
    assert len(data["fingerprint"]) == 16

    assert "join keys:         user_id (Int64)" in applied.ok("describe", "user").stdout
    service = json.loads(applied.ok("describe", "fraud_v1", "--json").stdout)
    assert service["kind"] == "feature service"
    assert "user_stats:txn_count_7d" in service["features"]


def test_user_text_with_brackets_is_printed_verbatim(cli):
    # Descriptions are the user's text, not rich markup: "[EUR]" stays, "[/]" does not crash.
    features = cli.repo / "features.py"
    text = features.read_text()
    text = text.replace('"Daily spending profile of a card holder."', '"Spend [EUR] per day [/]"')
    text = text.replace('"Card transactions in the last 7 days."', '"Transactions [7d]"')
    text = text.replace('description="A card holder."', 'description="Card [holder]"')
    features.write_text(text)
    cli.ok("apply")
    view = cli.ok("describe", "user_stats").stdout
    assert "Spend [EUR] per day [/]" in view
    assert "Transactions [7d]" in view
    assert "Card [holder]" in cli.ok("describe", "user").stdout
    assert "Card [holder]" in cli.ok("list", "entities").stdout


def test_describe_unknown_name_suggests_the_closest(applied):
    result = applied("describe", "user_stat")
    assert result.exit_code == 1
    assert "'user_stat' is not in the registry. Did you mean 'user_stats'?" in result.stderr


# -- training-frame ---------------------------------------------------------------------------


def test_training_frame_from_parquet_with_a_service(applied):
    out = applied.repo / "out" / "train.parquet"
    result = applied.ok(
        "training-frame",
        "--entities",
        str(applied.repo / "data/entities.parquet"),
        "--service",
        "fraud_v1",
        "--output",
        str(out),
    )
    assert "Wrote 40 rows to" in result.stdout
    frame = pl.read_parquet(out)
    entities = pl.read_parquet(applied.repo / "data/entities.parquet")
    assert frame.height == entities.height
    assert frame.columns[:5] == entities.columns
    assert frame.select(entities.columns).equals(entities)
    assert "um_days_since_first_txn" in frame.columns
    assert frame["txn_count_7d"].null_count() < frame.height


def test_training_frame_csv_in_and_out_with_full_names(applied, tmp_path: Path):
    entities = pl.read_parquet(applied.repo / "data/entities.parquet").head(10)
    csv_in = tmp_path / "entities.csv"
    entities.with_columns(pl.col("event_timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.6f")).write_csv(
        csv_in
    )
    csv_out = tmp_path / "train.csv"
    result = applied.ok(
        "training-frame",
        "-e",
        str(csv_in),
        "-f",
        "user_stats:txn_count_7d,merchant_stats:merchant_category",
        "--full-feature-names",
        "-o",
        str(csv_out),
        "--json",
    )
    summary = json.loads(result.stdout)
    assert summary["rows"] == 10
    assert summary["columns"][-2:] == [
        "user_stats__txn_count_7d",
        "merchant_stats__merchant_category",
    ]
    from_csv = pl.read_csv(csv_out)
    assert from_csv.height == 10
    # The same frame from Parquet input: naive CSV timestamps mean UTC, so values agree.
    parquet_out = tmp_path / "train.parquet"
    entities.write_parquet(tmp_path / "entities.parquet")
    applied.ok(
        "training-frame",
        "-e",
        str(tmp_path / "entities.parquet"),
        "-f",
        "user_stats:txn_count_7d",
        "-f",
        "merchant_stats:merchant_category",
        "--full-feature-names",
        "-o",
        str(parquet_out),
    )
    from_parquet = pl.read_parquet(parquet_out)
    assert (
        from_csv["user_stats__txn_count_7d"].to_list()
        == from_parquet["user_stats__txn_count_7d"].to_list()
    )
    assert (
        from_csv["merchant_stats__merchant_category"].to_list()
        == from_parquet["merchant_stats__merchant_category"].to_list()
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--service", "fraud_v1", "-f", "user_stats:txn_count_7d"],
            "exactly one of --features and --service",
        ),
        ([], "exactly one of --features and --service"),
        (["--service", "fraud_v1", "--output-suffix"], "No such option"),
    ],
)
def test_training_frame_usage_errors_exit_2(applied, args: list[str], message: str):
    result = applied(
        "training-frame",
        "-e",
        str(applied.repo / "data/entities.parquet"),
        "-o",
        str(applied.repo / "t.parquet"),
        *args,
    )
    assert result.exit_code == 2
    assert message in result.stderr


def test_training_frame_refuses_other_file_types(applied):
    result = applied(
        "training-frame",
        "-e",
        str(applied.repo / "data/entities.parquet"),
        "--service",
        "fraud_v1",
        "-o",
        str(applied.repo / "t.xlsx"),
    )
    assert result.exit_code == 2
    assert ".parquet or .csv" in result.stderr


def test_training_frame_unknown_feature_is_exit_1_with_suggestion(applied):
    result = applied(
        "training-frame",
        "-e",
        str(applied.repo / "data/entities.parquet"),
        "-f",
        "user_stats:txn_count_7",
        "-o",
        str(applied.repo / "t.parquet"),
    )
    assert result.exit_code == 1
    assert "Did you mean 'user_stats:txn_count_7d'?" in result.stderr


def test_training_frame_missing_entity_file_is_a_usage_error(applied):
    result = applied(
        "training-frame", "-e", "nope.parquet", "--service", "fraud_v1", "-o", "t.parquet"
    )
    assert result.exit_code == 2


# -- materialize, get-online, status ----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["materialize", "yesterday", "2026-11-27"], "Cannot parse time 'yesterday'"),
        (["materialize", "2026-11-27", "2026-11-01"], "must be after START"),
        (["materialize-incremental", "soon"], "Cannot parse time 'soon'"),
    ],
)
def test_materialize_bad_times_are_usage_errors(applied, args: list[str], message: str):
    result = applied(*args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_materialize_unknown_view_is_exit_1(applied):
    result = applied("materialize-incremental", "--views", "user_statz")
    assert result.exit_code == 1
    assert "Did you mean 'user_stats'?" in result.stderr


def test_status_before_materialization(applied):
    statuses = json.loads(applied.ok("status", "--json").stdout)
    assert {s["view"]: (s["watermark"], s["records"]) for s in statuses} == {
        "merchant_stats": (None, 0),
        "user_merchant_stats": (None, 0),
        "user_stats": (None, 0),
        "user_txn_windows": (None, 0),
    }


def test_materialize_then_online_values_equal_the_training_frame_now(applied, tmp_path: Path):
    end = default_end() + timedelta(minutes=1)
    report = json.loads(applied.ok("materialize-incremental", end.isoformat(), "--json").stdout)
    assert {v["view"] for v in report["views"]} == {
        "merchant_stats",
        "user_merchant_stats",
        "user_stats",
        "user_txn_windows",
    }
    assert all(v["rows"] > 0 for v in report["views"])
    statuses = {s["view"]: s for s in json.loads(applied.ok("status", "--json").stdout)}
    assert statuses["user_stats"]["records"] == 30
    assert statuses["user_stats"]["watermark"] is not None
    assert "user_merchant_stats" in applied.ok("status").stdout

    # The training frame for (user 7, merchant m_00035) as of the end time ...
    entity = pl.DataFrame(
        {
            "user_id": [7, 99_999],
            "merchant_id": ["m_00035", "m_99999"],
            "event_timestamp": [end - timedelta(microseconds=1)] * 2,
            "amount": [120.0, 120.0],
        }
    )
    entity.write_parquet(tmp_path / "e.parquet")
    applied.ok(
        "training-frame",
        "-e",
        str(tmp_path / "e.parquet"),
        "--service",
        "fraud_v1",
        "-o",
        str(tmp_path / "t.parquet"),
    )
    offline = pl.read_parquet(tmp_path / "t.parquet")
    # ... equals what the online store serves for them now.
    result = applied.ok(
        "get-online",
        "--features",
        "fraud_v1",
        "--entity",
        "user_id=7,merchant_id=m_00035",
        "--entity",
        "user_id=99999,merchant_id=m_99999",
        "--request",
        "amount=120.0",
        "--json",
    )
    online = json.loads(result.stdout)
    values, statuses_by_feature = online["values"], online["statuses"]
    assert values["user_id"] == [7, 99_999]
    for feature in [
        "txn_count_7d",
        "avg_amount_7d",
        "merchant_fraud_rate_30d",
        "um_txn_count_30d",
        "amount_vs_avg",
    ]:
        assert values[feature][0] == offline[feature][0], feature
        assert values[feature][1] is None
        assert statuses_by_feature[feature][1] == "NOT_FOUND"
    assert statuses_by_feature["txn_count_7d"][0] == "PRESENT"

    human = applied.ok("get-online", "-f", "user_stats:txn_count_7d", "-e", "user_id=99999").stdout
    assert "NOT_FOUND" in human


@pytest.mark.parametrize(
    ("entity", "message"),
    [
        ("user_id", "expects key=value"),
        ("user_id=seven", "is not an integer"),
    ],
)
def test_get_online_bad_entity_is_a_usage_error(applied, entity: str, message: str):
    result = applied("get-online", "-f", "fraud_v1", "--entity", entity)
    assert result.exit_code == 2
    assert message in result.stderr


def test_get_online_unknown_service_is_exit_1(applied):
    result = applied("get-online", "-f", "fraud_v2", "--entity", "user_id=7")
    assert result.exit_code == 1
    assert "Did you mean 'fraud_v1'?" in result.stderr
