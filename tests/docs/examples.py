"""Every example the project shows, found and run as a user would run it.

Examples come from the Markdown pages (fenced ``bash``/``sh`` and ``python`` blocks), from the
``Example:`` block of every command's ``--help``, and from the "Next:" lines ``featurestore
init`` prints. A comment line right before a fence says what a block needs:

- ``<!-- example: redis -->``: runs against the test session's redis-server (its URL replaces
  ``redis://127.0.0.1:6379/0`` in the block).
- ``<!-- example: docker -->``: no Docker engine here, so the block is only parsed: every
  ``featurestore`` command in it must be one the CLI accepts, every request body valid JSON.
- ``<!-- example: features.py -->``: a Python fragment that uses the example repo's names
  (``user``, ``user_stats``, ``pl``...); it runs after the repo's ``features.py``.
- ``<!-- example: checkout -->``: commands run from the repository root. They run in a fresh
  copy of the checkout (tracked kinds of files only, no data) whose ``.venv`` is this one, so
  nothing is installed; a ``pytest`` run in it only collects (the suite is what runs this).

Unmarked blocks run as written. Shell blocks run with ``bash -euo pipefail`` in a fresh copy of
the example repo (without data: the examples generate it); Python blocks of one page run in
order in one process, from a folder holding that copy as ``feature_repo/`` with its data
generated. Two changes make a foreground command testable: the port 6566 becomes a free port,
and ``featurestore ... serve`` runs in the background until ``/health`` answers (bounded),
stopped when the block ends; ``curl`` gets ``--fail-with-body``, so a 4xx fails the block.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FEATURE_REPO = ROOT / "feature_repo"
BIN = Path(sys.executable).parent
PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    FEATURE_REPO / "README.md",
    ROOT / "featurestore" / "templates" / "fraud" / "README.md",
    ROOT / "docker" / "README.md",
]
SHELL = {"bash", "sh", "shell"}
KINDS = {"redis", "docker", "features.py", "checkout"}
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"

_FENCE = re.compile(
    r"(?:<!--\s*example:\s*(?P<kind>[\w.]+)\s*-->\n)?^```(?P<lang>\w*)\n(?P<body>.*?)^```",
    flags=re.DOTALL | re.MULTILINE,
)


@dataclass(frozen=True)
class Example:
    """One example: where it is shown, its language, what it needs and its text."""

    source: str
    line: int
    lang: str
    kind: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.source}:{self.line}"


def page_examples(page: Path) -> list[Example]:
    """The shell and Python blocks of a Markdown page, in order."""
    text = page.read_text()
    found = []
    for match in _FENCE.finditer(text):
        lang = "shell" if match["lang"] in SHELL else match["lang"]
        if lang not in {"shell", "python"}:
            continue
        kind = match["kind"] or ""
        assert kind in KINDS | {""}, f"{page}: unknown example marker {kind!r}"
        line = text.count("\n", 0, match.start("body"))
        found.append(Example(str(page.relative_to(ROOT)), line, lang, kind, match["body"]))
    return found


def help_example(help_text: str) -> str:
    """The ``Example:`` block of a ``--help`` text, dedented."""
    match = re.search(r"^\s*Example:\n(.*?)(?:\n\S|\Z)", help_text, flags=re.DOTALL | re.M)
    assert match, f"no Example: block in\n{help_text}"
    lines = [line.strip() for line in match.group(1).splitlines()]
    return "\n".join(line for line in lines if line) + "\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(redis_url: str | None = None, *, root: Path = ROOT) -> dict[str, str]:
    """The environment of an example: the checkout's package and the venv's scripts first."""
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(root),
        "COLUMNS": "200",
    }
    env.pop("FEATURESTORE_REPO", None)
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    return env


def copy_example_repo(dest: Path) -> Path:
    """A fresh copy of feature_repo/ without its data (examples generate it)."""
    shutil.copytree(
        FEATURE_REPO, dest, ignore=shutil.ignore_patterns("data", "__pycache__", "*.pyc")
    )
    return dest


_NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git", ".venv", ".feast-venv", "__pycache__", "*.pyc", ".*_cache", ".hypothesis",
    "*.egg-info", "build", "dist", "data", ".data",
)  # fmt: skip


def copy_checkout(dest: Path) -> Path:
    """What a fresh clone holds (no data, caches or venv), with this venv as its ``.venv``."""
    shutil.copytree(ROOT, dest, ignore=_NOT_IN_A_CLONE)
    (dest / ".venv").symlink_to(BIN.parent)
    return dest


_SERVE = re.compile(r"^(?P<cmd>\s*featurestore\b[^&|;]*\bserve\b[^&|;]*?)\s*&?\s*$")


def shell_script(text: str, *, port: int, redis_url: str | None = None) -> str:
    """The block as a bash script: free port, server in the background, curl failing on 4xx."""
    text = text.replace("6566", str(port))
    if redis_url is not None:
        text = text.replace(DEFAULT_REDIS, redis_url)
    lines = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for line in text.splitlines():
        served = _SERVE.match(line)
        if served:
            lines += [
                f"{served['cmd']} &",
                f"for _ in $(seq 600); do curl -sf localhost:{port}/health >/dev/null && break;"
                " sleep 0.1; done",
                f"curl -sf localhost:{port}/health >/dev/null",
            ]
            continue
        lines.append(re.sub(r"(^|[\s;&|(])curl ", r"\1curl --fail-with-body ", line))
    return "\n".join(lines) + "\n"


def run_shell(
    text: str, cwd: Path, *, redis_url: str | None = None, root: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    port = free_port()
    script = shell_script(text, port=port, redis_url=redis_url)
    return subprocess.run(
        ["bash", "-c", script],
        cwd=cwd,
        env={**environment(redis_url, root=root), "PORT": str(port)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` from a file (so functions it defines have source, as in a repo file)."""
    program = cwd / "example_program.py"
    program.write_text(code)
    return subprocess.run(
        [sys.executable, str(program)],
        cwd=cwd,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def python_program(examples: list[Example]) -> str:
    """A page's Python blocks as one program; fragments run after the repo's features.py."""
    parts = []
    for example in examples:
        if example.kind == "features.py":
            parts.append(
                "import sys; sys.path.insert(0, 'feature_repo')\n"
                "exec(compile(open('feature_repo/features.py').read(), 'feature_repo/features.py', 'exec'))\n"
            )
        parts.append(f"# {example.id}\n{example.text}")
    return "\n".join(parts)


def docker_commands(text: str) -> list[list[str]]:
    """The ``featurestore`` and ``curl`` commands of a block, as argument lists."""
    joined = re.sub(r"\\\n\s*", " ", text)
    commands = [shlex.split(line, comments=True) for line in joined.splitlines()]
    return [c for c in commands if c]
