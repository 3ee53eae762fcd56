"""Great Expectations, imported on first use, with one ephemeral data context per process.

The context keeps everything in memory (no ``gx/`` folder is written), has usage statistics
and progress bars off, and is shared: GE builds one datasource per view name on it.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

from featurestore._quiet import quiet_pyspark
from featurestore.errors import DefinitionError, MissingDependencyError

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["EXTRA", "context", "import_gx", "suite_from_json"]

EXTRA = "validation"
"""The extra that installs Great Expectations: ``pip install 'featurestore[validation]'``."""

_lock = threading.Lock()
_context: Any = None


def import_gx(feature: str = "Expectations on feature views") -> ModuleType:
    """The ``great_expectations`` module.

    Raises:
        MissingDependencyError: Great Expectations is not installed; names the extra.
    """
    try:
        with quiet_pyspark():  # GE imports PySpark when it is installed
            import great_expectations
    except ImportError as exc:
        raise MissingDependencyError(feature=feature, extra=EXTRA) from exc
    return great_expectations


def context() -> Any:
    """The process's ephemeral GE data context (in memory, analytics and progress bars off)."""
    global _context  # one context per process, built on first use
    with _lock:
        if _context is None:
            gx = import_gx()
            from great_expectations.data_context.types.base import (
                DataContextConfig,
                InMemoryStoreBackendDefaults,
                ProgressBarsConfig,
            )

            config = DataContextConfig(
                analytics_enabled=False,
                store_backend_defaults=InMemoryStoreBackendDefaults(),
                progress_bars=ProgressBarsConfig(globally=False),
            )
            _context = gx.get_context(project_config=config, mode="ephemeral")
        return _context


def suite_from_json(view: str, suite_json: str) -> Any:
    """A GE ``ExpectationSuite`` from the JSON a feature view stores (``FeatureView.suite_json``).

    Raises:
        MissingDependencyError: Great Expectations is not installed.
        DefinitionError: GE cannot read the suite (an unknown expectation type, or arguments
            an expectation does not take); the message is one line.
    """
    gx = import_gx()
    from great_expectations.exceptions.exceptions import GreatExpectationsError
    from great_expectations.expectations.registry import get_expectation_impl

    data = json.loads(suite_json)
    try:
        for item in data["expectations"]:
            get_expectation_impl(item["type"])  # GE would drop an unknown type with a log line
        return gx.ExpectationSuite(**data)
    except (GreatExpectationsError, ValueError, TypeError) as exc:  # pydantic's are ValueErrors
        problem = " ".join(str(exc).split())
        msg = (
            f"Feature view '{view}' has expectations Great Expectations cannot read "
            f"({problem}). Fix them in its definition and run 'featurestore apply'."
        )
        raise DefinitionError(msg) from exc
