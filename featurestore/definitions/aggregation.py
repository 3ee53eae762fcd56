"""Aggregation: one windowed aggregate of an event column (DESIGN G7, docs/aggregations.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Literal, cast, get_args

from featurestore.definitions._names import check_name
from featurestore.errors import DefinitionError
from featurestore.types import Float64, Int64, ScalarType

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["TILE_PARTS", "AggFunction", "Aggregation", "tile_parts", "window_label"]

AggFunction = Literal["count", "sum", "mean", "min", "max", "last", "stddev"]
"""The aggregate functions. Nulls in the column are skipped, as in SQL."""

_ONE_US = timedelta(microseconds=1)


def window_label(window: timedelta) -> str:
    """The short form of a window in output names: ``7d``, ``24h``, ``90m``, ``30s``, ``5us``.

    Example:
        >>> window_label(timedelta(days=7)), window_label(timedelta(hours=36))
        ('7d', '36h')
    """
    us = window // _ONE_US
    for unit, size in (("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000)):
        if us % size == 0:
            return f"{us // size}{unit}"
    if us % 1_000_000 == 0:
        return f"{us // 1_000_000}s"
    return f"{us}us"


@dataclass(frozen=True)
class Aggregation:
    """An aggregate of a source column over a sliding window, one feature of an aggregation view.

    Args:
        column: The event column aggregated (after the source's ``field_mapping``); None for
            ``count`` of events. The column must be numeric (read as ``Float64``).
        function: ``count``, ``sum``, ``mean``, ``min``, ``max``, ``last`` (the newest non-null
            value in the total order) or ``stddev`` (sample standard deviation, null for
            fewer than 2 values).
        window: The window's width, a positive ``timedelta``, a whole multiple of the view's hop.
        name: The feature's name; default ``{column}_{function}_{window}``, e.g.
            ``amount_sum_7d``, or ``count_24h`` for a count of events.

    Example:
        >>> Aggregation("amount", "sum", timedelta(days=7)).output_name
        'amount_sum_7d'
        >>> Aggregation(None, "count", timedelta(hours=1)).output_name
        'count_1h'
    """

    column: str | None
    function: AggFunction
    window: timedelta
    name: str | None = None

    def __post_init__(self) -> None:
        if self.function not in get_args(AggFunction):
            msg = (
                f"Aggregation {self.function!r} is not an aggregate function; use one of "
                f"{', '.join(get_args(AggFunction))}."
            )
            raise DefinitionError(msg)
        if self.column is None and self.function != "count":
            msg = (
                f"Aggregation '{self.function}' needs a column; only count may omit it "
                "(a count of events)."
            )
            raise DefinitionError(msg)
        if self.column is not None:
            check_name(self.column, kind="Aggregation column")
        window = cast("object", self.window)
        if not isinstance(window, timedelta) or window <= timedelta(0) or window % _ONE_US:
            msg = (
                f"Aggregation '{self.function}' of {self.column or 'events'} has "
                f"window={self.window!r}; use a positive timedelta of whole microseconds."
            )
            raise DefinitionError(msg)
        if self.name is not None:
            check_name(self.name, kind="Aggregation name")

    @property
    def output_name(self) -> str:
        """The feature's name: ``name``, or ``{column}_{function}_{window}``."""
        if self.name is not None:
            return self.name
        label = window_label(self.window)
        if self.column is None:
            return f"{self.function}_{label}"
        return f"{self.column}_{self.function}_{label}"

    @property
    def window_us(self) -> int:
        """The window in microseconds."""
        return self.window // _ONE_US

    @property
    def dtype(self) -> ScalarType:
        """The feature's type: ``Int64`` for count, ``Float64`` for the others."""
        return Int64 if self.function == "count" else Float64


TILE_PARTS = ("count", "sum", "m2", "min", "max", "last")
"""Every partial aggregate a tile may keep of a column: the non-null count, the sum, the sum
of squared deviations from the tile's mean (what ``stddev`` combines), min, max, and the
newest non-null value by the total order."""
_NEEDS: dict[str, tuple[str, ...]] = {
    "count": (),
    "sum": ("sum",),
    "mean": ("sum",),
    "stddev": ("sum", "m2"),
    "min": ("min",),
    "max": ("max",),
    "last": ("last",),
}


def tile_parts(aggregations: Sequence[Aggregation]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Per aggregated column (first-use order), the :data:`TILE_PARTS` its tiles keep.

    The count is always kept (a part is null where it is 0); the others only when an
    aggregation of the column needs them, so tiles hold nothing no read uses.

    Example:
        >>> day = timedelta(days=1)
        >>> tile_parts([Aggregation("amount", "mean", day), Aggregation("amount", "max", day)])
        (('amount', ('count', 'sum', 'max')),)
    """
    needed: dict[str, set[str]] = {}
    for a in aggregations:
        if a.column is not None:
            needed.setdefault(a.column, {"count"}).update(_NEEDS[a.function])
    return tuple(
        (column, tuple(p for p in TILE_PARTS if p in parts)) for column, parts in needed.items()
    )
