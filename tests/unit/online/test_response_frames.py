"""OnlineResponse in notebooks: a useful repr and _repr_html_, and pandas' nullable dtypes,
the same as a training frame's for the same features (issue 10 item 11)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from featurestore import FeatureStore
from featurestore.frames import Frame
from featurestore.online.base import FieldStatus
from featurestore.online.response import PREVIEW_ROWS, OnlineResponse
from featurestore.types import Float64, Int64, String
from tests.conftest import make_repo, utc, write_parquet

FEATURES_PY = """
from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Bool, Float64, Int64, String

user = Entity("user", join_keys=["user_id"])
stats = FeatureView(name="stats", entities=[user],
                    source=ParquetSource("data/s.parquet", timestamp_field="ts"),
                    schema=[Field("cnt", Int64), Field("amount", Float64),
                            Field("segment", String), Field("vip", Bool)])
"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FeatureStore]:
    root = make_repo(tmp_path / "repo", FEATURES_PY)
    write_parquet(
        root / "data/s.parquet",
        {
            "user_id": [1, 2],
            "ts": [utc(2026, 1, 1), utc(2026, 1, 1)],
            "cnt": [5, None],
            "amount": [1.5, None],
            "segment": ["a", None],
            "vip": [True, None],
        },
    )
    fs = FeatureStore(root)
    fs.apply()
    fs.materialize(utc(2026, 1, 1), utc(2026, 1, 2))
    yield fs
    fs.close()


FEATURES = ["stats:cnt", "stats:amount", "stats:segment", "stats:vip"]


def test_to_pandas_has_the_training_frames_nullable_dtypes(store: FeatureStore) -> None:
    online = store.get_online_features(
        FEATURES, {"user_id": [1, 2]}, request_time=utc(2026, 1, 3)
    ).to_pandas()
    entities = pd.DataFrame(
        {"user_id": [1, 2], "event_timestamp": pd.to_datetime([utc(2026, 1, 3)] * 2, utc=True)}
    )
    training = store.get_training_frame(entities, FEATURES).to_pandas()
    assert str(online["cnt"].dtype) == "Int64"
    assert online["cnt"].tolist()[0] == 5
    assert online["cnt"].isna().tolist() == [False, True]
    for column in ["cnt", "amount", "segment", "vip"]:  # the entity frame's own keys pass through
        assert online[column].dtype == training[column].dtype, column


def test_a_response_is_a_frame(store: FeatureStore) -> None:
    response = store.get_online_features(FEATURES, {"user_id": [1]}, request_time=utc(2026, 1, 3))
    assert isinstance(response, Frame)
    assert response.to_polars()["cnt"].to_list() == [5]


def make_response(n: int) -> OnlineResponse:
    present, missing = FieldStatus.PRESENT, FieldStatus.NOT_FOUND
    return OnlineResponse(
        join_keys={"user_id": list(range(n))},
        features={"cnt": [i if i % 2 == 0 else None for i in range(n)], "name": ["<b>"] * n},
        statuses={
            "cnt": [present if i % 2 == 0 else missing for i in range(n)],
            "name": [present] * n,
        },
        event_micros={"cnt": [0] * n, "name": [0] * n},
        dtypes={"user_id": Int64, "cnt": Int64, "name": String, "x": Float64},
    )


def test_repr_shows_columns_statuses_and_the_values() -> None:
    text = repr(make_response(3))
    lines = text.splitlines()
    assert lines[0] == "OnlineResponse"
    assert "  rows: 3" in lines
    assert "  join keys: user_id" in lines
    assert "  features: cnt, name" in lines
    assert "  cnt status: 2 PRESENT, 1 NOT_FOUND" in lines
    assert lines[-4].split() == ["user_id", "cnt", "name"]
    assert lines[-3].split() == ["0", "0", "'<b>'"]
    assert lines[-2].split() == ["1", "NOT_FOUND", "'<b>'"]


def test_repr_and_html_show_a_bounded_preview() -> None:
    response = make_response(PREVIEW_ROWS + 5)
    text = repr(response)
    assert f"shown: the first {PREVIEW_ROWS} rows" in text
    assert len(text.splitlines()) < PREVIEW_ROWS + 12
    page = response._repr_html_()
    assert page.count("<tr><td>") == PREVIEW_ROWS
    assert "&lt;b&gt;" in page  # values are escaped
    assert "<b>" not in page.replace("<b>OnlineResponse</b>", "")
