"""The ``featurestore`` command line: each command loads the repo once, makes one call, renders.

Errors: a FeatureStoreError becomes a red message on stderr and exit code 1 (``--debug`` adds
the traceback); usage errors (bad options, unparsable times) exit 2.
"""

# No ``from __future__ import annotations`` here: Typer reads the parameter annotations at
# runtime to build the command line.

import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import typer
from typer.core import TyperGroup

from featurestore import __version__
from featurestore._time import parse_timestamp
from featurestore.cli import render
from featurestore.cli.check_transforms import check_transforms
from featurestore.cli.serve import serve
from featurestore.errors import ConfigError, EntityFrameError, FeatureStoreError, NotFoundError
from featurestore.materialization.materializer import MaterializationReport
from featurestore.store import FeatureStore

__all__ = ["CliState", "LogLevel", "PointInTime", "app", "main", "template_files"]


class LogLevel(StrEnum):
    """``--log-level`` choices."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class PointInTime(StrEnum):
    """``--point-in-time`` choices (see docs/point-in-time.md)."""

    EVENT = "event"
    AVAILABLE = "available"


class _Group(TyperGroup):
    """The root command group: turns FeatureStoreError into a message and exit code 1."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]  # typer.Context subclasses the vendored click Context
        try:
            return super().invoke(ctx)
        except FeatureStoreError as exc:
            state = ctx.obj if isinstance(ctx.obj, CliState) else None
            render.error(exc, debug=state is not None and state.debug)
            raise typer.Exit(1) from None


@dataclass
class CliState:
    """What the global options decide, shared by every command."""

    repo: Path
    debug: bool = False
    _store: FeatureStore | None = field(default=None, repr=False)

    def store(self) -> FeatureStore:
        """The repo's FeatureStore; ``featurestore.yaml`` is read once, on first use."""
        if self._store is None:
            self._store = FeatureStore(self.repo)
        return self._store

    def close(self) -> None:
        """Release the store's resources."""
        if self._store is not None:
            self._store.close()
            self._store = None


def _state(ctx: typer.Context) -> CliState:
    state = ctx.obj
    if not isinstance(state, CliState):  # pragma: no cover - the root callback always runs
        msg = "featurestore CLI state missing; invoke commands through the 'featurestore' app."
        raise TypeError(msg)
    return state


class _StderrHandler(logging.Handler):
    """Writes log lines to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # pragma: no cover - logging must never crash a command
            self.handleError(record)


def _configure_logging(level: str) -> None:
    logger = logging.getLogger("featurestore")
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level.upper())


def _version(value: bool) -> None:
    if value:
        typer.echo(f"featurestore {__version__}")
        raise typer.Exit


_F = TypeVar("_F", bound=Callable[..., Any])


def _keep_examples(func: _F) -> _F:
    """Show a command docstring's ``Example:`` block verbatim in ``--help``.

    Click re-wraps help paragraphs, which would run the example onto one line; a paragraph
    opening with a lone backspace character (click's no-rewrap marker) is left as written.
    """
    if func.__doc__:
        func.__doc__ = func.__doc__.replace("\n    Example:\n", "\n    \b\n    Example:\n")
    return func


app = typer.Typer(
    cls=_Group,
    name="featurestore",
    help="A feature store whose training frames and online lookups cannot disagree.\n\n"
    "Example:\n\n"
    "    featurestore init my_repo && cd my_repo && featurestore apply",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
list_app = typer.Typer(
    help="List the applied entities, feature views or feature services.\n\n"
    "Example:\n\n    featurestore list feature-views --json",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(list_app, name="list")


@app.callback()
def _root(
    ctx: typer.Context,
    repo: Annotated[
        Path,
        typer.Option(
            "--repo",
            "-r",
            envvar="FEATURESTORE_REPO",
            help="The feature repo folder (holding featurestore.yaml).",
            file_okay=False,
        ),
    ] = Path(),
    log_level: Annotated[
        LogLevel,
        typer.Option(
            "--log-level",
            envvar="FEATURESTORE_LOG_LEVEL",
            case_sensitive=False,
            help="Log verbosity (on stderr).",
        ),
    ] = LogLevel.WARNING,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    _configure_logging(log_level.value)
    state = CliState(repo=repo, debug=debug)
    ctx.obj = state
    ctx.call_on_close(state.close)


# -- option parsing helpers -------------------------------------------------------------------

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _timestamp(value: str) -> datetime:
    """ISO 8601 on the command line, naive = UTC; bad input is a usage error (exit 2)."""
    try:
        return parse_timestamp(value, what="time")
    except EntityFrameError as exc:
        raise typer.BadParameter(str(exc)) from None


def _split(values: list[str] | None) -> list[str]:
    """Repeated options whose values may also be comma-separated."""
    return [part.strip() for v in values or [] for part in v.split(",") if part.strip()]


def _pairs(text: str, *, option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            msg = (
                f"{option} expects key=value[,key=value...], e.g. {option} user_id=7; got {text!r}."
            )
            raise typer.BadParameter(msg)
        pairs[key.strip()] = value.strip()
    return pairs


def _request_value(text: str) -> object:
    """A request field's value: a JSON literal (12.5, true, null, "x") or else the raw string."""
    try:
        value: object = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value


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


@app.command()
@_keep_examples
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
        "  featurestore get-online --features fraud_v1 --entity user_id=7,merchant_id=m_00035",
        markup=False,
    )


