"""``featurestore serve``: run the feature server (uvicorn) over the repo's online store.

The CLI and the server are sibling layers, so the app is handed to uvicorn by its import path
(``featurestore.serving.app:create_app_from_env``, one app per worker) rather than imported.
"""

# No ``from __future__ import annotations`` here: Typer reads the annotations at runtime.

import atexit
import logging
import os
import shutil
import socket
import tempfile
from typing import Annotated

import typer

from featurestore.cli._app import keep_examples, state_of
from featurestore.errors import FeatureStoreError, MissingDependencyError, RegistryConflictError

__all__ = ["APP_FACTORY", "HTTP_PROTOCOL", "UI_SERVER_FACTORY", "check_port_free", "serve"]

APP_FACTORY = "featurestore.serving.app:create_app_from_env"
UI_SERVER_FACTORY = "featurestore.ui.app:create_server_from_env"
"""The same server with the web UI mounted at /ui (docs/ui.md); the default."""
HTTP_PROTOCOL = "featurestore.serving.protocol:LimitedHttpToolsProtocol"
"""uvicorn's httptools protocol with the serving: connection limits (by path, as the app)."""
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
_REPO_ENV = "FEATURESTORE_REPO"
_METRICS_DIR_ENV = "FEATURESTORE_METRICS_DIR"
"""Where the workers of ``--workers N`` share their metrics (featurestore/serving/workers.py)."""


@keep_examples
def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Interface to listen on (0.0.0.0 for all, e.g. in a container).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 6566,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes (each opens its own store connections).")
    ] = 1,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log one line per request.")
    ] = False,
    ui: Annotated[
        bool, typer.Option("--ui/--no-ui", help="Serve the read-only web UI at /ui (docs/ui.md).")
    ] = True,
) -> None:
    """Serve online features over HTTP (Feast-compatible POST /get-online-features).

    Refuses to start when the repo's definitions differ from the applied registry. Registry
    changes made by a later 'apply' are picked up within serving.registry_refresh_s.

    Example:
        featurestore serve --port 6566
        curl -s --retry 30 --retry-delay 1 --retry-connrefused localhost:6566/get-online-features -d '{"entities": {"user_id": [7], "merchant_id": ["m_00035"], "amount": [120.0]}, "feature_service": "fraud_v1"}'
    """
    state = state_of(ctx)
    repo = state.repo.resolve()
    store = state.store()
    plan = store.plan()
    if plan.has_changes:
        changes = ", ".join(
            f"{c.kind} '{c.name}' ({c.action})" for c in plan.changes if c.action != "unchanged"
        )
        msg = (
            f"Not serving '{repo}': its definitions differ from the applied registry "
            f"({changes}). Run 'featurestore apply' (and materialize the views it says need "
            "it), or revert the repo files, then start the server again."
        )
        raise RegistryConflictError(msg)
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - the serve extra is part of dev installs
        raise MissingDependencyError(feature="featurestore serve", extra="serve") from exc
    check_port_free(host, port)
    os.environ[_REPO_ENV] = str(repo)
    if workers > 1:  # each worker's /metrics then answers for all of them, labelled by worker
        folder = tempfile.mkdtemp(prefix="featurestore-metrics-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        os.environ[_METRICS_DIR_ENV] = folder
    level = logging.getLevelName(logging.getLogger("featurestore").getEffectiveLevel()).lower()
    typer.echo(f"Serving {repo} on http://{host}:{port} ({workers} worker(s))", err=True)
    if host not in _LOOPBACK and not store.config.serving.auth_enabled:
        typer.secho(
            f"WARNING: serving on {host}, reachable from other machines, WITHOUT API keys: "
            "anyone who can reach the port can read every online feature. Set serving.api_keys "
            "in featurestore.yaml (e.g. ['${FEATURESTORE_API_KEY}']), or bind 127.0.0.1.",
            err=True,
            fg=typer.colors.RED,
            bold=True,
        )
    # The workers open their own store; the parent's (its registry connection, for a
    # PostgreSQL registry) would sit idle for the server's whole life.
    store.close()
    uvicorn.run(
        UI_SERVER_FACTORY if ui else APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=level if level in {"debug", "info", "warning", "error"} else "info",
        access_log=access_log,
        http=HTTP_PROTOCOL,
        timeout_graceful_shutdown=10,
    )


def check_port_free(host: str, port: int) -> None:
    """Fail with one line naming the port when it cannot be bound (uvicorn would exit 3)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            # As uvicorn binds: SO_REUSEADDR, so a port in TIME_WAIT does not count as taken.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        msg = (
            f"Cannot serve on {host}:{port}: {exc.strerror or exc}. Another process (perhaps "
            "another 'featurestore serve') uses the port: stop it, or pick a free one with --port."
        )
        raise FeatureStoreError(msg) from None
