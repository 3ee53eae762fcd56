"""Human (rich) and ``--json`` output of the CLI; the only place that prints.

Data goes to stdout; progress, status lines and errors go to stderr, so ``--json`` output can
be piped. JSON is plain ``json.dumps`` (no colours, no wrapping): timestamps as RFC 3339 UTC,
durations in seconds. Both consoles print text as written, without rich markup: descriptions,
paths and messages are the user's text, so ``[...]`` in them is not a style tag.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import traceback
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from featurestore.errors import FeatureStoreError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from featurestore.definitions import Entity, FeatureService, Field
    from featurestore.materialization.materializer import MaterializationReport
    from featurestore.materialization.watermarks import ViewStatus
    from featurestore.online.response import OnlineResponse
    from featurestore.repo.registry import (
        Change,
        OnDemandRecord,
        Plan,
        RegistrySnapshot,
        ViewRecord,
    )
    from featurestore.validation.result import ValidationResult

__all__ = [
    "MaterializeProgress",
    "change_to_dict",
    "entity_to_dict",
    "error",
    "json_out",
    "on_demand_to_dict",
    "online",
    "online_to_dict",
    "report_to_dict",
    "service_to_dict",
    "status_to_dict",
    "stderr",
    "stdout",
    "to_jsonable",
    "view_to_dict",
]


_PIPE_WIDTH = 200
"""Width of tables written to a pipe or file (rich's 80 would fold names)."""


def stdout() -> Console:
    """A console on the current ``sys.stdout`` (looked up per call, so test runners work)."""
    console = Console(file=sys.stdout, highlight=False, soft_wrap=True, markup=False)
    if not console.is_terminal:
        console.width = _PIPE_WIDTH
    return console


def stderr() -> Console:
    """A console on the current ``sys.stderr``."""
    return Console(file=sys.stderr, highlight=False, soft_wrap=True, markup=False)


# -- JSON -------------------------------------------------------------------------------------


def to_jsonable(value: object) -> Any:
    """Turn result objects into JSON-ready values (datetimes as RFC 3339 UTC strings)."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def json_out(data: object) -> None:
    """Print ``data`` as indented JSON on stdout."""
    sys.stdout.write(json.dumps(to_jsonable(data), indent=2) + "\n")


def _ttl(ttl: timedelta | None) -> str:
    return "unlimited" if not ttl else str(ttl)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "-"


def entity_to_dict(entity: Entity, snapshot: RegistrySnapshot) -> dict[str, Any]:
    """JSON form of an applied entity, with its key types and the views that use it."""
    return {
        "kind": "entity",
        "name": entity.name,
        "join_keys": {
            k: str(t) if t is not None else None
            for k, t in (
                (k, snapshot.entity_key_dtypes(entity.name).get(k)) for k in entity.join_keys
            )
        },
        "description": entity.description,
        "tags": entity.tags,
        "feature_views": sorted(
            name
            for name, r in snapshot.feature_views.items()
            if any(e.name == entity.name for e in r.view.entities)
        ),
    }


def view_to_dict(record: ViewRecord) -> dict[str, Any]:
    """JSON form of an applied feature view."""
    view = record.view
    return {
        "kind": "feature view",
        "name": view.name,
        "entities": [e.name for e in view.entities],
        "join_keys": {k: str(t) for k, t in record.key_dtypes.items()},
        "features": [
            {"name": f.name, "dtype": str(f.dtype), "description": f.description}
            for f in view.schema
        ],
        "source": {
            "path": view.source.path,
            "timestamp_field": view.source.timestamp_field,
            "created_timestamp_field": view.source.created_timestamp_field,
        },
        "ttl_seconds": view.ttl.total_seconds() if view.ttl else None,
        "online": view.online,
        "description": view.description,
        "owner": view.owner,
        "tags": view.tags,
        "fingerprint": record.fingerprint,
        "watermark": to_jsonable(record.watermark),
    }


def on_demand_to_dict(record: OnDemandRecord) -> dict[str, Any]:
    """JSON form of an applied on-demand feature view."""
    return {
        "kind": "on-demand feature view",
        "name": record.name,
        "features": [
            {"name": f.name, "dtype": str(f.dtype), "description": f.description}
            for f in record.schema
        ],
        "inputs": [str(r) for r in record.view_inputs],
        "request_fields": [{"name": f.name, "dtype": str(f.dtype)} for f in record.request_fields],
        "mode": record.mode,
        "function": record.function_path,
        "description": record.description,
        "owner": record.owner,
        "tags": record.tags,
        "fingerprint": record.fingerprint,
    }


def service_to_dict(service: FeatureService) -> dict[str, Any]:
    """JSON form of an applied feature service."""
    return {
        "kind": "feature service",
        "name": service.name,
        "features": [str(r) for r in service.refs],
        "description": service.description,
        "owner": service.owner,
        "tags": service.tags,
    }


def change_to_dict(change: Change) -> dict[str, Any]:
    """JSON form of one plan line."""
    return {
        "kind": change.kind,
        "name": change.name,
        "action": change.action,
        "details": list(change.details),
        "needs_materialization": change.needs_materialization,
    }


def report_to_dict(report: MaterializationReport) -> dict[str, Any]:
    """JSON form of a materialization report."""
    return {
        "rows": report.rows,
        "seconds": round(report.seconds, 6),
        "views": [
            {
                "view": v.view,
                "start": to_jsonable(v.start),
                "end": to_jsonable(v.end),
                "rows": v.rows,
                "written": v.written,
                "seconds": round(v.seconds, 6),
                "rows_per_second": round(v.rows_per_second, 1),
                "watermark": to_jsonable(v.watermark),
                "rebuilt": v.rebuilt,
            }
            for v in report.views
        ],
    }


def status_to_dict(status: ViewStatus) -> dict[str, Any]:
    """JSON form of one view's online status."""
    return {
        "view": status.name,
        "online": status.online,
        "fingerprint": status.fingerprint,
        "watermark": to_jsonable(status.watermark),
        "records": status.records,
    }


# -- human output -----------------------------------------------------------------------------

_ACTION_STYLE = {
    "add": ("+", "green"),
    "change": ("~", "yellow"),
    "remove": ("-", "red"),
    "unchanged": (" ", "dim"),
}


def plan(result: Plan, *, applied: bool) -> None:
    """Print a plan: additions, changes, removals and views needing re-materialization."""
    out = stdout()
    changes = [c for c in result.changes if c.action != "unchanged"]
    if not changes:
        out.print("No changes: the registry matches the repo.")
        return
    for change in changes:
        sign, style = _ACTION_STYLE[change.action]
        line = Text(f"{sign} {change.kind} {change.name}", style=style)
        if change.needs_materialization:
            line.append("  (needs materialization)", style="bold magenta")
        out.print(line)
        for detail in change.details:
            out.print(f"    {detail}", style=style)
    counts = {a: sum(c.action == a for c in changes) for a in ("add", "change", "remove")}
    summary = f"{counts['add']} to add, {counts['change']} to change, {counts['remove']} to remove"
    stale = [c.name for c in changes if c.needs_materialization]
    out.print()
    out.print(("Applied: " if applied else "Plan: ") + summary + ".")
    if stale:
        verb = "Run" if applied else "After apply, run"
        out.print(
            f"{verb} 'featurestore materialize-incremental' to fill the online store for: "
            + ", ".join(stale)
            + "."
        )
    elif not applied:
        out.print("Run 'featurestore apply' to register these changes.")


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Print a simple table on stdout."""
    grid = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*("-" if v is None else str(v) for v in row))
    stdout().print(grid)


def _details(title: str, pairs: Sequence[tuple[str, object]]) -> None:
    """Print a definition's title and its ``key: value`` lines."""
    out = stdout()
    out.print(Text(title, style="bold"))
    for key, value in pairs:
        out.print(f"  {key + ':':<19}{value}")


def _features(schema: Iterable[Field]) -> None:
    table(
        "Features",
        ["feature", "type", "description"],
        [(f.name, f.dtype, f.description) for f in schema],
    )


def describe_view(record: ViewRecord) -> None:
    """Print one feature view."""
    view = record.view
    pairs: list[tuple[str, object]] = [
        ("description", view.description or "-"),
        ("owner", view.owner or "-"),
        ("entities", ", ".join(e.name for e in view.entities)),
        ("join keys", ", ".join(f"{k} ({t})" for k, t in record.key_dtypes.items())),
        ("source", view.source.path),
        ("event timestamp", view.source.timestamp_field),
        ("created timestamp", view.source.created_timestamp_field or "-"),
        ("ttl", _ttl(view.ttl)),
        ("online", "yes" if view.online else "no"),
        ("fingerprint", record.fingerprint),
        ("watermark", _when(record.watermark)),
    ]
    pairs += [(f"tag {k}", v) for k, v in sorted(view.tags.items())]
    _details(f"Feature view {view.name}", pairs)
    _features(view.schema)


def describe_on_demand(record: OnDemandRecord) -> None:
    """Print one on-demand feature view."""
    pairs: list[tuple[str, object]] = [
        ("description", record.description or "-"),
        ("owner", record.owner or "-"),
        ("function", record.function_path),
        ("mode", record.mode),
        ("inputs", ", ".join(str(r) for r in record.view_inputs) or "-"),
        (
            "request fields",
            ", ".join(f"{f.name} ({f.dtype})" for f in record.request_fields) or "-",
        ),
        ("fingerprint", record.fingerprint),
    ]
    _details(f"On-demand feature view {record.name}", pairs)
    _features(record.schema)


def describe_entity(entity: Entity, snapshot: RegistrySnapshot) -> None:
    """Print one entity."""
    data = entity_to_dict(entity, snapshot)
    keys = ", ".join(f"{k} ({t or 'type unknown'})" for k, t in data["join_keys"].items())
    _details(
        f"Entity {entity.name}",
        [
            ("description", entity.description or "-"),
            ("join keys", keys),
            ("feature views", ", ".join(data["feature_views"]) or "-"),
        ],
    )


def describe_service(service: FeatureService) -> None:
    """Print one feature service."""
    _details(
        f"Feature service {service.name}",
        [("description", service.description or "-"), ("owner", service.owner or "-")],
    )
    out = stdout()
    out.print("  features:")
    for ref in service.refs:
        out.print(f"    {ref}")


def columns(data: Mapping[str, Sequence[object]], *, title: str) -> None:
    """Print column-major data ``{column: [values]}`` as a table, one line per row."""
    names = list(data)
    length = len(data[names[0]]) if names else 0
    table(title, names, ([data[n][i] for n in names] for i in range(length)))


def materialization(report: MaterializationReport) -> None:
    """Print what each view's window wrote."""
    table(
        "Materialized",
        ["view", "window", "rows", "written", "rows/s", "watermark"],
        [
            (
                v.view,
                "up to date" if v.start is None else f"{_when(v.start)} -> {_when(v.end)}",
                f"{v.rows:,}",
                f"{v.written:,}",
                f"{v.rows_per_second:,.0f}",
                _when(v.watermark),
            )
            for v in report.views
        ],
    )
    stdout().print(f"{report.rows:,} rows in {report.seconds:.2f}s.")


def status(statuses: Sequence[ViewStatus]) -> None:
    """Print each view's watermark and stored record count."""
    table(
        "Online store",
        ["view", "online", "watermark", "records", "fingerprint"],
        [
            (
                s.name,
                "yes" if s.online else "no",
                _when(s.watermark),
                f"{s.records:,}",
                s.fingerprint,
            )
            for s in statuses
        ],
    )


def validation_to_dict(result: ValidationResult | None, *, full: bool) -> dict[str, Any] | None:
    """JSON form of a validation run (``full``: with Great Expectations' own result)."""
    if result is None:
        return None
    data = result.to_json()
    if not full:
        del data["gx_result"]
    return data


def validation_summaries(results: Sequence[ValidationResult]) -> None:
    """Print the latest validation run of each view that has one (``status``)."""
    if results:
        table(
            "Validation (latest run)",
            ["view", "window", "result", "rows", "checked"],
            [
                (
                    r.view,
                    r.window,
                    "passed" if r.success else f"FAILED {len(r.failures)}/{r.evaluated}",
                    f"{r.rows:,}",
                    _when(r.checked_at),
                )
                for r in results
            ],
        )


def validation_result(result: ValidationResult) -> None:
    """Print a validation run: its summary, then each failed expectation."""
    out = stdout()
    out.print(result.summary(), markup=False, highlight=False)
    for failure in result.failures:
        out.print(f"  - {failure.describe()}", markup=False, highlight=False)


def online_to_dict(response: OnlineResponse) -> dict[str, Any]:
    """JSON form of an online read: column-major values, statuses and event timestamps."""
    return {
        "values": to_jsonable(response.to_dict()),
        "statuses": {name: [s.value for s in col] for name, col in response.statuses.items()},
        "event_timestamps": to_jsonable(response.event_timestamps),
    }


def online(response: OnlineResponse) -> None:
    """Print an online read: one line per feature, one column per entity row.

    A value that is not PRESENT shows its status, e.g. ``null (OUTSIDE_MAX_AGE)``.
    """
    values = response.to_dict()
    keys = list(response.join_keys)
    headers = [", ".join(f"{k}={values[k][i]}" for k in keys) for i in range(len(response))]
    rows: list[list[object]] = []
    for name in response.features:
        row: list[object] = [name]
        for i in range(len(response)):
            status = response.statuses[name][i].value
            value = "null" if values[name][i] is None else values[name][i]
            row.append(value if status == "PRESENT" else f"{value} ({status})")
        rows.append(row)
    table("Online features", ["feature", *headers], rows)


def error(exc: BaseException, *, debug: bool) -> None:
    """Print a FeatureStoreError for the user: red message, traceback only with ``--debug``."""
    err = stderr()
    if debug:
        err.print("".join(traceback.format_exception(exc)), style="dim")
    message = exc.message("cli") if isinstance(exc, FeatureStoreError) else str(exc)
    err.print(Text(f"Error: {message}", style="bold red"))


def info(message: str) -> None:
    """A status line on stderr (so stdout stays data)."""
    stderr().print(message)


# -- progress ---------------------------------------------------------------------------------


class _RowsPerSecond(ProgressColumn):
    """Throughput of a task, in rows per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rows/s" if speed else "", style="cyan")


class _Rows(ProgressColumn):
    """Rows done (of the total, when known)."""

    def render(self, task: Task) -> Text:
        done = f"{int(task.completed):,}"
        return Text(done if task.total is None else f"{done}/{int(task.total):,} rows")


class MaterializeProgress:
    """A rich progress bar per view, driven by ``progress(view, done, total)`` callbacks.

    Drawn on stderr, only when stderr is a terminal (piped output stays clean).
    """

    def __init__(self, *, description: str = "Materializing") -> None:
        console = stderr()
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            _Rows(),
            _RowsPerSecond(),
            TimeElapsedColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        self._tasks: dict[str, Any] = {}
        self._description = description

    def __call__(self, view: str, done: int, total: int | None) -> None:
        """Record that ``done`` of ``total`` rows of ``view`` are processed."""
        task = self._tasks.get(view)
        if task is None:
            task = self._progress.add_task(f"{self._description} {view}", total=total)
            self._tasks[view] = task
        self._progress.update(task, completed=done, total=total)

    def __enter__(self) -> MaterializeProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()


def spinner(message: str) -> Any:
    """A status spinner on stderr while a long step runs (a no-op when not a terminal)."""
    console = stderr()
    if console.is_terminal:
        return console.status(message)
    return _NoSpinner()


class _NoSpinner:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
