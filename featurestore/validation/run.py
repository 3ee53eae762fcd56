"""Runs a feature view's suite with Great Expectations on the rows of one window.

GE's pandas engine runs it, on the columns the suite names. GE's SQL engine was measured
against it on windows of 10k, 100k and 1M rows (benchmarks/bench_validation.py,
benchmarks/README.md "Validation"): on 1M rows GE's SQL check alone is faster (about 1.0 s on
SQLite or PostgreSQL against 1.5 s), but a window's rows are computed by DuckDB, where GE's SQL
engine does not work (duckdb-engine returns no rows to GE), and loading them into SQLite or
PostgreSQL first costs 3.2-3.7 s; with the load, pandas is faster at every size measured (1.5 s
against 4.2 s on SQLite and 4.7 s on PostgreSQL at 1M rows, 0.24 s against 0.6-0.7 s at 100k,
0.06 s against 0.07-0.08 s at 10k). So every window, large or small, takes this path.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from featurestore._time import utc_now
from featurestore.frames import arrow_to_pandas
from featurestore.validation.gx import context, suite_from_json
from featurestore.validation.result import (
    SAMPLE_VALUES,
    ExpectationFailure,
    RunKind,
    ValidationResult,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    import pyarrow as pa

    from featurestore.definitions import FeatureView

__all__ = ["columns_named", "validate_table"]

logger = logging.getLogger(__name__)

_DATASOURCE = "featurestore"
_COLUMN_ARGS = ("column", "column_A", "column_B", "column_list", "column_set")
"""The arguments by which an expectation names the columns it is about."""
_lock = threading.Lock()
"""GE's context and its datasource registry are not safe to use from several threads."""


def validate_table(
    view: FeatureView,
    table: pa.Table,
    *,
    start: datetime,
    end: datetime,
    kind: RunKind,
    suite_json: str | None = None,
) -> ValidationResult:
    """Run ``view``'s suite on ``table`` (its join keys, features and timestamp columns).

    ``suite_json`` replaces the view's suite (a training frame runs the part of it about the
    columns it has).

    Raises:
        MissingDependencyError: Great Expectations is not installed.
    """
    suite_json = suite_json or view.suite_json
    if suite_json is None:
        msg = f"Feature view '{view.name}' has no expectations to run."
        raise ValueError(msg)
    suite = suite_from_json(view.name, suite_json)
    began = time.perf_counter()
    # Only the columns the suite names are converted (all of them when an expectation is
    # about the whole table); nullable dtypes keep an integer column with nulls exact for GE.
    named = [
        columns_named(item.get("kwargs", {})) for item in json.loads(suite_json)["expectations"]
    ]
    if all(named):
        wanted = {c for columns in named for c in columns}
        table = table.select([c for c in table.column_names if c in wanted])
    frame = arrow_to_pandas(table, what=f"validating feature view '{view.name}'")
    with _lock:
        ctx = context()
        try:
            source = ctx.data_sources.get(_DATASOURCE)
        except (KeyError, ValueError):
            source = ctx.data_sources.add_pandas(_DATASOURCE)
        try:
            asset = source.get_asset(view.name)
        except LookupError:
            asset = source.add_dataframe_asset(view.name)
        definition = asset.add_batch_definition_whole_dataframe(f"{view.name}-{id(frame)}")
        try:
            batch = definition.get_batch(batch_parameters={"dataframe": frame})
            outcome = batch.validate(
                suite,
                result_format={
                    "result_format": "SUMMARY",
                    "partial_unexpected_count": SAMPLE_VALUES,
                },
            )
        finally:
            asset.delete_batch_definition(definition.name)
    # GE's JSON may still hold numpy scalars (observed values): made plain JSON values here.
    result: dict[str, Any] = json.loads(json.dumps(outcome.to_json_dict(), default=_plain))
    failures = tuple(_failure(r) for r in result["results"] if not r["success"])
    logger.info(
        "validated %d rows of %s in %.2f s: %d of %d expectations failed",
        table.num_rows,
        view.name,
        time.perf_counter() - began,
        len(failures),
        len(result["results"]),
    )
    return ValidationResult(
        view=view.name,
        start=start,
        end=end,
        kind=kind,
        on_failure=view.on_failure,
        checked_at=utc_now(),
        rows=table.num_rows,
        success=bool(result["success"]),
        evaluated=len(result["results"]),
        failures=failures,
        gx_result=result,
    )


def columns_named(kwargs: Mapping[str, Any]) -> list[str]:
    """The columns an expectation's arguments name (none: it is about the whole table)."""
    named: list[str] = []
    for arg in _COLUMN_ARGS:
        value = kwargs.get(arg)
        if isinstance(value, str):
            named.append(value)
        elif isinstance(value, list | tuple):
            named += [str(v) for v in value]
    return named


def _failure(item: dict[str, Any]) -> ExpectationFailure:
    config = item["expectation_config"]
    kwargs = {k: v for k, v in config["kwargs"].items() if k != "batch_id"}
    info = item.get("result") or {}
    exception = item.get("exception_info") or {}
    return ExpectationFailure(
        expectation=config["type"],
        kwargs=kwargs,
        unexpected_count=info.get("unexpected_count"),
        element_count=info.get("element_count"),
        sample=tuple(info.get("partial_unexpected_list") or ())[:SAMPLE_VALUES],
        observed=info.get("observed_value"),
        error=exception.get("exception_message") if exception.get("raised_exception") else None,
    )


def _plain(value: object) -> object:
    """A JSON value for what ``json`` cannot encode: numpy scalars, timestamps, the rest as text."""
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if callable(isoformat) else str(value)
