"""Commands that move data: training-frame, materialize, get-online, status, validate."""

# No ``from __future__ import annotations`` here: Typer reads the parameter annotations at
# runtime to build the command line.

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from featurestore.cli import render
from featurestore.cli._app import (
    FeatureRefsOption,
    FullFeatureNamesOption,
    JsonOption,
    OutputFileOption,
    PointInTime,
    ServiceOption,
    ViewsOption,
    keep_examples,
    parse_pairs,
    parse_time,
    request_value,
    split_values,
    state_of,
)
from featurestore.errors import FeatureStoreError, MaterializationError

if TYPE_CHECKING:
    from featurestore.materialization.materializer import MaterializationReport
    from featurestore.store import FeatureStore

# -- offline ----------------------------------------------------------------------------------

_TABLE_SUFFIXES = (".parquet", ".csv")


def check_suffix(path: Path, *, option: str) -> str:
    """The lower-cased suffix of a table file (.parquet or .csv), or a usage error naming ``option``."""
    suffix = path.suffix.lower()
    if suffix not in _TABLE_SUFFIXES:
        msg = f"{option} must be a .parquet or .csv file, got '{path}'."
        raise typer.BadParameter(msg, param_hint=option)
    return suffix


@keep_examples
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
    output: OutputFileOption,
    features: FeatureRefsOption = None,
    service: ServiceOption = None,
    full_feature_names: FullFeatureNamesOption = False,
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
    selection = features_or_service(features, service)
    in_suffix = check_suffix(entities, option="--entities")
    out_suffix = check_suffix(output, option="--output")
    import pyarrow.csv as pa_csv

    store = state_of(ctx).store()
    entity_df: Any = pa_csv.read_csv(entities) if in_suffix == ".csv" else str(entities)
    with render.spinner("Building training frame..."):
        frame = store.get_training_frame(
            entity_df,
            selection,
            full_feature_names=full_feature_names,
            timestamp_column=timestamp_column,
            point_in_time="available" if point_in_time is PointInTime.AVAILABLE else "event",
        )
        rows, columns = write_frame(frame, output, out_suffix)
    summary = {"output": str(output), "rows": rows, "columns": columns}
    if as_json:
        render.json_out(summary)
    else:
        render.stdout().print(
            f"Wrote {rows:,} rows to {output} ({len(columns)} columns: {', '.join(columns)})."
        )


def features_or_service(features: list[str] | None, service: str | None) -> str | list[str]:
    """What ``--features``/``--service`` select: exactly one of them must be given."""
    refs = split_values(features)
    if bool(refs) == (service is not None):
        msg = "pass exactly one of --features and --service."
        raise typer.BadParameter(msg, param_hint="--features/--service")
    return service if service is not None else refs


def write_frame(frame: Any, output: Path, suffix: str) -> tuple[int, list[str]]:
    """Stream a training frame or snapshot to ``output`` (.csv or .parquet); rows, columns."""
    output.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        frame.to_csv(str(output))
    else:
        frame.to_parquet(str(output))
    return _count_rows(output, csv=suffix == ".csv"), list(frame.columns)


def _count_rows(path: Path, *, csv: bool) -> int:
    """Rows of a written file: Parquet from its footer, CSV by streaming it (bounded memory).

    A Parquet directory (part files written by Spark's executors) counts every part's footer.
    """
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    if csv:
        return sum(batch.num_rows for batch in pa_csv.open_csv(path))
    parts = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    return sum(int(pq.ParquetFile(part).metadata.num_rows) for part in parts)


# -- online -----------------------------------------------------------------------------------


