"""``featurestore registry ...``: commands about where the registry lives (copy, to migrate)."""

# No ``from __future__ import annotations`` here: Typer reads the parameter annotations at
# runtime to build the command line.

from typing import Annotated

import typer

from featurestore.cli._app import keep_examples, state_of

__all__ = ["copy", "registry_app"]

registry_app = typer.Typer(
    help="Move the registry: copy it into PostgreSQL (or into a file, as a backup).\n\n"
    "Example:\n\n    featurestore registry copy --to data/registry-backup.json",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@keep_examples
def copy(
    ctx: typer.Context,
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="The destination: postgresql://user@host:port/dbname, or a file path "
            "(relative to the repo). It must not hold this project's registry yet.",
        ),
    ],
) -> None:
    """Copy the applied registry, watermarks included, to another registry.

    To move a team from the registry file to PostgreSQL: stop applies and materializations,
    run 'featurestore registry copy --to postgresql://user@db-host:5432/featurestore', then
    set 'registry:' in featurestore.yaml to that URL (the 'postgres' extra must be installed).
    Servers keep their old registry until restarted on the new config.

    Example:
        featurestore registry copy --to data/registry-backup.json
    """
    from featurestore.repo.registry import copy_registry, open_registry

    store = state_of(ctx).store()
    source = store.registry
    destination = open_registry(to, repo_root=store.repo_root, project=store.config.project)
    try:
        before = source.stamp()
        snapshot = copy_registry(source, destination)
        moved = source.stamp() != before
    finally:
        destination.close()
    marked = sum(r.watermark is not None for r in snapshot.feature_views.values())
    typer.echo(
        f"Copied project '{snapshot.project}' from {source.location} to {destination.location}: "
        f"{len(snapshot.feature_views)} feature views ({marked} with watermarks), "
        f"{len(snapshot.on_demand_views)} on-demand views, "
        f"{len(snapshot.feature_services)} services."
    )
    if moved:
        typer.secho(
            f"WARNING: {source.location} changed during the copy (an apply or a "
            "materialization landed), so the copy may miss it. Stop them and copy again into "
            "an empty destination.",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(1)
    typer.echo(f"Next: set 'registry: {destination.location}' in featurestore.yaml.")
