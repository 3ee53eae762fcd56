"""Property: get_training_frame equals the brute-force G1 oracle, for every join strategy and engine.

A real repo on disk (make_repo + apply), sources split over several Parquet files so the
position tie-break matters, DuckDB (each strategy) or Spark (``local[2]``, the ``spark``
variants, fewer examples: each costs Spark a few jobs) doing the join. Views share sources
but differ in ttl (None, zero, 5 s on a whole-second grid, so ttl boundaries are hit to the
microsecond). ``FEATURESTORE_SPARK_EXAMPLES=100`` runs the Spark variants longer.
"""

from __future__ import annotations

import os
from datetime import UTC
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore import FeatureStore
from featurestore.definitions import output_names
from tests.conftest import make_repo
from tests.oracle import pit_oracle
from tests.spark_engine import on_spark
from tests.strategies import TTL, entity_rows, feature_rows, timezones, write_timeline

FEATURES_PY = """
from datetime import timedelta
from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Int64, String

user = Entity("user", join_keys=["user_id"])
merchant = Entity("merchant", join_keys=["merchant"])
users = ParquetSource("data/u", timestamp_field="ts", created_timestamp_field="created")
schema = [Field("f_int", Int64), Field("f_str", String)]

u_nottl = FeatureView(name="u_nottl", entities=[user], source=users, schema=schema)
u_zero = FeatureView(name="u_zero", entities=[user], source=users, schema=schema,
                     ttl=timedelta(0))
u_ttl = FeatureView(name="u_ttl", entities=[user], source=users, schema=schema,
                    ttl=timedelta(seconds=5))
m_ttl = FeatureView(name="m_ttl", entities=[user, merchant],
                    source=ParquetSource("data/m", timestamp_field="ts"),
                    schema=[Field("f_int", Int64), Field("f_str", String)],
                    ttl=timedelta(seconds=5))
"""

TTLS = {"u_nottl": None, "u_zero": None, "u_ttl": TTL}
SPARK_EXAMPLES = int(os.environ.get("FEATURESTORE_SPARK_EXAMPLES", "4"))

U_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("created", pa.timestamp("us", tz="UTC")),
        ("f_int", pa.int64()),
        ("f_str", pa.string()),
    ]
)
M_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("merchant", pa.string()),
        ("ts", pa.timestamp("us")),  # naive on purpose: means UTC
        ("f_int", pa.int64()),
        ("f_str", pa.string()),
    ]
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    root = make_repo(tmp_path_factory.mktemp("pit"), FEATURES_PY)
    write_timeline(root / "data/u", [], U_SCHEMA)
    write_timeline(root / "data/m", [], M_SCHEMA)
    fs = FeatureStore(root)
    fs.apply()
    return fs


@pytest.fixture(scope="module")
def spark_store(store: FeatureStore) -> FeatureStore:
    """The same repo and registry with Spark as the offline engine."""
    return on_spark(store)


def present(rows: list[dict[str, Any]], tz: Any, kind: str, composite: bool) -> Any:
    """The entity rows as a frame of ``kind``, timestamps naive (UTC) or aware in ``tz``."""
    ts = [
        None
        if r["event_timestamp"] is None
        else (
            r["event_timestamp"].replace(tzinfo=None)
            if tz is None
            else r["event_timestamp"].astimezone(tz)
        )
        for r in rows
    ]
    ts_type = pa.timestamp("us") if tz is None else pa.timestamp("us", tz=_tz_name(tz))
    columns: dict[str, pa.Array] = {
        "user_id": pa.array([r["user_id"] for r in rows], pa.int64()),
        "event_timestamp": pa.array(ts, ts_type),
        "label": pa.array([r["label"] for r in rows], pa.int64()),
    }
    if composite:
        columns["merchant"] = pa.array([r["merchant"] for r in rows], pa.string())
    table = pa.table(columns)
    if kind == "polars":
        return pl.from_arrow(table)
    if kind == "pandas":
        return table.to_pandas()
    return table


def _tz_name(tz: Any) -> str:
    return "UTC" if tz is UTC else str(tz.key)


def frame(
    fs: FeatureStore,
    entity: Any,
    features: list[str],
    *,
    strategy: str,
    full_feature_names: bool = False,
    point_in_time: str = "event",
) -> list[dict[str, Any]]:
    """get_training_frame with a forced join strategy (the facade always uses auto)."""
    if strategy == "auto":
        result = fs.get_training_frame(
            entity,
            features,
            full_feature_names=full_feature_names,
            point_in_time=point_in_time,  # type: ignore[arg-type]
        )
        rows: list[dict[str, Any]] = result.to_arrow().to_pylist()
        return rows
    refs = fs.resolve(features)
    by_view: dict[str, list[str]] = {}
    for ref in refs:
        by_view.setdefault(ref.view, []).append(ref.feature)
    names = output_names(refs, full_feature_names=full_feature_names)
    result = fs.offline.training_frame(
        entity,
        [(fs.get_feature_view(v), fs_) for v, fs_ in by_view.items()],
        output_names=dict(zip(refs, names, strict=True)),
        timestamp_column="event_timestamp",
        point_in_time=point_in_time,  # type: ignore[arg-type]
        strategy=strategy,  # type: ignore[arg-type]
    )
    table_rows: list[dict[str, Any]] = result.to_arrow().to_pylist()
    return table_rows


