"""Compare training frames built by Feast and by featurestore for the same entity rows.

Feast runs in the Python environment the user names (a subprocess; Feast is never imported
here), on a copy of its registry, so the Feast repo is left untouched. Every cell of every
feature of each service is compared; a difference is explained by one of Feast's known
semantic differences (:data:`CAUSES`, measured against Feast 0.67's default offline store)
when the source rows show it, and is counted as a ``mismatch`` otherwise.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from featurestore.errors import ConfigError, EntityFrameError, FeatureStoreError
from featurestore.feast_import.parse import FeastOnDemandView, parse_feast_repo

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import timedelta

    from featurestore.definitions import FeatureView
    from featurestore.store import FeatureStore

__all__ = ["CAUSES", "FeatureReport", "ServiceReport", "VerifyReport", "verify_import"]

ROW = "feast_import_row"
"""The column both frames carry to match rows (Feast neither keeps order nor every row)."""
TIMESTAMP = "event_timestamp"

CAUSES: dict[str, str] = {
    "row_without_match": (
        "Feast drops an entity row whose join keys have rows in a view's source but none at "
        "or before the row's time within the ttl (its merge-then-filter join removes the "
        "row); featurestore keeps every entity row and gives such a view's features nulls."
    ),
    "rows_collapsed": (
        "Feast returns one row per (join keys, timestamp): entity rows sharing a view's join "
        "keys and timestamp come back once; featurestore returns every entity row, "
        "duplicates included."
    ),
    "exact_tie": (
        "Several source rows share the winning event and created timestamps: Feast's pick "
        "follows its sorts, which do not promise an order for equal keys; featurestore takes "
        "the row that comes later in the source (the total order of DESIGN.md)."
    ),
    "input_differs": (
        "An on-demand feature whose input features differ in this row for one of the "
        "reasons above: the same function, given different inputs."
    ),
    "singleton_missing_input": (
        "A singleton python-mode function (singleton=True) got a missing input: Feast's "
        "training frame hands it NaN (so `if x:` is true), featurestore hands it None, as "
        "Feast's non-singleton mode does."
    ),
    "mismatch": "Not explained by a known difference of Feast's: please report it.",
}

_FEAST_SCRIPT = textwrap.dedent(
    """
    import json, pathlib, sys

    import pandas as pd
    import yaml
    from feast import FeatureStore
    from feast.repo_operations import parse_repo

    repo, work = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    entities, services = sys.argv[3], json.loads(sys.argv[4])
    config = yaml.safe_load((repo / "feature_store.yaml").read_text())
    config["registry"] = str(work / "registry.db")
    config["online_store"] = {"type": "sqlite", "path": str(work / "online.db")}
    (work / "feature_store.yaml").write_text(yaml.safe_dump(config))
    store = FeatureStore(repo_path=str(repo), fs_yaml_file=work / "feature_store.yaml")
    contents = parse_repo(repo)
    objects = [o for group in contents for o in group]
    store.apply(objects)
    entity_df = pd.read_parquet(entities)
    for name in services:
        service = store.get_feature_service(name)
        job = store.get_historical_features(
            entity_df=entity_df, features=service, full_feature_names=True
        )
        job.to_df().to_parquet(work / f"{name}.parquet")
    print(json.dumps({"ok": True}))
    """
)


@dataclass
class FeatureReport:
    """One feature column of a service, compared cell by cell over the rows both returned."""

    column: str
    cells: int = 0
    equal: int = 0
    both_null: int = 0
    differences: dict[str, int] = field(default_factory=dict)
    """Differing cells by cause (a key of :data:`CAUSES`)."""
    examples: list[dict[str, object]] = field(default_factory=list)
    """A few differing cells: row, featurestore's value, Feast's value, cause."""


@dataclass
class ServiceReport:
    """A service's two frames compared."""

    service: str
    rows: int
    feast_rows: int
    missing_in_feast: dict[str, int] = field(default_factory=dict)
    """Entity rows Feast did not return, by cause."""
    features: list[FeatureReport] = field(default_factory=list)

    @property
    def unexplained(self) -> int:
        """Missing rows and differing cells no known difference explains."""
        cells = sum(f.differences.get("mismatch", 0) for f in self.features)
        return self.missing_in_feast.get("mismatch", 0) + cells


