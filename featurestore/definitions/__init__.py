"""The feature definition DSL: frozen, validated values; no I/O."""

from __future__ import annotations

from featurestore.definitions.aggregation import Aggregation
from featurestore.definitions.entity import Entity
from featurestore.definitions.feature_service import FeatureService, LoggingConfig
from featurestore.definitions.feature_view import FeatureView, FeatureViewProjection
from featurestore.definitions.field import Field
from featurestore.definitions.refs import FeatureRef, output_names
from featurestore.definitions.request_source import RequestSource
from featurestore.definitions.source import ParquetSource

__all__ = [
    "Aggregation",
    "Entity",
    "FeatureRef",
    "FeatureService",
    "FeatureView",
    "FeatureViewProjection",
    "Field",
    "LoggingConfig",
    "ParquetSource",
    "RequestSource",
    "output_names",
]
