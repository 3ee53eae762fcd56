"""A training frame's feature columns checked against their views' suites (DESIGN G6).

``get_training_frame(..., validate=True)`` runs, for each view of the frame that has
expectations, the expectations about columns the frame holds as that view's features, on those
columns renamed back to the feature names the suite uses (``full_feature_names=True`` prefixes
them). An expectation about anything else (a join key, a timestamp, a feature not requested,
the whole table) is not run and is listed in :attr:`FrameValidation.skipped`, with why.

A training frame holds a null where no source row matched an entity row (outside the ttl, or
no row yet), so a not-null expectation counts those rows: the model would see the nulls too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from featurestore.validation.gate import rows_time_range
from featurestore.validation.run import columns_named, validate_table

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import pyarrow as pa

    from featurestore.definitions import FeatureRef, FeatureView
    from featurestore.errors import ValidationError
    from featurestore.validation.result import ExpectationFailure, ValidationResult

__all__ = ["FrameValidation", "check_training_frame", "validate_frame"]


@dataclass(frozen=True, slots=True)
class FrameValidation:
    """The check of a training frame's feature columns, per view (``TrainingFrame.validation``).

    Example:
        >>> frame = store.get_training_frame(entity_df, "fraud_v1", validate=True)  # doctest: +SKIP
        >>> frame.validation.success, frame.validation.results["user_stats"].failures  # doctest: +SKIP
    """

    results: Mapping[str, ValidationResult]
    """Per view with expectations about the frame's columns: GE's run over them (``kind`` is
    ``"training_frame"``; ``failures`` have unexpected counts and sample values, ``gx_result``
    is GE's own result)."""
    columns: Mapping[str, Mapping[str, str]]
    """Per view checked: each feature the suite names -> its column in the frame."""
    skipped: Mapping[str, tuple[str, ...]]
    """Per view: the expectations not run, each with why (its column is not in the frame)."""

    @property
    def success(self) -> bool:
        """Every expectation run passed (True when none ran)."""
        return all(r.success for r in self.results.values())

    @property
    def failures(self) -> tuple[tuple[str, ExpectationFailure], ...]:
        """Every failed expectation, as ``(view, failure)``."""
        return tuple((view, f) for view, r in self.results.items() for f in r.failures)

    def error(self) -> ValidationError | None:
        """The error of the first view (by name) that failed, or None when all passed."""
        failed = sorted(v for v, r in self.results.items() if not r.success)
        return self.results[failed[0]].error() if failed else None

    def summary(self) -> str:
        """Per view: its verdict, then each failure and each expectation not run."""
        lines: list[str] = []
        for view in sorted({*self.results, *self.skipped}):
            result = self.results.get(view)
            if result is not None:
                lines.append(result.summary())
                renamed = {f: c for f, c in self.columns[view].items() if f != c}
                if renamed:
                    shown = ", ".join(f"{f} as {c}" for f, c in sorted(renamed.items()))
                    lines.append(f"  frame columns: {shown}")
                lines += [f"  - {f.describe()}" for f in result.failures]
            lines += [f"  not run: {s}" for s in self.skipped.get(view, ())]
        return "\n".join(lines) or "no view of the frame has expectations"

    def to_json(self) -> dict[str, Any]:
        """The check as JSON: per view its run (as in ``featurestore validation-result``)."""
        return {
            "success": self.success,
            "results": {v: r.to_json() for v, r in self.results.items()},
            "columns": {v: dict(c) for v, c in self.columns.items()},
            "skipped": {v: list(s) for v, s in self.skipped.items()},
        }


def validate_frame(
    table: pa.Table,
    views: Sequence[tuple[FeatureView, Mapping[str, str]]],
    *,
    timestamp_column: str,
) -> FrameValidation:
    """Check ``table``'s feature columns against their views' suites (see the module doc).

    Args:
        table: The training frame's rows.
        views: Each view of the frame with its requested features: feature name -> column.
        timestamp_column: The entity frame's timestamp column (the runs' window is its range).

    Raises:
        MissingDependencyError: A view has expectations and Great Expectations is not
            installed.
        DefinitionError: Great Expectations cannot read a view's suite.
    """
    start, end = rows_time_range(table, timestamp_column)
    results: dict[str, ValidationResult] = {}
    columns: dict[str, dict[str, str]] = {}
    skipped: dict[str, tuple[str, ...]] = {}
    for view, features in views:
        if view.suite_json is None:
            continue
        suite = json.loads(view.suite_json)
        runnable: list[dict[str, Any]] = []
        reasons: list[str] = []
        for item in suite["expectations"]:
            kwargs = item.get("kwargs", {})
            named = columns_named(kwargs)
            absent = [c for c in named if c not in features]
            shown = f"{item['type']}({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
            if not named:
                reasons.append(f"{shown}: about the whole table, not a feature column")
            elif absent:
                missing = ", ".join(repr(c) for c in absent)
                reasons.append(f"{shown}: {missing} is not a feature of the frame")
            else:
                runnable.append(item)
        if reasons:
            skipped[view.name] = tuple(reasons)
        if not runnable:
            continue
        used = list(dict.fromkeys(c for item in runnable for c in columns_named(item["kwargs"])))
        columns[view.name] = {f: features[f] for f in used}
        rows = table.select([features[f] for f in used]).rename_columns(used)
        results[view.name] = validate_table(
            view,
            rows,
            start=start,
            end=end,
            kind="training_frame",
            suite_json=json.dumps({**suite, "expectations": runnable}, sort_keys=True),
        )
    return FrameValidation(results=results, columns=columns, skipped=skipped)


class _Frame(Protocol):
    """A training frame, as :func:`check_training_frame` uses it."""

    def to_arrow(self) -> pa.Table: ...
    def hold(self, table: pa.Table, validation: FrameValidation) -> None: ...


def check_training_frame(
    frame: _Frame,
    columns: Mapping[FeatureRef, str],
    views: Mapping[str, FeatureView],
    *,
    timestamp_column: str,
    raise_on_failure: bool,
) -> None:
    """Compute ``frame`` once, check it, and make it hold those rows and the check.

    Args:
        frame: A training frame (``TrainingFrame`` or ``OnDemandTrainingFrame``).
        columns: Each requested feature -> its output column.
        views: The applied feature views by name (on-demand features have no expectations).
        timestamp_column: The entity frame's timestamp column.
        raise_on_failure: Raise instead of holding a frame that failed.

    Raises:
        ValidationError: An expectation failed and ``raise_on_failure`` is set (``kind`` is
            ``"training_frame"``; it names the first failing view).
        MissingDependencyError: Great Expectations is not installed.
    """
    by_view: dict[str, dict[str, str]] = {}
    for ref, column in columns.items():
        if ref.view in views:
            by_view.setdefault(ref.view, {})[ref.feature] = column
    table = frame.to_arrow()
    checked = validate_frame(
        table,
        [(views[name], features) for name, features in by_view.items()],
        timestamp_column=timestamp_column,
    )
    error = checked.error()
    if raise_on_failure and error is not None:
        raise error
    frame.hold(table, checked)
