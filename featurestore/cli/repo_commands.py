"""Commands about definitions: init, plan, apply, list, describe."""

# No ``from __future__ import annotations`` here: Typer reads the parameter annotations at
# runtime to build the command line.

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from featurestore.cli import render
from featurestore.cli._app import (
    JsonOption,
    keep_examples,
    state_of,
)
from featurestore.errors import ConfigError, NotFoundError

if TYPE_CHECKING:
    from featurestore.repo.registry import Plan

__all__ = ["template_files"]


# -- init -------------------------------------------------------------------------------------

_TEMPLATE = "fraud"
_TEMPLATE_NAMES = {
    "features.py.tmpl": "features.py",
    "generate_data.py.tmpl": "generate_data.py",
    "featurestoreignore": ".featurestoreignore",
    "featurestore.yaml": "featurestore.yaml",
    "README.md": "README.md",
}


def template_files() -> dict[str, str]:
    """The files ``init`` writes (repo-relative name -> text), from featurestore/templates."""
    root = resources.files("featurestore") / "templates" / _TEMPLATE
    return {
        target: (root / source).read_text(encoding="utf-8")
        for source, target in _TEMPLATE_NAMES.items()
    }


@keep_examples
def init(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="Where to create the repo (created if missing).")
    ] = Path("feature_repo"),
    rows: Annotated[
        int, typer.Option(min=1, help="Rows of the generated user_stats data.")
    ] = 30_000,
    seed: Annotated[int, typer.Option(help="Seed of the generated data.")] = 42,
    no_data: Annotated[
        bool, typer.Option("--no-data", help="Write the files only; skip generating data.")
    ] = False,
) -> None:
    """Create a feature repo for a card-fraud model, with generated sample data.

    The repo works at once: 'featurestore apply' registers it, and the README inside lists the
    next steps.

    Example:
        featurestore init fraud_repo
        featurestore --repo fraud_repo apply
    """
    from featurestore.sample_data import generate

    if (directory / "featurestore.yaml").exists():
        msg = (
            f"'{directory}' already holds a feature repo (featurestore.yaml). Pick another "
            "folder, or delete that one first."
        )
        raise ConfigError(msg)
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in template_files().items():
        (directory / name).write_text(text, encoding="utf-8")
    if not no_data:
        with render.MaterializeProgress(description="Generating") as progress:
            data = generate(
                directory / "data",
                rows=rows,
                seed=seed,
                progress=lambda name, done: progress(name, done, None),
            )
        total = sum(data.rows.values())
        render.info(f"Generated {total:,} rows of sample data in {directory / 'data'}.")
    render.stdout().print(
        f"Created feature repo '{directory}'. Next:\n"
        f"  cd {directory}\n"
        "  featurestore apply\n"
        "  featurestore training-frame --entities data/entities.parquet --service fraud_v1 "
        "--output data/training.parquet\n"
        "  featurestore materialize-incremental\n"
        "  featurestore get-online --features fraud_v1 --entity user_id=7,merchant_id=m_00035 "
        "--request amount=120.0"
    )


# -- definitions ------------------------------------------------------------------------------


def _show_plan(result: "Plan", *, applied: bool, as_json: bool) -> None:
    if as_json:
        render.json_out(
            {
                "has_changes": result.has_changes,
                "changes": [render.change_to_dict(c) for c in result.changes],
            }
        )
    else:
        render.plan(result, applied=applied)


