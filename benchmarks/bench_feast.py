"""Training-frame benchmark against Feast 0.67: get_historical_features on its DuckDB offline store.

Usage:
    .venv/bin/python benchmarks/bench_feast.py                # 1M entity rows x 2 views x 5M rows
    .venv/bin/python benchmarks/bench_feast.py --runs 2 --entity-rows 1000000 --source-rows 5000000
    .venv/bin/python benchmarks/bench_feast.py --no-install   # fail if Feast is not installed yet

Same generated data as bench_training_set.py (benchmarks/_data.py, seeded): `user_stats` (100k
users) and `merchant_stats` (50k merchants) over 5M-row Parquet sources each, 10 Float64
features, ttl 30 days, and a 1M-row entity frame. Feast runs in its own virtualenv,
benchmarks/.data/feast-venv, holding feast[duckdb]==0.67.0 from PyPI; it is created on first use
(never .venv, never the tests' .feast-venv). A Feast repo over the same Parquet files (FileSource,
timestamp_field="event_timestamp", created_timestamp_column="created", `offline_store: duckdb`,
local registry, SQLite online store) is written to benchmarks/.data/feast_repo/ and applied
once, outside the timing.

Each round runs featurestore's `fs_arrow` case (bench_training_set.measure) and then Feast's case,
each in its own subprocess; peak RSS is that process's ru_maxrss. Feast's timing runs from before
importing pandas and feast to the full pandas DataFrame in memory: import pandas + feast, read the
entity Parquet into pandas (inside the timing, as ours reads the Parquet path), FeatureStore(repo),
get_historical_features(entity_df, 20 features).to_df(). fs_arrow's timing starts after its
imports, so the table shows both with and without imports (ours' import time is measured in a
separate fresh process). Afterwards each Feast result is checked against featurestore's training
frame for the same entity rows (both sorted by user_id, merchant_id, event_timestamp, label; all
20 features; null and NaN count as equal): differing rows are counted per feature and view, and
up to 3 per view are printed with the source rows behind them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_training_set import measure, prepare

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / ".data"
FEAST_VENV = DATA / "feast-venv"
FEAST_REPO = DATA / "feast_repo"
FEAST_REQUIREMENT = "feast[duckdb]==0.67.0"
FEAST_VERSION = "0.67.0"
SEED = 42  # benchmarks._data.make_repo's default seed
N_FEATURES = 10
USER_FEATURES = [f"user_stats:u{i}" for i in range(N_FEATURES)]
MERCHANT_FEATURES = [f"merchant_stats:m{i}" for i in range(N_FEATURES)]
FEATURES = USER_FEATURES + MERCHANT_FEATURES
SORT_KEYS = "user_id, merchant_id, event_timestamp, label"

FEATURE_STORE_YAML = """\
project: bench_feast
provider: local
registry: data/registry.db
online_store:
  type: sqlite
  path: data/online.db
offline_store:
  type: duckdb
