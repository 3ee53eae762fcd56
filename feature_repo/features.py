"""Card-payment fraud features: per user, per merchant and per (user, merchant) pair,
sliding-window aggregates of each card holder's raw transactions, plus an on-demand feature
computed from the transaction's amount at request time.

Run ``python generate_data.py`` once to create the Parquet files under data/, then
``featurestore apply`` to register these definitions.
"""

from datetime import timedelta

import great_expectations.expectations as gxe
import polars as pl

from featurestore import (
    Aggregation,
    Entity,
    FeatureService,
    FeatureView,
    Field,
    LoggingConfig,
    ParquetSource,
    RequestSource,
    on_demand_feature_view,
)
from featurestore.types import Float64, Int64, String

user = Entity("user", join_keys=["user_id"], description="A card holder.")
merchant = Entity("merchant", join_keys=["merchant_id"], description="A card acceptor.")

user_stats = FeatureView(
    name="user_stats",
    entities=[user],
    source=ParquetSource(
        path="data/user_stats.parquet",
        timestamp_field="event_timestamp",
        created_timestamp_field="created",
    ),
    schema=[
        Field("txn_count_7d", Int64, "Card transactions in the last 7 days."),
        Field("avg_amount_7d", Float64, "Mean amount over 7 days; null without transactions."),
        Field("max_amount_7d", Float64, "Largest amount over 7 days; null without transactions."),
        Field("distinct_merchants_30d", Int64, "Merchants paid in the last 30 days."),
    ],
    ttl=timedelta(days=2),
    # Checked with Great Expectations before a window reaches the online store: a window that
    # breaks one writes nothing (docs/validation.md).
    expectations=[
        gxe.ExpectColumnValuesToNotBeNull(column="user_id"),
        gxe.ExpectColumnValuesToBeBetween(column="txn_count_7d", min_value=0, max_value=10_000),
        gxe.ExpectColumnValuesToBeBetween(column="avg_amount_7d", min_value=0),
        gxe.ExpectColumnValuesToBeBetween(
            column="distinct_merchants_30d", min_value=0, max_value=1_000
        ),
        gxe.ExpectColumnMeanToBeBetween(column="avg_amount_7d", min_value=1, max_value=5_000),
    ],
    description="Daily spending profile of a card holder.",
    owner="risk-ml@example.com",
)

merchant_stats = FeatureView(
    name="merchant_stats",
    entities=[merchant],
    source=ParquetSource(
        path="data/merchant_stats.parquet",
        timestamp_field="event_timestamp",
        created_timestamp_field="created",
    ),
    schema=[
        Field("merchant_txn_count_1d", Int64, "Transactions at the merchant in the last day."),
        Field("merchant_fraud_rate_30d", Float64, "Share of charged-back transactions, 30 days."),
        Field("merchant_category", String, "The merchant's category."),
    ],
    ttl=timedelta(days=1),
    description="Six-hourly activity and fraud profile of a merchant.",
    owner="risk-ml@example.com",
)

user_merchant_stats = FeatureView(
    name="user_merchant_stats",
    entities=[user, merchant],
    source=ParquetSource(
        path="data/user_merchant_stats.parquet",
        timestamp_field="event_timestamp",
        created_timestamp_field="created",
    ),
    schema=[
        Field("um_txn_count_30d", Int64, "Transactions of this user at this merchant, 30 days."),
        Field("um_days_since_first_txn", Int64, "Days since the user first paid this merchant."),
    ],
    ttl=timedelta(days=7),
    description="How well a card holder knows a merchant (composite key).",
    owner="risk-ml@example.com",
)

HOUR, DAY = timedelta(hours=1), timedelta(days=1)

# Computed by featurestore from every raw transaction, the same way in training frames and
# online (tiles of one hour, combined at request time): docs/aggregations.md.
user_txn_windows = FeatureView(
    name="user_txn_windows",
    entities=[user],
    source=ParquetSource(path="data/transactions.parquet", timestamp_field="event_timestamp"),
    aggregations=[
        Aggregation(None, "count", HOUR),
        Aggregation(None, "count", DAY),
        Aggregation(None, "count", 7 * DAY),
        Aggregation("amount", "sum", HOUR),
        Aggregation("amount", "sum", DAY),
        Aggregation("amount", "sum", 7 * DAY),
        Aggregation("amount", "max", 7 * DAY),
    ],
    description="A card holder's transactions in the last hour, day and week.",
    owner="risk-ml@example.com",
)

txn = RequestSource("txn", schema=[Field("amount", Float64, "The transaction's amount.")])


@on_demand_feature_view(
    sources=[user_stats[["avg_amount_7d"]], txn],
    schema=[Field("amount_vs_avg", Float64, "Amount over the 7-day mean; null without history.")],
    description="How unusual the amount is for this card holder (training and serving).",
    owner="risk-ml@example.com",
)
def txn_features(df: pl.DataFrame) -> pl.DataFrame:
    """One function for training frames and online requests (row-wise, vectorized)."""
    return df.select((pl.col("amount") / pl.col("avg_amount_7d")).alias("amount_vs_avg"))


fraud_v1 = FeatureService(
    "fraud_v1",
    features=[
        user_stats,
        merchant_stats[["merchant_txn_count_1d", "merchant_fraud_rate_30d"]],
        user_merchant_stats,
        user_txn_windows,
        txn_features,
    ],
    description="Features of the card-fraud model, version 1.",
    owner="risk-ml@example.com",
    # Log what is served, for `featurestore skew-report --service fraud_v1` (docs/skew.md).
    logging=LoggingConfig(sample_rate=1.0),
)
