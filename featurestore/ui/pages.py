"""The catalog pages: the catalog, a view, a service and the freshness overview.

Each function renders one page body from what its route gathered (the registry snapshot,
online counts, validation results); none does I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote

from featurestore.ui.catalog import (
    FeatureInfo,
    feature_infos,
    freshness_of,
    origin_of,
    services_using,
    view_kind,
)
from featurestore.ui.format import badge, duration, freshness_badge, moment
from featurestore.ui.lineage import lineage_of
from featurestore.ui.markup import Markup, join, table, tag

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from featurestore.repo.registry import OnDemandRecord, RegistrySnapshot, ViewRecord
    from featurestore.validation.result import ValidationResult

__all__ = [
    "MAX_LINEAGE_NODES",
    "OnlineFacts",
    "catalog_page",
    "features_page",
    "freshness_page",
    "on_demand_page",
    "service_page",
    "view_page",
]

MAX_LINEAGE_NODES = 300
"""Above this many nodes the catalog leaves the whole-repo graph out (each view's page still
draws its own part): a taller graph is not readable."""


def view_href(base: str, name: str) -> str:
    """The page of a feature view or on-demand view."""
    return f"{base}/views/{quote(name, safe='')}"


def _view_link(base: str, name: str) -> Markup:
    return tag("a", name, href=view_href(base, name))


def _service_link(base: str, name: str) -> Markup:
    return tag("a", name, href=f"{base}/services/{quote(name, safe='')}")


def _tags(tags: Mapping[str, str]) -> Markup:
    return join((tag("span", f"{k}={v}", class_="tag") for k, v in sorted(tags.items())), " ")


def _fingerprint(value: str) -> Markup:
    return tag("code", value[:12], title=value)


def _section(id_: str, title: str, *content: object) -> Markup:
    return tag("section", tag("h2", title), *content, id=id_)


def _facts(pairs: list[tuple[str, object]]) -> Markup:
    """A definition list of label -> value."""
    return tag(
        "dl", join(Markup(f"{tag('dt', k)}{tag('dd', v)}") for k, v in pairs), class_="facts"
    )


# -- catalog ---------------------------------------------------------------------------------


def catalog_page(snapshot: RegistrySnapshot, base: str) -> Markup:
    """Entities, feature views, on-demand views, services, every feature, and the lineage."""
    views_of_entity: dict[str, list[str]] = {}
    for name, record in sorted(snapshot.feature_views.items()):
        for entity in record.view.entities:
            views_of_entity.setdefault(entity.name, []).append(name)
    entities = table(
        ["entity", "join keys", "description", "tags", "feature views"],
        (
            (
                tag("span", name, id=f"entity-{name}"),
                ", ".join(f"{k} ({t})" for k, t in snapshot.entity_key_dtypes(name).items())
                or ", ".join(entity.join_keys),
                entity.description,
                _tags(entity.tags),
                join((_view_link(base, v) for v in views_of_entity.get(name, ())), ", "),
            )
            for name, entity in sorted(snapshot.entities.items())
        ),
        id_="entities-table",
        class_="filterable",
    )
    views = table(
        [
            "feature view",
            "kind",
            "entities",
            "features",
            "ttl",
            "online",
            "watermark",
            "owner",
            "tags",
            "description",
            "fingerprint",
        ],
        (
            (
                _view_link(base, name),
                view_kind(record),
                ", ".join(e.name for e in record.view.entities),
                len(record.view.schema),
                duration(record.view.effective_ttl) if record.view.effective_ttl else "unlimited",
                "yes" if record.view.online else "no",
                moment(record.watermark),
                record.view.owner,
                _tags(record.view.tags),
                record.view.description,
                _fingerprint(record.fingerprint),
            )
            for name, record in sorted(snapshot.feature_views.items())
        ),
        id_="views-table",
        class_="filterable",
    )
    on_demand = table(
        [
            "on-demand view",
            "inputs",
            "request fields",
            "mode",
            "owner",
            "tags",
            "description",
            "fingerprint",
        ],
        (
            (
                _view_link(base, name),
                join(
                    [
                        *(_view_link(base, v) for v in sorted({r.view for r in odfv.view_inputs})),
                        *(_view_link(base, u) for u in odfv.upstream),
                    ],
                    ", ",
                ),
                ", ".join(f"{f.name} ({f.dtype})" for f in odfv.request_fields),
                odfv.mode,
                odfv.owner,
                _tags(odfv.tags),
                odfv.description,
                _fingerprint(odfv.fingerprint),
            )
            for name, odfv in sorted(snapshot.on_demand_views.items())
        ),
        id_="on-demand-table",
        class_="filterable",
    )
    services = table(
        ["service", "features", "views", "logging", "owner", "tags", "description"],
        (
            (
                _service_link(base, name),
                len(service.refs),
                join(
                    (_view_link(base, v) for v in dict.fromkeys(r.view for r in service.refs)),
                    ", ",
                ),
                f"sample rate {service.logging.sample_rate:g}" if service.logging else "off",
                service.owner,
                _tags(service.tags),
                service.description,
            )
            for name, service in sorted(snapshot.feature_services.items())
        ),
        id_="services-table",
        class_="filterable",
    )
    graph = lineage_of(snapshot, base)
    lineage: Markup | str = (
        tag("div", graph.svg(), class_="scroll")
        if len(graph.nodes) <= MAX_LINEAGE_NODES
        else f"{len(graph.nodes)} nodes: too many to draw at once; each view's page draws "
        "its own lineage."
    )
    n_features = sum(len(r.view.schema) for r in snapshot.feature_views.values()) + sum(
        len(r.schema) for r in snapshot.on_demand_views.values()
    )
    counts = (
        f"{len(snapshot.entities)} entities, {len(snapshot.feature_views)} feature views, "
        f"{len(snapshot.on_demand_views)} on-demand views, {len(snapshot.feature_services)} "
        f"services; registry serial {snapshot.serial}, applied {moment(snapshot.applied_at)}."
    )
    filter_box = _filter_box()
    return join(
        [
            tag("h1", f"Catalog of {snapshot.project}"),
            tag("p", counts, id="counts"),
            filter_box,
            _section("entities", "Entities", entities),
            _section("feature-views", "Feature views", views),
            _section("on-demand-views", "On-demand views", on_demand),
            _section("services", "Feature services", services),
            _section(
                "features",
                "Features",
                tag(
                    "p",
                    tag("a", f"All {n_features:,} features", href=f"{base}/features"),
                    ": their types, where each comes from and which services use it.",
                ),
            ),
            _section("lineage", "Lineage", lineage),
        ]
    )


def _filter_box() -> Markup:
    return tag(
        "input",
        type="search",
        id="filter",
        placeholder="Filter the tables (name, owner, tag, text)...",
        aria_label="Filter",
    )


def features_page(snapshot: RegistrySnapshot, base: str) -> Markup:
    """Every feature of every view: type, description, where it comes from, who uses it.

    One small table per view, each in its own section, so the browser lays out only the
    sections on screen (a repo of 500 views has thousands of features).
    """
    by_view: dict[str, list[FeatureInfo]] = {}
    for info in feature_infos(snapshot):
        by_view.setdefault(info.view, []).append(info)
    groups = [
        tag(
            "section",
            tag("h3", _view_link(base, view), " on-demand" if infos[0].on_demand else ""),
            table(
                ["feature", "type", "description", "comes from", "used by"],
                (
                    (
                        tag("a", f"{f.view}:{f.name}", href=f"{view_href(base, view)}#f-{f.name}"),
                        f.dtype,
                        f.description,
                        tag("code", f.origin),
                        ", ".join(f.services) or "-",
                    )
                    for f in infos
                ),
                class_="filterable features",
            ),
            class_="group",
        )
        for view, infos in by_view.items()
    ]
    total = sum(len(v) for v in by_view.values())
    return join(
        [
            tag("h1", "Features"),
            tag("p", f"{total:,} features of {len(by_view):,} views.", id="counts"),
            _filter_box(),
            *groups,
        ]
    )


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
        return _section("validation", "Validation", tag("p", "No expectations."))
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
    return _section("validation", "Validation", *parts)


def _uses(base: str, services: Sequence[str]) -> Markup | str:
    """Service links, each ``svc`` or ``svc via odfv`` (see ``services_using``)."""
    links = []
    for text in services:
        service, _, via = text.partition(" ")
        links.append(join([_service_link(base, service), f" {via}" if via else ""]))
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


def _history(runs: Sequence[ValidationResult]) -> Markup:
    """The validated windows: what featurestore records of a view's materializations."""
    if not runs:
        return _section(
            "history",
            "Materialization history",
            tag(
                "p",
                "featurestore keeps the watermark (above), not a log of runs; the windows of "
                "a view with expectations are listed here once validated.",
                class_="note",
            ),
        )
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
    return _section(
        "history",
        "Materialization history",
        tag("p", f"The last {len(runs)} validated windows, newest first.", class_="note"),
        table(
            ["window start", "window end", "run by", "rows", "verdict", "checked at"],
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
) -> Markup:
    """A feature view: definition, features, freshness, online records, validation, lineage.

    ``runs`` are the view's validated windows, newest first (its materialization history,
    for a view with expectations).
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
    definition = _facts(
        [
            ("kind", view_kind(record)),
            ("description", view.description or "-"),
            ("owner", view.owner or "-"),
            ("tags", _tags(view.tags) or "-"),
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
    freshness = _facts(
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
            _section("definition", "Definition", definition),
            _section("features", "Features", _features_table(snapshot, view.name, origins, base)),
            _section("freshness", "Freshness and online records", freshness),
            validation_section(validation, record),
            _history(runs),
            _section(
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
                _view_link(base, name),
                ", ".join(r.feature for r in record.view_inputs if r.view == name),
                freshness_badge(fresh) if fresh else "-",
                duration(fresh.lag) if fresh else "-",
            )
        )
    rows += [(_view_link(base, u), "all (on-demand view)", "-", "-") for u in record.upstream]
    definition = _facts(
        [
            ("description", record.description or "-"),
            ("owner", record.owner or "-"),
            ("tags", _tags(record.tags) or "-"),
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
            _section("definition", "Definition", definition),
            _section("inputs", "Inputs", table(["view", "features", "state", "lag"], rows)),
            _section("features", "Features", _features_table(snapshot, record.name, origins, base)),
            _section(
                "lineage",
                "Lineage",
                tag("div", graph.svg(highlight=f"view:{record.name}"), class_="scroll"),
            ),
        ]
    )


def service_page(snapshot: RegistrySnapshot, name: str, base: str) -> Markup:
    """A feature service: its features with their origins, logging, lineage."""
    service = snapshot.feature_services[name]
    rows = []
    for ref in service.refs:
        record = snapshot.feature_views.get(ref.view)
        odfv = snapshot.on_demand_views.get(ref.view)
        origin = (
            origin_of(record, ref.feature)
            if record is not None
            else (odfv.function_path if odfv is not None else "-")
        )
        rows.append((_view_link(base, ref.view), ref.feature, tag("code", origin)))
    logging = service.logging
    definition = _facts(
        [
            ("description", service.description or "-"),
            ("owner", service.owner or "-"),
            ("tags", _tags(service.tags) or "-"),
            ("logging", f"sample rate {logging.sample_rate:g}" if logging else "off"),
        ]
    )
    links = join(
        [
            tag("a", "Look up an entity", href=f"{base}/lookup?features={quote(name, safe='')}"),
            *(
                [tag("a", "Skew report", href=f"{base}/skew/report?service={quote(name, safe='')}")]
                if logging
                else []
            ),
        ],
        " \u00b7 ",
    )
    graph = lineage_of(snapshot, base).around(f"service:{name}")
    return join(
        [
            tag("h1", "Feature service ", tag("span", name, class_="name")),
            tag("p", links),
            _section("definition", "Definition", definition),
            _section(
                "features",
                "Features",
                table(["view", "feature", "comes from"], rows, id_="features-table"),
            ),
            _section(
                "lineage",
                "Lineage",
                tag("div", graph.svg(highlight=f"service:{name}"), class_="scroll"),
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
                _view_link(base, f.view),
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
