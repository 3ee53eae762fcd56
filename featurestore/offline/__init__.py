"""featurestore.offline: DuckDB over Parquet; point-in-time training frames and latest rows.

One module per concept:

* ``engine.py``: :class:`OfflineEngine`, the DuckDB database and the wiring of the rest;
* ``sources.py``: where a view's Parquet files are, their schema, files and row count;
* ``transformed_source.py``: sources of views with a batch transform (run through the executor);
* ``entity_frame.py``: the entity frame, however it is given, as one DuckDB query;
* ``join/``: the point-in-time join (the rule in its docstring), its planner and strategies;
* ``training_frame.py`` and ``on_demand.py``: the lazy frames a user gets back;
* ``latest_rows.py``: the newest row per key in a window (materialization);
* ``sql.py``: quoting, typed source scans, the order "newer" over a scan's columns.
"""

from __future__ import annotations

from featurestore.offline.engine import EntityInput, OfflineEngine
from featurestore.offline.training_frame import TrainingFrame

__all__ = ["EntityInput", "OfflineEngine", "TrainingFrame"]