def expected_rows(
    entities: list[dict[str, Any]], per_view: list[tuple[list[dict[str, Any]], str]]
) -> list[dict[str, Any]]:
    out = [dict(e) for e in entities]
    for values, prefix in per_view:
        for row, vals in zip(out, values, strict=True):
            row.update({prefix + k: v for k, v in vals.items()})
    return out


STRATEGIES = ["asof", "range", "arrays"]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("view", ["u_nottl", "u_zero", "u_ttl"])
@settings(max_examples=30)
@given(
    rows=feature_rows(),
    entities=entity_rows(),
    tz=timezones,
    kind=st.sampled_from(["arrow", "polars", "pandas"]),
)
def test_training_frame_equals_oracle(
    store: FeatureStore, strategy: str, view: str, rows, entities, tz, kind
) -> None:
    check_training_frame(store, strategy, view, rows, entities, tz, kind)


@pytest.mark.parametrize("view", ["u_nottl", "u_zero", "u_ttl"])
@settings(max_examples=SPARK_EXAMPLES)
@given(
    rows=feature_rows(),
    entities=entity_rows(),
    tz=timezones,
    kind=st.sampled_from(["arrow", "polars", "pandas"]),
)
def test_training_frame_equals_oracle_on_spark(
    spark_store: FeatureStore, view: str, rows, entities, tz, kind
) -> None:
    check_training_frame(spark_store, "auto", view, rows, entities, tz, kind)


def check_training_frame(
    store: FeatureStore, strategy: str, view: str, rows, entities, tz, kind
) -> None:
    write_timeline(store.repo_root / "data/u", rows, U_SCHEMA)
    got = frame(
        store,
        present(entities, tz, kind, composite=False),
        [f"{view}:f_int", f"{view}:f_str"],
        strategy=strategy,
    )
    values = pit_oracle(
        entities, rows, join_keys=["user_id"], features=["f_int", "f_str"], ttl=TTLS[view]
    )
    assert got == expected_rows(entities, [(values, "")])


@pytest.mark.parametrize("strategy", [*STRATEGIES, "auto"])
@settings(max_examples=30)
@given(
    u_rows=feature_rows(),
    m_rows=feature_rows(composite=True, with_created=False),
    entities=entity_rows(composite=True),
)
def test_several_views_with_composite_key_equal_oracle(
    store: FeatureStore, strategy: str, u_rows, m_rows, entities
) -> None:
    check_composite(store, strategy, u_rows, m_rows, entities)


@settings(max_examples=SPARK_EXAMPLES)
@given(
    u_rows=feature_rows(),
    m_rows=feature_rows(composite=True, with_created=False),
    entities=entity_rows(composite=True),
)
def test_several_views_with_composite_key_equal_oracle_on_spark(
    spark_store: FeatureStore, u_rows, m_rows, entities
) -> None:
    check_composite(spark_store, "auto", u_rows, m_rows, entities)


def check_composite(store: FeatureStore, strategy: str, u_rows, m_rows, entities) -> None:
    write_timeline(store.repo_root / "data/u", u_rows, U_SCHEMA)
    write_timeline(store.repo_root / "data/m", m_rows, M_SCHEMA)
    got = frame(
        store,
        present(entities, UTC, "arrow", composite=True),
        ["m_ttl:f_str", "u_nottl:f_int", "m_ttl:f_int"],
        strategy=strategy,
        full_feature_names=True,
    )
    m_vals = pit_oracle(
        entities, m_rows, join_keys=["user_id", "merchant"], features=["f_str", "f_int"], ttl=TTL
    )
    u_vals = pit_oracle(entities, u_rows, join_keys=["user_id"], features=["f_int"])
    expected = expected_rows(entities, [(m_vals, "m_ttl__"), (u_vals, "u_nottl__")])
    order = [
        "user_id",
        "event_timestamp",
        "label",
        "merchant",
        "m_ttl__f_str",
        "u_nottl__f_int",
        "m_ttl__f_int",
    ]
    assert [list(r) for r in got[:1]] == [order] * len(got[:1])
    assert got == [{k: r[k] for k in order} for r in expected]


@pytest.mark.parametrize("strategy", STRATEGIES)  # "asof" falls back to range for "available"
@pytest.mark.parametrize("view", ["u_nottl", "u_ttl"])
@settings(max_examples=30)
@given(rows=feature_rows(), entities=entity_rows())
def test_available_point_in_time_equals_oracle(
    store: FeatureStore, strategy: str, view: str, rows, entities
) -> None:
    check_available(store, strategy, view, rows, entities)


@pytest.mark.parametrize("view", ["u_nottl", "u_ttl"])
@settings(max_examples=SPARK_EXAMPLES)
@given(rows=feature_rows(), entities=entity_rows())
def test_available_point_in_time_equals_oracle_on_spark(
    spark_store: FeatureStore, view: str, rows, entities
) -> None:
    check_available(spark_store, "auto", view, rows, entities)


def check_available(store: FeatureStore, strategy: str, view: str, rows, entities) -> None:
    write_timeline(store.repo_root / "data/u", rows, U_SCHEMA)
    got = frame(
        store,
        present(entities, UTC, "arrow", composite=False),
        [f"{view}:f_str", f"{view}:f_int"],
        strategy=strategy,
        point_in_time="available",
    )
    values = pit_oracle(
        entities,
        rows,
        join_keys=["user_id"],
        features=["f_str", "f_int"],
        ttl=TTLS[view],
        point_in_time="available",
    )
    assert got == expected_rows(entities, [(values, "")])