entity_key_serialization_version: 3
"""

FEAST_FEATURES_PY = '''\
"""Feast definitions for benchmarks/bench_feast.py (generated; do not edit)."""

from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
merchant = Entity(name="merchant", join_keys=["merchant_id"], value_type=ValueType.INT64)

user_stats = FeatureView(
    name="user_stats",
    entities=[user],
    ttl=timedelta(days=30),
    schema=[Field(name="user_id", dtype=Int64)]
    + [Field(name=f"u{{i}}", dtype=Float64) for i in range({n})],
    source=FileSource(
        name="user_stats_source",
        path="{users}",
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
    ),
)

merchant_stats = FeatureView(
    name="merchant_stats",
    entities=[merchant],
    ttl=timedelta(days=30),
    schema=[Field(name="merchant_id", dtype=Int64)]
    + [Field(name=f"m{{i}}", dtype=Float64) for i in range({n})],
    source=FileSource(
        name="merchant_stats_source",
        path="{merchants}",
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
    ),
)
'''


# --------------------------------------------------------------------------------------------
# The measured Feast case. Runs under the Feast venv's python: standard library, pandas, feast.
# --------------------------------------------------------------------------------------------


def run_feast_case(repo: Path, entities: Path, out: Path | None) -> dict[str, Any]:
    """Run Feast's case in this process; return seconds, peak RSS, rows, phases, versions."""
    start = time.perf_counter()
    import pandas as pd

    feast = importlib.import_module("feast")
    t_import = time.perf_counter()
    entity_df = pd.read_parquet(entities)
    t_read = time.perf_counter()
    store = feast.FeatureStore(repo_path=str(repo))
    t_store = time.perf_counter()
    job = store.get_historical_features(entity_df=entity_df, features=FEATURES)
    t_plan = time.perf_counter()
    frame: pd.DataFrame = job.to_df()
    end = time.perf_counter()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = len(frame)
    if out is not None:  # outside the timing and after the RSS reading
        frame.to_parquet(out, index=False)
    versions = {
        name: str(getattr(importlib.import_module(name), "__version__", "?"))
        for name in ("feast", "duckdb", "ibis", "pandas", "pyarrow")
    }
    return {
        "seconds": round(end - start, 2),
        "import_seconds": round(t_import - start, 2),
        "peak_rss_mb": round(rss_mb),
        "rows": rows,
        "phases": {
            "import pandas+feast": round(t_import - start, 2),
            "read entities into pandas": round(t_read - t_import, 2),
            "FeatureStore()": round(t_store - t_read, 2),
            "get_historical_features()": round(t_plan - t_store, 2),
            ".to_df()": round(end - t_plan, 2),
        },
        "versions": versions,
    }


# --------------------------------------------------------------------------------------------
# The driver. Runs under our .venv's python.
# --------------------------------------------------------------------------------------------


def feast_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def feast_ready(venv: Path) -> bool:
    """Whether ``venv`` holds feast 0.67.0 with its DuckDB offline store importable."""
    python = feast_python(venv)
    if not python.exists():
        return False
    check = (
        "import sys, feast, duckdb, ibis; "
        "import feast.infra.offline_stores.duckdb; "
        f"sys.exit(feast.__version__ != {FEAST_VERSION!r})"
    )
    return subprocess.run([str(python), "-c", check], capture_output=True).returncode == 0


def ensure_feast(venv: Path, *, install: bool) -> None:
    """Create ``venv`` and install feast[duckdb] into it when it is missing or incomplete."""
    if feast_ready(venv):
        return
    if not install:
        raise SystemExit(
            f"{FEAST_REQUIREMENT} is not installed in {venv}; run without --no-install "
            "to create that virtualenv and install it from PyPI"
        )
    print(f"installing {FEAST_REQUIREMENT} into {venv} (separate from .venv and .feast-venv) ...")
    t0 = time.perf_counter()
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [
        str(feast_python(venv)),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, FEAST_REQUIREMENT], check=True)
    if not feast_ready(venv):
        raise SystemExit(f"{FEAST_REQUIREMENT} installed into {venv} but does not import")
    print(f"installed in {time.perf_counter() - t0:.0f}s", flush=True)


