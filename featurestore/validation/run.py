"""Runs a feature view's suite with Great Expectations on the rows of one window.

GE's pandas engine runs it. Measured on 1M rows x 10 features with a 5-expectation suite
(benchmarks/README.md, "Validation"): GE's SQL engine checks faster once the rows sit in a
database it supports, but the window's rows come from DuckDB, where GE's SQL engine does not
work (duckdb-engine 0.17), and loading them into SQLite first costs about four times what
the check saves. So every window, large or small, takes this path.
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
    from datetime import datetime

    import pyarrow as pa

    from featurestore.definitions import FeatureView

__all__ = ["validate_table"]

logger = logging.getLogger(__name__)

_DATASOURCE = "featurestore"
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
    # Nullable dtypes: an integer column with nulls stays exact (not float64) for GE.
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
