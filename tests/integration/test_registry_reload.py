"""A running server whose registry file vanishes or is corrupted keeps serving the previous one.

Issue 10 items 3 and 4, reproduced against a real ``featurestore serve`` process: before the
fix a vanished file was hot-reloaded as an empty registry (every lookup 404, ``/ready`` 200)
and ``fingerprint: 123`` turned every lookup into a 500.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_http_support import build_repo, free_port, poll, serve_command

BODY = {"entities": {"user_id": [1]}, "features": ["user_stats:txn_count"]}


class Server:
    """A ``featurestore serve`` process on a free loopback port."""

    def __init__(self, repo: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            serve_command(repo, self.port),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.url, timeout=10)
        if not poll(self._up, 60):
            self.close()
            pytest.fail(f"the server did not start:\n{log.read_text()}")

    def _up(self) -> bool:
        try:
            return self.client.get("/ready").status_code == 200
        except httpx.TransportError:
            return False

    def ready(self) -> tuple[int, dict[str, Any]]:
        response = self.client.get("/ready")
        return response.status_code, response.json()

    def lookup(self) -> httpx.Response:
        return self.client.post("/get-online-features", json=BODY)

    def close(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(timeout=15)
        self._log.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    repo, _ = build_repo(tmp_path / "repo")
    server = Server(repo, tmp_path / "serve.log")
    try:
        yield server, repo / "data" / "registry.json"
    finally:
        server.close()


def replace_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` the way apply does: a new file renamed over the old one."""
    tmp = path.with_name(".edit.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def still_serving(server: Server) -> None:
    answer = server.lookup()
    assert answer.status_code == 200, answer.text
    result = answer.json()["results"][1]
    assert (result["values"], result["statuses"]) == ([43], ["PRESENT"])


def test_a_vanished_registry_keeps_the_previous_one_and_ready_says_why(served):
    server, registry = served
    good = registry.read_text()
    registry.unlink()
    assert poll(lambda: server.ready()[0] == 503), server.log.read_text()
    body = server.ready()[1]
    assert body["checks"]["registry"].startswith("serial 1, kept because the file does not load")
    assert "the file is missing" in body["checks"]["registry"]
    still_serving(server)
    assert "Serving the previous registry (serial 1)" in server.log.read_text()
    # Putting the file back makes the server ready again.
    replace_file(registry, good)
    assert poll(lambda: server.ready()[0] == 200), server.log.read_text()
    assert server.ready()[1]["checks"]["registry"] == "serial 1"
    still_serving(server)


@pytest.mark.parametrize(
    ("damage", "where"),
    [
        (lambda doc: doc["feature_views"]["user_stats"].update(fingerprint=123), "feature_views.user_stats.fingerprint"),
        (lambda doc: doc.update(serial="x"), "at serial"),
        (lambda doc: doc["feature_views"]["user_stats"].pop("schema"), "feature_views.user_stats.schema"),
    ],
)  # fmt: skip
def test_a_corrupted_registry_keeps_the_previous_one(served, damage, where):
    server, registry = served
    doc = json.loads(registry.read_text())
    damage(doc)
    replace_file(registry, json.dumps(doc))
    assert poll(lambda: server.ready()[0] == 503), server.log.read_text()
    assert where in server.ready()[1]["checks"]["registry"]
    still_serving(server)


def test_a_file_that_is_not_json_or_not_utf8_keeps_the_previous_one(served):
    server, registry = served
    for text, problem in ((b"\xff\xfe{", "not UTF-8"), (b"null", "got null"), (b"[]", "a list")):
        tmp = registry.with_name(".edit.tmp")
        tmp.write_bytes(text)
        tmp.replace(registry)
        assert poll(lambda p=problem: p in server.ready()[1]["checks"]["registry"])
        assert server.ready()[0] == 503
        still_serving(server)