def write_feast_repo(repo: Path, users: Path, merchants: Path, venv: Path) -> None:
    """Write the Feast repo over the same Parquet files and ``feast apply`` it when it changed."""
    (repo / "data").mkdir(parents=True, exist_ok=True)
    files = {
        repo / "feature_store.yaml": FEATURE_STORE_YAML,
        repo / "features.py": FEAST_FEATURES_PY.format(
            users=users.resolve(), merchants=merchants.resolve(), n=N_FEATURES
        ),
    }
    changed = False
    for path, text in files.items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed = True
    if changed or not (repo / "data" / "registry.db").exists():
        t0 = time.perf_counter()
        proc = subprocess.run(
            [str(venv / "bin" / "feast"), "--chdir", str(repo), "apply"],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise SystemExit(f"feast apply failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
        print(f"feast apply done in {time.perf_counter() - t0:.1f}s (outside the timing)")


def measure_feast(
    venv: Path, repo: Path, entities: Path, out: Path, timeout: float
) -> dict[str, Any]:
    """Feast's case in a subprocess of the Feast venv; on failure, the error text instead."""
    cmd = [
        str(feast_python(venv)),
        __file__,
        "--feast-case",
        "--feast-repo",
        str(repo),
        "--entities",
        str(entities),
        "--out",
        str(out),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-30:])
        return {"error": f"exit code {proc.returncode}:\n{tail}"}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def measure_our_import() -> float:
    """Seconds to import duckdb and featurestore in a fresh process: fs_arrow's timing starts after."""
    code = (
        "import time; t = time.perf_counter(); import duckdb; "
        "from featurestore import FeatureStore; print(time.perf_counter() - t)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
    )
    return round(float(proc.stdout.strip().splitlines()[-1]), 2)


def dump_ours(repo: Path, entities: Path, out: Path) -> None:
    """Our training frame for the same entity rows, written for the comparison (not timed)."""
    from featurestore import FeatureStore

    FeatureStore(repo).get_training_frame(str(entities), FEATURES).to_parquet(out)


def _norm(column: str) -> str:
    # NaN and null both mean "no value": compare them as null.
    return f"CASE WHEN isnan({column}) THEN NULL ELSE {column} END"


def _value(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else x


def compare(ours: Path, theirs: Path, users: Path, merchants: Path) -> list[str]:
    """Lines describing how Feast's frame differs from ours (row by row, sorted by SORT_KEYS)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    keys = [k.strip() for k in SORT_KEYS.split(",")]
    feats = [f"u{i}" for i in range(N_FEATURES)] + [f"m{i}" for i in range(N_FEATURES)]
    cols = ", ".join(keys + feats)
    con.execute(
        f"CREATE TEMP TABLE o AS SELECT row_number() OVER (ORDER BY {SORT_KEYS}) AS rn, {cols} "
        f"FROM read_parquet('{ours}')"
    )
    con.execute(
        f"CREATE TEMP TABLE f AS SELECT row_number() OVER (ORDER BY {SORT_KEYS}) AS rn, "
        f"user_id, merchant_id, CAST(event_timestamp AS TIMESTAMPTZ) AS event_timestamp, label, "
        f"{', '.join(feats)} FROM read_parquet('{theirs}')"
    )
    con.execute(
        "CREATE TEMP TABLE j AS SELECT o.rn AS o_rn, f.rn AS f_rn, "
        + ", ".join(f"o.{c} AS o_{c}, f.{c} AS f_{c}" for c in keys + feats)
        + " FROM o FULL OUTER JOIN f ON o.rn = f.rn"
    )

    def differs(c: str) -> str:
        return f"({_norm('o_' + c)}) IS DISTINCT FROM ({_norm('f_' + c)})"

    key_diff = " OR ".join(f"o_{k} IS DISTINCT FROM f_{k}" for k in keys)
    row = con.execute(
        "SELECT count(*), count(o_rn), count(f_rn), "
        f"count(*) FILTER (WHERE {key_diff}), "
        + ", ".join(f"count(*) FILTER (WHERE {differs(c)})" for c in feats)
        + ", "
        + ", ".join(f"count(*) FILTER (WHERE {_norm('o_' + c)} IS NULL)" for c in ("u0", "m0"))
        + ", "
        + ", ".join(f"count(*) FILTER (WHERE {_norm('f_' + c)} IS NULL)" for c in ("u0", "m0"))
        + " FROM j"
    ).fetchone()
    assert row is not None
    total, n_ours, n_theirs, n_key = row[0], row[1], row[2], row[3]
    per_feature = dict(zip(feats, row[4 : 4 + len(feats)], strict=True))
    nulls = row[4 + len(feats) :]
    lines = [
        f"rows: ours {n_ours:,}, Feast {n_theirs:,}; rows whose keys differ after sorting: {n_key:,}",
        f"rows with no value (null/NaN) for user_stats / merchant_stats: ours {nulls[0]:,} / "
        f"{nulls[1]:,}, Feast {nulls[2]:,} / {nulls[3]:,}",
    ]
    if n_ours != n_theirs or n_key:
        lines.append("row sets differ: the value comparison below is not meaningful row by row")
    if total == 0:
        return lines
    for prefix, view, source, key in (
        ("u", "user_stats", users, "user_id"),
        ("m", "merchant_stats", merchants, "merchant_id"),
    ):
        view_feats = [c for c in feats if c.startswith(prefix)]
        any_diff = " OR ".join(differs(c) for c in view_feats)
        kinds = con.execute(
            f"SELECT count(*), "
            f"count(*) FILTER (WHERE {_norm('o_' + prefix + '0')} IS NULL), "
            f"count(*) FILTER (WHERE {_norm('f_' + prefix + '0')} IS NULL) "
            f"FROM j WHERE {any_diff}"
        ).fetchone()
        assert kinds is not None
        counts = ", ".join(f"{c} {per_feature[c]:,}" for c in view_feats)
        lines.append(
            f"{view}: {kinds[0]:,} rows differ in at least one feature ({counts}); "
            f"of them ours null {kinds[1]:,}, Feast null {kinds[2]:,}, "
            f"both set but different {kinds[0] - kinds[1] - kinds[2]:,}"
        )
        if not kinds[0]:
            continue
        o_cols = ", ".join(f"o_{c}" for c in view_feats)
        f_cols = ", ".join(f"f_{c}" for c in view_feats)
        samples = con.execute(
            f"SELECT o_{key}, o_event_timestamp, [{o_cols}], [{f_cols}] FROM j "
            f"WHERE {any_diff} ORDER BY o_rn NULLS LAST LIMIT 3"
        ).fetchall()
        for key_value, ts, ours_values, theirs_values in samples:
            shown = [
                f"{c}: ours {a}, Feast {b}"
                for c, a, b in zip(view_feats, ours_values, theirs_values, strict=True)
                if _value(a) != _value(b)
            ]
            lines.append(
                f"  {key}={key_value} at {ts}: {'; '.join(shown[:3])}"
                + (f" (+{len(shown) - 3} more)" if len(shown) > 3 else "")
            )
            if key_value is None or ts is None:
                continue
            lines.append(
                "    newest source rows at or before that time (event_timestamp, created, age):"
            )
            candidates = con.execute(
                f"SELECT event_timestamp, created, CAST(? AS TIMESTAMPTZ) - event_timestamp, "
                f"{prefix}0 FROM read_parquet('{source}', filename=true, file_row_number=true) "
                f"WHERE {key} = ? AND event_timestamp <= CAST(? AS TIMESTAMPTZ) "
                "ORDER BY event_timestamp DESC, created DESC NULLS LAST, filename DESC, "
                "file_row_number DESC LIMIT 3",
                [ts, key_value, ts],
            ).fetchall()
            for ev, created, age, value in candidates:
                lines.append(f"    {ev}, {created}, {age}, {prefix}0={value}")
    con.close()
    return lines


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entity-rows", type=int, default=1_000_000, help="default 1,000,000")
    parser.add_argument(
        "--source-rows", type=int, default=5_000_000, help="rows per view, default 5,000,000"
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=2,
        choices=range(1, 6),
        metavar="{1..5}",
        help="rounds of (ours, Feast), default 2",
    )
    parser.add_argument(
        "--timeout", type=float, default=1800, help="seconds allowed per Feast run, default 1800"
    )
    parser.add_argument(
        "--feast-venv", type=Path, default=FEAST_VENV, help="default benchmarks/.data/feast-venv"
    )
    parser.add_argument(
        "--no-install",
        action="store_true",
        help=f"fail instead of installing {FEAST_REQUIREMENT} into --feast-venv",
    )
    parser.add_argument("--no-compare", action="store_true", help="skip the result comparison")
    parser.add_argument(
        "--keep-outputs", action="store_true", help="keep the compared Parquet outputs"
    )
    # Internal: the measured Feast case, run by the Feast venv's python.
    parser.add_argument("--feast-case", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--feast-repo", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--entities", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.feast_case:
        print(json.dumps(run_feast_case(args.feast_repo, args.entities, args.out)))
        return

    print(f"load average at start: {_load()} (2 cores)")
    venv: Path = args.feast_venv.resolve()
    ensure_feast(venv, install=not args.no_install)
    t0 = time.perf_counter()
    repo, entities = prepare(args.source_rows, args.entity_rows)
    users = DATA / f"users_{args.source_rows}_{SEED}.parquet"
    merchants = DATA / f"merchants_{args.source_rows}_{SEED}.parquet"
    feast_repo = (
        FEAST_REPO if args.source_rows == 5_000_000 else DATA / f"feast_repo_{args.source_rows}"
    )
    write_feast_repo(feast_repo, users, merchants, venv)
    print(
        f"data ready in {time.perf_counter() - t0:.1f}s ({args.entity_rows:,} entity rows, "
        f"2 views x {args.source_rows:,} rows x {N_FEATURES} features); Feast repo {feast_repo}"
    )

    results: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
    outputs: list[tuple[int, Path]] = []
    for run in range(1, args.runs + 1):
        ours = measure("fs_arrow", repo, entities)
        ours["import_seconds"] = measure_our_import()
        out = DATA / f"feast_out_run{run}.parquet"
        out.unlink(missing_ok=True)
        theirs = measure_feast(venv, feast_repo, entities, out, args.timeout)
        results.append((run, ours, theirs))
        print(
            f"run {run}: featurestore fs_arrow {ours['seconds']}s (its timing starts after "
            f"importing duckdb + featurestore: {ours['import_seconds']}s in a fresh process)"
        )
        if "error" in theirs:
            print(f"run {run}: Feast FAILED: {theirs['error']}", flush=True)
        else:
            outputs.append((run, out))
            phases = ", ".join(f"{k} {v}s" for k, v in theirs["phases"].items())
            print(f"run {run}: Feast {theirs['seconds']}s = {phases}")
            if theirs["rows"] != ours["rows"]:
                print(f"run {run}: ROW COUNT DIFFERS: ours {ours['rows']}, Feast {theirs['rows']}")
        print(f"  load average after run {run}: {_load()}", flush=True)

    print()
    print(
        f"{'case':<38} {'s excl. import':>15} {'s incl. import':>15} {'peak RSS MB':>12} "
        f"{'rows':>10}"
    )
    for run, ours, theirs in results:
        ours_excl = float(ours["seconds"])
        ours_incl = ours_excl + float(ours["import_seconds"])
        print(
            f"{f'featurestore fs_arrow, run {run}':<38} {ours_excl:>15.2f} {ours_incl:>15.2f} "
            f"{ours['peak_rss_mb']:>12} {ours['rows']:>10,}"
        )
        name = f"Feast {FEAST_VERSION} duckdb .to_df(), run {run}"
        if "error" in theirs:
            print(f"{name:<38} {'failed':>15}")
            continue
        feast_incl = float(theirs["seconds"])
        feast_excl = feast_incl - float(theirs["import_seconds"])
        print(
            f"{name:<38} {feast_excl:>15.2f} {feast_incl:>15.2f} {theirs['peak_rss_mb']:>12} "
            f"{theirs['rows']:>10,}"
        )
        print(
            f"{f'  ratio Feast/ours, run {run}':<38} {feast_excl / ours_excl:>14.2f}x "
            f"{feast_incl / ours_incl:>14.2f}x "
            f"{theirs['peak_rss_mb'] / ours['peak_rss_mb']:>11.2f}x"
        )
    print(
        "Both timings include reading the entity Parquet (ours from its path, Feast into pandas).\n"
        "'incl. import' for featurestore adds the import time measured in a separate fresh "
        "process\n(bench_training_set's fs_arrow timing starts after its imports); Feast's is "
        "timed in-run."
    )
    first_ok = next((t for _, _, t in results if "error" not in t), None)
    if first_ok is not None:
        versions = ", ".join(f"{k} {v}" for k, v in first_ok["versions"].items())
        print(f"Feast venv: {versions}")
    print(f"load average at end: {_load()}")

    if outputs and not args.no_compare:
        print()
        ours_out = DATA / "ours_out_compare.parquet"
        dump_ours(repo, entities, ours_out)
        for run, out in outputs:
            print(f"results, Feast run {run} vs featurestore (sorted by {SORT_KEYS}):")
            for line in compare(ours_out, out, users, merchants):
                print(f"  {line}")
        if not args.keep_outputs:
            ours_out.unlink(missing_ok=True)
    if not args.keep_outputs:
        for _, out in outputs:
            out.unlink(missing_ok=True)
    if any("error" in t for _, _, t in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
