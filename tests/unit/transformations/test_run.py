from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from featurestore import Entity, FeatureView, Field, ParquetSource, RequestSource
from featurestore.errors import DefinitionError, EntityFrameError, TransformationError
from featurestore.transformations import on_demand_feature_view, run_transformation
from featurestore.transformations.check import check_row_independence
from featurestore.transformations.decorator import _function_sources, source_fingerprint
from featurestore.types import Float64, Int64, String

user = Entity("user", join_keys=["user_id"])
stats = FeatureView(
    name="user_stats",
    entities=[user],
    source=ParquetSource("data/u.parquet", timestamp_field="ts"),
    schema=[Field("avg_amount", Float64), Field("count", Int64)],
)
txn = RequestSource("txn", schema=[Field("amount", Float64)])


@on_demand_feature_view(sources=[stats, txn], schema=[Field("ratio", Float64)])
def ratio(df: pl.DataFrame) -> pl.DataFrame:
    return df.select((pl.col("amount") / pl.col("avg_amount")).alias("ratio"))


@on_demand_feature_view(sources=[stats, txn], schema=[Field("ratio", Float64)], mode="python")
def ratio_rows(row: dict) -> dict:
    if row["amount"] is None or row["avg_amount"] is None:
        return {"ratio": None}
    return {"ratio": row["amount"] / row["avg_amount"]}


@on_demand_feature_view(sources=[stats, txn], schema=[Field("z", Float64)])
def zscore(df: pl.DataFrame) -> pl.DataFrame:
    return df.select(((pl.col("amount") - pl.col("amount").mean()) / 1.0).alias("z"))


def frame(amounts, avgs) -> pl.DataFrame:
    return pl.DataFrame(
        {"avg_amount": avgs, "count": [1] * len(avgs), "amount": amounts},
        schema={"avg_amount": pl.Float64, "count": pl.Int64, "amount": pl.Float64},
    )


def test_polars_and_python_modes_agree_with_nulls():
    df = frame([10.0, None, 3.0], [5.0, 2.0, None])
    assert run_transformation(ratio, df).to_dict(as_series=False) == {"ratio": [2.0, None, None]}
    assert run_transformation(ratio_rows, df).equals(run_transformation(ratio, df))


@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.floats(-1e6, 1e6)),
            st.one_of(st.none(), st.floats(0.5, 1e6)),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_batch_of_many_equals_rows_alone(rows):
    df = frame([a for a, _ in rows], [b for _, b in rows])
    report = check_row_independence(ratio, df)
    assert report.ok, report.explain()


def test_request_fields_are_cast_to_their_declared_type():
    df = pl.DataFrame({"avg_amount": [2.0], "count": [1], "amount": [4]})  # amount is an int
    assert run_transformation(ratio, df)["ratio"].to_list() == [2.0]


def test_missing_request_field_names_the_field_and_fix():
    df = pl.DataFrame({"avg_amount": [2.0], "count": [1]})
    with pytest.raises(EntityFrameError, match="needs request field 'amount'"):
        run_transformation(ratio, df)


def test_uncastable_request_field_is_an_entity_frame_error():
    df = pl.DataFrame({"avg_amount": [2.0], "count": [1], "amount": ["ten"]})
    with pytest.raises(EntityFrameError, match="cannot convert request field"):
        run_transformation(ratio, df)


def test_wrong_output_type_names_view_feature_and_both_types():
    @on_demand_feature_view(sources=[stats], schema=[Field("n", Float64)])
    def as_int(df: pl.DataFrame) -> pl.DataFrame:
        return df.select(pl.col("count").alias("n"))

    with pytest.raises(
        TransformationError, match=r"'as_int' feature 'n' is declared Float64.*Int64"
    ):
        run_transformation(as_int, frame([1.0], [1.0]))


