"""The one executor: runs a transformation on a training frame, an online batch or a source.

Training frames, materialization and serving all call :func:`run_transformation`; there is no
second implementation (G2 in docs/concepts.md, "Guarantees"). Both kinds of transformation go
through it: an on-demand view's function (on the joined training frame and on an online
request's batch of entities) and a feature view's batch transform (on the source rows, before
the training join and before materialization). Inputs are cast to their declared types first and
outputs are checked against the declared schema, so every path sees and returns the same types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import polars as pl

from featurestore.errors import EntityFrameError, TransformationError
from featurestore.types import to_polars

if TYPE_CHECKING:
    from collections.abc import Callable

    from featurestore.definitions import Field, RequestSource

__all__ = ["Transformation", "run_transformation"]


class Transformation(Protocol):
    """What the executor needs: an on-demand view or a feature view's batch transform."""

    @property
    def name(self) -> str:
        """The view's name (used in error messages)."""
        ...

    @property
    def kind(self) -> str:
        """How messages name it: ``On-demand feature view`` or ``Batch transform of ...``."""
        ...

    @property
    def schema(self) -> tuple[Field, ...]:
        """The declared outputs (enforced)."""
        ...

    @property
    def function(self) -> Callable[..., Any]:
        """The user's function."""
        ...

    @property
    def mode(self) -> str:
        """``"polars"`` (DataFrame in and out) or ``"python"`` (dict per row)."""
        ...

    @property
    def input_columns(self) -> tuple[str, ...]:
        """The columns the function receives, in order."""
        ...

    @property
    def request_sources(self) -> tuple[RequestSource, ...]:
        """Request sources whose fields are cast to their declared types first."""
        ...

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The names of the declared outputs."""
        ...


def _cast_request_fields(view: Transformation, frame: pl.DataFrame) -> pl.DataFrame:
    casts = []
    for source in view.request_sources:
        for f in source.schema:
            if f.name not in frame.columns:
                msg = (
                    f"{view.kind} '{view.name}' needs request field '{f.name}' "
                    f"(request source '{source.name}'): add it to the entity frame (training) "
                    "or to the request's entities (online)."
                )
                raise EntityFrameError(msg)
            target = to_polars(f.dtype)
            if frame.schema[f.name] != target:
                casts.append((f.name, target))
    if not casts:
        return frame
    try:
        return frame.with_columns(pl.col(name).cast(dtype, strict=True) for name, dtype in casts)
    except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as exc:
        names = ", ".join(f"'{n}' to {d}" for n, d in casts)
        msg = (
            f"{view.kind} '{view.name}': cannot convert request field(s) {names}: "
            f"{exc}. Send values of the declared types."
        )
        raise EntityFrameError(msg) from exc


def _run_python(view: Transformation, inputs: pl.DataFrame) -> pl.DataFrame:
    columns: dict[str, list[Any]] = {f.name: [] for f in view.schema}
    for row in inputs.iter_rows(named=True):
        result = view.function(row)
        if not isinstance(result, dict):
            msg = (
                f"{view.kind} '{view.name}' (mode='python') returned "
                f"{type(result).__name__}; return a dict with keys {list(columns)}."
            )
            raise TransformationError(msg)
        for name, values in columns.items():
            if name not in result:
                msg = (
                    f"{view.kind} '{view.name}' (mode='python') returned no "
                    f"'{name}'; return every declared feature."
                )
                raise TransformationError(msg)
            values.append(result[name])
    series = []
    for f in view.schema:
        try:
            series.append(pl.Series(f.name, columns[f.name], dtype=to_polars(f.dtype), strict=True))
        except (TypeError, pl.exceptions.PolarsError) as exc:
            kinds = sorted({type(v).__name__ for v in columns[f.name] if v is not None})
            msg = (
                f"{view.kind} '{view.name}' feature '{f.name}' is declared "
                f"{f.dtype} but the function returned {', '.join(kinds)} values."
            )
            raise TransformationError(msg) from exc
    return pl.DataFrame(series, height=inputs.height)


def _check_output(view: Transformation, result: object, height: int) -> pl.DataFrame:
    if not isinstance(result, pl.DataFrame):
        msg = (
            f"{view.kind} '{view.name}' returned {type(result).__name__}; "
            "return a polars DataFrame with the declared features."
        )
        raise TransformationError(msg)
    missing = [f.name for f in view.schema if f.name not in result.columns]
    if missing:
        msg = f"{view.kind} '{view.name}' did not return {missing}; it returned {result.columns}."
        raise TransformationError(msg)
    if result.height != height:
        msg = (
            f"{view.kind} '{view.name}' returned {result.height} rows for {height} "
            "input rows; a transformation must return one row per input row, in order."
        )
        raise TransformationError(msg)
    out = []
    for f in view.schema:
        column = result.get_column(f.name)
        declared = to_polars(f.dtype)
        if column.dtype == pl.Null:
            column = column.cast(declared)
        elif column.dtype != declared:
            msg = (
                f"{view.kind} '{view.name}' feature '{f.name}' is declared "
                f"{f.dtype} ({declared}) but the function returned {column.dtype}. "
                "Cast it in the function or change the declared type."
            )
            raise TransformationError(msg)
        out.append(column)
    return pl.DataFrame(out)


def run_transformation(view: Transformation, frame: pl.DataFrame) -> pl.DataFrame:
    """Run ``view``'s function on ``frame`` and return its declared features, typed.

    Args:
        view: The on-demand feature view, or a feature view's batch transform.
        frame: One row per entity row (or source row), holding at least the view's input
            columns (stored features, request fields, upstream on-demand outputs; source
            columns for a batch transform).

    Returns:
        A DataFrame with exactly the view's features, in schema order, one row per input row.

    Raises:
        EntityFrameError: A request field is missing or cannot take its declared type.
        TransformationError: The function raised, or returned the wrong rows, columns or types.
    """
    frame = _cast_request_fields(view, frame)
    missing = [c for c in view.input_columns if c not in frame.columns]
    if missing:
        msg = f"{view.kind} '{view.name}' is missing input columns {missing}."
        raise TransformationError(msg)
    columns = list(view.input_columns)
    # A select runs a polars query (~0.1 ms); skip it when the frame already is the input.
    inputs = frame if frame.columns == columns else frame.select(columns)
    try:
        if view.mode == "python":
            return _run_python(view, inputs)
        result = view.function(inputs)
    except (TransformationError, EntityFrameError):
        raise
    except Exception as exc:
        msg = f"{view.kind} '{view.name}' raised {type(exc).__name__}: {exc}"
        raise TransformationError(msg) from exc
    return _check_output(view, result, inputs.height)
