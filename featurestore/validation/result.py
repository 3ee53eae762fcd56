"""The summary of one validation run, and the per-view, per-window log of runs on disk.

A run's file holds the summary and GE's own validation result (its JSON), so nothing is lost
in the summary. Files live in ``validation/<view>/`` beside the registry, one per window
(``<start>--<end>.json``, a rerun of the window replaces it) plus ``latest.json``; each is
written atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from featurestore.errors import ValidationError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["ExpectationFailure", "RunKind", "ValidationLog", "ValidationResult"]

RunKind = Literal["materialization", "validate", "push", "training_frame"]
"""What ran the suite: the materialization gate, ``featurestore validate``, the gate of pushed
rows, or ``get_training_frame(..., validate=True)``."""

SAMPLE_VALUES = 5
"""Unexpected values kept (and shown) per failed expectation."""


@dataclass(frozen=True, slots=True)
class ExpectationFailure:
    """One failed expectation: what it checks, how many rows broke it, a few of their values."""

    expectation: str
    kwargs: dict[str, Any]
    unexpected_count: int | None
    """Rows that broke it (None for an expectation about a whole column, such as a mean)."""
    element_count: int | None
    sample: tuple[Any, ...] = ()
    observed: Any = None
    """GE's observed value, for expectations about a whole column."""
    error: str | None = None
    """GE's exception message when the expectation could not run."""

    def describe(self) -> str:
        """One line: ``expect_x(column=amount, min_value=0): 1 of 10 rows unexpected, e.g. [-5]``."""
        return " ".join(self._text().split())  # GE's messages and values may hold newlines

    def _text(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.kwargs.items())
        head = f"{self.expectation}({args})"
        if self.error is not None:
            return f"{head}: could not run ({self.error})"
        if self.unexpected_count is not None:
            of = f" of {self.element_count}" if self.element_count is not None else ""
            sample = f", e.g. {list(self.sample)}" if self.sample else ""
            return f"{head}: {self.unexpected_count}{of} rows unexpected{sample}"
        return f"{head}: observed {self.observed!r}"


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """One run of a view's suite over one window's rows."""

    view: str
    start: datetime
    end: datetime
    kind: RunKind
    on_failure: str
    checked_at: datetime
    rows: int
    success: bool
    evaluated: int
    """Expectations run."""
    failures: tuple[ExpectationFailure, ...] = ()
    gx_result: dict[str, Any] = field(default_factory=dict, repr=False)
    """GE's ``ExpectationSuiteValidationResult`` as its JSON."""

    @property
    def window(self) -> str:
        """``[start, end)`` in ISO 8601."""
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"

    def summary(self) -> str:
        """One line: passed or failed, on how many rows, of how many expectations."""
        verdict = "passed" if self.success else f"FAILED {len(self.failures)}"
        return (
            f"{self.view} {self.window}: {verdict} of {self.evaluated} expectations on "
            f"{self.rows} rows ({self.kind}, on_failure={self.on_failure}, checked "
            f"{self.checked_at.isoformat()})"
        )

    def error(self) -> ValidationError:
        """The error a failed run raises (it names the view, the window and each failure)."""
        kind: Literal["window", "push", "training_frame"]
        kind = self.kind if self.kind in ("push", "training_frame") else "window"
        return ValidationError(
            view=self.view,
            window=self.window,
            failures=[f.describe() for f in self.failures],
            result=self,
            kind=kind,
        )

    def to_json(self) -> dict[str, Any]:
        """The run as JSON (what the log file holds)."""
        return {
            "view": self.view,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "kind": self.kind,
            "on_failure": self.on_failure,
            "checked_at": self.checked_at.isoformat(),
            "rows": self.rows,
            "success": self.success,
            "evaluated": self.evaluated,
            "failures": [
                {
                    "expectation": f.expectation,
                    "kwargs": f.kwargs,
                    "unexpected_count": f.unexpected_count,
                    "element_count": f.element_count,
                    "sample": list(f.sample),
                    "observed": f.observed,
                    "error": f.error,
                }
                for f in self.failures
            ],
            "gx_result": self.gx_result,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ValidationResult:
        """A run back from :meth:`to_json`."""
        return cls(
            view=data["view"],
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
            kind=data["kind"],
            on_failure=data["on_failure"],
            checked_at=datetime.fromisoformat(data["checked_at"]),
            rows=data["rows"],
            success=data["success"],
            evaluated=data["evaluated"],
            failures=tuple(
                ExpectationFailure(
                    expectation=f["expectation"],
                    kwargs=f["kwargs"],
                    unexpected_count=f["unexpected_count"],
                    element_count=f["element_count"],
                    sample=tuple(f["sample"]),
                    observed=f["observed"],
                    error=f["error"],
                )
                for f in data["failures"]
            ),
            gx_result=data["gx_result"],
        )


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S%fZ")


class ValidationLog:
    """The validation runs of a project, per view and window, under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, view: str, start: datetime, end: datetime) -> Path:
        """The file of ``view``'s run over ``[start, end)``."""
        return self.root / view / f"{_stamp(start)}--{_stamp(end)}.json"

    def save(self, result: ValidationResult) -> Path:
        """Keep ``result`` as the view's latest run, and as its window's file.

        A run over pushed rows is kept as the latest run only: its window is its rows' time
        range, and a file per push would pile up.
        """
        text = json.dumps(result.to_json(), indent=1, default=str)
        latest = self.root / result.view / "latest.json"
        target = (
            latest if result.kind == "push" else self.path(result.view, result.start, result.end)
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        for path in dict.fromkeys((target, latest)):
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".run-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                Path(tmp).replace(path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return target

    def latest(self, view: str) -> ValidationResult | None:
        """``view``'s latest run, or None when its suite never ran."""
        return self._read(self.root / view / "latest.json")

    def get(self, view: str, start: datetime, end: datetime) -> ValidationResult | None:
        """``view``'s run over ``[start, end)``, or None."""
        return self._read(self.path(view, start, end))

    def _read(self, path: Path) -> ValidationResult | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return ValidationResult.from_json(data)