def test_python_mode_type_mismatch_is_caught():
    @on_demand_feature_view(sources=[stats], schema=[Field("s", Int64)], mode="python")
    def as_str(row: dict) -> dict:
        return {"s": "x"}

    with pytest.raises(
        TransformationError, match=r"'s' is declared Int64 but the function returned str"
    ):
        run_transformation(as_str, frame([1.0], [1.0]))


def test_wrong_row_count_and_missing_columns_are_refused():
    @on_demand_feature_view(sources=[stats], schema=[Field("n", Int64)])
    def drops(df: pl.DataFrame) -> pl.DataFrame:
        return df.select(pl.col("count").alias("n")).head(1)

    @on_demand_feature_view(sources=[stats], schema=[Field("n", Int64)])
    def misnamed(df: pl.DataFrame) -> pl.DataFrame:
        return df.select(pl.col("count").alias("m"))

    with pytest.raises(TransformationError, match="returned 1 rows for 2 input rows"):
        run_transformation(drops, frame([1.0, 2.0], [1.0, 1.0]))
    with pytest.raises(TransformationError, match=r"did not return \['n'\]"):
        run_transformation(misnamed, frame([1.0], [1.0]))


def test_exceptions_in_the_function_are_wrapped_with_the_view_name():
    @on_demand_feature_view(sources=[stats], schema=[Field("n", Int64)], mode="python")
    def boom(row: dict) -> dict:
        raise KeyError("nope")

    with pytest.raises(TransformationError, match="'boom' raised KeyError"):
        run_transformation(boom, frame([1.0], [1.0]))


def test_a_column_mean_is_refused_with_an_explanation():
    report = check_row_independence(zscore, frame([1.0, 2.0, 9.0], [1.0, 1.0, 1.0]))
    assert not report.ok
    assert report.mismatches == {"z": 3}
    assert "is not row-wise" in report.explain()
    assert "training frame and an online request would get different values" in report.explain()


def test_missing_return_annotation_is_refused():
    with pytest.raises(DefinitionError, match="missing return annotation"):

        @on_demand_feature_view(sources=[txn], schema=[Field("x", Float64)])
        def unannotated(df):  # type: ignore[no-untyped-def]
            return df


def test_colliding_inputs_and_outputs_are_refused():
    other = FeatureView(
        name="other",
        entities=[user],
        source=ParquetSource("data/o.parquet", timestamp_field="ts"),
        schema=[Field("count", Int64)],
    )
    with pytest.raises(DefinitionError, match="lists input column 'count' twice"):

        @on_demand_feature_view(sources=[stats, other], schema=[Field("x", Int64)])
        def clash(df: pl.DataFrame) -> pl.DataFrame:
            return df

    with pytest.raises(DefinitionError, match="also its inputs"):

        @on_demand_feature_view(sources=[txn], schema=[Field("amount", Float64)])
        def same(df: pl.DataFrame) -> pl.DataFrame:
            return df


def _helper(x: float) -> float:
    return x * 2


def test_fingerprint_covers_helpers_in_the_same_module():
    def uses_helper(df: pl.DataFrame) -> pl.DataFrame:
        return df.select(pl.col("amount").map_elements(_helper, return_dtype=pl.Float64))

    def no_helper(df: pl.DataFrame) -> pl.DataFrame:
        return df.select(pl.col("amount"))

    assert source_fingerprint(uses_helper) != source_fingerprint(no_helper)
    covered = "\n".join(_function_sources(uses_helper, set()))
    assert "return x * 2" in covered  # the helper's body is part of the fingerprint


def test_fingerprint_changes_with_schema_and_not_with_description():
    a = on_demand_feature_view(sources=[txn], schema=[Field("x", Float64)])(ratio.function)
    b = on_demand_feature_view(sources=[txn], schema=[Field("x", Float64)], description="d")(
        ratio.function
    )
    c = on_demand_feature_view(sources=[txn], schema=[Field("x", String)])(ratio.function)
    assert a.fingerprint == b.fingerprint != c.fingerprint
