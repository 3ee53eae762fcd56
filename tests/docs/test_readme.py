"""The README quickstart, executed: its steps run in a copy of feature_repo, so it cannot drift.

The steps run through the installed ``featurestore`` script (as a user would), the server is
started on a free loopback port and queried with the README's own request body.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
FEATURESTORE = BIN / "featurestore"


def _steps() -> list[str]:
    text = README.read_text()
    match = re.search(r"<!-- quickstart-steps.*?-->\s*```bash\n(.*?)```", text, flags=re.DOTALL)
    assert match, "README.md lost its quickstart-steps block"
    return [line for line in match.group(1).splitlines() if line.strip()]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_readme_shows_the_ci_test_command_second():
    text = README.read_text()
    block = re.search(r"## Quickstart.*?```bash\n(.*?)```", text, flags=re.DOTALL)
    assert block is not None
    assert block.group(1).splitlines() == [
        "bash scripts/quickstart.sh",
        ".venv/bin/python -m pytest -q -p no:cacheprovider",
    ]


def test_quickstart_script_runs_the_readme_steps():
    script = (ROOT / "scripts" / "quickstart.sh").read_text()
    for step in _steps():
        if step.startswith("featurestore serve"):
            assert "featurestore serve --port" in script
        elif step.startswith("curl"):
            body = re.search(r"-d '(.*)'", step)
            assert body is not None
            assert body.group(1) in script
        else:
            assert f"\n{step}\n" in script, f"scripts/quickstart.sh does not run: {step}"


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def _wait_healthy(url: str, server: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"featurestore serve exited: {log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail("featurestore serve did not become healthy within 60 s")


def test_readme_quickstart_steps_run_end_to_end(tmp_path: Path):
    repo = tmp_path / "feature_repo"
    shutil.copytree(
        ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data", "__pycache__")
    )
    outputs: dict[str, str] = {}
    port = _free_port()
    server: subprocess.Popen[str] | None = None
    server_log = tmp_path / "server.log"
    try:
        for step in _steps():
            if step.startswith("curl"):
                assert server is not None, "the README queries the server before starting it"
                url = f"http://127.0.0.1:{port}"
                _wait_healthy(url, server, server_log)
                body = re.search(r"-d '(.*)'", step)
                assert body is not None
                response = httpx.post(
                    f"{url}/get-online-features", content=body.group(1), timeout=10
                )
                assert response.status_code == 200, response.text
                outputs["curl"] = response.text
                continue
            args = shlex.split(step.rstrip("&").strip())
            if args[0] == "python":
                args[0] = sys.executable
            elif args[0] == "featurestore":
                args[0] = str(FEATURESTORE)
            if step.endswith("&"):
                args = [a if a != "6566" else str(port) for a in args]
                with server_log.open("w") as log:
                    server = subprocess.Popen(args, cwd=repo, stdout=log, stderr=log, text=True)
                continue
            outputs[step.split()[1] if args[0] != sys.executable else "generate"] = _run(
                args, repo
            ).stdout
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)

    assert (repo / "data" / "training.parquet").is_file()
    assert "fraud_v1" in outputs["apply"]
    assert "txn_count_7d" in outputs["get-online"]
    assert "NOT_FOUND" not in outputs["get-online"]
    served = json.loads(outputs["curl"])
    names = served["metadata"]["feature_names"]
    values = {
        name: column["values"][0] for name, column in zip(names, served["results"], strict=True)
    }
    statuses = {
        name: column["statuses"][0] for name, column in zip(names, served["results"], strict=True)
    }
    # HTTP serves what the CLI read: same values, all present.
    cli = json.loads(
        _run(
            [
                str(FEATURESTORE),
                "get-online",
                "-f",
                "fraud_v1",
                "-e",
                "user_id=7,merchant_id=m_00035",
                "--request",
                "amount=120.0",
                "--json",
            ],
            repo,
        ).stdout
    )
    for feature, column in cli["values"].items():
        assert values[feature] == column[0], feature
    assert set(statuses.values()) == {"PRESENT"}


def test_readme_python_api_example_runs(tmp_path: Path):
    repo = tmp_path / "feature_repo"
    shutil.copytree(
        ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data", "__pycache__")
    )
    _run([sys.executable, "generate_data.py", "--rows", "600"], repo)
    section = re.search(r"## Python API\n(.*?)\n## ", README.read_text(), flags=re.DOTALL)
    assert section is not None
    blocks = re.findall(r"```python\n(.*?)```", section.group(1), flags=re.DOTALL)
    assert blocks
    code = "\n".join(blocks) + (
        "\nassert train.height == 1000, train.shape"
        "\nassert response.to_dict()['user_id'] == [7]"
        "\nassert response.to_dict()['txn_count_7d'][0] is not None"
        "\nstore.close()"
    )
    _run([sys.executable, "-c", code], tmp_path)
