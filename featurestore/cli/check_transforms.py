"""``featurestore check-transforms``: the apply-time skew check on a larger sample, per feature."""

# No ``from __future__ import annotations`` here: Typer reads the annotations at runtime.

from typing import Annotated

import typer

from featurestore.cli import render
from featurestore.cli._app import JsonOption, keep_examples, state_of

__all__ = ["check_transforms"]


@keep_examples
def check_transforms(
    ctx: typer.Context,
    sample: Annotated[
        int, typer.Option("--sample", min=1, help="Source rows to sample per feature view.")
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the sample and of the request values.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Check that every on-demand view is row-wise (same output alone as in a batch).

    Runs each view on sampled real source rows plus random request values, once on the whole
    sample and once per row, and reports per feature how many rows differ. Exits 1 when a view
    is not row-wise: it would give different values in training frames and online.

    Example:
        featurestore check-transforms --sample 2000
    """
    reports = state_of(ctx).store().check_transforms(rows=sample, seed=seed)
    rows = [
        {
            "view": name,
            "feature": feature,
            "rows": report.rows,
            "mismatches": count,
            "ok": count == 0,
            "example": list(report.example[feature]) if feature in report.example else None,
        }
        for name, report in reports.items()
        for feature, count in report.mismatches.items()
    ]
    if as_json:
        render.json_out(rows)
    else:
        render.table(
            "On-demand feature views: row-wise check",
            ["view", "feature", "rows", "mismatches", "result"],
            [
                (r["view"], r["feature"], r["rows"], r["mismatches"], "ok" if r["ok"] else "SKEW")
                for r in rows
            ],
        )
        for report in reports.values():
            if not report.ok:
                render.info(report.explain())
    if not all(report.ok for report in reports.values()):
        raise typer.Exit(1)
