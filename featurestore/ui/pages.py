"""The catalog pages (the catalog, every feature, a service) and the parts every page uses.

Each function renders one page body from the registry snapshot; none does I/O. A view's
page and the freshness overview are in ``view_pages``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from featurestore.ui.catalog import (
    FeatureInfo,
    feature_infos,
    origin_of,
    view_kind,
)
from featurestore.ui.format import duration, moment
from featurestore.ui.lineage import lineage_of
from featurestore.ui.markup import Markup, join, table, tag

if TYPE_CHECKING:
    from collections.abc import Mapping

    from featurestore.repo.registry import RegistrySnapshot

__all__ = [
    "MAX_LINEAGE_NODES",
    "catalog_page",
    "facts",
    "features_page",
    "filter_box",
    "fingerprint_code",
    "section",
    "service_link",
    "service_page",
    "tags_text",
    "view_href",
    "view_link",
]

MAX_LINEAGE_NODES = 300
"""Above this many nodes the catalog leaves the whole-repo graph out (each view's page still
draws its own part): a taller graph is not readable."""


def view_href(base: str, name: str) -> str:
    """The page of a feature view or on-demand view."""
    return f"{base}/views/{quote(name, safe='')}"


def view_link(base: str, name: str) -> Markup:
    """A link to a view's page."""
    return tag("a", name, href=view_href(base, name))


def service_link(base: str, name: str) -> Markup:
    """A link to a service's page."""
    return tag("a", name, href=f"{base}/services/{quote(name, safe='')}")


def tags_text(tags: Mapping[str, str]) -> Markup:
    """Tags as ``key=value`` labels."""
    return join((tag("span", f"{k}={v}", class_="tag") for k, v in sorted(tags.items())), " ")


def fingerprint_code(value: str) -> Markup:
    """A fingerprint's first 12 characters, whole on hover."""
    return tag("code", value[:12], title=value)


def section(id_: str, title: str, *content: object) -> Markup:
    """A titled section of a page."""
    return tag("section", tag("h2", title), *content, id=id_)


def facts(pairs: list[tuple[str, object]]) -> Markup:
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
                tags_text(entity.tags),
                join((view_link(base, v) for v in views_of_entity.get(name, ())), ", "),
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
                view_link(base, name),
                view_kind(record),
                ", ".join(e.name for e in record.view.entities),
                len(record.view.schema),
                duration(record.view.effective_ttl) if record.view.effective_ttl else "unlimited",
                "yes" if record.view.online else "no",
                moment(record.watermark),
                record.view.owner,
                tags_text(record.view.tags),
                record.view.description,
                fingerprint_code(record.fingerprint),
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
                view_link(base, name),
                join(
                    [
                        *(view_link(base, v) for v in sorted({r.view for r in odfv.view_inputs})),
                        *(view_link(base, u) for u in odfv.upstream),
                    ],
                    ", ",
                ),
                ", ".join(f"{f.name} ({f.dtype})" for f in odfv.request_fields),
                odfv.mode,
                odfv.owner,
                tags_text(odfv.tags),
                odfv.description,
                fingerprint_code(odfv.fingerprint),
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
                service_link(base, name),
                len(service.refs),
                join(
                    (view_link(base, v) for v in dict.fromkeys(r.view for r in service.refs)),
                    ", ",
                ),
                f"sample rate {service.logging.sample_rate:g}" if service.logging else "off",
                service.owner,
                tags_text(service.tags),
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
    search = filter_box()
    return join(
        [
            tag("h1", f"Catalog of {snapshot.project}"),
            tag("p", counts, id="counts"),
            search,
            section("entities", "Entities", entities),
            section("feature-views", "Feature views", views),
            section("on-demand-views", "On-demand views", on_demand),
            section("services", "Feature services", services),
            section(
                "features",
                "Features",
                tag(
                    "p",
                    tag("a", f"All {n_features:,} features", href=f"{base}/features"),
                    ": their types, where each comes from and which services use it.",
                ),
            ),
            section("lineage", "Lineage", lineage),
        ]
    )


def filter_box() -> Markup:
    """The search box that filters the page's tables (static/ui.js)."""
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
            tag("h3", view_link(base, view), " on-demand" if infos[0].on_demand else ""),
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
            filter_box(),
            *groups,
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
        rows.append((view_link(base, ref.view), ref.feature, tag("code", origin)))
    logging = service.logging
    definition = facts(
        [
            ("description", service.description or "-"),
            ("owner", service.owner or "-"),
            ("tags", tags_text(service.tags) or "-"),
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
            section("definition", "Definition", definition),
            section(
                "features",
                "Features",
                table(["view", "feature", "comes from"], rows, id_="features-table"),
            ),
            section(
                "lineage",
                "Lineage",
                tag("div", graph.svg(highlight=f"service:{name}"), class_="scroll"),
            ),
        ]
    )
