"""What every result of featurestore is: a frame with the same ``to_*`` conversions.

Training frames (``TrainingFrame``, ``OnDemandTrainingFrame``) and online responses
(``OnlineResponse``) all are :class:`Frame`; their conversions to polars and pandas go
through :func:`arrow_to_polars` and :func:`arrow_to_pandas` here, so the same feature has
the same dtype offline and online. polars and pandas (an optional extra) are imported only
when a conversion to them is asked for.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pyarrow as pa

from featurestore.errors import MissingDependencyError

if TYPE_CHECKING:
    from collections.abc import Callable

    import polars as pl

__all__ = ["Frame", "arrow_to_pandas", "arrow_to_polars", "describe", "describe_html"]


@runtime_checkable
class Frame(Protocol):
    """A result table: training frames and online responses convert the same way."""

    def to_arrow(self) -> pa.Table:
        """The table as Arrow, columns typed as the features are declared."""
        ...

    def to_polars(self) -> pl.DataFrame:
        """The table as a polars DataFrame."""
        ...

    def to_pandas(self) -> Any:
        """The table as a pandas DataFrame with nullable dtypes (needs the ``pandas`` extra)."""
        ...


def arrow_to_polars(table: pa.Table) -> pl.DataFrame:
    """An Arrow table as a polars DataFrame (zero-copy where Arrow allows)."""
    import polars as pl

    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def arrow_to_pandas(table: pa.Table, *, what: str) -> Any:
    """An Arrow table as a pandas DataFrame with pandas' nullable dtypes.

    Integers become ``Int64`` (``Int32``, ...), booleans ``boolean`` and strings ``string``,
    so a null stays ``pd.NA`` instead of turning integers into floats; floats stay
    ``float64`` (null is NaN), timestamps ``datetime64[..., UTC]``, lists and bytes objects.

    Args:
        table: The table.
        what: The method asked, for the error message (``"TrainingFrame.to_pandas"``).

    Raises:
        MissingDependencyError: pandas is not installed.
    """
    try:
        import pandas as pd
    except ImportError as exc:
        raise MissingDependencyError(feature=what, extra="pandas") from exc
    return table.to_pandas(types_mapper=_nullable_types(pd))


def _nullable_types(pd: Any) -> Callable[[pa.DataType], Any]:
    def mapper(arrow_type: pa.DataType) -> Any:
        if pa.types.is_integer(arrow_type):  # int64 -> Int64, uint8 -> UInt8, ...
            name = str(arrow_type)
            nullable = "UInt" + name[4:] if name.startswith("u") else name.capitalize()
            return pd.api.types.pandas_dtype(nullable)
        if pa.types.is_boolean(arrow_type):
            return pd.BooleanDtype()
        if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
            return pd.StringDtype()
        return None

    return mapper


def describe(kind: str, facts: list[tuple[str, str]]) -> str:
    """A frame's ``repr``: its kind and what it holds, one fact per line (cheap: no compute).

    Example:
        >>> print(describe("TrainingFrame", [("rows", "3"), ("columns", "a, b")]))
        TrainingFrame
          rows: 3
          columns: a, b
    """
    return "\n".join([kind, *(f"  {name}: {value}" for name, value in facts)])


def describe_html(kind: str, facts: list[tuple[str, str]]) -> str:
    """:func:`describe` as a small HTML table, for notebooks (``_repr_html_``)."""
    rows = "".join(
        f"<tr><th style='text-align:left'>{html.escape(name)}</th>"
        f"<td style='text-align:left'>{html.escape(value)}</td></tr>"
        for name, value in facts
    )
    return f"<table><caption style='text-align:left'><b>{html.escape(kind)}</b></caption>{rows}</table>"
