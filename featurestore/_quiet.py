"""PySpark's FutureWarning about pandas versions, silenced where featurestore causes it.

PySpark 4 warns when pandas is newer than the versions it was tested with, at import and on
every Arrow conversion. Great Expectations imports PySpark when it is installed, so a repo
whose definitions import Great Expectations would print it on every command. featurestore
converts through Arrow, not pandas, so the warning says nothing about its results.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["quiet_pyspark"]


@contextlib.contextmanager
def quiet_pyspark() -> Iterator[None]:
    """Ignore PySpark's pandas-version FutureWarning (only that one) inside the block."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "PySpark does not yet fully support", FutureWarning)
        yield