# -- definitions ------------------------------------------------------------------------------


@app.command()
@_keep_examples
def plan(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show what 'apply' would change in the registry, without writing anything.

    Lists additions, changes and removals, and which feature views would need
    re-materialization.

    Example:
        featurestore plan
    """
    result = _state(ctx).store().plan()
    if as_json:
        render.json_out(
            {
                "has_changes": result.has_changes,
                "changes": [render.change_to_dict(c) for c in result.changes],
            }
        )
    else:
        render.plan(result, applied=False)


@app.command()
@_keep_examples
def apply(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Register the repo's definitions in the registry.

    Prints what was added, changed and removed, and which feature views need
    re-materialization (their online values were computed by an older definition).

    Example:
        featurestore apply
    """
    result = _state(ctx).store().apply()
    if as_json:
        render.json_out(
            {
                "has_changes": result.has_changes,
                "changes": [render.change_to_dict(c) for c in result.changes],
            }
        )
    else:
        render.plan(result, applied=True)


@list_app.command("entities")
@_keep_examples
def list_entities(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the applied entities.

    Example:
        featurestore list entities
    """
    snapshot = _state(ctx).store().snapshot
    items = [render.entity_to_dict(e, snapshot) for _, e in sorted(snapshot.entities.items())]
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


@list_app.command("feature-views")
@_keep_examples
def list_feature_views(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the applied feature views with their entities, ttl and watermark.

    Example:
        featurestore list feature-views
    """
    snapshot = _state(ctx).store().snapshot
    records = [r for _, r in sorted(snapshot.feature_views.items())]
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


@list_app.command("on-demand-feature-views")
@_keep_examples
def list_on_demand_feature_views(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the applied on-demand feature views with their inputs and request fields.

    Example:
        featurestore list on-demand-feature-views
    """
    snapshot = _state(ctx).store().snapshot
    records = [r for _, r in sorted(snapshot.on_demand_views.items())]
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


@list_app.command("feature-services")
@_keep_examples
def list_feature_services(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the applied feature services.

    Example:
        featurestore list feature-services
    """
    snapshot = _state(ctx).store().snapshot
    services = [s for _, s in sorted(snapshot.feature_services.items())]
    if as_json:
        render.json_out([render.service_to_dict(s) for s in services])
        return
    render.table(
        "Feature services",
        ["name", "features", "description"],
        [(s.name, len(s.refs), s.description) for s in services],
    )


@app.command()
@_keep_examples
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
    snapshot = _state(ctx).store().snapshot
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


# -- offline ----------------------------------------------------------------------------------

_TABLE_SUFFIXES = (".parquet", ".csv")


def _check_suffix(path: Path, *, option: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in _TABLE_SUFFIXES:
        msg = f"{option} must be a .parquet or .csv file, got '{path}'."
        raise typer.BadParameter(msg, param_hint=option)
    return suffix


@app.command("training-frame")
@_keep_examples
def training_frame(
    ctx: typer.Context,
    entities: Annotated[
        Path,
        typer.Option(
            "--entities",
            "-e",
            metavar="FILE",
            exists=True,
            dir_okay=False,
            help="Entity rows (.parquet or .csv): the join keys and a timestamp column.",
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            dir_okay=False,
            help="Where to write (.parquet or .csv).",
        ),
    ],
    features: Annotated[
        list[str] | None,
        typer.Option(
            "--features",
            "-f",
            metavar="REF",
            help="'view:feature' refs; repeat the option or separate with commas.",
        ),
    ] = None,
    service: Annotated[
        str | None, typer.Option("--service", "-s", metavar="NAME", help="A feature service name.")
    ] = None,
    full_feature_names: Annotated[
        bool,
        typer.Option("--full-feature-names", help="Name output columns view__feature."),
    ] = False,
    timestamp_column: Annotated[
        str,
        typer.Option(
            "--timestamp-column", metavar="COLUMN", help="The entity file's timestamp column."
        ),
    ] = "event_timestamp",
    point_in_time: Annotated[
        PointInTime,
        typer.Option(
            "--point-in-time",
            help="'event' joins on event timestamps; 'available' also requires "
            "created_timestamp <= the entity row's time.",
        ),
    ] = PointInTime.EVENT,
    as_json: JsonOption = False,
) -> None:
    """Write a point-in-time-correct training frame for the rows of an entity file.

    Every entity row comes back once, in order, with the newest feature values whose event
    timestamp is at or before the row's timestamp (and within the view's ttl).

    Example:
        featurestore training-frame --entities data/entities.parquet --service fraud_v1 --output train.parquet
    """
    refs = _split(features)
    if bool(refs) == (service is not None):
        msg = "pass exactly one of --features and --service."
        raise typer.BadParameter(msg, param_hint="--features/--service")
    in_suffix = _check_suffix(entities, option="--entities")
    out_suffix = _check_suffix(output, option="--output")
    store = _state(ctx).store()
    entity_df: Any = pa_csv.read_csv(entities) if in_suffix == ".csv" else str(entities)
    with render.spinner("Building training frame..."):
        frame = store.get_training_frame(
            entity_df,
            service if service is not None else refs,
            full_feature_names=full_feature_names,
            timestamp_column=timestamp_column,
            point_in_time="available" if point_in_time is PointInTime.AVAILABLE else "event",
        )
        output.parent.mkdir(parents=True, exist_ok=True)
        if out_suffix == ".csv":
            frame.to_csv(str(output))
        else:
            frame.to_parquet(str(output))
    columns = list(frame.columns)
    rows = _count_rows(output, csv=out_suffix == ".csv")
    summary = {"output": str(output), "rows": rows, "columns": columns}
    if as_json:
        render.json_out(summary)
    else:
        render.stdout().print(
            f"Wrote {rows:,} rows to {output} ({len(columns)} columns: {', '.join(columns)}).",
            markup=False,
        )


def _count_rows(path: Path, *, csv: bool) -> int:
    """Rows of a written file: Parquet from its footer, CSV by streaming it (bounded memory)."""
    if csv:
        return sum(batch.num_rows for batch in pa_csv.open_csv(path))
    return int(pq.ParquetFile(path).metadata.num_rows)


# -- online -----------------------------------------------------------------------------------


@app.command()
@_keep_examples
def materialize(
    ctx: typer.Context,
    start: Annotated[
        str,
        typer.Argument(metavar="START", help="Window start, ISO 8601 (naive = UTC), inclusive."),
    ],
    end: Annotated[
        str, typer.Argument(metavar="END", help="Window end, ISO 8601 (naive = UTC), exclusive.")
    ],
    views: Annotated[
        list[str] | None,
        typer.Option(
            "--views",
            "-v",
            metavar="VIEW",
            help="Only these views; repeat or separate with commas.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Load the latest values of rows with START <= event_timestamp < END into the online store.

    Windows may be repeated, overlap or run in any order: a stored value is only replaced by a
    newer one.

    Example:
        featurestore materialize 2026-11-01 2026-11-27T12:00:00Z --views user_stats
    """
    start_at = _timestamp(start)
    end_at = _timestamp(end)
    if end_at <= start_at:
        msg = f"END ({end}) must be after START ({start})."
        raise typer.BadParameter(msg, param_hint="END")
    store = _state(ctx).store()
    with render.MaterializeProgress() as progress:
        report = store.materialize(start_at, end_at, views=_split(views) or None, progress=progress)
    _render_report(report, as_json=as_json)


@app.command("materialize-incremental")
@_keep_examples
def materialize_incremental(
    ctx: typer.Context,
    end: Annotated[
        str | None,
        typer.Argument(
            metavar="END",
            help="Materialize up to this time, ISO 8601 (naive = UTC); default now.",
        ),
    ] = None,
    views: Annotated[
        list[str] | None,
        typer.Option(
            "--views",
            "-v",
            metavar="VIEW",
            help="Only these views; repeat or separate with commas.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Materialize each view from its watermark (or its first row) up to END.

    Example:
        featurestore materialize-incremental
    """
    end_at = _timestamp(end) if end is not None else None
    store = _state(ctx).store()
    with render.MaterializeProgress() as progress:
        report = store.materialize_incremental(
            end_at, views=_split(views) or None, progress=progress
        )
    _render_report(report, as_json=as_json)


def _render_report(report: MaterializationReport, *, as_json: bool) -> None:
    if as_json:
        render.json_out(render.report_to_dict(report))
    else:
        render.materialization(report)


def _key_value(text: str, dtype_name: str | None, *, key: str) -> object:
    if dtype_name in ("Int32", "Int64"):
        try:
            return int(text)
        except ValueError:
            msg = f"join key '{key}' is {dtype_name}, but {text!r} is not an integer."
            raise typer.BadParameter(msg, param_hint="--entity") from None
    return text


@app.command("get-online")
@_keep_examples
def get_online(
    ctx: typer.Context,
    features: Annotated[
        list[str],
        typer.Option(
            "--features",
            "-f",
            metavar="REF",
            help="'view:feature' refs or a feature service name; repeat or use commas.",
        ),
    ],
    entity: Annotated[
        list[str],
        typer.Option(
            "--entity",
            "-e",
            metavar="KEY=VALUE[,...]",
            help="One entity row as key=value[,key=value...]; repeat for more rows.",
        ),
    ],
    request: Annotated[
        list[str] | None,
        typer.Option(
            "--request",
            metavar="KEY=VALUE",
            help="A request field key=value (JSON literal), added to every row.",
        ),
    ] = None,
    full_feature_names: Annotated[
        bool,
        typer.Option("--full-feature-names", help="Name output columns view__feature."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Read the latest feature values for entity rows from the online store.

    Example:
        featurestore get-online --features fraud_v1 --entity user_id=7,merchant_id=m_00035
    """
    store = _state(ctx).store()
    snapshot = store.snapshot
    key_types = {
        k: str(t) for r in snapshot.feature_views.values() for k, t in r.key_dtypes.items()
    }
    extra: dict[str, object] = {}
    for text in request or []:
        extra.update({k: _request_value(v) for k, v in _pairs(text, option="--request").items()})
    rows: list[dict[str, Any]] = []
    for text in entity:
        row: dict[str, Any] = {
            k: _key_value(v, key_types.get(k), key=k)
            for k, v in _pairs(text, option="--entity").items()
        }
        rows.append({**row, **extra})
    refs = _split(features)
    response = store.get_online_features(
        refs[0] if len(refs) == 1 else refs, rows, full_feature_names=full_feature_names
    )
    if as_json:
        render.json_out(render.online_to_dict(response))
    else:
        render.online(response)


@app.command()
@_keep_examples
def status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show each feature view's watermark and the number of records in the online store.

    Example:
        featurestore status
    """
    statuses = _state(ctx).store().online_status()
    if as_json:
        render.json_out([render.status_to_dict(s) for s in statuses])
    else:
        render.status(statuses)


app.command("serve")(serve)
app.command("check-transforms")(check_transforms)


def main() -> None:
    """Run the CLI (the ``featurestore`` console script)."""
    app()
