"""Seeded generator of the example fraud repo's Parquet data (``feature_repo/``, ``init``).

The data is synthetic card-payment activity: daily per-user aggregates, six-hourly
per-merchant aggregates, per-(user, merchant) aggregates every few days, and an entity file of
labelled transactions for the training-frame step of the quickstart. The same ``seed`` and
``end`` always give the same files. Files are written in chunks with vectorized numpy, so
memory stays bounded at tens of millions of rows.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from featurestore._time import to_micros, to_utc, utc_now

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_ENTITY_ROWS",
    "DEFAULT_ROWS",
    "SampleData",
    "default_end",
    "generate",
    "merchant_id",
]

logger = logging.getLogger(__name__)

DEFAULT_ROWS = 30_000
"""Rows of ``user_stats`` by default: 1,000 users x 30 days, generated in well under a second."""
DEFAULT_DAYS = 30
DEFAULT_ENTITY_ROWS = 1_000
_CHUNK_ROWS = 1_000_000
_PAIRS_PER_USER = 2
_PAIR_EVERY_DAYS = 3
_MERCHANT_SNAPSHOTS_PER_DAY = 4
_UNKNOWN_USER_SHARE = 0.02
_TXNS_PER_DAY = 2
"""Raw card transactions per user per day (``transactions.parquet``, the aggregation view's
events), at random times of the day."""
_NO_AMOUNT_SHARE = 0.01
_CATEGORIES = ("grocery", "fuel", "travel", "electronics", "restaurants", "gaming", "fashion")

_US = 1_000_000
_DAY_US = 86_400 * _US
_TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class SampleData:
    """What :func:`generate` wrote: file paths and row counts, and the time range covered."""

    files: dict[str, Path]
    """File name (``user_stats.parquet``...) -> path."""
    rows: dict[str, int]
    """File name -> rows written."""
    start: datetime
    end: datetime
    users: int
    merchants: int


def default_end() -> datetime:
    """The default end of the generated history: the start of the current UTC hour.

    Data ends just before now so that a quickstart run right after generating serves fresh
    values (within every view's ttl).
    """
    return utc_now().replace(minute=0, second=0, microsecond=0)


def merchant_id(index: int) -> str:
    """The string key of merchant number ``index``.

    Example:
        >>> merchant_id(7)
        'm_00007'
    """
    return f"m_{index:05d}"


def _merchant_ids(indices: np.ndarray) -> pa.Array:
    digits = pc.utf8_lpad(pc.cast(pa.array(indices, type=pa.int64()), pa.string()), 5, "0")
    return pc.binary_join_element_wise("m_", digits, "")


def _ts(micros: np.ndarray) -> pa.Array:
    return pa.array(micros.astype("int64"), type=pa.int64()).cast(_TS)


def _write_chunks(path: Path, chunks: Iterator[pa.Table]) -> int:
    """Write tables to one Parquet file, one row group per chunk; returns the rows written."""
    written = 0
    tmp = path.with_name(path.name + ".tmp")
    writer: pq.ParquetWriter | None = None
    try:
        for table in chunks:
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
            writer.write_table(table)
            written += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(path)
    return written


def _user_stats(
    users: int, days: int, start_us: int, seed: int, chunk_rows: int
) -> Iterator[pa.Table]:
    """One snapshot per user per day, at a random hour, written a few minutes later."""
    users_per_chunk = max(1, chunk_rows // days)
    for first in range(0, users, users_per_chunk):
        last = min(users, first + users_per_chunk)
        rng = np.random.default_rng([seed, 1, first])
        n_users = last - first
        user_ids = np.repeat(np.arange(first, last, dtype=np.int64), days)
        day = np.tile(np.arange(days, dtype=np.int64), n_users)
        n = user_ids.size
        event = start_us + day * _DAY_US + rng.integers(0, _DAY_US, n)
        created = event + rng.integers(30 * _US, 900 * _US, n)
        activity = np.repeat(rng.gamma(2.0, 2.0, n_users), days)
        txn_count = rng.poisson(activity * 7).astype(np.int64)
        spend = np.repeat(rng.lognormal(3.5, 0.8, n_users), days)
        avg_amount = np.round(spend * rng.lognormal(0.0, 0.25, n), 2)
        max_amount = np.round(avg_amount * (1 + rng.exponential(1.0, n)), 2)
        distinct = np.minimum(txn_count, rng.poisson(3 + activity * 2)).astype(np.int64)
        no_txn = txn_count == 0
        yield pa.table(
            {
                "user_id": pa.array(user_ids, type=pa.int64()),
                "event_timestamp": _ts(event),
                "created": _ts(created),
                "txn_count_7d": pa.array(txn_count, type=pa.int64()),
                # No transaction in the window: the average and maximum are unknown (null).
                "avg_amount_7d": pa.array(avg_amount, type=pa.float64(), mask=no_txn),
                "max_amount_7d": pa.array(max_amount, type=pa.float64(), mask=no_txn),
                "distinct_merchants_30d": pa.array(distinct, type=pa.int64()),
            }
        )


def _merchant_stats(
    merchants: int, days: int, start_us: int, seed: int, chunk_rows: int
) -> Iterator[pa.Table]:
    """A snapshot per merchant every six hours."""
    snaps = days * _MERCHANT_SNAPSHOTS_PER_DAY
    step = _DAY_US // _MERCHANT_SNAPSHOTS_PER_DAY
    per_chunk = max(1, chunk_rows // snaps)
    for first in range(0, merchants, per_chunk):
        last = min(merchants, first + per_chunk)
        rng = np.random.default_rng([seed, 2, first])
        n_merchants = last - first
        ids = np.repeat(np.arange(first, last, dtype=np.int64), snaps)
        slot = np.tile(np.arange(snaps, dtype=np.int64), n_merchants)
        n = ids.size
        event = start_us + slot * step + rng.integers(0, 60 * _US, n)
        created = event + rng.integers(5 * _US, 120 * _US, n)
        volume = np.repeat(rng.lognormal(4.0, 1.0, n_merchants), snaps)
        txn_count_1d = rng.poisson(volume).astype(np.int64)
        base_rate = np.repeat(rng.beta(1.0, 120.0, n_merchants), snaps)
        fraud_rate = np.round(np.clip(base_rate * rng.lognormal(0.0, 0.2, n), 0.0, 1.0), 5)
        category = np.repeat(rng.integers(0, len(_CATEGORIES), n_merchants), snaps)
        yield pa.table(
            {
                "merchant_id": _merchant_ids(ids),
                "event_timestamp": _ts(event),
                "created": _ts(created),
                "merchant_txn_count_1d": pa.array(txn_count_1d, type=pa.int64()),
                "merchant_fraud_rate_30d": pa.array(fraud_rate, type=pa.float64()),
                "merchant_category": pa.array(
                    np.asarray(_CATEGORIES, dtype=object)[category], type=pa.string()
                ),
            }
        )


def _user_merchants(users: np.ndarray, merchants: int, seed: int) -> np.ndarray:
    """The merchants each user shops at (``_PAIRS_PER_USER`` per user), deterministic per user."""
    # A cheap per-user hash, so the pairs of a user never depend on chunking.
    mixed = (users.astype(np.uint64) * np.uint64(2654435761) + np.uint64(seed)) % np.uint64(2**32)
    offsets = np.arange(_PAIRS_PER_USER, dtype=np.uint64) * np.uint64(7919)
    return ((mixed[:, None] + offsets[None, :]) % np.uint64(merchants)).astype(np.int64)


def _user_merchant_stats(
    users: int, merchants: int, days: int, start_us: int, seed: int, chunk_rows: int
) -> Iterator[pa.Table]:
    """A snapshot per (user, merchant) pair every few days."""
    snaps = max(1, days // _PAIR_EVERY_DAYS)
    users_per_chunk = max(1, chunk_rows // (snaps * _PAIRS_PER_USER))
    for first in range(0, users, users_per_chunk):
        last = min(users, first + users_per_chunk)
        rng = np.random.default_rng([seed, 3, first])
        user_block = np.arange(first, last, dtype=np.int64)
        pairs_m = _user_merchants(user_block, merchants, seed).reshape(-1)
        pairs_u = np.repeat(user_block, _PAIRS_PER_USER)
        n_pairs = pairs_u.size
        user_ids = np.repeat(pairs_u, snaps)
        merchant_idx = np.repeat(pairs_m, snaps)
        slot = np.tile(np.arange(snaps, dtype=np.int64), n_pairs)
        n = user_ids.size
        event = start_us + slot * _PAIR_EVERY_DAYS * _DAY_US + rng.integers(0, _DAY_US, n)
        created = event + rng.integers(60 * _US, 3600 * _US, n)
        first_seen_days = np.repeat(rng.integers(0, 720, n_pairs), snaps)
        txn_count = rng.poisson(np.repeat(rng.gamma(1.5, 2.0, n_pairs), snaps)).astype(np.int64)
        yield pa.table(
            {
                "user_id": pa.array(user_ids, type=pa.int64()),
                "merchant_id": _merchant_ids(merchant_idx),
                "event_timestamp": _ts(event),
                "created": _ts(created),
                "um_txn_count_30d": pa.array(txn_count, type=pa.int64()),
                "um_days_since_first_txn": pa.array(
                    first_seen_days + slot * _PAIR_EVERY_DAYS, type=pa.int64()
                ),
            }
        )


def _transactions(
    users: int, merchants: int, days: int, start_us: int, seed: int, chunk_rows: int
) -> Iterator[pa.Table]:
    """Raw card transactions: ``_TXNS_PER_DAY`` per user per day, some without an amount."""
    per_user = days * _TXNS_PER_DAY
    users_per_chunk = max(1, chunk_rows // per_user)
    for first in range(0, users, users_per_chunk):
        last = min(users, first + users_per_chunk)
        rng = np.random.default_rng([seed, 5, first])
        user_ids = np.repeat(np.arange(first, last, dtype=np.int64), per_user)
        n = user_ids.size
        day = np.tile(np.repeat(np.arange(days, dtype=np.int64), _TXNS_PER_DAY), last - first)
        event = start_us + day * _DAY_US + rng.integers(0, _DAY_US, n)
        regular = _user_merchants(user_ids, merchants, seed)[np.arange(n), rng.integers(0, 2, n)]
        merchant_idx = np.where(rng.random(n) < 0.7, regular, rng.integers(0, merchants, n))
        amount = np.round(rng.lognormal(3.5, 1.0, n), 2)
        yield pa.table(
            {
                "user_id": pa.array(user_ids, type=pa.int64()),
                "merchant_id": _merchant_ids(merchant_idx),
                "event_timestamp": _ts(event),
                # A declined authorization has no amount: aggregations skip the null.
                "amount": pa.array(
                    amount, type=pa.float64(), mask=rng.random(n) < _NO_AMOUNT_SHARE
                ),
            }
        )


def _entities(
    rows: int, users: int, merchants: int, days: int, start_us: int, seed: int
) -> pa.Table:
    """Labelled transactions to build a training frame for; a few users are unknown."""
    rng = np.random.default_rng([seed, 4])
    user_ids = rng.integers(0, users, rows, dtype=np.int64)
    unknown = rng.random(rows) < _UNKNOWN_USER_SHARE
    user_ids = np.where(unknown, users + rng.integers(0, 1000, rows), user_ids)
    regular = _user_merchants(user_ids, merchants, seed)[np.arange(rows), rng.integers(0, 2, rows)]
    merchant_idx = np.where(rng.random(rows) < 0.7, regular, rng.integers(0, merchants, rows))
    # Transactions fall in the second half of the history, where every view has values.
    half = days * _DAY_US // 2
    event = np.sort(start_us + half + rng.integers(0, days * _DAY_US - half, rows))
    amount = np.round(rng.lognormal(3.5, 1.0, rows), 2)
    is_fraud = rng.random(rows) < np.clip(0.01 + (amount > 200) * 0.05, 0, 1)
    return pa.table(
        {
            "user_id": pa.array(user_ids, type=pa.int64()),
            "merchant_id": _merchant_ids(merchant_idx),
            "event_timestamp": _ts(event),
            "amount": pa.array(amount, type=pa.float64()),
            "is_fraud": pa.array(is_fraud, type=pa.bool_()),
        }
    )


def generate(
    out_dir: str | Path,
    *,
    rows: int = DEFAULT_ROWS,
    days: int = DEFAULT_DAYS,
    entity_rows: int = DEFAULT_ENTITY_ROWS,
    seed: int = 42,
    end: datetime | None = None,
    chunk_rows: int = _CHUNK_ROWS,
    progress: Callable[[str, int], None] | None = None,
) -> SampleData:
    """Write the example fraud repo's data files into ``out_dir``.

    Writes ``user_stats.parquet`` (about ``rows`` rows: one per user per day),
    ``merchant_stats.parquet``, ``user_merchant_stats.parquet``, ``transactions.parquet``
    (raw card transactions, 2 per user per day: ``user_id``, ``merchant_id``,
    ``event_timestamp``, ``amount`` with 1% nulls) and ``entities.parquet``
    (``entity_rows`` labelled transactions: ``user_id``, ``merchant_id``,
    ``event_timestamp``, ``amount``, ``is_fraud``). Users are ``0..users-1`` (Int64);
    merchants are ``m_00000``... (String). About 2% of entity rows name users with no data,
    whose features come back null.

    Args:
        out_dir: Folder to write into (created if missing); existing files are replaced.
        rows: Target size of ``user_stats``; users = ``ceil(rows / days)``. The other views
            scale with it (merchants = users / 20, at least 50).
        days: Days of history, ending at ``end``.
        entity_rows: Rows of ``entities.parquet``.
        seed: Random seed; the same seed, ``end`` and ``chunk_rows`` give the same files.
        end: End of the history (exclusive, naive = UTC); default :func:`default_end`.
        chunk_rows: Rows generated and written per chunk; bounds memory.
        progress: Called with ``(file name, rows written so far)`` after each chunk.

    Returns:
        The files written with their row counts.

    Example:
        >>> import tempfile
        >>> data = generate(tempfile.mkdtemp(), rows=300, days=10, entity_rows=20)
        >>> data.rows["user_stats.parquet"], data.users
        (300, 30)
    """
    if rows < 1 or days < 1 or entity_rows < 0 or chunk_rows < 1:
        msg = (
            f"generate() needs rows >= 1, days >= 1, entity_rows >= 0 and chunk_rows >= 1; "
            f"got rows={rows}, days={days}, entity_rows={entity_rows}, chunk_rows={chunk_rows}."
        )
        raise ValueError(msg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    end_utc = to_utc(end) if end is not None else default_end()
    start = end_utc - timedelta(days=days)
    start_us = to_micros(start)
    users = math.ceil(rows / days)
    merchants = max(50, users // 20)

    def report(name: str, chunks: Iterator[pa.Table]) -> Iterator[pa.Table]:
        done = 0
        for table in chunks:
            done += table.num_rows
            yield table
            if progress is not None:
                progress(name, done)

    plan: dict[str, Iterator[pa.Table]] = {
        "user_stats.parquet": _user_stats(users, days, start_us, seed, chunk_rows),
        "merchant_stats.parquet": _merchant_stats(merchants, days, start_us, seed, chunk_rows),
        "user_merchant_stats.parquet": _user_merchant_stats(
            users, merchants, days, start_us, seed, chunk_rows
        ),
        "transactions.parquet": _transactions(users, merchants, days, start_us, seed, chunk_rows),
        "entities.parquet": iter([_entities(entity_rows, users, merchants, days, start_us, seed)]),
    }
    files: dict[str, Path] = {}
    counts: dict[str, int] = {}
    for name, chunks in plan.items():
        path = out / name
        counts[name] = _write_chunks(path, report(name, chunks))
        files[name] = path
        logger.info("wrote %d rows to %s", counts[name], path)
    return SampleData(
        files=files, rows=counts, start=start, end=end_utc, users=users, merchants=merchants
    )
