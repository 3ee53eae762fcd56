from __future__ import annotations

from datetime import timedelta

import pytest

from featurestore import Entity, FeatureService, FeatureView, Field, ParquetSource, RequestSource
from featurestore.definitions import FeatureRef, output_names
from featurestore.errors import DefinitionError
from featurestore.types import Array, Float64, Int64, String

user = Entity("user", join_keys=["user_id"])
source = ParquetSource("data/u.parquet", timestamp_field="ts", created_timestamp_field="created")


def make_view(**overrides: object) -> FeatureView:
    kwargs: dict[str, object] = {
        "name": "user_stats",
        "entities": [user],
        "source": source,
        "schema": [Field("txn_count", Int64), Field("avg_amount", Float64)],
        "ttl": timedelta(days=2),
    }
    kwargs.update(overrides)
    return FeatureView(**kwargs)  # type: ignore[arg-type]


def test_entity_accepts_a_single_key_string_as_one_key():
    assert Entity("user", join_keys="user_id").join_keys == ("user_id",)


def test_entity_without_join_keys_names_the_fix():
    with pytest.raises(DefinitionError, match=r"Entity 'user' has no join keys; pass join_keys"):
        Entity("user", join_keys=[])


@pytest.mark.parametrize("bad", ["", "1abc", "user-stats", "has space", "__fs_x"])
def test_invalid_names_are_refused(bad: str):
    with pytest.raises(DefinitionError, match="name"):
        Entity(bad, join_keys=["k"])


def test_duplicate_join_keys_are_refused():
    with pytest.raises(DefinitionError, match="lists join key 'a' twice"):
        Entity("e", join_keys=["a", "a"])


def test_feature_view_collects_join_keys_across_entities():
    merchant = Entity("merchant", join_keys=["merchant_id"])
    view = make_view(entities=[user, merchant])
    assert view.join_keys == ("user_id", "merchant_id")
    assert view.feature_names == ("txn_count", "avg_amount")


def test_feature_view_refuses_duplicate_features():
    with pytest.raises(DefinitionError, match="lists feature 'a' twice"):
        make_view(schema=[Field("a", Int64), Field("a", Float64)])


def test_feature_view_refuses_a_feature_named_like_a_join_key():
    with pytest.raises(DefinitionError, match="also its join key or timestamp column"):
        make_view(schema=[Field("user_id", Int64)])


def test_feature_view_refuses_negative_ttl():
    with pytest.raises(DefinitionError, match="non-negative timedelta"):
        make_view(ttl=timedelta(seconds=-1))


@pytest.mark.parametrize("ttl", [None, timedelta(0)])
def test_zero_and_none_ttl_both_mean_unlimited(ttl: timedelta | None):
    assert make_view(ttl=ttl).effective_ttl is None


def test_feature_view_needs_a_source():
    with pytest.raises(DefinitionError, match=r"needs source=ParquetSource"):
        make_view(source="data/u.parquet")


def test_field_refuses_a_non_type():
    with pytest.raises(DefinitionError, match="not a feature type"):
        Field("x", int)  # type: ignore[arg-type]


def test_array_of_array_is_refused():
    with pytest.raises(DefinitionError, match="lists hold scalar types only"):
        Array(Array(Int64))  # type: ignore[arg-type]


def test_source_refuses_same_event_and_created_column():
    with pytest.raises(DefinitionError, match="both the event and the created timestamp"):
        ParquetSource("x.parquet", timestamp_field="ts", created_timestamp_field="ts")


def test_projection_selects_known_features_only():
    view = make_view()
    assert view[["avg_amount"]].features == ("avg_amount",)
    with pytest.raises(DefinitionError, match="has no feature 'nope'"):
        view[["nope"]]


def test_feature_service_expands_views_projections_and_strings_without_duplicates():
    view = make_view()
    service = FeatureService(
        "svc", features=[view, view[["avg_amount"]], "other:f", FeatureRef("other", "f")]
    )
    assert [str(r) for r in service.refs] == [
        "user_stats:txn_count",
        "user_stats:avg_amount",
        "other:f",
    ]


def test_feature_service_refuses_unknown_items():
    with pytest.raises(DefinitionError, match="not a feature view"):
        FeatureService("svc", features=[42])


@pytest.mark.parametrize("bad", ["noview", ":f", "v:", "a:b:c"])
def test_malformed_refs_name_the_format(bad: str):
    with pytest.raises(DefinitionError, match="write 'view:feature'"):
        FeatureRef.parse(bad)


def test_output_names_refuse_collisions_and_suggest_full_names():
    refs = [FeatureRef("a", "x"), FeatureRef("b", "x")]
    with pytest.raises(DefinitionError, match="full_feature_names=True"):
        output_names(refs, full_feature_names=False)
    assert output_names(refs, full_feature_names=True) == ["a__x", "b__x"]


def test_output_names_refuse_a_column_the_entity_frame_has():
    with pytest.raises(DefinitionError, match="entity frame already has"):
        output_names([FeatureRef("a", "x")], full_feature_names=False, taken=("x",))


def test_request_source_lists_its_fields():
    assert RequestSource(
        "txn", schema=[Field("amount", Float64), Field("c", String)]
    ).field_names == (
        "amount",
        "c",
    )
