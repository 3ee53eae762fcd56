"""Windowed aggregations (issue 13, DESIGN G7): training frame, materialization, online reads.

Seeded data (generated with DuckDB, cached under benchmarks/.data/): ``--events`` card
transactions over ``--keys`` cards and 7 days (amount with 1 % nulls), an entity frame of
``--entity-rows`` (card, time) rows in the last 3 days, and an aggregation view of
3 windows (1 h, 1 d, 7 d) x 3 functions (count, sum, max) with a 1 h hop.

1. Training frame, each case in its own process (seconds, peak RSS), best of ``--repeat``,
   interleaved: featurestore's ``get_training_frame(...).to_parquet`` against the best raw
   DuckDB query of the same rule written by hand (``raw_range``: a range join on the key
   with the widest window and one FILTERed aggregate per window, times as integer
   microseconds with each window's start computed once per entity row; ``raw_tiles``: hourly
   partial aggregates joined per entity row, plus the raw events of its current hour;
   ``raw_levels``: the range join grouped by (entity row, how many windows hold the event),
   then by entity row), all written to Parquet. Results are checked equal (sums
   within 1e-9 relative); the fastest raw query is the yardstick.
2. Materialization of the events into tiles (SQLite): events per second.
3. Online reads (SQLite, in process): 1 entity x 9 aggregates and 100 entities x 9, p50 and
   p99 over ``--reads`` reads, interleaved with reads of a plain view of 9 Float64 features
   of the same keys (the ratio column): at the watermark W (the blocks' ready aggregates),
   30 minutes before it and 90 minutes after it (other hops: the tiles are combined at
   request time).

Default sizes are the issue's (10M events, 1M entity rows); ``--small`` is 1M events and
100k entity rows. The machine is shared: the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

DATA = Path(__file__).parent / ".data"
START = "2026-08-01 00:00:00+00"
DAYS = 7
HOP_US = 3_600_000_000
WINDOWS = {"1h": 3_600_000_000, "1d": 86_400_000_000, "7d": 7 * 86_400_000_000}
FEATURES_PY = """
from datetime import timedelta
from featurestore import Aggregation, Entity, FeatureView, Field, ParquetSource
from featurestore.types import Float64

card = Entity("card", join_keys=["card_id"])
h, d = timedelta(hours=1), timedelta(days=1)
txn = FeatureView("txn", entities=[card],
    source=ParquetSource("events.parquet", timestamp_field="event_timestamp"),
    aggregations=[Aggregation(c, f, w) for w in (h, d, 7 * d)
                  for c, f in ((None, "count"), ("amount", "sum"), ("amount", "max"))])
plain = FeatureView("plain", entities=[card],
    source=ParquetSource("plain.parquet", timestamp_field="event_timestamp"),
    schema=[Field(f"f{i}", Float64) for i in range(9)])
