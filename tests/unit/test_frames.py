"""featurestore.frames: the shared frame protocol and the one Arrow-to-pandas conversion."""

from __future__ import annotations

import sys

import pandas as pd
import pyarrow as pa
import pytest

from featurestore.errors import MissingDependencyError
from featurestore.frames import Frame, arrow_to_pandas, arrow_to_polars

TABLE = pa.table(
    {
        "i64": pa.array([19, None], pa.int64()),
        "i32": pa.array([7, None], pa.int32()),
        "u8": pa.array([1, None], pa.uint8()),
        "flag": pa.array([True, None]),
        "name": pa.array(["ann", None]),
        "big_name": pa.array(["bob", None], pa.large_string()),
        "amount": pa.array([2.5, None]),
        "ts": pa.array([0, None], pa.timestamp("us", tz="UTC")),
    }
)


def test_pandas_keeps_integers_with_nulls_as_nullable_integers() -> None:
    df = arrow_to_pandas(TABLE, what="test")
    assert {c: str(t) for c, t in df.dtypes.items()} == {
        "i64": "Int64",
        "i32": "Int32",
        "u8": "UInt8",
        "flag": "boolean",
        "name": "string",
        "big_name": "string",
        "amount": "float64",
        "ts": "datetime64[us, UTC]",
    }
    assert df["i64"].tolist() == [19, pd.NA]
    assert df["flag"].tolist() == [True, pd.NA]
    assert df["name"].tolist() == ["ann", pd.NA]


def test_polars_conversion_keeps_types() -> None:
    frame = arrow_to_polars(TABLE)
    assert frame.to_arrow().schema.field("i64").type == pa.int64()
    assert frame["i64"].to_list() == [19, None]


def test_missing_pandas_names_the_method_and_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas raises ImportError
    with pytest.raises(MissingDependencyError, match=r"^TrainingFrame\.to_pandas needs") as info:
        arrow_to_pandas(TABLE, what="TrainingFrame.to_pandas")
    assert "pip install 'featurestore[pandas]'" in str(info.value)


def test_a_class_with_the_three_conversions_is_a_frame() -> None:
    class Table:
        def to_arrow(self) -> pa.Table:
            return TABLE

        def to_polars(self) -> object:
            return arrow_to_polars(TABLE)

        def to_pandas(self) -> object:
            return arrow_to_pandas(TABLE, what="Table.to_pandas")

    assert isinstance(Table(), Frame)
    assert not isinstance(object(), Frame)
