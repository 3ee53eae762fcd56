"""Run a Feast on-demand function (pandas or python mode) on featurestore's executor.

An imported on-demand view is an ordinary polars-mode view whose function calls one of
these with the user's Feast function, unchanged. The function sees what Feast gives it:
its input columns under both the plain name (``conv_rate``) and Feast's full name
(``driver_hourly_stats__conv_rate``), as a pandas DataFrame (pandas mode), a dict of lists
(python mode) or one dict of values per row (python mode with ``singleton=True``). Its
outputs are cast to the declared types, so the executor's type check holds on every path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from featurestore.errors import TransformationError
from featurestore.types import to_polars

if TYPE_CHECKING:
    from collections.abc import Callable

    from featurestore.transformations import OnDemandFeatureView

__all__ = ["feast_pandas", "feast_python"]


def _with_full_names(frame: pl.DataFrame, view: OnDemandFeatureView) -> pl.DataFrame:
    aliases = [
        pl.col(i.column).alias(f"{i.ref.view}__{i.column}")
        for i in view.inputs
        if i.kind == "feature" and i.ref is not None
    ]
    return frame.with_columns(aliases) if aliases else frame


def _typed(view: OnDemandFeatureView, columns: dict[str, Any], height: int) -> pl.DataFrame:
    series = []
    for f in view.schema:
        if f.name not in columns:
            msg = (
                f"On-demand feature view '{view.name}': the Feast function returned no "
                f"'{f.name}'; return every declared feature."
            )
            raise TransformationError(msg)
        values = columns[f.name]
        column = (
            values if isinstance(values, pl.Series) else pl.Series(f.name, values, strict=False)
        )
        series.append(column.alias(f.name).cast(to_polars(f.dtype), strict=True))
    frame = pl.DataFrame(series)
    if frame.height != height:
        msg = (
            f"On-demand feature view '{view.name}': the Feast function returned "
            f"{frame.height} rows for {height}; return one row per input row, in order."
        )
        raise TransformationError(msg)
    return frame


def feast_pandas(
    function: Callable[[Any], Any], frame: pl.DataFrame, view: OnDemandFeatureView
) -> pl.DataFrame:
    """Run a Feast pandas-mode function on ``frame`` (the executor's input columns).

    Example:
        >>> import pandas as pd
        >>> from featurestore import Field, RequestSource, on_demand_feature_view
        >>> from featurestore.types import Float64
        >>> def doubled_pandas(inputs: pd.DataFrame) -> pd.DataFrame:
        ...     return pd.DataFrame({"double": inputs["amount"] * 2})
        >>> @on_demand_feature_view(
        ...     sources=[RequestSource("txn", schema=[Field("amount", Float64)])],
        ...     schema=[Field("double", Float64)],
        ... )
        ... def doubled(df: pl.DataFrame) -> pl.DataFrame:
        ...     return feast_pandas(doubled_pandas, df, doubled)
        >>> doubled(pl.DataFrame({"amount": [1.5]}))["double"].to_list()
        [3.0]
    """
    result = function(_with_full_names(frame, view).to_pandas())
    if not hasattr(result, "columns"):
        msg = (
            f"On-demand feature view '{view.name}': the Feast pandas-mode function returned "
            f"{type(result).__name__}; return a pandas DataFrame."
        )
        raise TransformationError(msg)
    names = [f.name for f in view.schema if f.name in result.columns]
    converted = pl.from_pandas(result[names]) if names else pl.DataFrame()
    return _typed(view, {c: converted.get_column(c) for c in converted.columns}, frame.height)


def feast_python(
    function: Callable[[Any], Any],
    frame: pl.DataFrame,
    view: OnDemandFeatureView,
    *,
    singleton: bool = False,
) -> pl.DataFrame:
    """Run a Feast python-mode function: a dict of lists, or one dict per row (``singleton``).

    Example:
        >>> from featurestore import Field, RequestSource, on_demand_feature_view
        >>> from featurestore.types import Float64
        >>> def doubled_python(inputs: dict) -> dict:
        ...     return {"double": [a * 2 for a in inputs["amount"]]}
        >>> @on_demand_feature_view(
        ...     sources=[RequestSource("txn", schema=[Field("amount", Float64)])],
        ...     schema=[Field("double", Float64)],
        ... )
        ... def doubled(df: pl.DataFrame) -> pl.DataFrame:
        ...     return feast_python(doubled_python, df, doubled)
        >>> doubled(pl.DataFrame({"amount": [1.5, 2.0]}))["double"].to_list()
        [3.0, 4.0]
    """
    inputs = _with_full_names(frame, view)
    if not singleton:
        result = function(inputs.to_dict(as_series=False))
        if not isinstance(result, dict):
            msg = (
                f"On-demand feature view '{view.name}': the Feast python-mode function returned "
                f"{type(result).__name__}; return a dict of lists."
            )
            raise TransformationError(msg)
        return _typed(view, result, frame.height)
    columns: dict[str, list[Any]] = {f.name: [] for f in view.schema}
    for row in inputs.iter_rows(named=True):
        out = function(row)
        if not isinstance(out, dict):
            msg = (
                f"On-demand feature view '{view.name}': the Feast singleton function returned "
                f"{type(out).__name__}; return a dict of values."
            )
            raise TransformationError(msg)
        for name, values in columns.items():
            values.append(out.get(name))
    return _typed(view, columns, frame.height)
