"""Runs a feature view's suite with Great Expectations on the rows of one window.

GE runs it with its pandas engine on small windows and with its SQL engine on DuckDB over the
window's Arrow rows (:mod:`featurestore.validation.duckdb_sql`, nothing loaded) on large ones,
from :data:`SQL_MIN_ROWS` rows on, when GE's SQL engine answers every expectation of the suite
as pandas does (``duckdb_sql.SQL_EXPECTATIONS``). Measured by benchmarks/bench_validation.py
with a 5-expectation suite (benchmarks/README.md, "Validation"; 2 cores, load 1.3): pandas
0.14 s against 0.22 s at 100k rows, SQL on DuckDB 0.22 s against 0.31 s at 300k and 0.26 s
against 0.95 s at 1M; GE's SQL engine costs about 0.2 s per run whatever the size (many small
queries), pandas grows with the rows. GE's SQL engine on SQLite or PostgreSQL needs the rows
loaded first, which costs more than either path (3.0 s and 3.4 s at 1M, load included).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Literal

from featurestore._time import utc_now
from featurestore.errors import MissingDependencyError
from featurestore.frames import arrow_to_pandas
from featurestore.validation.gx import EXTRA, context, suite_from_json
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

__all__ = ["SQL_MIN_ROWS", "Engine", "columns_named", "validate_table"]

logger = logging.getLogger(__name__)

_DATASOURCE = "featurestore"
SQL_MIN_ROWS = 200_000
"""Windows of at least this many rows run on GE's SQL engine (on DuckDB), smaller ones on its
pandas engine: the crossover measured by benchmarks/bench_validation.py (module doc)."""
Engine = Literal["pandas", "sql"]
_PANDAS_ONLY: set[str] = set()
"""Suites (their JSON) GE's SQL engine could not run whole: large windows use pandas for them."""
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
    engine: Engine | None = None,
) -> ValidationResult:
    """Run ``view``'s suite on ``table`` (its join keys, features and timestamp columns).

    ``suite_json`` replaces the view's suite (a training frame runs the part of it about the
    columns it has). ``engine`` picks GE's engine; by default the window's size does
    (:data:`SQL_MIN_ROWS`).

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
    chosen = engine is None
    if engine is None:
        large = table.num_rows >= SQL_MIN_ROWS
        engine = "sql" if large and _sql_can_run(suite_json) else "pandas"
    with _lock:
        ctx = context()
        run = _run_sql if engine == "sql" else _run_pandas
        result = _as_json(run(ctx, view.name, table, suite))
        if chosen and engine == "sql" and any(_error(r) for r in result["results"]):
            # An expectation GE's SQL engine could not run on these rows: the verdict must
            # not depend on the window's size, so pandas runs the suite.
            _PANDAS_ONLY.add(suite_json)
            logger.info("GE's SQL engine cannot run all of %s's suite: pandas runs it", view.name)
            engine = "pandas"
            result = _as_json(_run_pandas(ctx, view.name, table, suite))
    failures = tuple(_failure(r) for r in result["results"] if not r["success"])
    logger.info(
        "validated %d rows of %s (GE's %s engine) in %.2f s: %d of %d expectations failed",
        table.num_rows,
        view.name,
        engine,
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


_RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_VALUES}


def _run_pandas(ctx: Any, name: str, table: pa.Table, suite: Any) -> Any:
    """GE's validation result of ``suite`` on ``table`` by its pandas engine."""
    # Nullable dtypes: an integer column with nulls stays exact (not float64) for GE.
    frame = arrow_to_pandas(table, what=f"validating feature view '{name}'")
    try:
        source = ctx.data_sources.get(_DATASOURCE)
    except (KeyError, ValueError):
        source = ctx.data_sources.add_pandas(_DATASOURCE)
    try:
        asset = source.get_asset(name)
    except LookupError:
        asset = source.add_dataframe_asset(name)
    definition = asset.add_batch_definition_whole_dataframe(f"{name}-{id(frame)}")
    try:
        batch = definition.get_batch(batch_parameters={"dataframe": frame})
        return batch.validate(suite, result_format=_RESULT_FORMAT)
    finally:
        asset.delete_batch_definition(definition.name)


def _run_sql(ctx: Any, name: str, table: pa.Table, suite: Any) -> Any:
    """GE's validation result of ``suite`` on ``table`` by its SQL engine, on DuckDB.

    Raises:
        MissingDependencyError: duckdb-engine (part of the ``validation`` extra) is missing.
    """
    try:
        from featurestore.validation.duckdb_sql import duckdb_batch
    except ImportError as exc:
        feature = f"Checking windows of {SQL_MIN_ROWS:,} rows or more with Great Expectations"
        raise MissingDependencyError(feature=feature, extra=EXTRA) from exc

    with duckdb_batch(ctx, table) as batch:
        return batch.validate(suite, result_format=_RESULT_FORMAT)


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


def _sql_can_run(suite_json: str) -> bool:
    """Whether GE's SQL engine on DuckDB gives this suite's results as its pandas engine does."""
    if suite_json in _PANDAS_ONLY:
        return False
    try:
        from featurestore.validation.duckdb_sql import SQL_EXPECTATIONS
    except ImportError:
        return True  # _run_sql names the missing extra
    return all(e["type"] in SQL_EXPECTATIONS for e in json.loads(suite_json)["expectations"])


def _as_json(outcome: Any) -> dict[str, Any]:
    """GE's validation result as plain JSON (it may still hold numpy scalars)."""
    result: dict[str, Any] = json.loads(json.dumps(outcome.to_json_dict(), default=_plain))
    return result


def _error(item: dict[str, Any]) -> str | None:
    """The message of the exception an expectation raised, or None.

    GE keeps it in ``exception_info`` itself, or per metric when a metric failed.
    """
    info = item.get("exception_info") or {}
    for entry in (info, *(v for v in info.values() if isinstance(v, dict))):
        if entry.get("raised_exception"):
            return str(entry.get("exception_message"))
    return None


def _failure(item: dict[str, Any]) -> ExpectationFailure:
    config = item["expectation_config"]
    kwargs = {k: v for k, v in config["kwargs"].items() if k != "batch_id"}
    info = item.get("result") or {}
    return ExpectationFailure(
        expectation=config["type"],
        kwargs=kwargs,
        unexpected_count=info.get("unexpected_count"),
        element_count=info.get("element_count"),
        sample=tuple(info.get("partial_unexpected_list") or ())[:SAMPLE_VALUES],
        observed=info.get("observed_value"),
        error=_error(item),
    )


def _plain(value: object) -> object:
    """A JSON value for what ``json`` cannot encode: numpy scalars, timestamps, the rest as text."""
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if callable(isoformat) else str(value)