@keep_examples
def materialize(
    ctx: typer.Context,
    start: Annotated[
        str,
        typer.Argument(metavar="START", help="Window start, ISO 8601 (naive = UTC), inclusive."),
    ],
    end: Annotated[
        str, typer.Argument(metavar="END", help="Window end, ISO 8601 (naive = UTC), exclusive.")
    ],
    views: ViewsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Load the latest values of rows with START <= event_timestamp < END into the online store.

    Windows may be repeated, overlap or run in any order: a stored value is only replaced by a
    newer one.

    Example:
        featurestore materialize 2026-11-01 2026-11-27T12:00:00Z --views user_stats
    """
    start_at = parse_time(start)
    end_at = parse_time(end)
    if end_at <= start_at:
        msg = f"END ({end}) must be after START ({start})."
        raise typer.BadParameter(msg, param_hint="END")
    store = state_of(ctx).store()
    _require_online_views(store)
    with render.MaterializeProgress() as progress:
        report = store.materialize(
            start_at, end_at, views=split_values(views) or None, progress=progress
        )
    _render_report(report, as_json=as_json)


@keep_examples
def materialize_incremental(
    ctx: typer.Context,
    end: Annotated[
        str | None,
        typer.Argument(
            metavar="END",
            help="Materialize up to this time, ISO 8601 (naive = UTC); default now.",
        ),
    ] = None,
    views: ViewsOption = None,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="Delete the views' online records first and materialize them from the "
            "beginning, as on a first run.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Materialize each view from its watermark (or its first row) up to END.

    A view whose values the online store lost (emptied, restarted without persistence,
    replaced) is rebuilt from the beginning; --rebuild does that on purpose.

    Example:
        featurestore materialize-incremental
    """
    end_at = parse_time(end) if end is not None else None
    store = state_of(ctx).store()
    _require_online_views(store)
    selected = split_values(views) or None
    with render.MaterializeProgress() as progress:
        if rebuild:
            report = store.rebuild_online(selected, end=end_at, progress=progress)
        else:
            report = store.materialize_incremental(end_at, views=selected, progress=progress)
    _render_report(report, as_json=as_json)


def _require_online_views(store: "FeatureStore") -> None:
    """Refuse to run (exit 1) when the registry has no view to materialize, saying why."""
    views = store.refresh().feature_views
    if any(r.view.online for r in views.values()):
        return
    if views:
        msg = (
            f"Nothing to materialize: no applied feature view is online ({', '.join(sorted(views))} "
            "have online=False). Set online=True on the views to serve, then run "
            "'featurestore apply' and materialize again."
        )
    else:
        msg = (
            f"Nothing to materialize: the registry of '{store.repo_root}' holds no feature views. "
            "Run 'featurestore apply' first to register the repo's definitions."
        )
    raise MaterializationError(msg)


def _render_report(report: "MaterializationReport", *, as_json: bool) -> None:
    if as_json:
        render.json_out(render.report_to_dict(report))
    else:
        render.materialization(report)
    for view in report.views:
        if view.rebuilt:
            typer.echo(
                f"Rebuilt '{view.view}' from the beginning: its online records were deleted "
                "first (the online store had lost them, or --rebuild was given).",
                err=True,
            )


def _key_value(text: str, dtype_name: str | None, *, key: str) -> object:
    if dtype_name in ("Int32", "Int64"):
        try:
            return int(text)
        except ValueError:
            msg = f"join key '{key}' is {dtype_name}, but {text!r} is not an integer."
            raise typer.BadParameter(msg, param_hint="--entity") from None
    return text


@keep_examples
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
    full_feature_names: FullFeatureNamesOption = False,
    as_json: JsonOption = False,
) -> None:
    """Read the latest feature values for entity rows from the online store.

    Example:
        featurestore get-online --features fraud_v1 --entity user_id=7,merchant_id=m_00035 --request amount=120.0
    """
    store = state_of(ctx).store()
    snapshot = store.snapshot
    key_types = {
        k: str(t) for r in snapshot.feature_views.values() for k, t in r.key_dtypes.items()
    }
    extra: dict[str, object] = {}
    for text in request or []:
        extra.update(
            {k: request_value(v) for k, v in parse_pairs(text, option="--request").items()}
        )
    rows: list[dict[str, Any]] = []
    for text in entity:
        row: dict[str, Any] = {
            k: _key_value(v, key_types.get(k), key=k)
            for k, v in parse_pairs(text, option="--entity").items()
        }
        rows.append({**row, **extra})
    refs = split_values(features)
    wanted = refs[0] if len(refs) == 1 else refs
    response = store.get_online_features(wanted, rows, full_feature_names=full_feature_names)
    if as_json:
        render.json_out(render.online_to_dict(response))
    else:
        render.online(response)
    never = _never_materialized(store, wanted)
    if never:
        render.info(
            f"Feature view(s) {', '.join(repr(v) for v in never)} were never materialized, so "
            "the online store holds none of their values. Run 'featurestore "
            "materialize-incremental' (or 'featurestore materialize START END') first."
        )
        found = any(s.value != "NOT_FOUND" for column in response.statuses.values() for s in column)
        if not found:
            raise typer.Exit(1)


