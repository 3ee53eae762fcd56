"""The skew report as one self-contained HTML page: tables and inline SVG plots, no network."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from featurestore.consistency.report import CAUSES, format_number

if TYPE_CHECKING:
    from featurestore.consistency.report import SkewReport

__all__ = ["render_html"]

_COLORS = {
    "equal": "#4c9a2a",
    "both_null": "#9bbf85",
    "stale_definition": "#e0a100",
    "not_materialized": "#4a7fc1",
    "mismatch": "#c8302c",
}


def _bars(report: SkewReport) -> str:
    """One horizontal stacked bar per feature: equal, both null, then each cause."""
    width, bar, gap, label = 420, 18, 8, 180
    rows = list(report.features.values())
    height = max(len(rows), 1) * (bar + gap) + 30
    parts = [
        f'<svg id="feature-bars" role="img" width="{label + width + 20}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>Cells per feature</title>'
    ]
    for i, f in enumerate(rows):
        y = i * (bar + gap) + 4
        parts.append(
            f'<text x="0" y="{y + bar - 4}" font-size="12">{html.escape(f.feature)}</text>'
        )
        x = float(label)
        parts_of = [("equal", f.equal), ("both_null", f.both_null)]
        parts_of += [(c, f.causes[c]) for c in CAUSES]
        for name, count in parts_of:
            if not count or not f.cells:
                continue
            w = max(width * count / f.cells, 1.0)
            parts.append(
                f'<rect class="bar {name}" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar}" '
                f'fill="{_COLORS[name]}"><title>{html.escape(f.feature)}: {count:,} '
                f"{name}</title></rect>"
            )
            x += w
    legend_y = height - 8
    x = 0
    for name, color in _COLORS.items():
        parts.append(f'<rect x="{x}" y="{legend_y - 10}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{x + 14}" y="{legend_y}" font-size="11">{name}</text>')
        x += 20 + 7 * len(name)
    parts.append("</svg>")
    return "".join(parts)


def _histogram(report: SkewReport) -> str:
    """The lag of ``not_materialized`` cells, one bar per bucket."""
    counts, labels = report.lag.counts, report.lag.labels()
    top = max(counts) or 1
    bar, gap, plot = 52, 8, 160
    width = len(counts) * (bar + gap)
    parts = [
        f'<svg id="lag-histogram" role="img" width="{width}" height="{plot + 40}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>not_materialized lag</title>'
    ]
    for i, (count, label) in enumerate(zip(counts, labels, strict=True)):
        h = plot * count / top
        x = i * (bar + gap)
        parts.append(
            f'<rect class="bar lag" x="{x}" y="{plot - h:.1f}" width="{bar}" height="{h:.1f}" '
            f'fill="{_COLORS["not_materialized"]}"><title>{html.escape(label)}: {count:,}'
            "</title></rect>"
        )
        parts.append(f'<text x="{x}" y="{plot + 14}" font-size="9">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: SkewReport, *, max_mismatch_rate: float = 0.0) -> str:
    """The whole page: verdict, totals, per-feature bars and table, lag histogram, samples."""
    verdict = "PASS" if report.passes(max_mismatch_rate) else "FAIL"
    causes = report.cause_counts()
    head = ["feature", "cells", "equal", "both null", "null online", "null offline",
            "value diff", "max abs err", "max rel err", *CAUSES]  # fmt: skip
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v))}</td>"
            for v in (
                f.feature,
                f.cells,
                f.equal,
                f.both_null,
                f.null_online_only,
                f.null_offline_only,
                f.value_mismatches,
                format_number(f.max_abs_error),
                format_number(f.max_rel_error),
                *(f.causes[c] for c in CAUSES),
            )
        )
        + "</tr>"
        for f in report.features.values()
    )
    samples = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v))}</td>"
            for v in (
                s.request_time,
                s.request_id,
                s.keys,
                s.feature,
                s.cause,
                s.online_value,
                s.online_status,
                s.online_event_timestamp,
                s.offline_value,
                s.offline_event_timestamp,
            )
        )
        + "</tr>"
        for s in report.samples
    )
    title = f"Skew report: {html.escape(report.service)}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; font-size: 13px; text-align: left; }}
.verdict {{ font-weight: bold; color: {"#4c9a2a" if verdict == "PASS" else "#c8302c"}; }}
</style></head><body>
<h1>{title}</h1>
<p class="verdict" id="verdict">{verdict}: mismatch rate {report.mismatch_rate:.6f}
(threshold {max_mismatch_rate:g})</p>
<p>{report.rows:,} logged rows, {report.cells:,} cells. Differing cells:
{", ".join(f"{c} {causes[c]:,}" for c in CAUSES)}.</p>
<h2>Cells per feature</h2>
{_bars(report)}
<table><thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr></thead><tbody>{body}</tbody>
</table>
<h2>Lag of not_materialized cells (request time - watermark)</h2>
{_histogram(report)}
<p>Never materialized: {report.lag.never_materialized:,}</p>
<h2>First differing cells</h2>
<table><thead><tr><th>request time</th><th>request id</th><th>keys</th><th>feature</th>
<th>cause</th><th>online value</th><th>status</th><th>online event time</th>
<th>offline value</th><th>offline event time</th></tr></thead><tbody>{samples}</tbody></table>
</body></html>
"""
