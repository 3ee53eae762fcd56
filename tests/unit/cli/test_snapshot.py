"""``featurestore snapshot`` and ``FeatureStore.get_snapshot`` on the example repo: outputs,
and the errors that name the object and the fix."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from featurestore import FeatureStore
from featurestore.errors import EntityFrameError
from featurestore.sample_data import default_end

T = default_end() - timedelta(hours=2)
AS_OF = T.isoformat()


def test_snapshot_of_every_user_to_parquet(applied, tmp_path: Path):
    out = tmp_path / "snap.parquet"
    result = applied.ok(
        "snapshot", "-f", "user_stats:txn_count_7d", "--as-of", AS_OF, "-o", str(out), "--json"
    )
    summary = json.loads(result.stdout)
    frame = pl.read_parquet(out)
    assert summary["rows"] == frame.height > 0
    assert frame.columns == ["user_id", "event_timestamp", "txn_count_7d"]
    assert frame["user_id"].is_sorted()
    assert frame["user_id"].n_unique() == frame.height
    assert frame["event_timestamp"].unique().to_list() == [
        pl.Series([AS_OF]).str.to_datetime(time_zone="UTC")[0]
    ]


def test_snapshot_of_given_keys_with_a_request_value_to_csv(applied, tmp_path: Path):
    keys = tmp_path / "keys.csv"
    pl.DataFrame({"user_id": [3, 1, 3], "merchant_id": ["m_00001", "nope", "m_00002"]}).write_csv(
        keys
    )
    out = tmp_path / "scored.csv"
    applied.ok(
        "snapshot", "-s", "fraud_v1", "--as-of", AS_OF, "--keys", str(keys),
        "--request", "amount=50.0", "--full-feature-names", "-o", str(out),
    )  # fmt: skip
    frame = pl.read_csv(out)
    assert frame["user_id"].to_list() == [3, 1, 3]
    assert frame.columns[:4] == ["user_id", "merchant_id", "event_timestamp", "amount"]
    assert frame["amount"].to_list() == [50.0] * 3
    assert "txn_features__amount_vs_avg" in frame.columns
    assert frame["merchant_stats__merchant_txn_count_1d"][1] is None


def test_snapshot_without_keys_over_views_of_different_keys_asks_for_keys(applied, tmp_path):
    result = applied(
        "snapshot", "-s", "fraud_v1", "--as-of", AS_OF, "--request", "amount=1.0",
        "-o", str(tmp_path / "x.parquet"),
    )  # fmt: skip
    assert result.exit_code == 1
    assert "have different join keys" in result.stderr
    assert "Pass --keys FILE" in result.stderr


@pytest.fixture
def store(applied) -> FeatureStore:
    fs = FeatureStore(applied.repo)
    yield fs
    fs.close()


def test_missing_request_field_names_both_ways_to_give_it(store: FeatureStore):
    with pytest.raises(
        EntityFrameError, match=r"request field 'amount'.*request=\{'amount': \.\.\.\}"
    ):
        store.get_snapshot(["txn_features:amount_vs_avg"], T)


def test_unknown_or_mistyped_request_value_is_refused(store: FeatureStore):
    with pytest.raises(EntityFrameError, match=r"'amout' is not a request field.*amount"):
        store.get_snapshot(["txn_features:amount_vs_avg"], T, request={"amout": 1.0})
    with pytest.raises(EntityFrameError, match="Request field 'amount' is Float64"):
        store.get_snapshot(["txn_features:amount_vs_avg"], T, request={"amount": "lots"})


def test_keys_column_named_like_the_time_column_is_refused(store: FeatureStore):
    keys = pl.DataFrame({"user_id": [1], "event_timestamp": [None]})
    with pytest.raises(EntityFrameError, match="timestamp_column=<another name>"):
        store.get_snapshot(["user_stats:txn_count_7d"], T, keys=keys)


def test_keys_without_a_join_key_and_bad_sql_are_refused(store: FeatureStore):
    with pytest.raises(EntityFrameError, match=r"lacks join key column.*merchant_id"):
        store.get_snapshot(
            ["merchant_stats:merchant_category"], T, keys=pl.DataFrame({"user_id": [1]})
        )
    with pytest.raises(EntityFrameError, match="keys SQL query failed"):
        store.get_snapshot(["user_stats:txn_count_7d"], T, keys="SELECT nope FROM nowhere")


def test_keys_as_sql_query(store: FeatureStore):
    snap = store.get_snapshot(
        ["user_stats:txn_count_7d"], T, keys="SELECT * FROM range(3) AS r(user_id)"
    ).to_polars()
    assert snap["user_id"].to_list() == [0, 1, 2]
    every = store.get_snapshot(["user_stats:txn_count_7d"], T).to_polars()
    assert (
        snap.join(every, on=["user_id", "event_timestamp"], how="left")[
            "txn_count_7d_right"
        ].to_list()
        == snap["txn_count_7d"].to_list()
    )


def test_snapshot_reads_pushed_rows_after_the_source(store: FeatureStore):
    row = {
        "user_id": 3,
        "event_timestamp": T - timedelta(minutes=1),
        "txn_count_7d": 4242,
        "avg_amount_7d": 1.5,
        "max_amount_7d": 2.0,
        "distinct_merchants_30d": 1,
    }
    store.push("user_stats", [row, {**row, "user_id": 424242}], to="offline")
    snap = store.get_snapshot(["user_stats:txn_count_7d"], T).to_polars()
    pushed = snap.filter(pl.col("user_id").is_in([3, 424242]))
    assert pushed["txn_count_7d"].to_list() == [4242, 4242]


def test_as_of_may_be_an_iso_string(store: FeatureStore):
    by_string = store.get_snapshot(["user_stats:txn_count_7d"], AS_OF).to_arrow()
    assert by_string.equals(store.get_snapshot(["user_stats:txn_count_7d"], T).to_arrow())
    with pytest.raises(EntityFrameError, match="as_of"):
        store.get_snapshot(["user_stats:txn_count_7d"], "yesterday")
