"""The lineage graph, source -> feature view -> on-demand view -> service, as inline SVG.

Rendered on the server: four columns of boxes (sources and request fields, feature views,
on-demand views, services), each box a link to its page, edges as curves. Within a column,
nodes are ordered by the mean position of their inputs (one barycentre pass), which keeps
most edges from crossing without a layout engine.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote

from featurestore.ui.markup import Markup, escape

if TYPE_CHECKING:
    from featurestore.repo.registry import RegistrySnapshot

__all__ = ["Lineage", "lineage_of"]

_COLUMNS = ("source", "view", "on_demand", "service")
_BOX_W, _BOX_H, _COL_GAP, _ROW_GAP, _LABEL = 190, 24, 70, 10, 26


@dataclass
class Lineage:
    """Nodes (id -> column, label, link) and directed edges of a repo's lineage."""

    nodes: dict[str, tuple[str, str, str | None]] = field(default_factory=dict)
    edges: set[tuple[str, str]] = field(default_factory=set)

    def around(self, node: str) -> Lineage:
        """The part of the graph upstream and downstream of ``node`` (itself included)."""
        up: dict[str, set[str]] = defaultdict(set)
        down: dict[str, set[str]] = defaultdict(set)
        for a, b in self.edges:
            down[a].add(b)
            up[b].add(a)
        keep = {node}
        for links in (up, down):
            todo = [node]
            while todo:
                for nxt in links[todo.pop()]:
                    if nxt not in keep:
                        keep.add(nxt)
                        todo.append(nxt)
        return Lineage(
            nodes={k: v for k, v in self.nodes.items() if k in keep},
            edges={(a, b) for a, b in self.edges if a in keep and b in keep},
        )

    def svg(self, *, highlight: str | None = None) -> Markup:
        """The graph as one ``<svg>`` element (``highlight``: a node id drawn emphasized)."""
        inputs: dict[str, list[str]] = defaultdict(list)
        for a, b in sorted(self.edges):
            inputs[b].append(a)
        position: dict[str, float] = {}
        columns: list[list[str]] = []
        for column in _COLUMNS:
            ids = sorted(n for n, (c, _, _) in self.nodes.items() if c == column)
            # Inputs in an earlier column place a node; within a column (on-demand chains) too.
            ids.sort(
                key=lambda n: (
                    sum(position.get(i, 0.0) for i in inputs[n]) / max(len(inputs[n]), 1),
                    n,
                )
            )
            for row, node in enumerate(ids):
                position[node] = float(row)
            columns.append(ids)
        rows = max((len(c) for c in columns), default=0)
        width = len(_COLUMNS) * (_BOX_W + _COL_GAP) - _COL_GAP + 2
        height = _LABEL + rows * (_BOX_H + _ROW_GAP) + 2
        where: dict[str, tuple[float, float]] = {}
        for index, ids in enumerate(columns):
            for row, node in enumerate(ids):
                where[node] = (1 + index * (_BOX_W + _COL_GAP), _LABEL + row * (_BOX_H + _ROW_GAP))
        parts = [
            f'<svg class="lineage" role="img" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
            "<title>Lineage: source, feature view, on-demand view, service</title>"
        ]
        titles = ("sources", "feature views", "on-demand views", "services")
        for index, title in enumerate(titles):
            left = 1 + index * (_BOX_W + _COL_GAP)
            parts.append(f'<text class="column" x="{left}" y="14">{title}</text>')
        for a, b in sorted(self.edges):
            parts.append(_edge(where[a], where[b]))
        for node, (column, label, href) in sorted(self.nodes.items()):
            x, y = where[node]
            short = label if len(label) <= 26 else label[:25] + "\u2026"
            cls = f"node {column}" + (" focus" if node == highlight else "")
            box = (
                f'<g class="{cls}"><title>{escape(label)}</title>'
                f'<rect x="{x:.0f}" y="{y:.0f}" width="{_BOX_W}" height="{_BOX_H}" rx="4"/>'
                f'<text x="{x + 8:.0f}" y="{y + 16:.0f}">{escape(short)}</text></g>'
            )
            parts.append(f'<a href="{escape(href)}">{box}</a>' if href else box)
        parts.append("</svg>")
        return Markup("".join(parts))


def _edge(start: tuple[float, float], end: tuple[float, float]) -> str:
    """One edge as a path from the right side of ``start``'s box to the left of ``end``'s.

    An edge that skips a column (a view read by a service directly, request fields of an
    on-demand view) crosses the skipped columns in the gap under its source's row, so it
    never runs behind a box; an edge within a column (an on-demand view reading another)
    loops on the right.
    """
    (xa, ya), (xb, yb) = start, end
    step = _BOX_W + _COL_GAP
    y1, y2 = ya + _BOX_H / 2, yb + _BOX_H / 2
    x1 = xa + _BOX_W
    if xa == xb:
        bend = x1 + _COL_GAP / 2
        x2 = xb + _BOX_W
        return (
            f'<path class="edge" d="M{x1:.0f},{y1:.0f} C{bend:.0f},{y1:.0f} '
            f'{bend:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"/>'
        )
    if xb - xa <= step + 1:
        bend = (x1 + xb) / 2
        return (
            f'<path class="edge" d="M{x1:.0f},{y1:.0f} C{bend:.0f},{y1:.0f} '
            f'{bend:.0f},{y2:.0f} {xb:.0f},{y2:.0f}"/>'
        )
    gap_y = ya + _BOX_H + _ROW_GAP / 2
    cross_in, cross_out = xa + step, xb - _COL_GAP
    bend_in, bend_out = (x1 + cross_in) / 2, (cross_out + xb) / 2
    return (
        f'<path class="edge" d="M{x1:.0f},{y1:.0f} C{bend_in:.0f},{y1:.0f} '
        f"{bend_in:.0f},{gap_y:.0f} {cross_in:.0f},{gap_y:.0f} L{cross_out:.0f},{gap_y:.0f} "
        f'C{bend_out:.0f},{gap_y:.0f} {bend_out:.0f},{y2:.0f} {xb:.0f},{y2:.0f}"/>'
    )


def lineage_of(snapshot: RegistrySnapshot, base: str) -> Lineage:
    """The whole lineage of ``snapshot``; links are below the UI root ``base``."""
    graph = Lineage()

    def view_link(name: str) -> str:
        return f"{base}/views/{quote(name, safe='')}"

    for name, record in snapshot.feature_views.items():
        source = f"source:{record.view.source.path}"
        graph.nodes[source] = ("source", record.view.source.path, None)
        graph.nodes[f"view:{name}"] = ("view", name, view_link(name))
        graph.edges.add((source, f"view:{name}"))
    for name, odfv in snapshot.on_demand_views.items():
        node = f"view:{name}"
        graph.nodes[node] = ("on_demand", name, view_link(name))
        for ref in odfv.view_inputs:
            graph.edges.add((f"view:{ref.view}", node))
        for upstream in odfv.upstream:
            graph.edges.add((f"view:{upstream}", node))
        if odfv.request_fields:
            request = f"request:{name}"
            fields = ", ".join(f.name for f in odfv.request_fields)
            graph.nodes[request] = ("source", f"request: {fields}", None)
            graph.edges.add((request, node))
    for name, service in snapshot.feature_services.items():
        node = f"service:{name}"
        graph.nodes[node] = ("service", name, f"{base}/services/{quote(name, safe='')}")
        for view in {ref.view for ref in service.refs}:
            graph.edges.add((f"view:{view}", node))
    graph.edges = {(a, b) for a, b in graph.edges if a in graph.nodes and b in graph.nodes}
    return graph
