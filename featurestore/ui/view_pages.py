"""A view's page (a feature view or an on-demand view) and the freshness overview.

Each function renders one page body from what its route gathered (the registry snapshot,
online counts, validation results); none does I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from featurestore.ui.catalog import freshness_of, origin_of, services_using, view_kind
from featurestore.ui.format import badge, duration, freshness_badge, moment
from featurestore.ui.lineage import lineage_of
from featurestore.ui.markup import Markup, join, table, tag
from featurestore.ui.pages import (
    facts,
    section,
    service_link,
    tags_text,
    view_link,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from featurestore.materialization.history import MaterializationRun
    from featurestore.repo.registry import OnDemandRecord, RegistrySnapshot, ViewRecord
    from featurestore.validation.result import ValidationResult

__all__ = ["OnlineFacts", "freshness_page", "on_demand_page", "validation_section", "view_page"]


# -- a view ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OnlineFacts:
    """What the online store says about a view (None fields: it could not be asked)."""

    records: int | None
    problem: str | None
    """Why its values cannot be served (the store lost them), or None."""
    error: str | None = None
    """Why the store could not be asked, or None."""


def _suite_rows(suite_json: str | None) -> list[tuple[str, str]]:
    if suite_json is None:
        return []
    suite = json.loads(suite_json)
    return [
        (
            str(e.get("type", e.get("expectation_type", "?"))),
            ", ".join(f"{k}={v}" for k, v in sorted(e.get("kwargs", {}).items())),
        )
        for e in suite.get("expectations", [])
    ]


def validation_section(result: ValidationResult | None, record: ViewRecord) -> Markup:
    """The view's expectations and the last run of them (materialization or validate)."""
    expectations = _suite_rows(record.view.suite_json)
    if not expectations and result is None:
        return section("validation", "Validation", tag("p", "No expectations."))
    parts: list[object] = []
    if expectations:
        parts.append(table(["expectation", "arguments"], expectations, id_="expectations"))
    if result is None:
        parts.append(tag("p", "Never run: expectations run at materialization or validate."))
    else:
        verdict = (
            badge("passed", "ok")
            if result.success
            else badge(f"FAILED {len(result.failures)}", "bad")
        )
        parts.append(tag("p", "Last run: ", verdict, " ", result.summary(), id="last-validation"))
        if result.failures:
            parts.append(
                table(
                    ["failed expectation"],
                    [[f.describe()] for f in result.failures],
                    id_="validation-failures",
                )
            )
    return section("validation", "Validation", *parts)


def _uses(base: str, services: Sequence[str]) -> Markup | str:
    """Service links, each ``svc`` or ``svc via odfv`` (see ``services_using``)."""
    links = []
    for text in services:
        service, _, via = text.partition(" ")
        links.append(join([service_link(base, service), f" {via}" if via else ""]))
    return join(links, ", ") or "-"


def _features_table(
    snapshot: RegistrySnapshot, name: str, origins: Mapping[str, str], base: str
) -> Markup:
    used = services_using(snapshot)
    fields = (
        snapshot.feature_views[name].view.schema
        if name in snapshot.feature_views
        else snapshot.on_demand_views[name].schema
    )
    return table(
        ["feature", "type", "description", "comes from", "used by"],
        (
            (
                tag("span", f.name, id=f"f-{f.name}"),
                str(f.dtype),
                f.description,
                tag("code", origins[f.name]),
                _uses(base, used.get((name, f.name), ())),
            )
            for f in fields
        ),
        id_="features-table",
    )


def _last(count: int, what: str) -> str:
    """The note above a list of windows, newest first."""
    if count == 1:
        return f"The one {what} window so far."
    return f"The last {count} {what} windows, newest first."


def _validated(runs: Sequence[ValidationResult]) -> Markup:
    """The view's validated windows (a view with expectations), newest first."""
    if not runs:
        return join([])
    rows = [
        (
            moment(r.start),
            moment(r.end),
            r.kind,
            f"{r.rows:,}",
            badge("passed", "ok") if r.success else badge(f"failed {len(r.failures)}", "bad"),
            moment(r.checked_at),
        )
        for r in runs
    ]
    return section(
        "validated",
        "Validated windows",
        tag("p", _last(len(runs), "validated"), class_="note"),
        table(
            ["window start", "window end", "run by", "rows", "verdict", "checked at"],
            rows,
            id_="validated-table",
        ),
    )