"""
FEATURES = [
    f"txn:{n}" for w in WINDOWS for n in (f"count_{w}", f"amount_sum_{w}", f"amount_max_{w}")
]


def prepare(events: int, entity_rows: int, keys: int) -> Path:
    """The repo folder with its data (cached by size)."""
    repo = DATA / f"agg_{events}_{entity_rows}_{keys}"
    if (repo / "entities.parquet").exists():
        return repo
    repo.mkdir(parents=True, exist_ok=True)
    (DATA / ".gitignore").write_text("*\n")
    (repo / "features.py").write_text(FEATURES_PY)
    (repo / "featurestore.yaml").write_text(
        "project: bench\nregistry: registry.json\nonline_store: {type: sqlite, path: online.db}\n"
    )
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SELECT setseed(0.13)")
    span = DAYS * 86_400_000_000
    con.execute(
        f"""COPY (SELECT CAST(floor(random() * {keys}) AS BIGINT) AS card_id,
            TIMESTAMPTZ '{START}' + to_microseconds(CAST(floor(random() * {span}) AS BIGINT))
              AS event_timestamp,
            CASE WHEN random() < 0.01 THEN NULL ELSE round(random() * 200, 2) END AS amount
          FROM range({events})) TO '{repo / "events.parquet"}' (FORMAT parquet)"""
    )
    recent = 3 * 86_400_000_000
    con.execute(
        f"""COPY (SELECT CAST(floor(random() * {keys}) AS BIGINT) AS card_id,
            TIMESTAMPTZ '{START}' + to_microseconds({span - recent}
              + CAST(floor(random() * {recent}) AS BIGINT)) AS event_timestamp
          FROM range({entity_rows})) TO '{repo / "entities.parquet"}' (FORMAT parquet)"""
    )
    cols = ", ".join(f"random() * 100 AS f{i}" for i in range(9))
    con.execute(
        f"""COPY (SELECT range AS card_id, TIMESTAMPTZ '{START}' AS event_timestamp, {cols}
          FROM range({keys})) TO '{repo / "plain.parquet"}' (FORMAT parquet)"""
    )
    return repo


def _start(t: str, window_us: int) -> str:
    us = f"epoch_us({t})"
    return f"make_timestamptz({us} - ((({us} % {HOP_US}) + {HOP_US}) % {HOP_US}) - {window_us})"


def raw_sql(form: str, repo: Path) -> str:
    """The same rule, written by hand; output columns in FEATURES order after the entity's."""
    events, entities = repo / "events.parquet", repo / "entities.parquet"
    if form == "range":
        # Times as BIGINT microseconds, each window's start computed once per entity row:
        # the join and every FILTER compare integers.
        floor = f"(us - (((us % {HOP_US}) + {HOP_US}) % {HOP_US}))"
        starts = ", ".join(f"{floor} - {us} AS s_{w}" for w, us in WINDOWS.items())
        aggs = []
        for w in WINDOWS:
            cond = f"s.us >= e.s_{w}"
            aggs += [
                f"count(s.us) FILTER (WHERE {cond}) AS count_{w}",
                f"sum(s.amount) FILTER (WHERE {cond}) AS amount_sum_{w}",
                f"max(s.amount) FILTER (WHERE {cond}) AS amount_max_{w}",
            ]
        # Grouped by the entity row's number alone (grouping on its key and time too was
        # measured ~3x slower at the size).
        return (
            f"SELECT any_value(e.card_id) AS card_id, any_value(e.event_timestamp) "
            f"AS event_timestamp, {', '.join(aggs)} FROM "
            f"(SELECT *, {starts} FROM (SELECT *, row_number() OVER () AS r, "
            f"epoch_us(event_timestamp) AS us FROM '{entities}')) e "
            f"LEFT JOIN (SELECT card_id, epoch_us(event_timestamp) AS us, amount "
            f"FROM '{events}') s ON s.card_id = e.card_id AND s.us <= e.us AND s.us >= e.s_7d "
            f"GROUP BY e.r ORDER BY e.r"
        )
    if form == "levels":
        # The range join, grouped first by (entity row, level: how many of the 1 h and 1 d
        # windows hold the event) without FILTERs, then by entity row, each window adding
        # its levels (count 7 d: every level, 1 d: level >= 1, 1 h: level 2).
        floor = f"(us - (((us % {HOP_US}) + {HOP_US}) % {HOP_US}))"
        starts = ", ".join(f"{floor} - {us} AS s_{w}" for w, us in WINDOWS.items())
        names = list(WINDOWS)
        level = " + ".join(f"CAST(s.us >= e.s_{w} AS INTEGER)" for w in names[:-1])
        out = []
        for k, w in enumerate(names):
            cond = f" FILTER (WHERE lv >= {len(names) - 1 - k})"
            out += [
                f"CAST(coalesce(sum(n){cond}, 0) AS BIGINT) AS count_{w}",
                f"sum(s){cond} AS amount_sum_{w}",
                f"max(m){cond} AS amount_max_{w}",
            ]
        return f"""
            WITH e AS (SELECT *, {starts} FROM (SELECT *, row_number() OVER () AS r,
                         epoch_us(event_timestamp) AS us FROM '{entities}')),
            g AS (SELECT e.r, {level} AS lv, count(s.us) AS n, sum(s.amount) AS s,
                    max(s.amount) AS m
                  FROM e LEFT JOIN (SELECT card_id, epoch_us(event_timestamp) AS us, amount
                                    FROM '{events}') s
                  ON s.card_id = e.card_id AND s.us <= e.us AND s.us >= e.s_7d GROUP BY ALL),
            a AS (SELECT r, {", ".join(out)} FROM g GROUP BY r)
            SELECT e.card_id, e.event_timestamp, a.* EXCLUDE (r)
            FROM e JOIN a ON a.r = e.r ORDER BY e.r"""
    # tiles: hourly partials for whole hours before floor(t), raw events of the current hour
    hour = f"make_timestamptz(epoch_us(event_timestamp) // {HOP_US} * {HOP_US})"
    full = []
    for w, us in WINDOWS.items():
        cond = f"t.hour >= {_start('e.event_timestamp', us)}"
        full += [
            f"coalesce(sum(t.n) FILTER (WHERE {cond}), 0) AS n_{w}",
            f"sum(t.s) FILTER (WHERE {cond}) AS s_{w}",
            f"max(t.m) FILTER (WHERE {cond}) AS m_{w}",
        ]
    out = []
    for w in WINDOWS:
        out += [
            f"f.n_{w} + coalesce(c.n, 0) AS count_{w}",
            f"CASE WHEN f.s_{w} IS NULL AND c.s IS NULL THEN NULL "
            f"ELSE coalesce(f.s_{w}, 0) + coalesce(c.s, 0) END AS amount_sum_{w}",
            f"greatest(f.m_{w}, c.m) AS amount_max_{w}",
        ]
    return f"""
        WITH e AS (SELECT *, row_number() OVER () AS r,
                     make_timestamptz(epoch_us(event_timestamp) // {HOP_US} * {HOP_US}) AS cur
                   FROM '{entities}'),
        tiles AS (SELECT card_id, {hour} AS hour, count(*) AS n, sum(amount) AS s,
                    max(amount) AS m FROM '{events}' GROUP BY ALL),
        f AS (SELECT e.r, {", ".join(full)} FROM e LEFT JOIN tiles t ON t.card_id = e.card_id
              AND t.hour < e.cur AND t.hour >= {_start("e.event_timestamp", WINDOWS["7d"])}
              GROUP BY e.r),
        c AS (SELECT e.r, count(*) AS n, sum(s.amount) AS s, max(s.amount) AS m FROM e
              JOIN '{events}' s ON s.card_id = e.card_id AND s.event_timestamp >= e.cur
              AND s.event_timestamp <= e.event_timestamp GROUP BY e.r)
        SELECT e.card_id, e.event_timestamp, {", ".join(out)}
        FROM e JOIN f ON f.r = e.r LEFT JOIN c ON c.r = e.r ORDER BY e.r"""


