"""``get_training_frame(..., validate=True)`` (issue 12 item 3) with the real Great Expectations:
the unexpected counts and samples GE reports on a frame's feature columns equal a brute-force
oracle's over the point-in-time oracle's frame (ties, late rows, null keys and times, nulls from
no match); prefixed columns map back to the suite's; a clean frame passes, a failing one is
returned with its result attached, or raises with ``validate="raise"``; the frame returned is
the frame checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore import FeatureStore
from featurestore.errors import ValidationError
from featurestore.validation.frame import FrameValidation
from featurestore.validation.result import SAMPLE_VALUES
from tests.conftest import make_repo, utc, write_parquet
from tests.integration.test_validation_process import FEATURES_JSON_PY, HIDE_GX, run
from tests.oracle import pit_oracle
from tests.strategies import TTL, entity_rows, feature_rows, write_timeline

FEATURES_PY = """
from datetime import timedelta

import great_expectations.expectations as gxe
import polars as pl

from featurestore import Entity, FeatureView, Field, ParquetSource, RequestSource
from featurestore import on_demand_feature_view
from featurestore.types import Float64, Int64, String

user = Entity("user", join_keys=["user_id"])

checked = FeatureView(
    name="checked",
    entities=[user],
    source=ParquetSource("data/u", timestamp_field="ts", created_timestamp_field="created"),
    schema=[Field("f_int", Int64), Field("f_str", String)],
    ttl=timedelta(seconds=5),
    expectations=[
        gxe.ExpectColumnValuesToBeBetween(column="f_int", min_value=0),
        gxe.ExpectColumnValuesToNotBeNull(column="f_str"),
        gxe.ExpectColumnValuesToNotBeNull(column="user_id"),
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
    ],
)

plain = FeatureView(
    name="plain",
    entities=[user],
    source=ParquetSource("data/u", timestamp_field="ts", created_timestamp_field="created"),
    schema=[Field("f_int", Int64)],
)


@on_demand_feature_view(
    sources=[checked, RequestSource("req", schema=[Field("bonus", Int64)])],
    schema=[Field("boosted", Float64)],
)
def boosted(df: pl.DataFrame) -> pl.DataFrame:
    return df.select((pl.col("f_int") + pl.col("bonus")).cast(pl.Float64).alias("boosted"))
