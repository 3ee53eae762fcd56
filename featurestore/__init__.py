"""featurestore: a feature store whose training frames and online lookups cannot disagree.

The definition DSL (``Entity``, ``FeatureView``...) and the errors are imported at once; they
need no engine. The names that do (``FeatureStore``, the result types, on-demand views) are
imported on first access, so ``import featurestore`` and ``featurestore --version`` do not load
DuckDB, Arrow, Polars or numpy.
"""

from __future__ import annotations

import importlib
import typing

from featurestore.definitions import (
    Aggregation,
    Entity,
    FeatureRef,
    FeatureService,
    FeatureView,
    Field,
    LoggingConfig,
    ParquetSource,
    RequestSource,
)
from featurestore.errors import FeatureStoreError

if typing.TYPE_CHECKING:
    from featurestore.frames import Frame
    from featurestore.offline.on_demand import OnDemandTrainingFrame
    from featurestore.offline.training_frame import TrainingFrame
    from featurestore.online.response import OnlineResponse
    from featurestore.progress import TextProgress
    from featurestore.store import FeatureStore
    from featurestore.transformations import OnDemandFeatureView, on_demand_feature_view

__all__ = [
    "Aggregation",
    "Entity",
    "FeatureRef",
    "FeatureService",
    "FeatureStore",
    "FeatureStoreError",
    "FeatureView",
    "Field",
    "Frame",
    "LoggingConfig",
    "OnDemandFeatureView",
    "OnDemandTrainingFrame",
    "OnlineResponse",
    "ParquetSource",
    "RequestSource",
    "TextProgress",
    "TrainingFrame",
    "on_demand_feature_view",
]

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "FeatureStore": "featurestore.store",
    "Frame": "featurestore.frames",
    "OnDemandFeatureView": "featurestore.transformations",
    "OnDemandTrainingFrame": "featurestore.offline.on_demand",
    "OnlineResponse": "featurestore.online.response",
    "TextProgress": "featurestore.progress",
    "TrainingFrame": "featurestore.offline.training_frame",
    "on_demand_feature_view": "featurestore.transformations",
}
"""Public name -> the module that defines it, imported on first access (PEP 562)."""


def __getattr__(name: str) -> typing.Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'featurestore' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
