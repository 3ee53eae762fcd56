"""Aggregation views (DESIGN G7): definitions, names, hop rules, registry and fingerprint."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from featurestore import Aggregation, Entity, FeatureStore, FeatureView, Field, ParquetSource
from featurestore.errors import DefinitionError
from featurestore.types import Float64, Int64
from tests.conftest import make_repo, utc, write_parquet

H = timedelta(hours=1)
card = Entity("card", join_keys=["card_id"])
source = ParquetSource("data/tx.parquet", timestamp_field="ts")


def view(*aggs: Aggregation, **kwargs: object) -> FeatureView:
    return FeatureView("w", entities=[card], source=source, aggregations=list(aggs), **kwargs)  # type: ignore[arg-type]


def test_outputs_names_types_and_derived_hop() -> None:
    v = view(
        Aggregation("amount", "sum", 7 * 24 * H),
        Aggregation(None, "count", H),
        Aggregation("amount", "mean", 24 * H, name="avg_day"),
    )
    assert v.schema == (
        Field("amount_sum_7d", Float64),
        Field("count_1h", Int64),
        Field("avg_day", Float64),
    )
    assert v.hop_us == 3_600_000_000
    assert v.event_columns == ("amount",)
    assert view(Aggregation("amount", "max", 90 * timedelta(minutes=1))).feature_names == (
        "amount_max_90m",
    )
    assert view(Aggregation("x", "min", 2 * H), hop=timedelta(minutes=30)).hop_us == 1_800_000_000


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Aggregation("amount", "median", H), "not an aggregate function"),  # type: ignore[arg-type]
        (lambda: Aggregation(None, "sum", H), "needs a column"),
        (lambda: Aggregation("amount", "sum", timedelta(0)), "positive timedelta"),
        (
            lambda: view(Aggregation("a", "sum", 2 * H), Aggregation("a", "max", 3 * H)),
            "not a whole multiple of the hop 2:00:00",
        ),
        (
            lambda: view(Aggregation("a", "sum", H), hop=timedelta(minutes=7)),
            "not a whole multiple",
        ),
        (lambda: view(Aggregation("a", "sum", H), Aggregation("a", "sum", H)), "feature"),
        (
            lambda: view(Aggregation("a", "sum", H), schema=[Field("x", Int64)]),
            "drop schema",
        ),
        (lambda: view(hop=H), "no aggregations"),
    ],
)
def test_bad_definitions_name_the_fix(make: object, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        make()  # type: ignore[operator]


FEATURES = """
from datetime import timedelta
from featurestore import Aggregation, Entity, FeatureView, ParquetSource
card = Entity("card", join_keys=["card_id"])
w = FeatureView("w", entities=[card], source=ParquetSource("data/tx.parquet", timestamp_field="ts"),
                aggregations=[Aggregation("amount", "sum", timedelta(hours={hours})),
                              Aggregation(None, "count", timedelta(hours=2), name="n")],
                hop={hop})
"""


def test_registry_roundtrip_and_fingerprint_covers_aggregations(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, FEATURES.format(hours=4, hop="timedelta(hours=1)"))
    write_parquet(
        repo / "data/tx.parquet",
        {"card_id": [1], "ts": [utc(2026, 1, 1)], "amount": [2.5]},
        pa.schema(
            [
                ("card_id", pa.int64()),
                ("ts", pa.timestamp("us", tz="UTC")),
                ("amount", pa.float64()),
            ]
        ),
    )
    store = FeatureStore(repo)
    store.apply()
    applied = store.get_feature_view("w")
    again = FeatureStore(repo).get_feature_view("w")
    assert again == applied
    assert again.view.aggregations == applied.view.aggregations
    assert again.view.hop_us == 3_600_000_000
    for hours, hop in ((8, "timedelta(hours=1)"), (4, "None")):
        (repo / "features.py").write_text(FEATURES.format(hours=hours, hop=hop))
        plan = FeatureStore(repo).plan()
        assert [c.name for c in plan.changes if c.needs_materialization] == ["w"], (hours, hop)


def test_event_column_of_an_aggregation_view_is_its_newest_event(tmp_path: Path) -> None:
    """The skew report's event column: the newest event of the widest window (null: none)."""
    from featurestore import FeatureRef

    repo = make_repo(tmp_path, FEATURES.format(hours=4, hop="None"))
    schema = pa.schema(
        [("card_id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")), ("amount", pa.float64())]
    )
    write_parquet(
        repo / "data/tx.parquet",
        {"card_id": [1, 1], "ts": [utc(2026, 1, 1, 1), utc(2026, 1, 1, 3)], "amount": [1.0, 2.0]},
        schema,
    )
    store = FeatureStore(repo)
    store.apply()
    entity = pa.table(
        {
            "card_id": [1, 1, 2],
            "event_timestamp": pa.array(
                [utc(2026, 1, 1, 2), utc(2026, 1, 1, 12), utc(2026, 1, 1, 2)],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    frame = store.offline.training_frame(
        entity,
        [(store.get_feature_view("w"), ["n"])],
        output_names={FeatureRef("w", "n"): "n"},
        timestamp_column="event_timestamp",
        point_in_time="event",
        event_columns={"w": "w_ts"},
    ).to_arrow()
    assert frame.column("n").to_pylist() == [1, 0, 0]
    assert frame.column("w_ts").to_pylist() == [utc(2026, 1, 1, 1), None, None]


def test_online_statuses_not_found_then_present_then_stale(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, FEATURES.format(hours=4, hop="None"))
    schema = pa.schema(
        [("card_id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")), ("amount", pa.float64())]
    )
    write_parquet(
        repo / "data/tx.parquet",
        {"card_id": [1, 1], "ts": [utc(2026, 1, 1, 1), utc(2026, 1, 1, 3)], "amount": [1.0, 2.0]},
        schema,
    )
    store = FeatureStore(repo)
    store.apply()
    at = utc(2026, 1, 1, 4)

    def read() -> Any:
        return store.get_online_features(
            ["w:n", "w:amount_sum_4h"], [{"card_id": 1}], request_time=at
        )

    assert read().statuses["n"] == ["NOT_FOUND"]
    store.materialize(utc(2026, 1, 1), at)
    got = read()
    assert got.statuses["n"] == ["PRESENT"]
    assert got.to_dict() == {"card_id": [1], "n": [1], "amount_sum_4h": [3.0]}
    (repo / "features.py").write_text(FEATURES.format(hours=6, hop="None").replace("4h", "6h"))
    store.apply()
    features = ["w:n", "w:amount_sum_6h"]
    stale = store.get_online_features(features, [{"card_id": 1}], request_time=at)
    assert stale.statuses["n"] == ["STALE_DEFINITION"]
    assert stale.to_dict()["n"] == [None]
