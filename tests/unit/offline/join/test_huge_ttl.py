"""A ttl too long for timestamp arithmetic is a window like any other, in every strategy.

``timedelta.max`` goes far beyond DuckDB's timestamp range: ``t - ttl`` used to fail in the
SQL joins. featurestore.window caps it (it excludes nothing a datetime can hold), so the
frame equals the frame of the same view without a ttl.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest

from featurestore import FeatureStore
from featurestore.definitions import output_names
from tests.conftest import make_repo, utc, write_parquet

FEATURES_PY = """
from datetime import timedelta
from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Int64

user = Entity("user", join_keys=["user_id"])
source = ParquetSource("data/stats.parquet", timestamp_field="ts")
forever = FeatureView(name="forever", entities=[user], source=source,
                      schema=[Field("n", Int64)], ttl=timedelta.max)
unlimited = FeatureView(name="unlimited", entities=[user], source=source,
                        schema=[Field("n", Int64)])
"""


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    make_repo(tmp_path, FEATURES_PY)
    times = [datetime(1, 1, 1, 0, 0, 1), utc(1970, 1, 1), utc(2026, 1, 1), utc(9999, 12, 31)]
    write_parquet(
        tmp_path / "data/stats.parquet",
        {"user_id": [1, 2, 3, 4], "ts": [t.replace(tzinfo=None) for t in times], "n": [1, 2, 3, 4]},
        schema=pa.schema([("user_id", pa.int64()), ("ts", pa.timestamp("us")), ("n", pa.int64())]),
    )
    fs = FeatureStore(tmp_path)
    fs.apply()
    return fs


@pytest.mark.parametrize("pit", ["event", "available"])
@pytest.mark.parametrize("strategy", ["range", "asof", "arrays"])
def test_ttl_of_timedelta_max_is_unlimited(store: FeatureStore, strategy: str, pit: str) -> None:
    entity = pa.table(
        {
            "user_id": pa.array([1, 2, 3, 4, 4], pa.int64()),
            "event_timestamp": pa.array(
                [
                    utc(9999, 12, 31),
                    utc(2026, 1, 1),
                    utc(2026, 1, 1),
                    utc(2026, 1, 1),
                    utc(9999, 12, 31),
                ],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )

    def frame(view: str) -> list[object]:
        refs = store.resolve([f"{view}:n"])
        names = dict(zip(refs, output_names(refs, full_feature_names=False), strict=True))
        table = store.offline.training_frame(
            entity,
            [(store.get_feature_view(view), ["n"])],
            output_names=names,
            timestamp_column="event_timestamp",
            point_in_time=pit,  # type: ignore[arg-type]
            strategy=strategy,  # type: ignore[arg-type]
        ).to_arrow()
        return table.column("n").to_pylist()

    assert frame("forever") == frame("unlimited") == [1, 2, 3, None, 4]
