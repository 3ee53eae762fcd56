"""What a failed run does (DESIGN G6), and the gate of rows pushed to a view.

A failed run of a view with ``on_failure="block"`` raises
:class:`~featurestore.errors.ValidationError` and its caller writes nothing; with ``"warn"`` it
is logged and the rows are written. Materialization windows and pushed rows go through the same
:func:`enforce`.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from featurestore._time import utc_now
from featurestore.validation.run import validate_table

if TYPE_CHECKING:
    from datetime import datetime

    from featurestore.definitions import FeatureView
    from featurestore.validation.result import ValidationLog, ValidationResult

__all__ = ["check_pushed_rows", "enforce", "rows_time_range"]

logger = logging.getLogger(__name__)


def enforce(result: ValidationResult) -> ValidationResult:
    """``result`` when it passed, or failed on a view that warns (logged as a warning).

    Raises:
        ValidationError: It failed and the view blocks on failure (``on_failure="block"``).
    """
    if not result.success:
        if result.on_failure == "block":
            raise result.error()
        logger.warning(
            "%s (on_failure=warn: written anyway):\n%s",
            result.summary(),
            "\n".join(f"  - {f.describe()}" for f in result.failures),
        )
    return result


def check_pushed_rows(
    view: FeatureView, rows: pa.Table, *, log: ValidationLog | None = None
) -> ValidationResult | None:
    """Run ``view``'s suite on rows pushed to it, before anything is written (DESIGN G6, G8).

    Args:
        view: The feature view the rows are pushed to.
        rows: The pushed rows, columns named as in the view's source: join keys, features and
            the source's timestamp columns (other columns, such as the push log's
            ``push_time``, are not shown to the suite).
        log: Where the run is kept as the view's latest run (``featurestore
            validation-result``); None: not kept.

    Returns:
        None when the view has no expectations (Great Expectations is not imported), else the
        run: passed, or failed on a view with ``on_failure="warn"`` (logged; write the rows).

    Raises:
        ValidationError: The rows failed and the view blocks on failure: write none of them.
            Its ``kind`` is ``"push"``; the message names each failed expectation with its
            unexpected count and sample values.
        MissingDependencyError: The view has expectations and Great Expectations is not
            installed.
    """
    if view.suite_json is None:
        return None
    start, end = rows_time_range(rows, view.source.timestamp_field)
    wanted = [*view.join_keys, *view.feature_names, view.source.timestamp_field]
    if view.source.created_timestamp_field:
        wanted.append(view.source.created_timestamp_field)
    names = set(rows.column_names)
    table = rows.select([c for c in dict.fromkeys(wanted) if c in names])
    result = validate_table(view, table, start=start, end=end, kind="push")
    if log is not None:
        log.save(result)
    return enforce(result)


def rows_time_range(rows: pa.Table, column: str) -> tuple[datetime, datetime]:
    """``[oldest, newest + 1 us)`` of a timestamp column (naive means UTC); now, now without one."""
    if column in rows.column_names and pa.types.is_timestamp(rows.schema.field(column).type):
        bounds = pc.min_max(rows.column(column).cast(pa.timestamp("us", tz="UTC"))).as_py()
        if bounds["min"] is not None:
            return bounds["min"], bounds["max"] + timedelta(microseconds=1)
    now = utc_now()
    return now, now
