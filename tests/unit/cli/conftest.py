"""Fixtures for CLI tests: a small copy of the example fraud repo, and a runner."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from featurestore.cli.main import app, template_files
from featurestore.sample_data import default_end, generate

SMALL = {"rows": 300, "days": 10, "entity_rows": 40}


@pytest.fixture(scope="session")
def _fraud_repo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fraud_template")
    for name, text in template_files().items():
        (root / name).write_text(text)
    # History ends at the current hour, so online reads "now" are within every view's ttl.
    generate(root / "data", end=default_end(), **SMALL)
    return root


@pytest.fixture
def fraud_repo(_fraud_repo_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the example repo with small generated data (30 users, 50 merchants)."""
    repo = tmp_path / "fraud"
    shutil.copytree(_fraud_repo_template, repo)
    return repo


class Cli:
    """Runs ``featurestore --repo <repo> ...`` in-process."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.runner = CliRunner()

    def __call__(self, *args: str, repo: Path | None = None) -> Result:
        return self.runner.invoke(app, ["--repo", str(repo or self.repo), *args])

    def ok(self, *args: str) -> Result:
        result = self(*args)
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
        return result


@pytest.fixture
def cli(fraud_repo: Path) -> Cli:
    return Cli(fraud_repo)


@pytest.fixture
def applied(cli: Cli) -> Cli:
    cli.ok("apply")
    return cli
