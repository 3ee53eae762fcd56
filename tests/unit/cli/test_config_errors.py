"""Config mistakes on the command line: one line naming the key, and no secret even with --debug.

Issue 10 items 6 and 10: ``serving: {api_keys: "${FS_KEY}"}`` printed the key's value in the
pydantic error chained under the ConfigError that ``--debug`` shows.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from featurestore.cli.main import app

SECRET = "s3cret-Cli-Key-77"


def run(repo: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--repo", str(repo), *args], env={"FS_KEY": SECRET})
    return result.exit_code, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ('serving: {api_keys: "${FS_KEY}"}', "'serving.api_keys' must be a list"),
        ('online_store: {type: redis, password: ["${FS_KEY}"]}', "'online_store.password'"),
        (
            'online_store: {type: sqllite, url: "redis://:${FS_KEY}@h:1/0"}',
            "Did you mean 'sqlite'?",
        ),
        ('online_stor: {type: redis, password: "${FS_KEY}"}', "Did you mean 'online_store'?"),
    ],
)
@pytest.mark.parametrize("debug", [False, True])
def test_a_mistyped_config_names_the_key_and_never_prints_a_secret(
    tmp_path, yaml_text, expected, debug
):
    (tmp_path / "featurestore.yaml").write_text(f"project: p\n{yaml_text}\n")
    code, output = run(tmp_path, *(["--debug"] if debug else []), "status")
    assert code == 1
    assert expected in output
    assert SECRET not in output
    if debug:
        assert "Traceback" in output
        assert "ValidationError" not in output  # no chained pydantic error quoting the inputs
    else:
        assert [line for line in output.splitlines() if line.strip()] == [
            line for line in output.splitlines() if line.startswith("Error: ")
        ]
