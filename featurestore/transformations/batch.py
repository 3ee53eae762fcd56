"""Batch transforms: a feature view's ``transform=`` function, run on its source rows.

``FeatureView(..., transform=fn)`` declares features computed from the source's raw columns.
The function runs through the one executor (:func:`~featurestore.transformations.run.
run_transformation`) on the source rows, before the training join and before materialization,
so training frames and online values see the same derived columns (G2 in docs/concepts.md,
"Guarantees").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from featurestore.transformations.decorator import source_fingerprint

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from featurestore.definitions import FeatureView, Field, RequestSource

__all__ = ["BatchTransform", "batch_transform", "transform_fingerprint"]


@dataclass(frozen=True)
class BatchTransform:
    """A feature view's transform as the executor sees it (``run.Transformation``).

    The function takes a polars DataFrame of source rows (``input_columns``: join keys,
    timestamp columns and raw columns, names after ``field_mapping``) and returns one row per
    input row, in order, holding at least the declared features.
    """

    name: str
    schema: tuple[Field, ...]
    function: Callable[..., Any] = field(compare=False)
    input_columns: tuple[str, ...] = ()
    mode: str = "polars"
    request_sources: tuple[RequestSource, ...] = ()
    kind: str = "Batch transform of feature view"

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The declared features, in schema order."""
        return tuple(f.name for f in self.schema)


def batch_transform(view: FeatureView, input_columns: Sequence[str]) -> BatchTransform:
    """The executor's view of ``view.transform`` over source rows with ``input_columns``.

    Raises:
        ValueError: The view has no transform (callers check ``view.transform`` first).
    """
    if view.transform is None:
        msg = f"Feature view '{view.name}' has no transform"
        raise ValueError(msg)
    return BatchTransform(
        name=view.name,
        schema=tuple(view.schema),
        function=view.transform,
        input_columns=tuple(input_columns),
    )


def transform_fingerprint(view: FeatureView) -> str | None:
    """The source fingerprint of the view's transform (and its same-module helpers), or None."""
    return None if view.transform is None else source_fingerprint(view.transform)