def _never_materialized(store: "FeatureStore", features: str | list[str]) -> list[str]:
    """The stored views behind ``features`` (through on-demand views) without a watermark."""
    snapshot = store.snapshot
    todo = [ref.view for ref in store.resolve(features)]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        on_demand = snapshot.on_demand_views.get(name)
        if on_demand is not None:
            todo += [ref.view for ref in on_demand.view_inputs] + list(on_demand.upstream)
    return sorted(
        name
        for name in seen
        if name in snapshot.feature_views and snapshot.feature_views[name].watermark is None
    )


# -- validated data (G6, docs/validation.md) ---------------------------------------------------


@keep_examples
def validate(
    ctx: typer.Context,
    view: Annotated[str, typer.Argument(metavar="VIEW", help="A feature view with expectations.")],
    start: Annotated[
        str | None,
        typer.Option(
            "--start", help="Window start, ISO 8601 (naive = UTC); default the first row."
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--end", help="Window end, ISO 8601 (naive = UTC), exclusive; default now."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run VIEW's expectations over the rows materializing [START, END) would write.

    Nothing is written online. Exits 1 when an expectation fails; the run is kept
    ('featurestore validation-result VIEW').

    Example:
        featurestore validate user_stats --start 2026-11-01 --end 2026-11-27
    """
    store = state_of(ctx).store()
    result = store.validate(
        view,
        parse_time(start) if start is not None else None,
        parse_time(end) if end is not None else None,
    )
    if as_json:
        render.json_out(render.validation_to_dict(result, full=False))
    else:
        render.validation_result(result)
    if not result.success:
        raise typer.Exit(1)


@keep_examples
def validation_result(
    ctx: typer.Context,
    view: Annotated[str, typer.Argument(metavar="VIEW", help="A feature view.")],
    as_json: JsonOption = False,
) -> None:
    """Print the latest run of VIEW's expectations (by materialization or validate).

    --json prints it whole, Great Expectations' own validation result included.

    Example:
        featurestore validation-result user_stats
    """
    result = state_of(ctx).store().validation_result(view)
    if result is None:
        msg = (
            f"Feature view '{view}' has no validation result yet: its expectations run when "
            f"it is materialized, or with 'featurestore validate {view}'."
        )
        raise FeatureStoreError(msg)
    if as_json:
        render.json_out(render.validation_to_dict(result, full=True))
    else:
        render.validation_result(result)


@keep_examples
def status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show each feature view's watermark and the number of records in the online store.

    Example:
        featurestore status
    """
    store = state_of(ctx).store()
    statuses = store.online_status()
    checked = {s.name: store.validation_result(s.name) for s in statuses}
    if as_json:
        render.json_out(
            [
                {
                    **render.status_to_dict(s),
                    "problem": s.problem,
                    "validation": render.validation_to_dict(checked[s.name], full=False),
                }
                for s in statuses
            ]
        )
    else:
        render.status(statuses)
        render.validation_summaries([r for r in checked.values() if r is not None])
    for problem in dict.fromkeys(s.problem for s in statuses if s.problem):
        typer.echo(f"Warning: {problem}", err=True)


@keep_examples
def skew_report(
    ctx: typer.Context,
    service: Annotated[
        str, typer.Option("--service", help="A feature service with logging=LoggingConfig(...).")
    ],
    since: Annotated[
        str | None, typer.Option(help="Only requests at or after this time (ISO 8601, UTC).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Only requests before this time (ISO 8601, UTC).")
    ] = None,
    max_mismatch_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Exit 1 above this share of mismatch cells.")
    ] = 0.0,
    html: Annotated[
        Path | None, typer.Option(help="Also write the report as one self-contained HTML page.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Replay the service's feature log through the training path and compare cell by cell.

    Exits 1 when the share of cells classified 'mismatch' is above --max-mismatch-rate, so it
    can gate a deployment (docs/skew.md).

    Example:
        featurestore get-online --features fraud_v1 --entity user_id=7,merchant_id=m_00035 --request amount=120.0
        featurestore skew-report --service fraud_v1 --since 2026-11-01 --html skew.html
    """
    store = state_of(ctx).store()
    report = store.skew_report(
        service,
        since=parse_time(since) if since is not None else None,
        until=parse_time(until) if until is not None else None,
    )
    if html is not None:
        from featurestore.consistency.html import render_html

        html.write_text(render_html(report, max_mismatch_rate=max_mismatch_rate))
    if as_json:
        render.json_out({**report.to_dict(), "passed": report.passes(max_mismatch_rate)})
    else:
        typer.echo(report.to_text(max_mismatch_rate))
    if not report.passes(max_mismatch_rate):
        raise typer.Exit(1)
