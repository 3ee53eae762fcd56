"""Skew-proofing: a transformation must give each row the same output alone as in a batch.

A function whose output for a row depends on other rows (a column mean, a rank, a shift) gives
different values in a training frame (many rows) than in serving (one request's rows), so
``apply`` refuses it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from featurestore.transformations.run import run_transformation

if TYPE_CHECKING:
    import polars as pl

    from featurestore.transformations.run import Transformation

__all__ = ["RowIndependenceReport", "check_row_independence"]


@dataclass(frozen=True)
class RowIndependenceReport:
    """How many sample rows came out differently alone than in the whole batch, per feature."""

    view: str
    rows: int
    mismatches: dict[str, int]
    example: dict[str, tuple[Any, Any]]
    """Feature -> (value in the batch, value alone) for the first mismatching row."""
    kind: str = "On-demand feature view"
    """How the message names the transformation (``run.Transformation.kind``)."""

    @property
    def ok(self) -> bool:
        """True when every feature of every row was the same alone and in the batch."""
        return not any(self.mismatches.values())

    @property
    def rounding_only(self) -> bool:
        """Whether every example mismatch is a floating-point rounding difference."""
        examples = [self.example[n] for n, count in self.mismatches.items() if count]
        return bool(examples) and all(_close(a, b, 1e-9) for a, b in examples)

    def explain(self) -> str:
        """A message for the user naming the features and why they are refused."""
        bad = [name for name, n in self.mismatches.items() if n]
        details = "; ".join(
            f"'{name}': {self.mismatches[name]} of {self.rows} rows differ "
            f"(batch {self.example[name][0]!r} vs alone {self.example[name][1]!r})"
            for name in bad
        )
        if self.rounding_only:
            return (
                f"{self.kind} '{self.view}' is not row-wise: {details}. The differences are "
                "floating-point rounding: polars computes some expressions differently on one "
                "row than on many (e.g. division by a constant is a multiplication by its "
                "inverse on many rows), so a training frame and a one-entity online request "
                "would differ in the last digits. Rewrite the expression (e.g. divide by a "
                "column, or round the result)."
            )
        if self.kind != "On-demand feature view":
            return (
                f"{self.kind} '{self.view}' is not row-wise: {details}. Its output for a row "
                "depends on the other rows (a column mean, a rank, a shift...), so a value "
                "would depend on how the source is batched and on rows from other times "
                "(leaking later data into training frames), and training and materialization "
                "could disagree. Compute such aggregates upstream, into the source's columns."
            )
        return (
            f"On-demand feature view '{self.view}' is not row-wise: {details}. Its output for a "
            "row depends on the other rows (a column mean, a rank, a shift...), so a training "
            "frame and an online request would get different values. Compute such aggregates "
            "in a feature view's source instead."
        )


def _close(a: Any, b: Any, rel_tol: float) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        return a == b or math.isclose(a, b, rel_tol=rel_tol, abs_tol=0.0)
    return bool(a == b)


def check_row_independence(
    view: Transformation, sample: pl.DataFrame, *, rel_tol: float = 0.0
) -> RowIndependenceReport:
    """Run ``view`` on ``sample`` whole and on each row alone, and compare.

    Args:
        view: The on-demand feature view, or a feature view's batch transform.
        rel_tol: Relative tolerance for floats (0: exact, as on-demand views need, since
            training and serving compute them separately). Batch transforms pass a tiny one:
            both paths read one transformed copy, so only cross-row dependence matters, not
            rounding that depends on the batch length.
        sample: Input rows (its input columns), e.g. real source rows plus request values.
    """
    batch = run_transformation(view, sample)
    mismatches = dict.fromkeys(view.feature_names, 0)
    example: dict[str, tuple[Any, Any]] = {}
    batch_rows = batch.rows(named=True)
    for index in range(sample.height):
        alone = run_transformation(view, sample.slice(index, 1)).row(0, named=True)
        for name in view.feature_names:
            if not _close(batch_rows[index][name], alone[name], rel_tol):
                mismatches[name] += 1
                example.setdefault(name, (batch_rows[index][name], alone[name]))
    return RowIndependenceReport(view.name, sample.height, mismatches, example, kind=view.kind)
