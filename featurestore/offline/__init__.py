"""featurestore.offline: DuckDB over Parquet; point-in-time training frames and latest rows."""

from __future__ import annotations

from featurestore.offline.engine import EntityInput, OfflineEngine
from featurestore.offline.training_frame import TrainingFrame

__all__ = ["EntityInput", "OfflineEngine", "TrainingFrame"]
