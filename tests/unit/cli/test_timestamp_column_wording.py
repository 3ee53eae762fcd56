"""A missing entity timestamp column names the fix in each surface's words (issue 10.10)."""

from __future__ import annotations

import pytest

from featurestore import FeatureStore
from featurestore.errors import EntityFrameError
from tests.conftest import utc, write_parquet


def test_cli_names_the_timestamp_column_flag(applied, tmp_path):
    entities = write_parquet(
        tmp_path / "entities.parquet", {"user_id": [7], "ts": [utc(2026, 1, 1)]}
    )
    result = applied(
        "training-frame", "-e", str(entities), "-o", str(tmp_path / "out.parquet"),
        "-f", "user_stats:txn_count_7d",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "no timestamp column 'event_timestamp'" in result.stderr
    assert "pass --timestamp-column <your column>" in result.stderr
    assert "timestamp_column=" not in result.stderr


def test_python_names_the_timestamp_column_argument(applied, tmp_path):
    entities = write_parquet(
        tmp_path / "entities.parquet", {"user_id": [7], "ts": [utc(2026, 1, 1)]}
    )
    store = FeatureStore(applied.repo)
    with pytest.raises(EntityFrameError) as info:
        store.get_training_frame(str(entities), ["user_stats:txn_count_7d"])
    assert "pass timestamp_column=<your column>" in str(info.value)
    assert "--timestamp-column" not in str(info.value)
