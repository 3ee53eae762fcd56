"""``featurestore serve`` on a port in use: one line naming the port, exit 1 (not uvicorn's 3)."""

from __future__ import annotations

import socket
import subprocess
import sys


def test_serve_on_a_port_in_use_is_one_line_naming_the_port(applied):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = ["-m", "featurestore", "--repo", str(applied.repo), "serve", "--port", str(port)]
        result = subprocess.run(
            [sys.executable, *command],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: Cannot serve on 127.0.0.1:{port}: ")
    assert "--port" in lines[0]
