"""Generate the example's Parquet data under data/ (seeded, so every run gives the same files).

Usage:
    python generate_data.py                  # the quickstart size: 30,000 user_stats rows
    python generate_data.py --rows 20000000  # a benchmark size; written in bounded chunks
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from featurestore.sample_data import DEFAULT_DAYS, DEFAULT_ENTITY_ROWS, DEFAULT_ROWS, generate


def main() -> None:
    """Parse the command line and write the files."""
    parser = argparse.ArgumentParser(description="Generate the example's Parquet data.")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows of user_stats")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help="days of history")
    parser.add_argument("--entity-rows", type=int, default=DEFAULT_ENTITY_ROWS)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    args = parser.parse_args()
    started = time.perf_counter()
    data = generate(
        args.out, rows=args.rows, days=args.days, entity_rows=args.entity_rows, seed=args.seed
    )
    for name, rows in data.rows.items():
        print(f"{rows:>12,} rows  {data.files[name]}")
    print(
        f"{data.users:,} users, {data.merchants:,} merchants, {data.start:%Y-%m-%d %H:%M} to "
        f"{data.end:%Y-%m-%d %H:%M} UTC, in {time.perf_counter() - started:.1f}s"
    )


if __name__ == "__main__":
    main()
