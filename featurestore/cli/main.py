"""The ``featurestore`` command line: each command loads the repo once, makes one call, renders.

Errors: a FeatureStoreError becomes a red message on stderr and exit code 1 (``--debug`` adds
the traceback); usage errors (bad options, unparsable times) exit 2. Commands live in
``repo_commands`` (definitions), ``data_commands`` (data), ``serve`` and ``check_transforms``;
importing them registers them on the app.
"""

from __future__ import annotations

from featurestore.cli import data_commands, repo_commands
from featurestore.cli._app import CliState, LogLevel, PointInTime, app
from featurestore.cli.check_transforms import check_transforms
from featurestore.cli.repo_commands import template_files
from featurestore.cli.serve import serve

__all__ = ["CliState", "LogLevel", "PointInTime", "app", "main", "template_files"]

app.command("serve")(serve)
app.command("check-transforms")(check_transforms)
_COMMAND_MODULES = (data_commands, repo_commands)  # imported for their @app.command side effect


def main() -> None:
    """Run the CLI (the ``featurestore`` console script)."""
    app()
