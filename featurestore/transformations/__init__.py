"""Transformations shared by training, materialization and serving: one function, one executor."""

from __future__ import annotations

from featurestore.transformations.decorator import OnDemandFeatureView, on_demand_feature_view
from featurestore.transformations.run import run_transformation

__all__ = ["OnDemandFeatureView", "on_demand_feature_view", "run_transformation"]
