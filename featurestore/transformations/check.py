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

    def explain(self) -> str:
        """A message for the user naming the features and why they are refused."""
        bad = [name for name, n in self.mismatches.items() if n]
        details = "; ".join(
            f"'{name}': {self.mismatches[name]} of {self.rows} rows differ "
            f"(batch {self.example[name][0]!r} vs alone {self.example[name][1]!r})"
            for name in bad
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


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return bool(a == b)


def check_row_independence(view: Transformation, sample: pl.DataFrame) -> RowIndependenceReport:
    """Run ``view`` on ``sample`` whole and on each row alone, and compare.

    Args:
        view: The on-demand feature view, or a feature view's batch transform.
        sample: Input rows (its input columns), e.g. real source rows plus request values.
    """
    batch = run_transformation(view, sample)
    mismatches = dict.fromkeys(view.feature_names, 0)
    example: dict[str, tuple[Any, Any]] = {}
    batch_rows = batch.rows(named=True)
    for index in range(sample.height):
        alone = run_transformation(view, sample.slice(index, 1)).row(0, named=True)
        for name in view.feature_names:
            if not _same(batch_rows[index][name], alone[name]):
                mismatches[name] += 1
                example.setdefault(name, (batch_rows[index][name], alone[name]))
    return RowIndependenceReport(view.name, sample.height, mismatches, example, kind=view.kind)
