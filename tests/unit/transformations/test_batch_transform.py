"""Batch transforms on a feature view: apply-time checks, type errors on both paths, edits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from featurestore import Entity, FeatureStore, FeatureView, Field, ParquetSource
from featurestore.errors import DefinitionError, RegistryConflictError, TransformationError
from featurestore.repo.registry import view_fingerprint
from featurestore.transformations.batch import batch_transform, transform_fingerprint
from featurestore.transformations.run import run_transformation
from featurestore.types import Float64, Int64
from tests.conftest import make_repo, write_parquet

BASE = datetime(2026, 1, 1, tzinfo=UTC)

HEADER = """
import polars as pl
from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Float64, Int64

user = Entity("user", join_keys=["user_id"])
"""

VIEW = """
user_stats = FeatureView(
    name="user_stats",
    entities=[user],
    source=ParquetSource(path="data/user_stats.parquet", timestamp_field="event_timestamp",
                         field_mapping={{"amount_cents": "cents"}}),
    schema=[Field("amount", Float64), Field("is_big", Int64)],
    transform={fn},
)
"""

DOLLARS = """
def to_dollars(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(
        (pl.col("cents") / 100).alias("amount"),
        (pl.col("cents") >= 1000).cast(pl.Int64).alias("is_big"),
    )
"""
DOLLARS_EDITED = DOLLARS.replace("/ 100", "/ 100.0 * 1")
CENTERED = """
def to_dollars(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(
        (pl.col("cents") - pl.col("cents").mean()).alias("amount"),
        pl.lit(0, dtype=pl.Int64).alias("is_big"),
    )
"""
PASS_THROUGH = """
def to_dollars(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(pl.col("cents").alias("amount"), pl.lit(1).cast(pl.Int64).alias("is_big"))
"""
FILTERS = """
def to_dollars(df: pl.DataFrame) -> pl.DataFrame:
    return df.filter(pl.col("cents") > 0).with_columns(
        (pl.col("cents") / 100).alias("amount"), pl.lit(1, dtype=pl.Int64).alias("is_big"))
"""

SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("event_timestamp", pa.timestamp("us", tz="UTC")),
        ("amount_cents", pa.float64()),
    ]
)


def _write_source(repo: Path, cents: list[object], schema: pa.Schema = SCHEMA) -> None:
    n = len(cents)
    write_parquet(
        repo / "data" / "user_stats.parquet",
        {
            "user_id": [1 + i % 3 for i in range(n)],
            "event_timestamp": [BASE + timedelta(minutes=i) for i in range(n)],
            "amount_cents": cents,
        },
        schema,
    )


def _repo(tmp_path: Path, body: str = DOLLARS) -> Path:
    repo = make_repo(tmp_path / "repo", HEADER + body + VIEW.format(fn="to_dollars"))
    _write_source(repo, [250.0, None, 1200.0, 990.0, 5.0, 100000.0])
    return repo


def _edit(repo: Path, body: str) -> None:
    (repo / "features.py").write_text(HEADER + body + VIEW.format(fn="to_dollars"))


ENTITY = pl.DataFrame(
    {
        "user_id": [1, 2, 3, 1, 4],
        "event_timestamp": [BASE + timedelta(minutes=m) for m in (0, 1, 9, 3, 9)],
    }
)


def test_transform_feeds_training_frame_and_online_store(tmp_path: Path) -> None:
    store = FeatureStore(_repo(tmp_path))
    plan = store.apply()
    change = next(c for c in plan.changes if c.name == "user_stats")
    assert change.needs_materialization
    record = store.get_feature_view("user_stats")
    assert record.transform is not None
    assert record.transform.function_path == "features.py:to_dollars"
    frame = store.get_training_frame(ENTITY, ["user_stats:amount", "user_stats:is_big"])
    assert frame.to_polars().select("amount", "is_big").to_dict(as_series=False) == {
        "amount": [2.5, None, 1000.0, 9.9, None],
        "is_big": [0, None, 1, 0, None],
    }
    store.materialize(BASE, BASE + timedelta(hours=1))
    got = store.get_online_features(
        ["user_stats:amount", "user_stats:is_big"],
        [{"user_id": 1}, {"user_id": 2}, {"user_id": 3}],
        request_time=BASE + timedelta(hours=1),
    )
    # keys 1, 2, 3 hold rows 3 (990), 4 (5) and 5 (100000): the newest per key
    assert got.to_dict()["amount"] == [9.9, 0.05, 1000.0]
    assert got.to_dict()["is_big"] == [0, 0, 1]
    store.close()


def test_a_fresh_store_loads_the_transform_from_the_repo(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    FeatureStore(repo).apply()
    data = json.loads((repo / "data" / "registry.json").read_text())
    assert data["feature_views"]["user_stats"]["transform"]["function_path"] == (
        "features.py:to_dollars"
    )
    with FeatureStore(repo) as store:  # reads the registry file: no function in it
        assert store.get_feature_view("user_stats").view.transform is None
        frame = store.get_training_frame(ENTITY.head(1), ["user_stats:amount"]).to_polars()
        assert frame["amount"].to_list() == [2.5]


def test_non_row_wise_transform_refused_at_apply_with_the_explanation(tmp_path: Path) -> None:
    store = FeatureStore(_repo(tmp_path, CENTERED))
    with pytest.raises(DefinitionError) as info:
        store.apply()
    message = str(info.value)
    assert "Batch transform of feature view 'user_stats' is not row-wise" in message
    assert "'amount'" in message
    assert "leaking later data into training" in message
    assert "'is_big'" not in message  # row-wise: only 'amount' is named
    reports = store.check_transforms()
    assert not reports["user_stats"].ok
    assert reports["user_stats"].mismatches["is_big"] == 0


def test_wrong_output_type_refused_at_apply_naming_view_feature_and_types(tmp_path: Path) -> None:
    wrong = PASS_THROUGH.replace('pl.col("cents")', 'pl.col("cents").cast(pl.Int64)')
    store = FeatureStore(_repo(tmp_path, wrong))
    with pytest.raises(TransformationError) as info:
        store.apply()
    message = str(info.value)
    assert "Batch transform of feature view 'user_stats'" in message
    assert "'amount' is declared Float64" in message
    assert "returned Int64" in message


def test_row_count_change_refused(tmp_path: Path) -> None:
    with pytest.raises(TransformationError, match="one row per input row"):
        FeatureStore(_repo(tmp_path, FILTERS)).apply()


def test_type_drift_in_the_source_caught_on_both_paths(tmp_path: Path) -> None:
    repo = _repo(tmp_path, PASS_THROUGH)
    FeatureStore(repo).apply()
    # The source is rewritten after apply with integer cents: the pass-through now yields Int64.
    drift = pa.schema([*list(SCHEMA)[:2], ("amount_cents", pa.int64())])
    _write_source(repo, [1, 2, 3], drift)
    with FeatureStore(repo) as store:
        with pytest.raises(TransformationError, match=r"'amount' is declared Float64.*Int64"):
            store.get_training_frame(ENTITY, ["user_stats:amount"])
        with pytest.raises(TransformationError, match=r"'amount' is declared Float64.*Int64"):
            store.materialize(BASE, BASE + timedelta(hours=1))


def test_edited_transform_needs_rematerialization_and_reads_stale_until_then(
    tmp_path: Path,
) -> None:
    repo = _repo(tmp_path)
    store = FeatureStore(repo)
    store.apply()
    store.materialize(BASE, BASE + timedelta(hours=1))
    when = BASE + timedelta(hours=1)
    before = store.get_online_features(["user_stats:amount"], [{"user_id": 1}], request_time=when)
    assert before.statuses["amount"] == ["PRESENT"]

    _edit(repo, DOLLARS_EDITED)
    other = FeatureStore(repo)  # edited but not applied: training refuses the unapplied code
    with pytest.raises(RegistryConflictError, match="run 'featurestore apply'"):
        other.get_training_frame(ENTITY, ["user_stats:amount"])
    other.close()
    plan = store.plan()
    change = next(c for c in plan.changes if c.name == "user_stats")
    assert change.action == "change"
    assert change.needs_materialization
    assert change.details == ("~ transform features.py:to_dollars: source changed",)

    store.apply()
    stale = store.get_online_features(["user_stats:amount"], [{"user_id": 1}], request_time=when)
    assert stale.statuses["amount"] == ["STALE_DEFINITION"]
    store.materialize(BASE, BASE + timedelta(hours=1))
    fresh = store.get_online_features(["user_stats:amount"], [{"user_id": 1}], request_time=when)
    assert fresh.statuses["amount"] == ["PRESENT"]
    assert fresh.to_dict()["amount"] == [9.9]
    store.close()


def test_unchanged_transform_is_unchanged_in_plan(tmp_path: Path) -> None:
    store = FeatureStore(_repo(tmp_path))
    store.apply()
    change = next(c for c in store.plan().changes if c.name == "user_stats")
    assert change.action == "unchanged"
    assert not change.needs_materialization


def _view(transform: object) -> FeatureView:
    return FeatureView(
        name="v",
        entities=[Entity("user", join_keys=["user_id"])],
        source=ParquetSource("data/v.parquet", timestamp_field="ts"),
        schema=[Field("x", Float64)],
        transform=transform,  # type: ignore[arg-type]
    )


def _double(df: pl.DataFrame) -> pl.DataFrame:
    return df.select((pl.col("raw") * 2.0).alias("x"))


def _triple(df: pl.DataFrame) -> pl.DataFrame:
    return df.select((pl.col("raw") * 3.0).alias("x"))


def test_fingerprint_covers_the_transform_source() -> None:
    keys = {"user_id": Int64}
    plain = _view(None)
    assert transform_fingerprint(plain) is None
    assert view_fingerprint(_view(_double), keys) != view_fingerprint(plain, keys)
    assert view_fingerprint(_view(_double), keys) != view_fingerprint(_view(_triple), keys)
    assert view_fingerprint(_view(_double), keys) == view_fingerprint(_view(_double), keys)


def test_transform_must_be_callable() -> None:
    with pytest.raises(DefinitionError, match="transform="):
        _view("not a function")


def test_executor_runs_batch_transforms() -> None:
    transform = batch_transform(_view(_double), ["user_id", "ts", "raw"])
    frame = pl.DataFrame({"user_id": [1, 2], "ts": [BASE, BASE], "raw": [1.5, None]})
    assert run_transformation(transform, frame).to_dict(as_series=False) == {"x": [3.0, None]}
    with pytest.raises(TransformationError, match="missing input columns"):
        run_transformation(transform, frame.drop("raw"))


ON_DEMAND_OVER_TRANSFORM = """
from featurestore import RequestSource, on_demand_feature_view

txn = RequestSource("txn", schema=[Field("paid", Float64)])


@on_demand_feature_view(sources=[user_stats[["amount"]], txn], schema=[Field("ratio", Float64)])
def ratio(df: pl.DataFrame) -> pl.DataFrame:
    return df.select((pl.col("paid") / pl.col("amount")).alias("ratio"))
"""


def test_on_demand_view_over_a_transformed_view_same_offline_and_online(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (repo / "features.py").write_text(
        HEADER + DOLLARS + VIEW.format(fn="to_dollars") + ON_DEMAND_OVER_TRANSFORM
    )
    store = FeatureStore(repo)
    store.apply()  # samples the transformed view for the on-demand view's skew check
    store.materialize(BASE, BASE + timedelta(hours=1))
    when = BASE + timedelta(hours=1)
    entity = pl.DataFrame(
        {"user_id": [1, 2, 3], "event_timestamp": [when] * 3, "paid": [19.8, 1.0, None]}
    )
    offline = store.get_training_frame(entity, ["ratio:ratio"]).to_polars()["ratio"].to_list()
    online = store.get_online_features(
        ["ratio:ratio"],
        [{"user_id": 1, "paid": 19.8}, {"user_id": 2, "paid": 1.0}, {"user_id": 3, "paid": None}],
        request_time=when,
    ).to_dict()["ratio"]
    assert offline == online == [2.0, 20.0, None]
    store.close()


def test_rounding_that_depends_on_batch_length_is_tolerated_for_batch_transforms(
    tmp_path: Path,
) -> None:
    # polars computes x / 100 as x * 0.01 on many rows but exactly on one: 9260 -> 92.6 alone,
    # 92.60000000000001 in a batch. Both paths read one transformed copy, so it cannot skew.
    repo = _repo(tmp_path)
    _write_source(repo, [9260.0] * 50)
    with FeatureStore(repo) as store:
        assert store.check_transforms()["user_stats"].ok
        store.apply()
        frame = store.get_training_frame(ENTITY.head(1), ["user_stats:amount"]).to_polars()
        assert frame["amount"][0] == pytest.approx(92.6, rel=1e-12)


def test_rounding_only_differences_are_explained_for_on_demand_views() -> None:
    from featurestore import RequestSource, on_demand_feature_view
    from featurestore.transformations.check import check_row_independence

    txn = RequestSource("txn", schema=[Field("cents", Float64)])

    @on_demand_feature_view(sources=[txn], schema=[Field("dollars", Float64)])
    def dollars(df: pl.DataFrame) -> pl.DataFrame:
        return df.select((pl.col("cents") / 100).alias("dollars"))

    report = check_row_independence(dollars, pl.DataFrame({"cents": [9260.0, 9260.0]}))
    assert not report.ok  # exact for on-demand views: online computes one row alone
    assert report.rounding_only
    assert "floating-point rounding" in report.explain()
    assert "On-demand feature view 'dollars'" in report.explain()