"""

SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("created", pa.timestamp("us", tz="UTC")),
        ("f_int", pa.int64()),
        ("f_str", pa.string()),
    ]
)

RUN_NOT = (
    "expect_column_values_to_not_be_null(column=user_id): 'user_id' is not a feature of the frame",
    "expect_table_row_count_to_be_between(min_value=1): about the whole table, not a feature "
    "column",
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    root = make_repo(tmp_path_factory.mktemp("frame"), FEATURES_PY)
    write_timeline(root / "data/u", [], SCHEMA)
    fs = FeatureStore(root)
    fs.apply()
    return fs


def entity_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array([r["user_id"] for r in rows], pa.int64()),
            "event_timestamp": pa.array(
                [r["event_timestamp"] for r in rows], pa.timestamp("us", tz="UTC")
            ),
            "label": pa.array([r["label"] for r in rows], pa.int64()),
        }
    )


@settings(max_examples=25, deadline=None)
@given(
    rows=feature_rows(),
    entities=entity_rows(),
    features=st.sampled_from([["f_int"], ["f_str"], ["f_int", "f_str"], ["f_str", "f_int"]]),
    full=st.booleans(),
)
def test_the_result_equals_the_oracle_on_the_oracles_frame(
    store: FeatureStore,
    rows: list[dict[str, Any]],
    entities: list[dict[str, Any]],
    features: list[str],
    full: bool,
):
    write_timeline(store.repo_root / "data/u", rows, SCHEMA)
    frame = store.get_training_frame(
        entity_table(entities),
        [f"checked:{f}" for f in features],
        full_feature_names=full,
        validate=True,
    )
    values = pit_oracle(entities, rows, join_keys=["user_id"], features=features, ttl=TTL)
    # The oracle's verdict: negative f_int values (a null is missing, not unexpected) and
    # null f_str values, nulls from entity rows no source row matched included.
    unexpected = {
        "f_int": [v["f_int"] for v in values if v.get("f_int") is not None and v["f_int"] < 0],
        "f_str": [None for v in values if "f_str" in v and v["f_str"] is None],
    }
    validation = frame.validation
    assert isinstance(validation, FrameValidation)
    (result,) = validation.results.values()
    assert result.view == "checked"
    assert result.kind == "training_frame"
    assert result.rows == len(entities)
    assert result.evaluated == len(features)
    got = {f.kwargs["column"]: f for f in result.failures}
    for feature in features:
        bad = unexpected[feature]
        if not bad:
            assert feature not in got
            continue
        failure = got[feature]
        assert failure.unexpected_count == len(bad)
        assert failure.element_count == len(entities)
        assert len(failure.sample) == min(SAMPLE_VALUES, len(bad))
        assert all(s in bad for s in failure.sample)
    assert validation.success == (not any(unexpected[f] for f in features))
    prefix = "checked__" if full else ""
    assert validation.columns == {"checked": {f: prefix + f for f in features}}
    not_requested = [
        "expect_column_values_to_not_be_null(column=f_str): 'f_str' is not a feature of the frame"
    ] * ("f_str" not in features) + [
        "expect_column_values_to_be_between(column=f_int, min_value=0.0): 'f_int' is not a "
        "feature of the frame"
    ] * ("f_int" not in features)
    assert sorted(validation.skipped["checked"]) == sorted([*RUN_NOT, *not_requested])
    # The frame returned is the frame checked: its rows are the oracle's.
    got_rows = frame.to_arrow().to_pylist()
    assert [{f: r[prefix + f] for f in features} for r in got_rows] == values


DAY1, DAY2 = utc(2026, 1, 1), utc(2026, 1, 2)


@pytest.fixture
def repo(tmp_path: Path) -> FeatureStore:
    root = make_repo(tmp_path / "repo", FEATURES_PY)
    write_parquet(
        root / "data/u/part-0.parquet",
        {
            "user_id": [1, 2, 3],
            "ts": [DAY1, DAY1, DAY1],
            "created": [DAY1, DAY1, DAY1],
            "f_int": [5, -3, -4],
            "f_str": ["a", "b", None],
        },
        schema=SCHEMA,
    )
    fs = FeatureStore(root)
    fs.apply()
    return fs


def entities(*users: int) -> pl.DataFrame:
    at = DAY1.replace(second=1)
    return pl.DataFrame(
        {"user_id": list(users), "event_timestamp": [at] * len(users), "bonus": [10] * len(users)}
    )


def test_a_clean_frame_passes_and_is_held(repo: FeatureStore, tmp_path: Path):
    unchecked = repo.get_training_frame(
        entities(1, 1), ["checked:f_int", "plain:f_int"], full_feature_names=True
    )
    assert unchecked.validation is None
    frame = repo.get_training_frame(
        entities(1, 1),
        ["checked:f_int", "plain:f_int"],
        full_feature_names=True,
        validate="raise",
    )
    validation = frame.validation
    assert validation is not None
    assert validation.success
    assert list(validation.results) == ["checked"]  # "plain" has no expectations
    assert validation.columns == {"checked": {"f_int": "checked__f_int"}}
    assert validation.error() is None
    assert frame.to_arrow() == unchecked.to_arrow()
    assert pl.read_parquet(frame.to_parquet(tmp_path / "f.parquet")).equals(frame.to_polars())
    assert "validated: passed" in repr(frame)
    assert validation.summary().splitlines()[:2] == [
        validation.results["checked"].summary(),
        "  frame columns: f_int as checked__f_int",
    ]


def test_a_failing_frame_is_returned_with_its_result_or_raises(repo: FeatureStore):
    features = ["checked:f_int", "checked:f_str"]
    frame = repo.get_training_frame(entities(1, 2, 3, 3), features, validate=True)
    validation = frame.validation
    assert validation is not None
    assert not validation.success
    assert [(v, f.describe()) for v, f in validation.failures] == [
        (
            "checked",
            "expect_column_values_to_be_between(column=f_int, min_value=0.0): "
            "3 of 4 rows unexpected, e.g. [-3, -4, -4]",
        ),
        (
            "checked",
            "expect_column_values_to_not_be_null(column=f_str): 2 of 4 rows unexpected"
            ", e.g. [None, None]",
        ),
    ]
    assert frame.to_polars()["f_int"].to_list() == [5, -3, -4, -4]
    assert "2 expectations FAILED" in repr(frame)
    assert validation.to_json()["results"]["checked"]["gx_result"]["success"] is False
    with pytest.raises(ValidationError) as caught:
        repo.get_training_frame(entities(1, 2, 3, 3), features, validate="raise")
    error = caught.value
    assert error.kind == "training_frame"
    assert error.view == "checked"
    assert str(error).startswith(
        "The training frame's columns of feature view 'checked' failed its expectations:\n"
        "  - expect_column_values_to_be_between(column=f_int, min_value=0.0): 3 of 4 rows"
    )
    assert "pass validate=True to get the frame with the result attached" in str(error)
    # Training frames are not kept in the validation log (that is materialization's record).
    assert repo.validation_result("checked") is None


def test_an_on_demand_frame_checks_its_stored_features(repo: FeatureStore, tmp_path: Path):
    frame = repo.get_training_frame(
        entities(1, 2), ["checked:f_int", "boosted:boosted"], validate=True
    )
    validation = frame.validation
    assert validation is not None
    assert validation.columns == {"checked": {"f_int": "f_int"}}
    (failure,) = validation.results["checked"].failures
    assert (failure.unexpected_count, failure.sample) == (1, (-3,))
    assert frame.to_polars()["boosted"].to_list() == [15.0, 7.0]
    assert "validated: 1 expectations FAILED" in repr(frame)
    written = pl.read_parquet(frame.to_parquet(tmp_path / "od.parquet"))
    assert written.equals(frame.to_polars())
    assert sum(b.num_rows for b in frame.record_batches(1)) == 2


def test_validate_without_great_expectations_names_the_extra(tmp_path: Path):
    root = make_repo(tmp_path / "repo", FEATURES_JSON_PY)
    write_parquet(
        root / "data/s.parquet", {"user_id": [1], "ts": [DAY1], "amount": [1.0], "cnt": [1]}
    )
    with FeatureStore(root) as fs:
        fs.apply()
    code = HIDE_GX + (
        "import polars as pl\n"
        "from datetime import datetime, timezone\n"
        "from featurestore import FeatureStore\n"
        "from featurestore.errors import MissingDependencyError\n"
        "at = datetime(2026, 1, 3, tzinfo=timezone.utc)\n"
        "entities = pl.DataFrame({'user_id': [1], 'event_timestamp': [at]})\n"
        "try:\n"
        "    FeatureStore('.').get_training_frame(entities, ['stats:amount'], validate=True)\n"
        "except MissingDependencyError as exc:\n"
        "    print(exc)\n"
    )
    result = run(code, root)
    assert result.returncode == 0, result.stderr
    assert "pip install 'featurestore[validation]'" in result.stdout
