"""Fuzzing the registry file: no corruption may give a traceback, nor stop a server serving.

The document is the example fraud repo's registry after a real apply and materialization (two
entities, a composite key, three views, an on-demand view, a service). Hypothesis corrupts it
the ways files break and get hand-edited: a value replaced by any JSON value or by another value
of the document (right type, wrong content), a key or list item deleted, a string edited, the
bytes truncated or given invalid UTF-8. Then:

* ``Registry.load`` returns a snapshot or raises ``RegistryFileError``, nothing else;
* every command (status, get-online, materialize, plan, apply, training-frame, through the CLI
  in-process) works or prints one ``Error:`` line and exits 1;
* a real ``featurestore serve`` process keeps answering lookups from the previous registry and
  says why on ``/ready``.

Example counts are bounded so the suite stays within a minute or so on two cores.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from featurestore.cli.main import app, template_files
from featurestore.errors import RegistryFileError
from featurestore.repo.registry import FileRegistry
from featurestore.sample_data import default_end, generate
from tests.integration.test_http_support import poll, serve_command
from tests.redis_server import free_port

SMALL = {"rows": 200, "days": 5, "entity_rows": 20}
LOOKUP = {"entities": {"user_id": [7]}, "features": ["user_stats:txn_count_7d"]}

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class FraudRepo:
    root: Path
    registry: Path
    good: str
    """The registry file as apply and materialization wrote it."""

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.good)


def _cli(repo: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["--repo", str(repo), *args])


@pytest.fixture(scope="module")
def fraud(tmp_path_factory: pytest.TempPathFactory) -> FraudRepo:
    root = tmp_path_factory.mktemp("registry_fuzz") / "fraud"
    root.mkdir()
    for name, text in template_files().items():
        (root / name).write_text(text)
    generate(root / "data", end=default_end(), **SMALL)
    for step in (("apply",), ("materialize-incremental",)):
        result = _cli(root, *step)
        assert result.exit_code == 0, (result.stdout, result.stderr)
    registry = root / "data" / "registry.json"
    return FraudRepo(root, registry, registry.read_text())


# -- corruptions ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _nodes(value: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _nodes(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _nodes(item, (*path, i))


def _set(doc: Any, path: Path_, value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    parent[path[-1]] = value
    return doc


def _delete(doc: Any, path: Path_) -> Any:
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    del parent[path[-1]]
    return doc


def _edit_string(text: str, how: int) -> str:
    if how == 0:
        return ""
    if how == 1:
        return text + "x"
    if how == 2:
        return text[:-1]
    return text.upper()


@st.composite
def corrupted(draw: st.DrawFn, good: str) -> bytes:
    """The registry file's bytes after one random corruption."""
    doc = json.loads(good)
    nodes = list(_nodes(doc))
    strings = [v for _, v in nodes if isinstance(v, str)]
    kind = draw(st.sampled_from(["replace", "swap", "delete", "edit", "bytes"]))
    path = draw(st.sampled_from(nodes[1:] if kind in {"delete", "swap"} else nodes))[0]
    if kind == "replace":
        doc = _set(doc, path, draw(json_values))
    elif kind == "swap":
        doc = _set(doc, path, copy.deepcopy(draw(st.sampled_from(nodes))[1]))
    elif kind == "delete":
        doc = _delete(doc, path)
    elif kind == "edit":
        texts = [p for p, v in nodes if isinstance(v, str)]
        path = draw(st.sampled_from(texts))
        old = doc
        for part in path:
            old = old[part]
        choice = draw(st.integers(0, 4))
        new = draw(st.sampled_from(strings)) if choice == 4 else _edit_string(old, choice)
        doc = _set(doc, path, new)
    else:
        raw = json.dumps(doc, indent=1).encode()
        at = draw(st.integers(0, len(raw)))
        how = draw(st.sampled_from(["truncate", "invalid-utf8", "flip"]))
        if how == "truncate":
            return raw[:at]
        if how == "invalid-utf8":
            return raw[:at] + b"\xff\xfe" + raw[at:]
        flipped = bytearray(raw)
        flipped[min(at, len(raw) - 1)] ^= draw(st.integers(1, 255))
        return bytes(flipped)
    return json.dumps(doc, indent=1).encode()


