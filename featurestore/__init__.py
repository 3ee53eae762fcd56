"""featurestore: a feature store whose training frames and online lookups cannot disagree."""

from __future__ import annotations

from featurestore.definitions import (
    Entity,
    FeatureRef,
    FeatureService,
    FeatureView,
    Field,
    ParquetSource,
    RequestSource,
)
from featurestore.errors import FeatureStoreError
from featurestore.store import FeatureStore
from featurestore.transformations import OnDemandFeatureView, on_demand_feature_view

__all__ = [
    "Entity",
    "FeatureRef",
    "FeatureService",
    "FeatureStore",
    "FeatureStoreError",
    "FeatureView",
    "Field",
    "OnDemandFeatureView",
    "ParquetSource",
    "RequestSource",
    "on_demand_feature_view",
]

__version__ = "0.1.0"
