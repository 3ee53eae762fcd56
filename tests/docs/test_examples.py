"""Every documented example runs as written (see tests/docs/examples.py for how and where).

Markdown pages, every command's ``--help`` example and the "Next:" lines of ``init`` are run
against copies of the example repo; Redis examples against the session's redis-server; the
Docker README (no engine here) is parsed, and its requests are sent to a real server of the
same example repo.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
import yaml

from featurestore.cli.main import app
from tests.docs import examples
from tests.docs.examples import ROOT, Example

ALL = [e for page in examples.PAGES for e in examples.page_examples(page)]
SHELL = [e for e in ALL if e.lang == "shell" and e.kind != "docker"]
DOCKER = [e for e in ALL if e.kind == "docker"]
PYTHON_PAGES = sorted({e.source for e in ALL if e.lang == "python"})


def _ok(result: subprocess.CompletedProcess[str], what: str) -> None:
    assert result.returncode == 0, f"{what} failed:\n{result.stdout}\n{result.stderr}"


def test_every_command_is_found():
    assert {"", "list", "list feature-views", "get-online", "serve"} <= set(_commands())


def test_the_pages_hold_the_known_examples():
    by_page = {e.source for e in ALL}
    assert {"README.md", "feature_repo/README.md", "docker/README.md"} <= by_page
    assert any(e.kind == "redis" for e in ALL), "no Redis example is marked"
    assert DOCKER, "the Docker README's run block lost its marker"


@pytest.mark.parametrize("example", SHELL, ids=[e.id for e in SHELL])
def test_shell_example_runs(example: Example, tmp_path: Path, request: pytest.FixtureRequest):
    if example.kind == "checkout":
        clone = examples.copy_checkout(tmp_path / "clone")
        text = example.text.replace(" -m pytest ", " -m pytest --collect-only ")
        _ok(examples.run_shell(text, clone, root=clone), f"{example.id}\n{text}")
        return
    redis_url = request.getfixturevalue("redis_server_url") if example.kind == "redis" else None
    repo = examples.copy_example_repo(tmp_path / "feature_repo")
    result = examples.run_shell(example.text, repo, redis_url=redis_url)
    _ok(result, f"{example.id}\n{example.text}")


@pytest.fixture(scope="module")
def generated_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = examples.copy_example_repo(tmp_path_factory.mktemp("generated") / "feature_repo")
    _ok(examples.run_shell("python generate_data.py\n", repo), "generate_data.py")
    return repo


@pytest.mark.parametrize("page", PYTHON_PAGES)
def test_python_examples_of_a_page_run_in_order(page: str, generated_repo: Path, tmp_path):
    shutil.copytree(generated_repo, tmp_path / "feature_repo")
    code = examples.python_program([e for e in ALL if e.source == page and e.lang == "python"])
    _ok(examples.run_python(code, tmp_path), f"{page}\n{code}")


def _commands() -> list[str]:
    """Every command path of the CLI ("" is the root), groups included."""
    found = [""]
    todo: list[tuple[str, object]] = [("", typer.main.get_command(app))]
    while todo:
        path, command = todo.pop()
        for name, sub in getattr(command, "commands", {}).items():
            found.append(f"{path} {name}".strip())
            todo.append((found[-1], sub))
    return found


def _help(path: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "featurestore", *path.split(), "--help"],
        capture_output=True,
        text=True,
        env=examples.environment(),
        timeout=120,
        check=True,
    )
    return result.stdout


@pytest.fixture(scope="module")
def applied_repo(generated_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("applied") / "feature_repo"
    shutil.copytree(generated_repo, repo)
    result = examples.run_shell("featurestore apply\nfeaturestore materialize-incremental\n", repo)
    _ok(result, "apply and materialize")
    return repo


FEAST = Path(os.environ.get("FEAST_VENV", ROOT / ".feast-venv")) / "bin" / "feast"
_SETUP = {
    # The example reads a Feast repo: Feast's own 'feast init' template, made with the Feast
    # client that CI installs in its own virtualenv (scripts/install-feast-client).
    "import-feast": f"{FEAST} init feast_project\n",
}
"""Commands run in the example repo before a command's help example, by command."""


@pytest.mark.parametrize("path", sorted(_commands()))
def test_help_example_runs_in_the_example_repo(path: str, applied_repo: Path, tmp_path: Path):
    example = examples.help_example(_help(path))
    assert example.strip(), f"'featurestore {path} --help' shows no example"
    repo = tmp_path / "feature_repo"
    shutil.copytree(applied_repo, repo)
    if path in _SETUP:
        _ok(examples.run_shell(_SETUP[path], repo), f"set-up of 'featurestore {path}'")
    _ok(examples.run_shell(example, repo), f"'featurestore {path} --help' example\n{example}")


def test_init_next_steps_run_as_printed(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "featurestore", "init", "fresh_repo", "--rows", "600"],
        cwd=tmp_path,
        env=examples.environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    steps = result.stdout.split("Next:\n", 1)[1]
    assert "get-online" in steps
    assert "--request amount=" in steps
    _ok(examples.run_shell(steps, tmp_path), f"init's next steps\n{steps}")


def test_docker_examples_parse_and_their_requests_are_served(tmp_path: Path):
    curls: list[str] = []
    for example in DOCKER:
        text = re.sub(r"\\\n\s*", " ", example.text)
        for command in examples.docker_commands(example.text):
            if command[0] == "docker":
                files = [command[i + 1] for i, arg in enumerate(command) if arg == "-f"]
                assert files, command
                services: set[str] = set()
                for name in files:
                    services |= set(yaml.safe_load((ROOT / name).read_text())["services"])
                assert {"redis", "init", "server"} <= services, command
                if "run" in command:
                    assert command[-1] in services, command
            else:
                assert command[0] == "curl", command
        curls += [line for line in text.splitlines() if line.startswith("curl")]
    for line in curls:
        body = re.search(r"-d '(.*?)'", line)
        if body:
            json.loads(body.group(1))
    # The compose stack serves the example repo; the same requests must succeed against it.
    repo = examples.copy_example_repo(tmp_path / "feature_repo")
    script = "python generate_data.py --rows 600\nfeaturestore apply\n"
    script += "featurestore materialize-incremental\nfeaturestore serve --port 6566\n"
    _ok(examples.run_shell(script + "\n".join(curls) + "\n", repo), "docker README requests")