@dataclass
class VerifyReport:
    """Every service compared, with the time each side took."""

    services: list[ServiceReport]
    feast_s: float
    featurestore_s: float

    @property
    def unexplained(self) -> int:
        """Differences no known difference of Feast's explains (0 = the import is faithful)."""
        return sum(s.unexplained for s in self.services)


def _read_entities(path: Path) -> pl.DataFrame:
    if path.suffix == ".csv":
        frame = pl.read_csv(path, try_parse_dates=True)
    elif path.suffix == ".parquet":
        frame = pl.read_parquet(path)
    else:
        msg = f"Entity file '{path}' must be .parquet or .csv; convert it and verify again."
        raise EntityFrameError(msg)
    if TIMESTAMP not in frame.columns or not isinstance(frame.schema[TIMESTAMP], pl.Datetime):
        msg = (
            f"Entity file '{path}' needs a timestamp column '{TIMESTAMP}' (as Feast's "
            "entity_df does); rename its timestamp column."
        )
        raise EntityFrameError(msg)
    if ROW in frame.columns:
        msg = f"Entity file '{path}' has a column '{ROW}', which verify uses; rename it."
        raise EntityFrameError(msg)
    return frame.with_columns(_utc(pl.col(TIMESTAMP), frame.schema[TIMESTAMP])).with_row_index(ROW)


