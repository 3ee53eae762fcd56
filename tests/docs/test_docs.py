"""The reference pages cannot fall behind the code: every config key and CLI option is documented."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
import typer.main

from featurestore.cli.main import app
from featurestore.repo.config import RepoConfig, _Section

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _sections(annotation: object) -> list[type[_Section]]:
    """The config sections an annotation can hold (unwrapping Annotated, unions, Optional)."""
    if isinstance(annotation, type) and issubclass(annotation, _Section):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _sections(arg)]


def _config_keys(section: type[_Section], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for name, annotation in typing.get_type_hints(section, include_extras=True).items():
        if name.startswith("_"):  # the base class's own bookkeeping, not a setting
            continue
        path = f"{prefix}{name}"
        keys.add(path)
        for sub in _sections(annotation):
            keys |= _config_keys(sub, f"{path}.")
    return keys


def test_config_walk_finds_every_section():
    keys = _config_keys(RepoConfig)
    assert {"project", "online_store.path", "online_store.key_prefix", "serving.api_keys"} <= keys


def test_every_repo_config_key_is_documented():
    text = (DOCS / "repo-and-config.md").read_text()
    missing = sorted(k for k in _config_keys(RepoConfig) if f"`{k}`" not in text)
    assert not missing, f"docs/repo-and-config.md does not document: {missing}"


def _cli_commands() -> dict[str, typer.core.TyperCommand]:
    found: dict[str, object] = {}

    def walk(command, path):
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, [*path, name])
        elif path:
            found[" ".join(path)] = command

    walk(typer.main.get_command(app), [])
    return found  # type: ignore[return-value]


def _cli_sections() -> dict[str, str]:
    text = (DOCS / "cli.md").read_text()
    parts = re.split(r"^### featurestore (.+)$", text, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def test_every_cli_command_and_option_is_documented():
    sections = _cli_sections()
    commands = _cli_commands()
    assert "list feature-views" in commands
    assert "get-online" in commands
    for path, command in commands.items():
        group = path.split()[0]
        section = sections.get(path) or sections.get(group)
        assert section is not None, f"docs/cli.md has no '### featurestore {path}' section"
        if path != group:
            assert path.split()[1] in section, f"docs/cli.md does not mention '{path}'"
        for param in command.params:
            for opt in [*param.opts, *param.secondary_opts]:
                if opt.startswith("--") and opt != "--help":
                    assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", section), (
                        f"docs/cli.md does not document {opt} of 'featurestore {path}'"
                    )


def test_global_options_are_documented():
    text = (DOCS / "cli.md").read_text()
    root = typer.main.get_command(app)
    for param in root.params:
        for opt in param.opts:
            if opt.startswith("--") and opt != "--help":
                assert f"`{opt}" in text, opt


@pytest.mark.parametrize("page", [*sorted(p.name for p in DOCS.glob("*.md")), "../README.md"])
def test_relative_links_resolve(page: str):
    path = (DOCS / page).resolve()
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", path.read_text()):
        if "://" in target:
            continue
        assert (path.parent / target).exists(), f"{path.name} links to missing {target}"
