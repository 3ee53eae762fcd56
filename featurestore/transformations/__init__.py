"""Transformations shared by training, materialization and serving: one function, one executor.

The decorator needs no engine, so defining and loading a repo does not import polars; the
executor (``run_transformation``, polars) is imported on first access (PEP 562).
"""

from __future__ import annotations

import typing

from featurestore.transformations.decorator import OnDemandFeatureView, on_demand_feature_view

if typing.TYPE_CHECKING:
    from featurestore.transformations.run import run_transformation

__all__ = ["OnDemandFeatureView", "on_demand_feature_view", "run_transformation"]


def __getattr__(name: str) -> typing.Any:
    if name != "run_transformation":
        msg = f"module 'featurestore.transformations' has no attribute {name!r}"
        raise AttributeError(msg)
    from featurestore.transformations.run import run_transformation

    return run_transformation
