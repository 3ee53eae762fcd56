"""The ``featurestore`` command line: each command loads the repo once, makes one call, renders.

Errors: a FeatureStoreError becomes a red message on stderr and exit code 1 (``--debug`` adds
the traceback); usage errors (bad options, unparsable times) exit 2. The commands are plain
functions in ``repo_commands`` (definitions), ``data_commands`` (data), ``push_commands``
(fresh data), ``registry_commands`` (where the registry lives), ``serve`` and
``check_transforms``; this module registers them, in the order ``--help`` lists them.
"""

from __future__ import annotations

from featurestore.cli import data_commands, push_commands, registry_commands, repo_commands
from featurestore.cli._app import CliState, LogLevel, PointInTime, app, list_app
from featurestore.cli.check_transforms import check_transforms
from featurestore.cli.import_feast import import_feast
from featurestore.cli.repo_commands import template_files
from featurestore.cli.serve import serve
from featurestore.cli.snapshot import snapshot
from featurestore.cli.ui import ui

__all__ = ["CliState", "LogLevel", "PointInTime", "app", "main", "template_files"]

app.command()(repo_commands.init)
app.command()(repo_commands.plan)
app.command()(repo_commands.apply)
app.add_typer(list_app, name="list")
list_app.command("entities")(repo_commands.list_entities)
list_app.command("feature-views")(repo_commands.list_feature_views)
list_app.command("on-demand-feature-views")(repo_commands.list_on_demand_feature_views)
list_app.command("feature-services")(repo_commands.list_feature_services)
app.command()(repo_commands.describe)
app.command("training-frame")(data_commands.training_frame)
app.command()(snapshot)
app.command()(data_commands.materialize)
app.command("materialize-incremental")(data_commands.materialize_incremental)
app.command("get-online")(data_commands.get_online)
app.command()(data_commands.status)
app.command()(data_commands.validate)
app.command("validation-result")(data_commands.validation_result)
app.command("serve")(serve)
app.command("ui")(ui)
app.command("check-transforms")(check_transforms)
app.command("skew-report")(data_commands.skew_report)
app.command("push-compact")(push_commands.push_compact)
app.command("ingest")(push_commands.ingest)
app.add_typer(registry_commands.registry_app, name="registry")
registry_commands.registry_app.command("copy")(registry_commands.copy)
app.command("import-feast")(import_feast)


def main() -> None:
    """Run the CLI (the ``featurestore`` console script)."""
    app()
