"""``featurestore import-feast``: turn a Feast repo into a featurestore repo, and verify it."""

# No ``from __future__ import annotations`` here: Typer reads the annotations at runtime.

from pathlib import Path
from typing import Annotated, Any

import typer

from featurestore.cli import render
from featurestore.cli._app import JsonOption, keep_examples
from featurestore.errors import ConfigError

__all__ = ["import_feast"]


@keep_examples
def import_feast(
    feast_repo: Annotated[
        Path,
        typer.Argument(
            metavar="FEAST_REPO",
            exists=True,
            file_okay=False,
            help="The Feast repo: the folder holding feature_store.yaml.",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            metavar="NEW_REPO",
            file_okay=False,
            help="The featurestore repo to write (a new folder), or, with --verify, the "
            "repo an earlier import wrote.",
        ),
    ],
    verify: Annotated[
        Path | None,
        typer.Option(
            "--verify",
            metavar="ENTITY_FILE",
            exists=True,
            dir_okay=False,
            help="Instead of importing: apply NEW_REPO, build each service's training frame "
            "for these entity rows (.parquet or .csv with event_timestamp) with Feast and "
            "with featurestore, and report the differences per feature.",
        ),
    ] = None,
    feast_python: Annotated[
        Path,
        typer.Option(
            "--feast-python",
            metavar="PYTHON",
            help="With --verify: the python of an environment where Feast is installed.",
        ),
    ] = Path(".feast-venv/bin/python"),
    service: Annotated[
        list[str] | None,
        typer.Option(
            "--service",
            "-s",
            metavar="NAME",
            help="With --verify: a service to compare (repeat); default: every service.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Write a featurestore repo from a Feast repo, or verify one against Feast.

    Feast's Python files are read, not run (Feast need not be installed). What cannot be
    carried over is listed with the reason and a fix; everything else is written.
    With --verify, exit code 1 means a difference no known Feast behaviour explains.

    Example:
        featurestore import-feast feast_project/feature_repo --out imported_repo
        featurestore --repo imported_repo apply
    """
    if verify is None:
        _import(feast_repo, out, as_json=as_json)
        return
    if not (out / "featurestore.yaml").is_file():
        msg = (
            f"'{out}' holds no featurestore repo to verify; import first with "
            f"'featurestore import-feast {feast_repo} --out {out}'."
        )
        raise ConfigError(msg)
    _verify(feast_repo, out, verify, feast_python, service or [], as_json=as_json)


def _import(feast_repo: Path, out: Path, *, as_json: bool) -> None:
    from featurestore.feast_import.parse import parse_feast_repo
    from featurestore.feast_import.write import write_repo

    result = write_repo(parse_feast_repo(feast_repo), out)
    problems = [
        {"what": p.what, "reason": p.reason, "suggestion": p.suggestion} for p in result.problems
    ]
    if as_json:
        render.json_out(
            {
                "out": str(out),
                "files": result.files,
                "written": result.counts,
                "not_carried_over": problems,
            }
        )
        return
    console = render.stdout()
    written = ", ".join(f"{kind}: {n}" for kind, n in result.counts.items())
    console.print(f"Wrote {out}: {', '.join(result.files)} ({written}).")
    if problems:
        console.print(f"\nNot carried over, or not exactly ({len(problems)}):")
        for p in problems:
            console.print(f"  - {p['what']}: {p['reason']}. Fix: {p['suggestion']}.", markup=False)
    console.print(f"\nNext: featurestore --repo {out} apply")


def _verify(
    feast_repo: Path,
    out: Path,
    entity_file: Path,
    feast_python: Path,
    services: list[str],
    *,
    as_json: bool,
) -> None:
    from featurestore.feast_import.verify import CAUSES, verify_import
    from featurestore.store import FeatureStore

    store = FeatureStore(out)
    store.apply()
    with render.spinner("Building training frames with Feast and with featurestore..."):
        report = verify_import(
            store, feast_repo, entity_file, feast_python=feast_python.absolute(), services=services
        )
    data: dict[str, Any] = render.to_jsonable(report)
    data["unexplained"] = report.unexplained
    if as_json:
        render.json_out(data)
    else:
        console = render.stdout()
        seen: set[str] = set()
        for s in report.services:
            console.print(
                f"Service {s.service}: {s.rows} rows (Feast returned {s.feast_rows}).",
                markup=False,
            )
            for cause, n in s.missing_in_feast.items():
                seen.add(cause)
                console.print(f"  {n} rows missing in Feast's frame: {cause}", markup=False)
            rows = [
                (
                    f.column,
                    f.cells,
                    f.equal,
                    f.both_null,
                    ", ".join(f"{k} {v}" for k, v in f.differences.items()) or "-",
                )
                for f in s.features
            ]
            seen.update(k for f in s.features for k in f.differences)
            render.table(s.service, ["feature", "cells", "equal", "both null", "differences"], rows)
        for cause in sorted(seen):
            console.print(f"{cause}: {CAUSES[cause]}", markup=False)
        console.print(
            f"Feast took {report.feast_s:.1f} s, featurestore {report.featurestore_s:.1f} s. "
            f"Unexplained differences: {report.unexplained}.",
            markup=False,
        )
    if report.unexplained:
        raise typer.Exit(1)