def _history(runs: Sequence[MaterializationRun]) -> Markup:
    """The view's finished materialization windows, newest first."""
    if not runs:
        return section(
            "history",
            "Materialization history",
            tag("p", "No window has been materialized from this repo.", class_="note"),
        )
    rows = [
        (
            moment(r.start),
            moment(r.end),
            f"{r.rows:,}",
            f"{r.written:,}",
            f"{r.seconds:.2f} s",
            "yes" if r.rebuilt else "",
            moment(r.finished_at),
        )
        for r in runs
    ]
    return section(
        "history",
        "Materialization history",
        tag("p", _last(len(runs), "materialized"), class_="note"),
        table(
            ["window start", "window end", "rows read", "written", "took", "rebuilt", "finished"],
            rows,
            id_="history-table",
        ),
    )


def view_page(
    snapshot: RegistrySnapshot,
    record: ViewRecord,
    base: str,
    *,
    now: datetime,
    online: OnlineFacts,
    validation: ValidationResult | None,
    runs: Sequence[ValidationResult] = (),
    history: Sequence[MaterializationRun] = (),
) -> Markup:
    """A feature view: definition, features, freshness, online records, validation, lineage.

    ``runs`` are the view's validated windows and ``history`` its materialized windows, both
    newest first.
    """
    view = record.view
    fresh = freshness_of(record, now)
    flags: list[Markup] = [freshness_badge(fresh)]
    if validation is not None and not validation.success:
        flags.append(badge("validation failed", "bad"))
    if online.problem is not None:
        flags.append(badge("online values lost", "bad"))
    keys = ", ".join(f"{k} ({t})" for k, t in record.key_dtypes.items())
    source = view.source
    definition = facts(
        [
            ("kind", view_kind(record)),
            ("description", view.description or "-"),
            ("owner", view.owner or "-"),
            ("tags", tags_text(view.tags) or "-"),
            ("entities", ", ".join(e.name for e in view.entities)),
            ("join keys", keys),
            ("source", tag("code", source.path)),
            ("event timestamp", source.timestamp_field),
            ("created timestamp", source.created_timestamp_field or "-"),
            ("ttl", duration(view.effective_ttl) if view.effective_ttl else "unlimited"),
            ("online", "yes" if view.online else "no (offline only)"),
            ("fingerprint", tag("code", record.fingerprint)),
            *(
                [("batch transform", tag("code", record.transform.function_path))]
                if record.transform
                else []
            ),
            *(
                [("tile size (hop)", duration(timedelta(microseconds=view.hop_us)))]
                if view.aggregations
                else []
            ),
            *([("on failed validation", view.on_failure)] if view.suite_json else []),
        ]
    )
    records = "-" if online.records is None else f"{online.records:,}"
    freshness = facts(
        [
            ("state", freshness_badge(fresh)),
            ("watermark", tag("span", moment(fresh.watermark), id="watermark")),
            ("lag behind now", tag("span", duration(fresh.lag), id="lag")),
            ("stale after", duration(fresh.limit) if fresh.limit else "never (unlimited ttl)"),
            ("online records", tag("span", records, id="records")),
            *([("problem", tag("span", online.problem, class_="bad"))] if online.problem else []),
            *([("online store", tag("span", online.error, class_="bad"))] if online.error else []),
        ]
    )
    origins = {f.name: origin_of(record, f.name) for f in view.schema}
    graph = lineage_of(snapshot, base).around(f"view:{view.name}")
    return join(
        [
            tag(
                "h1", "Feature view ", tag("span", view.name, class_="name"), " ", join(flags, " ")
            ),
            section("definition", "Definition", definition),
            section("features", "Features", _features_table(snapshot, view.name, origins, base)),
            section("freshness", "Freshness and online records", freshness),
            validation_section(validation, record),
            _history(history),
            _validated(runs),
            section(
                "lineage",
                "Lineage",
                tag("div", graph.svg(highlight=f"view:{view.name}"), class_="scroll"),
            ),
        ]
    )