def _utc(column: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
        return column.dt.replace_time_zone("UTC").dt.cast_time_unit("us")
    return column.dt.convert_time_zone("UTC").dt.cast_time_unit("us")


def _run_feast(
    feast_python: Path, feast_repo: Path, work: Path, entities: Path, services: list[str]
) -> None:
    if not feast_python.is_file():
        msg = (
            f"No Python at '{feast_python}' to run Feast with; pass --feast-python with the "
            "python of an environment where Feast is installed (e.g. .feast-venv/bin/python)."
        )
        raise ConfigError(msg)
    command = [str(feast_python), "-c", _FEAST_SCRIPT, str(feast_repo), str(work)]
    command += [str(entities), json.dumps(services)]
    done = subprocess.run(  # our script, run by the python the user named
        command, capture_output=True, text=True, check=False, cwd=feast_repo
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        msg = (
            f"Feast failed to build the training frames of {', '.join(services)} in "
            f"'{feast_repo}' (with {feast_python}):\n{tail}\nRun 'feast apply' in the Feast "
            "repo to see the problem, fix it, and verify again."
        )
        raise FeatureStoreError(msg)


@dataclass
class _ViewFacts:
    """What a view's source rows say about each entity row (by row id)."""

    keys: tuple[str, ...]
    has_rows: set[int]
    has_candidate: set[int]
    tied: set[int]


def _view_facts(store: FeatureStore, view: FeatureView, entities: pl.DataFrame) -> _ViewFacts:
    source = view.source
    path = Path(source.path)
    path = path if path.is_absolute() else store.repo_root / path
    pattern = str(path / "**" / "*.parquet") if path.is_dir() else str(path)
    scan = pl.scan_parquet(pattern)
    names = scan.collect_schema().names()
    scan = scan.rename({k: v for k, v in source.field_mapping.items() if k in names})
    keys = view.join_keys
    ts, created = source.timestamp_field, source.created_timestamp_field
    schema = scan.collect_schema()
    columns = [*keys, ts, *([created] if created else [])]
    rows = (
        scan.select(columns)
        .with_columns(_utc(pl.col(ts), schema[ts]).alias("__ts"))
        .with_columns(
            _utc(pl.col(created), schema[created]).alias("__created")
            if created
            else pl.lit(None, pl.Datetime("us", "UTC")).alias("__created")
        )
        .join(entities.lazy().select(keys).unique(), on=list(keys), how="semi")
        .collect()
    )
    joined = entities.select(ROW, TIMESTAMP, *keys).join(rows, on=list(keys), how="inner")
    in_window = pl.col("__ts") <= pl.col(TIMESTAMP)
    if view.effective_ttl is not None:
        ttl: timedelta = view.effective_ttl
        in_window &= pl.col("__ts") >= pl.col(TIMESTAMP) - ttl
    candidates = joined.filter(in_window)
    top = (
        candidates.sort("__ts", "__created", nulls_last=False)
        .group_by(ROW)
        .agg(pl.col("__ts").last().alias("__top_ts"), pl.col("__created").last().alias("__top_c"))
    )
    tied = (
        candidates.join(top, on=ROW)
        .filter(
            (pl.col("__ts") == pl.col("__top_ts"))
            & pl.col("__created").eq_missing(pl.col("__top_c"))
        )
        .group_by(ROW)
        .len()
        .filter(pl.col("len") > 1)
    )
    return _ViewFacts(
        keys=tuple(keys),
        has_rows=set(joined[ROW].to_list()),
        has_candidate=set(candidates[ROW].to_list()),
        tied=set(tied[ROW].to_list()),
    )


def _comparable(column: pl.Series, like: pl.Series) -> pl.Series:
    """Feast's column in our column's type (Feast widens integer columns with nulls to float)."""
    if isinstance(column.dtype, pl.Datetime):
        column = column.dt.convert_time_zone("UTC") if column.dtype.time_zone else column
        column = column.dt.replace_time_zone("UTC").dt.cast_time_unit("us")
    if column.dtype.is_float():
        column = column.fill_nan(None)
    if column.dtype != like.dtype:
        column = column.cast(like.dtype, strict=False)
    return column


def _with_inputs(store: FeatureStore, service: str) -> list[str]:
    """The service's features and its on-demand views' input features (to see their nulls)."""
    refs = store.resolve(service)
    odfvs = store.on_demand_views(refs)
    inputs = [r for view in odfvs.values() for r in view.view_inputs]
    return [str(r) for r in dict.fromkeys([*refs, *inputs])]


def _compare_service(
    store: FeatureStore,
    service: str,
    ours: pl.DataFrame,
    feast: pl.DataFrame,
    entities: pl.DataFrame,
    singletons: set[str],
) -> ServiceReport:
    snapshot = store.snapshot
    refs = store.resolve(service)
    read = [r for v in store.on_demand_views(refs).values() for r in v.view_inputs]
    # Feast joins the views of the service and those its on-demand views read.
    views = {r.view for r in [*refs, *read] if r.view in snapshot.feature_views}
    facts = {v: _view_facts(store, snapshot.feature_views[v].view, entities) for v in views}
    report = ServiceReport(service=service, rows=ours.height, feast_rows=feast.height)
    present = set(feast[ROW].to_list()) if ROW in feast.columns else set()
    missing = [r for r in ours[ROW].to_list() if r not in present]
    if missing:
        collapsed: set[int] = set()
        for view_facts in facts.values():
            groups = (
                entities.group_by([*view_facts.keys, TIMESTAMP])
                .agg(pl.col(ROW))
                .filter(pl.col(ROW).list.len() > 1)
            )
            for group in groups[ROW].to_list():
                collapsed.update(group)
        for row in missing:
            if row in collapsed:
                cause = "rows_collapsed"
            elif any(row in f.has_rows and row not in f.has_candidate for f in facts.values()):
                cause = "row_without_match"
            else:
                cause = "mismatch"
            report.missing_in_feast[cause] = report.missing_in_feast.get(cause, 0) + 1
    both = ours.join(feast, on=ROW, how="inner", suffix="__feast")
    on_demand = []
    for ref in refs:
        column = f"{ref.view}__{ref.feature}"
        if ref.view not in snapshot.feature_views:
            on_demand.append(ref)
            continue
        tied = facts[ref.view].tied

        def tie(row: int, rows: set[int] = tied) -> str:
            return "exact_tie" if row in rows else "mismatch"

        report.features.append(_compare_column(both, column, tie))
    for ref in on_demand:
        column = f"{ref.view}__{ref.feature}"
        odfv = store.on_demand_views([ref])[ref.view]
        upstream_columns = [f"{u.view}__{u.feature}" for u in odfv.view_inputs]
        input_rows = _differing(both, upstream_columns)
        null_rows: set[int] = set()
        if ref.view in singletons:
            inputs = [*upstream_columns, *(f.name for s in odfv.request_sources for f in s.schema)]
            columns = [c for c in inputs if c in both.columns]
            if columns:
                missing_input = both.filter(pl.any_horizontal(pl.col(columns).is_null()))
                null_rows = set(missing_input[ROW].to_list())

        def follows(row: int, rows: set[int] = input_rows, nulls: set[int] = null_rows) -> str:
            if row in rows:
                return "input_differs"
            return "singleton_missing_input" if row in nulls else "mismatch"

        report.features.append(_compare_column(both, column, follows))
    return report


def _differing(both: pl.DataFrame, columns: list[str]) -> set[int]:
    rows: set[int] = set()
    for column in columns:
        if column not in both.columns or f"{column}__feast" not in both.columns:
            continue
        ours = both[column]
        feast = _comparable(both[f"{column}__feast"], ours)
        ours = ours.fill_nan(None) if ours.dtype.is_float() else ours
        rows |= set(both.filter(~ours.eq_missing(feast))[ROW].to_list())
    return rows


def _compare_column(
    both: pl.DataFrame, column: str, cause_of: Callable[[int], str]
) -> FeatureReport:
    report = FeatureReport(column=column, cells=both.height)
    feast_name = f"{column}__feast"
    if column not in both.columns or feast_name not in both.columns:
        report.differences["mismatch"] = both.height
        report.examples.append({"row": None, "problem": "the column is missing on one side"})
        return report
    ours = both[column]
    feast = _comparable(both[feast_name], ours)
    ours = ours.fill_nan(None) if ours.dtype.is_float() else ours
    same = ours.eq_missing(feast)
    report.equal = int(same.sum())
    report.both_null = int((ours.is_null() & feast.is_null()).sum())
    rows = both[ROW]
    for index in (~same).arg_true().to_list():
        row = int(rows[index])
        cause = cause_of(row)
        report.differences[cause] = report.differences.get(cause, 0) + 1
        if len(report.examples) < 5:
            report.examples.append(
                {"row": row, "featurestore": ours[index], "feast": feast[index], "cause": cause}
            )
    return report


def verify_import(
    store: FeatureStore,
    feast_repo: Path,
    entity_file: Path,
    *,
    feast_python: Path,
    services: list[str] | None = None,
) -> VerifyReport:
    """Build each service's training frame with Feast and with ``store``; compare them.

    Args:
        store: The imported repo, applied.
        feast_repo: The Feast repo it was imported from (its registry is not touched).
        entity_file: Entity rows (.parquet or .csv) with the join keys, ``event_timestamp``
            and any request fields.
        feast_python: The ``python`` of an environment where Feast is installed.
        services: The services to compare; default: every service of the imported repo.

    Raises:
        ConfigError: ``feast_python`` does not exist, or a service is unknown.
        EntityFrameError: The entity file is unreadable or lacks ``event_timestamp``.
        FeatureStoreError: Feast failed (its last error lines are in the message).
    """
    entities = _read_entities(entity_file)
    singletons = {
        v.name
        for v in parse_feast_repo(feast_repo).of_type(FeastOnDemandView)
        if v.mode == "python" and v.singleton
    }
    known = [s.name for s in store.list_feature_services()]
    chosen = services or known
    unknown = [s for s in chosen if s not in known]
    if unknown:
        msg = (
            f"Feature service(s) {', '.join(unknown)} are not in the imported repo; "
            f"choose from {', '.join(known) or 'none (import a repo with services)'}."
        )
        raise ConfigError(msg)
    with tempfile.TemporaryDirectory(prefix="featurestore-verify-") as tmp:
        work = Path(tmp)
        entity_path = work / "entities.parquet"
        entities.write_parquet(entity_path)
        started = time.perf_counter()
        _run_feast(feast_python, feast_repo.resolve(), work, entity_path, chosen)
        feast_s = time.perf_counter() - started
        started = time.perf_counter()
        ours = {
            name: store.get_training_frame(
                entities, _with_inputs(store, name), full_feature_names=True
            ).to_polars()
            for name in chosen
        }
        ours_s = time.perf_counter() - started
        reports = [
            _compare_service(
                store,
                name,
                ours[name],
                pl.read_parquet(work / f"{name}.parquet"),
                entities,
                singletons,
            )
            for name in chosen
        ]
    return VerifyReport(services=reports, feast_s=feast_s, featurestore_s=ours_s)