def run_case(case: str, repo: Path, out: Path) -> dict[str, object]:
    """One training-frame case in this process: seconds, peak RSS, rows, column sums."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from featurestore import FeatureStore

    began = time.perf_counter()
    if case.startswith("raw_"):
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.sql(raw_sql(case.removeprefix("raw_"), repo)).write_parquet(str(out))
    else:
        store = FeatureStore(repo)
        store.get_training_frame(repo / "entities.parquet", FEATURES).to_parquet(out)
    seconds = time.perf_counter() - began
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    table = pq.read_table(out)
    sums = [pc.sum(table.column(c)).as_py() or 0 for c in table.column_names[2:]]
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(rss_mb), "rows": table.num_rows,
            "sums": sums}  # fmt: skip


def measure(case: str, repo: Path) -> dict[str, object]:
    out = DATA / f"out_agg_{case}.parquet"
    proc = subprocess.run(
        [sys.executable, __file__, "--case", case, "--repo", str(repo), "--out", str(out)],
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    out.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise SystemExit(f"case {case} failed:\n{proc.stderr}")
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49] * 1e3, cuts[98] * 1e3


def online(repo: Path, reads: int, keys: int) -> None:
    """Materialize tiles and the plain view into a fresh SQLite file; time reads."""
    from featurestore import FeatureStore

    for name in ("online.db", "online.db-wal", "online.db-shm", "registry.json"):
        (repo / name).unlink(missing_ok=True)
    store = FeatureStore(repo)
    store.apply()
    start = datetime.fromisoformat(START)
    end = start + timedelta(days=DAYS)
    began = time.perf_counter()
    report = store.materialize(start, end, views=["txn"])
    seconds = time.perf_counter() - began
    events = duckdb.sql(f"SELECT count(*) FROM '{repo / 'events.parquet'}'").fetchall()[0][0]
    tiles = report.views[0].rows
    print(
        f"materialization: {events:,} events -> {tiles:,} tiles in {seconds:.1f} s = "
        f"{events / seconds:,.0f} events/s (load {os.getloadavg()[0]:.2f})"
    )
    store.materialize(start, end, views=["plain"])
    plain = [f"plain:f{i}" for i in range(9)]
    # Reads in the watermark's hop take each block's ready aggregates; reads in an earlier
    # hop (30 min before W) or a later one (90 min after W, before the next run) combine
    # the tiles at request time.
    times = (
        ("at W", end),
        ("W - 30 min", end - timedelta(minutes=30)),
        ("W + 90 min", end + timedelta(minutes=90)),
    )
    print(f"{'online read (SQLite)':<44} {'p50 ms':>8} {'p99 ms':>8} {'p50 x':>7} {'p99 x':>7}")
    for n in (1, 100):
        rows = [{"card_id": (i * 7919) % keys} for i in range(n)]
        for when, at in times:
            results = {}
            # Interleaved, so both see the same load.
            cases = (("9 aggregates", FEATURES), ("plain view, 9 features", plain))
            samples: dict[str, list[float]] = {label: [] for label, _ in cases}
            for _ in range(reads):
                for label, features in cases:
                    t = time.perf_counter()
                    store.get_online_features(features, rows, request_time=at)
                    samples[label].append(time.perf_counter() - t)
            for label, _ in cases:
                results[label] = percentiles(samples[label])
            base = results["plain view, 9 features"]
            for label, (p50, p99) in results.items():
                print(
                    f"{f'{n} x {label}, {when}':<44} {p50:>8.3f} {p99:>8.3f} "
                    f"{p50 / base[0]:>6.2f}x {p99 / base[1]:>6.2f}x"
                )
    print(f"load average: {os.getloadavg()[0]:.2f}")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--entity-rows", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--small", action="store_true", help="1M events, 100k entity rows")
    parser.add_argument("--repeat", type=int, default=2, help="runs per case; the best counts")
    parser.add_argument("--reads", type=int, default=2000, help="online reads per case")
    parser.add_argument("--online-only", action="store_true", help="skip the training frames")
    parser.add_argument("--case")
    parser.add_argument("--repo", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.repo, args.out)))
        return
    if args.small:
        args.events, args.entity_rows, args.keys = 1_000_000, 100_000, 10_000
    t0 = time.perf_counter()
    repo = prepare(args.events, args.entity_rows, args.keys)
    from featurestore import FeatureStore

    applied = FeatureStore(repo)
    applied.apply()
    applied.close()
    print(
        f"data ready in {time.perf_counter() - t0:.1f} s: {args.events:,} events over "
        f"{args.keys:,} cards and {DAYS} days, {args.entity_rows:,} entity rows, "
        f"3 windows x 3 functions (hop 1 h)"
    )
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores, shared)")
    if not args.online_only:
        frames(repo, args.repeat)
    online(repo, args.reads, args.keys)


def frames(repo: Path, repeat: int) -> None:
    """The training-frame cases, best of ``repeat`` each, checked equal."""
    cases = [("raw_range", "raw DuckDB, range join + FILTER"),
             ("raw_tiles", "raw DuckDB, hourly tiles + current hour"),
             ("raw_levels", "raw DuckDB, range join + levels"),
             ("fs", "featurestore training frame")]  # fmt: skip
    results: dict[str, dict[str, object]] = {}
    for _ in range(repeat):
        for case, _label in cases:
            r = measure(case, repo)
            if case not in results or float(r["seconds"]) < float(results[case]["seconds"]):  # type: ignore[arg-type]
                results[case] = r
    raws = [case for case, _ in cases if case.startswith("raw_")]
    yardstick = min(raws, key=lambda c: float(results[c]["seconds"]))  # type: ignore[arg-type]
    base = results[yardstick]
    for case, _ in cases:
        r = results[case]
        assert r["rows"] == base["rows"], (case, r["rows"], base["rows"])
        for x, y in zip(r["sums"], base["sums"], strict=True):  # type: ignore[call-overload]
            assert abs(x - y) <= 1e-9 * max(abs(y), 1.0), (case, "differs from", yardstick)
    print(f"training frame, best of {repeat} (load {os.getloadavg()[0]:.2f})")
    print(f"{'case':<44} {'seconds':>8} {'peak RSS MB':>12} {'vs best raw':>12}")
    for case, label in cases:
        r = results[case]
        ratio = float(r["seconds"]) / float(base["seconds"])  # type: ignore[arg-type]
        mark = " (yardstick)" if case == yardstick else ""
        print(f"{label + mark:<44} {r['seconds']:>8} {r['peak_rss_mb']:>12} {ratio:>11.2f}x")


if __name__ == "__main__":
    main()