def write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(".fuzz.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


# -- the reader -------------------------------------------------------------------------------


@settings(max_examples=400)
@given(data=st.data())
def test_load_gives_a_snapshot_or_a_registry_file_error(fraud, tmp_path_factory, data):
    path = tmp_path_factory.mktemp("load") / "registry.json"
    path.write_bytes(data.draw(corrupted(fraud.good)))
    registry = FileRegistry(path, project="fraud")
    try:
        registry.load()
    except RegistryFileError as err:
        failure: RegistryFileError | None = err
    else:
        failure = None
    if failure is not None:
        message = str(failure)
        assert message.startswith(f"Registry '{path}'")
        assert "\n" not in message
        assert f", at {failure.where}:" in message if failure.where else True


# -- every command ----------------------------------------------------------------------------

END = default_end().isoformat()
ENTITY = ("--entity", "user_id=7,merchant_id=m_00035")
COMMANDS: tuple[tuple[str, ...], ...] = (
    ("status",),
    ("get-online", "--features", "user_stats:txn_count_7d,merchant_stats:merchant_category", *ENTITY),
    ("get-online", "--features", "fraud_v1", *ENTITY, "--request", "amount=120.0"),
    ("materialize", "2020-01-01", END),
    ("plan",),
    ("apply",),
    ("training-frame", "--entities", "{root}/data/entities.parquet", "--service", "fraud_v1", "--output", "{root}/data/fuzz_training.parquet"),
)  # fmt: skip


def check_outcome(command: tuple[str, ...], result: Result) -> None:
    """The command worked, or printed exactly one error and exited 1.

    An error is one 'Error:' line, except a failed validation, which lists each failed
    expectation on its own '  - ' line and ends with its fix (DESIGN G6).
    """
    context = (command, result.exit_code, result.stdout[-2000:], result.stderr[-2000:])
    assert result.exit_code in (0, 1), context
    if result.exit_code == 1:
        assert isinstance(result.exception, SystemExit), (context, repr(result.exception))
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert lines[0].startswith("Error: "), context
        if "failed its expectations" in lines[0]:
            assert len(lines) >= 3, context
            assert all(line.startswith("  - ") for line in lines[1:-1]), context
            assert lines[-1].startswith("Fix "), context
        else:
            assert len(lines) == 1, context
        assert "Traceback" not in result.stderr, context


@settings(max_examples=30)
@given(data=st.data())
def test_every_command_works_or_prints_one_error_line(fraud, data):
    blob = data.draw(corrupted(fraud.good))
    try:
        for command in COMMANDS:
            write_atomically(fraud.registry, blob)  # apply and materialize may rewrite it
            args = [arg.format(root=fraud.root) for arg in command]
            check_outcome(command, _cli(fraud.root, *args))
    finally:
        write_atomically(fraud.registry, fraud.good.encode())


# -- a real server process --------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    client: httpx.Client
    registry: Path


@pytest.fixture(scope="module")
def server(fraud: FraudRepo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("served") / "fraud"
    shutil.copytree(fraud.root, root)
    yaml = root / "featurestore.yaml"
    yaml.write_text(yaml.read_text() + "serving:\n  registry_refresh_s: 0.1\n")
    port = free_port()
    log_path = root.parent / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            serve_command(root, port),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

        def up() -> bool:
            try:
                return client.get("/ready").status_code == 200
            except httpx.TransportError:
                return False

        try:
            assert poll(up, 60), log_path.read_text()
            yield Served(client, root / "data" / "registry.json")
        finally:
            client.close()
            proc.terminate()
            proc.wait(timeout=15)


@settings(max_examples=10)
@given(data=st.data())
def test_a_server_keeps_serving_the_previous_registry(fraud, server, data):
    client, registry = server.client, server.registry
    expected = lookup(client)
    assert expected["statuses"] == ["PRESENT"]
    blob = data.draw(corrupted(fraud.good))
    check = registry.with_name("check.json")
    check.write_bytes(blob)
    try:
        FileRegistry(check, project="fraud").load()
    except RegistryFileError as err:
        problem = err.problem
    else:
        return  # still a valid registry: nothing to keep
    write_atomically(registry, blob)
    try:
        assert poll(lambda: problem in client.get("/ready").json()["checks"]["registry"])
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert "kept because the file does not load" in ready.json()["checks"]["registry"]
        assert lookup(client) == expected
    finally:
        write_atomically(registry, fraud.good.encode())
        assert poll(lambda: client.get("/ready").status_code == 200)


def lookup(client: httpx.Client) -> dict[str, Any]:
    """The looked-up feature's values and statuses (the answer must be a 200)."""
    answer = client.post("/get-online-features", json=LOOKUP)
    assert answer.status_code == 200, answer.text
    result = answer.json()["results"][1]
    return {"values": result["values"], "statuses": result["statuses"]}
