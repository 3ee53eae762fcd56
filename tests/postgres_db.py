"""A PostgreSQL database of the test session's own: created on the shared server, dropped after.

The server is ``FEATURESTORE_TEST_POSTGRES`` (a libpq URL to an existing database with rights
to create databases), by default ``postgresql://postgres@127.0.0.1:5432/postgres``. Tests never
touch a database they did not create. Without a reachable server a test fails in CI (``CI``
set) and is skipped locally.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

SERVER_ENV = "FEATURESTORE_TEST_POSTGRES"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_url() -> str:
    """The maintenance database the test databases are created from."""
    return os.environ.get(SERVER_ENV, DEFAULT_SERVER)


def database_url(name: str) -> str:
    """The URL of database ``name`` on the test server."""
    return urlunsplit(urlsplit(server_url())._replace(path=f"/{name}"))


def _unavailable(reason: str) -> None:
    message = f"no PostgreSQL for the registry tests at {server_url()} ({reason}); set {SERVER_ENV}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A URL of a new, empty database of this session (dropped at the end)."""
    import psycopg

    name = f"fstest_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(server_url(), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        _unavailable(" ".join(str(exc).split()))
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(name)
    finally:
        with psycopg.connect(server_url(), autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