def on_demand_page(
    snapshot: RegistrySnapshot, record: OnDemandRecord, base: str, *, now: datetime
) -> Markup:
    """An on-demand view: its function, inputs (with their freshness), features, lineage."""
    inputs = sorted({r.view for r in record.view_inputs})
    rows = []
    for name in inputs:
        upstream = snapshot.feature_views.get(name)
        fresh = freshness_of(upstream, now) if upstream is not None else None
        rows.append(
            (
                view_link(base, name),
                ", ".join(r.feature for r in record.view_inputs if r.view == name),
                freshness_badge(fresh) if fresh else "-",
                duration(fresh.lag) if fresh else "-",
            )
        )
    rows += [(view_link(base, u), "all (on-demand view)", "-", "-") for u in record.upstream]
    definition = facts(
        [
            ("description", record.description or "-"),
            ("owner", record.owner or "-"),
            ("tags", tags_text(record.tags) or "-"),
            ("function", tag("code", record.function_path)),
            ("mode", record.mode),
            (
                "request fields",
                ", ".join(f"{f.name} ({f.dtype})" for f in record.request_fields) or "-",
            ),
            ("fingerprint", tag("code", record.fingerprint)),
        ]
    )
    origin = f"{record.function_path}"
    origins = {f.name: origin for f in record.schema}
    graph = lineage_of(snapshot, base).around(f"view:{record.name}")
    return join(
        [
            tag("h1", "On-demand view ", tag("span", record.name, class_="name")),
            section("definition", "Definition", definition),
            section("inputs", "Inputs", table(["view", "features", "state", "lag"], rows)),
            section("features", "Features", _features_table(snapshot, record.name, origins, base)),
            section(
                "lineage",
                "Lineage",
                tag("div", graph.svg(highlight=f"view:{record.name}"), class_="scroll"),
            ),
        ]
    )


# -- freshness -------------------------------------------------------------------------------


def freshness_page(
    snapshot: RegistrySnapshot,
    base: str,
    *,
    now: datetime,
    validations: Mapping[str, ValidationResult | None],
    lost: Mapping[str, str],
    online_error: str | None,
) -> Markup:
    """Every feature view by lag, most behind first (never materialized at the top)."""
    rows = [freshness_of(record, now) for record in snapshot.feature_views.values()]
    order = {"never materialized": 0, "stale": 1, "fresh": 1, "offline only": 2}
    rows.sort(key=lambda f: (order[f.state], -(f.lag.total_seconds() if f.lag else 0.0), f.view))
    cells = []
    classes: list[str | None] = []
    for f in rows:
        result = validations.get(f.view)
        checked: object = "-"
        if result is not None:
            checked = badge("passed", "ok") if result.success else badge("failed", "bad")
        problem = lost.get(f.view)
        flagged = (
            f.state in ("stale", "never materialized")
            or problem
            or (result is not None and not result.success)
        )
        classes.append("flagged" if flagged else None)
        cells.append(
            (
                view_link(base, f.view),
                join([freshness_badge(f), *([badge("lost", "bad")] if problem else [])], " "),
                moment(f.watermark),
                duration(f.lag),
                duration(f.limit) if f.limit else "unlimited",
                checked,
            )
        )
    states = [f.state for f in rows]
    failed = sum(1 for r in validations.values() if r is not None and not r.success)
    summary = (
        f"{states.count('fresh')} fresh, {states.count('stale')} stale, "
        f"{states.count('never materialized')} never materialized, {failed} failed "
        f"validation, {len(lost)} lost by the online store (as of {moment(now)})."
    )
    parts: list[object] = [tag("h1", "Freshness"), tag("p", summary, id="summary")]
    if online_error:
        parts.append(tag("p", f"The online store could not be asked: {online_error}", class_="bad"))
    parts.append(
        table(
            [
                "feature view",
                "state",
                "watermark",
                "lag behind now",
                "stale after",
                "last validation",
            ],
            cells,
            id_="freshness-table",
            row_classes=classes,
        )
    )
    parts.append(
        tag(
            "p",
            "A view is stale when its lag passes its ttl (an aggregation view without one: "
            "its longest window): every stored value is then too old to serve.",
            class_="note",
        )
    )
    return join(parts)
