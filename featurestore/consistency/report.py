"""SkewReport: what a replay of the feature log found (DESIGN G5), as figures, text and JSON.

Each logged cell (one feature of one logged entity row) is compared with the training value
for the same keys at the same request time. A cell is ``equal`` (same value), ``both_null``,
or it differs: ``null_online_only``, ``null_offline_only`` or ``value_mismatches``. Each
differing cell gets one cause:

* ``stale_definition``: the value was served under another definition of a view it comes from
  (the logged fingerprint is not the applied one, or the read said ``STALE_DEFINITION``);
* ``not_materialized``: the training value's row has ``event_timestamp >=`` the watermark the
  serving registry had logged: it was not online yet (freshness lag);
* ``mismatch``: anything else, a real inconsistency.

The mismatch rate, which gates a deployment, is ``mismatch`` cells over all cells.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

__all__ = [
    "CAUSES",
    "LAG_BUCKETS_S",
    "Cause",
    "FeatureSkew",
    "LagHistogram",
    "SkewReport",
    "SkewSample",
    "format_number",
]

Cause = Literal["stale_definition", "not_materialized", "mismatch"]
CAUSES: Final[tuple[Cause, ...]] = ("stale_definition", "not_materialized", "mismatch")

LAG_BUCKETS_S: Final = (1, 10, 60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400)
"""Upper bounds (seconds, inclusive) of the lag histogram; a last bucket holds the rest."""


@dataclass
class FeatureSkew:
    """The comparison of one feature over every logged row."""

    feature: str
    cells: int = 0
    equal: int = 0
    both_null: int = 0
    null_online_only: int = 0
    null_offline_only: int = 0
    value_mismatches: int = 0
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    causes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CAUSES, 0))

    @property
    def differing(self) -> int:
        """Cells whose served value is not the training value."""
        return self.null_online_only + self.null_offline_only + self.value_mismatches

    def add_error(self, abs_error: float | None, rel_error: float | None) -> None:
        """Keep the largest absolute and relative errors."""
        if abs_error is not None and not math.isnan(abs_error):
            self.max_abs_error = max(self.max_abs_error or 0.0, abs_error)
        if rel_error is not None and not math.isnan(rel_error):
            self.max_rel_error = max(self.max_rel_error or 0.0, rel_error)


@dataclass
class LagHistogram:
    """How far behind the online store was for ``not_materialized`` cells.

    The lag of a cell is its request time minus the logged watermark of the view that was
    behind: how old the view's online values were when they were served.
    """

    counts: list[int] = field(default_factory=lambda: [0] * (len(LAG_BUCKETS_S) + 1))
    never_materialized: int = 0
    """Cells of a view that had no watermark at all."""
    max_s: float | None = None

    def add(self, lags_s: Sequence[float] | np.ndarray) -> None:
        """Count lags (seconds) into the buckets (vectorised: a replay adds millions)."""
        import numpy as np

        lags = np.asarray(lags_s, dtype=np.float64)
        if not lags.size:
            return
        # searchsorted "left" is bisect_left: a lag equal to a bound falls in its bucket.
        buckets = np.searchsorted(LAG_BUCKETS_S, lags, side="left")
        for i, n in enumerate(np.bincount(buckets, minlength=len(self.counts)).tolist()):
            self.counts[i] += n
        top = float(lags.max())
        self.max_s = top if self.max_s is None else max(self.max_s, top)

    def labels(self) -> list[str]:
        """A label per bucket: ``<= 1 s``, ..., ``> 7 d``."""
        names = [f"<= {_duration(b)}" for b in LAG_BUCKETS_S]
        return [*names, f"> {_duration(LAG_BUCKETS_S[-1])}"]


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"


@dataclass(frozen=True)
class SkewSample:
    """One differing cell, with what a user needs to find its cause."""

    request_id: str
    request_time: datetime
    keys: dict[str, Any]
    feature: str
    cause: Cause
    online_value: Any
    offline_value: Any
    online_status: str
    online_event_timestamp: datetime | None
    """The event timestamp of the served record."""
    offline_event_timestamp: datetime | None = None
    """The event timestamp of the training row (the newest one, for an on-demand feature
    that reads several views)."""


@dataclass
class SkewReport:
    """The replay of one service's feature log (see the module docstring)."""

    service: str
    since: datetime | None
    until: datetime | None
    rows: int = 0
    """Logged entity rows replayed."""
    files: int = 0
    features: dict[str, FeatureSkew] = field(default_factory=dict)
    lag: LagHistogram = field(default_factory=LagHistogram)
    samples: list[SkewSample] = field(default_factory=list)
    skipped_features: list[str] = field(default_factory=list)
    """Logged features no longer in the service (not compared)."""

    @property
    def cells(self) -> int:
        """Cells compared, over every feature."""
        return sum(f.cells for f in self.features.values())

    def cause_counts(self) -> dict[str, int]:
        """Differing cells per cause, over every feature."""
        return {c: sum(f.causes[c] for f in self.features.values()) for c in CAUSES}

    @property
    def mismatch_rate(self) -> float:
        """Cells classified ``mismatch`` over all cells (0 for an empty report)."""
        cells = self.cells
        return self.cause_counts()["mismatch"] / cells if cells else 0.0

    def passes(self, max_mismatch_rate: float = 0.0) -> bool:
        """Whether the mismatch rate is at most ``max_mismatch_rate``."""
        return self.mismatch_rate <= max_mismatch_rate

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (timestamps as RFC 3339 strings)."""
        return {
            "service": self.service,
            "since": _iso(self.since),
            "until": _iso(self.until),
            "rows": self.rows,
            "files": self.files,
            "cells": self.cells,
            "mismatch_rate": self.mismatch_rate,
            "causes": self.cause_counts(),
            "features": [{**asdict(f), "differing": f.differing} for f in self.features.values()],
            "not_materialized_lag": {
                "buckets": [
                    {"le_seconds": b, "label": label, "count": n}
                    for b, label, n in zip(
                        [*LAG_BUCKETS_S, None], self.lag.labels(), self.lag.counts, strict=True
                    )
                ],
                "never_materialized": self.lag.never_materialized,
                "max_seconds": self.lag.max_s,
            },
            "samples": [
                {
                    **asdict(s),
                    "request_time": _iso(s.request_time),
                    "online_event_timestamp": _iso(s.online_event_timestamp),
                    "offline_event_timestamp": _iso(s.offline_event_timestamp),
                    "keys": {k: _jsonable(v) for k, v in s.keys.items()},
                    "online_value": _jsonable(s.online_value),
                    "offline_value": _jsonable(s.offline_value),
                }
                for s in self.samples
            ],
            "skipped_features": self.skipped_features,
        }

    def to_text(self, max_mismatch_rate: float = 0.0) -> str:
        """The report for a terminal: totals, a table per feature, the lag and the samples."""
        causes = self.cause_counts()
        verdict = "PASS" if self.passes(max_mismatch_rate) else "FAIL"
        lines = [
            f"Skew report for service '{self.service}' "
            f"({_window(self.since, self.until)}): {verdict}",
            f"  {self.rows:,} logged rows, {self.cells:,} cells; mismatch rate "
            f"{self.mismatch_rate:.6f} (threshold {max_mismatch_rate:g})",
            "  differing cells by cause: " + ", ".join(f"{c} {causes[c]:,}" for c in CAUSES),
            "",
        ]
        header = ("feature", "cells", "equal", "both null", "null online", "null offline",
                  "value diff", "max abs err", "max rel err", *CAUSES)  # fmt: skip
        rows = [
            (f.feature, f"{f.cells:,}", f"{f.equal:,}", f"{f.both_null:,}",
             f"{f.null_online_only:,}", f"{f.null_offline_only:,}", f"{f.value_mismatches:,}",
             format_number(f.max_abs_error), format_number(f.max_rel_error),
             *(f"{f.causes[c]:,}" for c in CAUSES))
            for f in self.features.values()
        ]  # fmt: skip
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        lines.append("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        lines += [
            "  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows
        ]
        if causes["not_materialized"]:
            lines += ["", "  not_materialized lag (request time - watermark):"]
            for label, n in zip(self.lag.labels(), self.lag.counts, strict=True):
                if n:
                    lines.append(f"    {label:>10}  {n:,}")
            if self.lag.never_materialized:
                lines.append(f"    never materialized  {self.lag.never_materialized:,}")
        if self.samples:
            lines += ["", f"  First differing cells ({len(self.samples)}):"]
            for s in self.samples:
                keys = ", ".join(f"{k}={v!r}" for k, v in s.keys.items())
                lines.append(
                    f"    {_iso(s.request_time)} {keys} {s.feature} [{s.cause}]: online "
                    f"{s.online_value!r} ({s.online_status}, event {_iso(s.online_event_timestamp)})"
                    f" vs offline {s.offline_value!r} (event {_iso(s.offline_event_timestamp)})"
                )
        if self.skipped_features:
            lines += ["", "  Not compared (no longer in the service): "
                      + ", ".join(self.skipped_features)]  # fmt: skip
        return "\n".join(lines)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _window(since: datetime | None, until: datetime | None) -> str:
    if since is None and until is None:
        return "every logged request"
    return f"requests from {_iso(since) or 'the first'} to {_iso(until) or 'the last'}"


def format_number(value: float | None) -> str:
    """An error figure as shown in the text and HTML reports (``-`` when there is none)."""
    return "-" if value is None else f"{value:.6g}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value