@keep_examples
def plan(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show what 'apply' would change in the registry, without writing anything.

    Lists additions, changes and removals, and which feature views would need
    re-materialization.

    Example:
        featurestore plan
    """
    _show_plan(state_of(ctx).store().plan(), applied=False, as_json=as_json)


@keep_examples
def apply(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Register the repo's definitions in the registry.

    Prints what was added, changed and removed, and which feature views need
    re-materialization (their online values were computed by an older definition).

    Example:
        featurestore apply
    """
    _show_plan(state_of(ctx).store().apply(), applied=True, as_json=as_json)


@keep_examples
def list_entities(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the applied entities.

    Example:
        featurestore list entities
    """
    store = state_of(ctx).store()
    items = [render.entity_to_dict(e, store.snapshot) for e in store.list_entities()]
    if as_json:
        render.json_out(items)
        return
    render.table(
        "Entities",
        ["name", "join keys", "feature views", "description"],
        [
            (
                i["name"],
                ", ".join(f"{k} ({t or '?'})" for k, t in i["join_keys"].items()),
                ", ".join(i["feature_views"]),
                i["description"],
            )
            for i in items
        ],
    )


@keep_examples
def list_feature_views(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the applied feature views with their entities, ttl and watermark.

    Example:
        featurestore list feature-views
    """
    records = state_of(ctx).store().list_feature_views()
    if as_json:
        render.json_out([render.view_to_dict(r) for r in records])
        return
    render.table(
        "Feature views",
        ["name", "entities", "features", "ttl", "watermark"],
        [
            (
                r.view.name,
                ", ".join(e.name for e in r.view.entities),
                len(r.view.schema),
                str(r.view.ttl) if r.view.ttl else "unlimited",
                r.watermark.strftime("%Y-%m-%d %H:%M:%S") if r.watermark else "-",
            )
            for r in records
        ],
    )


@keep_examples
def list_on_demand_feature_views(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the applied on-demand feature views with their inputs and request fields.

    Example:
        featurestore list on-demand-feature-views
    """
    records = state_of(ctx).store().list_on_demand_feature_views()
    if as_json:
        render.json_out([render.on_demand_to_dict(r) for r in records])
        return
    render.table(
        "On-demand feature views",
        ["name", "features", "inputs", "request fields"],
        [
            (
                r.name,
                ", ".join(r.feature_names),
                ", ".join(str(i) for i in r.view_inputs),
                ", ".join(f.name for f in r.request_fields),
            )
            for r in records
        ],
    )


@keep_examples
def list_feature_services(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the applied feature services.

    Example:
        featurestore list feature-services
    """
    services = state_of(ctx).store().list_feature_services()
    if as_json:
        render.json_out([render.service_to_dict(s) for s in services])
        return
    render.table(
        "Feature services",
        ["name", "features", "description"],
        [(s.name, len(s.refs), s.description) for s in services],
    )


@keep_examples
def describe(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME", help="A feature view, on-demand feature view, entity or service."
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Show an applied feature view, on-demand feature view, entity or service in detail.

    Example:
        featurestore describe user_stats
    """
    snapshot = state_of(ctx).store().snapshot
    found: list[dict[str, Any]] = []
    record = snapshot.feature_views.get(name)
    on_demand = snapshot.on_demand_views.get(name)
    entity = snapshot.entities.get(name)
    service = snapshot.feature_services.get(name)
    if record is None and on_demand is None and entity is None and service is None:
        raise NotFoundError(
            name=name,
            candidates=[
                *snapshot.feature_views,
                *snapshot.on_demand_views,
                *snapshot.entities,
                *snapshot.feature_services,
            ],
            hint="Run 'featurestore list feature-views' (or entities, feature-services) to see "
            "what is applied, or define it in the repo and run 'featurestore apply'.",
        )
    if record is not None:
        found.append(render.view_to_dict(record))
        if not as_json:
            render.describe_view(record)
    if on_demand is not None:
        found.append(render.on_demand_to_dict(on_demand))
        if not as_json:
            render.describe_on_demand(on_demand)
    if entity is not None:
        found.append(render.entity_to_dict(entity, snapshot))
        if not as_json:
            render.describe_entity(entity, snapshot)
    if service is not None:
        found.append(render.service_to_dict(service))
        if not as_json:
            render.describe_service(service)
    if as_json:
        render.json_out(found[0] if len(found) == 1 else found)
