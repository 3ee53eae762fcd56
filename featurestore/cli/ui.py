"""``featurestore ui``: serve the read-only web UI of a repo alone (no online API).

As ``serve`` does, the app is handed to uvicorn by its import path
(``featurestore.ui.app:create_ui_app_from_env``): the UI sits above the CLI's layer.
"""

# No ``from __future__ import annotations`` here: Typer reads the annotations at runtime.

import logging
import os
from typing import Annotated

import typer

from featurestore.cli._app import keep_examples, state_of
from featurestore.cli.serve import check_port_free
from featurestore.errors import MissingDependencyError

__all__ = ["UI_FACTORY", "ui"]

UI_FACTORY = "featurestore.ui.app:create_ui_app_from_env"
_REPO_ENV = "FEATURESTORE_REPO"


@keep_examples
def ui(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 6567,
) -> None:
    """Serve the web UI (catalog, freshness, lookups, skew reports) at http://HOST:PORT/ui.

    Read-only. It shows the applied registry (with a notice when the repo's files differ)
    and asks for one of serving.api_keys when the repo sets any. 'featurestore serve' serves
    the same UI at /ui beside the online API.

    Example:
        featurestore ui --port 6567 &
        curl -s --retry 30 --retry-delay 1 --retry-connrefused localhost:6567/ui/freshness
    """
    state = state_of(ctx)
    repo = state.repo.resolve()
    store = state.store()
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - the serve extra is part of dev installs
        raise MissingDependencyError(feature="featurestore ui", extra="serve") from exc
    check_port_free(host, port)
    os.environ[_REPO_ENV] = str(repo)
    level = logging.getLevelName(logging.getLogger("featurestore").getEffectiveLevel()).lower()
    typer.echo(f"UI of {repo} on http://{host}:{port}/ui", err=True)
    if host not in ("127.0.0.1", "::1", "localhost") and not store.config.serving.auth_enabled:
        typer.secho(
            f"WARNING: serving the UI on {host}, reachable from other machines, WITHOUT API "
            "keys: anyone who can reach the port can browse the catalog and look up online "
            "features. Set serving.api_keys in featurestore.yaml, or bind 127.0.0.1.",
            err=True,
            fg=typer.colors.RED,
            bold=True,
        )
    uvicorn.run(
        UI_FACTORY,
        factory=True,
        host=host,
        port=port,
        log_level=level if level in {"debug", "info", "warning", "error"} else "info",
        access_log=False,
        timeout_graceful_shutdown=10,
    )
