"""FeatureStore: the user's entry point. It wires the components together and delegates."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal

# Both are needed (featurestore.offline imports them); imported here, before the offline
# package, a fresh process's start-up measured ~45 ms less CPU than with the first import
# inside featurestore.offline (issue 10 item 13; numpy's typing modules were the slow part).
import duckdb  # noqa: F401
import pyarrow  # noqa: F401

from featurestore._html import html_table
from featurestore._time import parse_timestamp, to_micros, to_utc, utc_now
from featurestore.definitions import FeatureRef, output_names
from featurestore.errors import (
    DefinitionError,
    FeatureViewNotFoundError,
    OnlineStoreIntegrityError,
)
from featurestore.offline.factory import open_offline_engine
from featurestore.progress import visible
from featurestore.repo.config import RepoConfig, load_config
from featurestore.repo.functions import AppliedFunctions
from featurestore.repo.registry import (
    FileRegistry,
    RegistrySnapshot,
    ViewRecord,
    open_registry,
    resolve_refs,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime
    from types import TracebackType

    from featurestore.consistency.log_schema import ServiceLog
    from featurestore.consistency.log_writer import FeatureLogger, LogStats
    from featurestore.consistency.report import SkewReport
    from featurestore.definitions import Entity, FeatureService
    from featurestore.materialization.history import MaterializationHistory
    from featurestore.materialization.materializer import (
        MaterializationReport,
        Materializer,
        ProgressCallback,
    )
    from featurestore.materialization.push import Pusher, PushMode, PushResult, PushRows
    from featurestore.materialization.watermarks import ViewStatus
    from featurestore.offline.base import Engine, Frame
    from featurestore.offline.engine import EntityInput
    from featurestore.offline.on_demand import OnDemandTrainingFrame
    from featurestore.offline.snapshot import SnapshotFrame
    from featurestore.online.base import OnlineStore
    from featurestore.online.lookup import OnlineReader
    from featurestore.online.response import OnlineResponse
    from featurestore.repo.loader import RepoContents
    from featurestore.repo.plan import Plan
    from featurestore.repo.registry import OnDemandRecord
    from featurestore.transformations import OnDemandFeatureView
    from featurestore.transformations.check import RowIndependenceReport
    from featurestore.validation.result import ValidationLog, ValidationResult

__all__ = ["FeatureStore"]

logger = logging.getLogger(__name__)


class FeatureStore:
    """A feature repo with its registry, offline engine and online store.

    Args:
        repo_path: The feature repo folder (holding ``featurestore.yaml``).
        config: Use this config instead of reading ``featurestore.yaml``.

    Example:
        >>> store = FeatureStore("feature_repo")  # doctest: +SKIP
        >>> store.apply()  # doctest: +SKIP
        >>> frame = store.get_training_frame(entity_df, features="fraud_v1")  # doctest: +SKIP
    """

    def __init__(self, repo_path: str | Path = ".", *, config: RepoConfig | None = None) -> None:
        self.repo_root = Path(repo_path).resolve()
        self.config = config if config is not None else load_config(self.repo_root)
        self.registry = open_registry(
            self.config.registry, repo_root=self.repo_root, project=self.config.project
        )
        self._offline: Engine | None = None
        self._snapshot: RegistrySnapshot | None = None
        self._online: OnlineStore | None = None
        self._reader: OnlineReader | None = None
        self._feature_logger: FeatureLogger | None = None
        self._pusher: Pusher | None = None
        self.functions = AppliedFunctions(self.repo_root)
        """The repo's functions (batch transforms, on-demand views), loaded once and checked."""

    def _path(self, relative: str) -> Path:
        path = Path(relative)
        return path if path.is_absolute() else self.repo_root / path

    # -- components ---------------------------------------------------------------------------

    @property
    def offline(self) -> Engine:
        """The offline engine of ``featurestore.yaml``, DuckDB or Spark (opened on first use)."""
        if self._offline is None:
            self._offline = open_offline_engine(
                self.config.offline_store, repo_root=self.repo_root, functions=self.functions
            )
        return self._offline

    @property
    def online(self) -> OnlineStore:
        """The online store of ``featurestore.yaml`` (opened on first use)."""
        if self._online is None:
            # Online modules load on first use: a training-only session never imports them.
            from featurestore.online.factory import open_online_store

            self._online = open_online_store(
                self.config.online_store, repo_root=self.repo_root, project=self.config.project
            )
        return self._online

    @property
    def snapshot(self) -> RegistrySnapshot:
        """The applied definitions (read from the registry on first use; see ``refresh``)."""
        if self._snapshot is None:
            self._snapshot = self.registry.load()
        return self._snapshot

    def refresh(self, *, missing_ok: bool = True) -> RegistrySnapshot:
        """Re-read the registry, picking up applies made since this store was opened.

        Args:
            missing_ok: Whether a registry never applied reads as empty (see ``Registry.load``).
        """
        self._snapshot = self.registry.load(missing_ok=missing_ok)
        return self._snapshot

    @property
    def feature_logger(self) -> FeatureLogger:
        """The feature log writer (``feature_logging`` in featurestore.yaml), started on first use."""
        if self._feature_logger is None:
            from featurestore.consistency.log_writer import FeatureLogger

            self._feature_logger = FeatureLogger(
                self._path(self.config.feature_logging.path), self.config.feature_logging
            )
        return self._feature_logger

    def feature_log_stats(self) -> LogStats | None:
        """Rows logged, written and dropped by this process, or None when nothing logged yet."""
        return self._feature_logger.stats() if self._feature_logger is not None else None

    def close(self) -> None:
        """Write the feature log queue, release the offline engine and the online store."""
        self._pusher = None
        if self._feature_logger is not None:
            self._feature_logger.close()
            self._feature_logger = None
        if self._offline is not None:
            self._offline.close()
            self._offline = None
        if self._online is not None:
            self._online.close()
            self._online = None
            self._reader = None
        self.registry.close()

    def __repr__(self) -> str:
        applied = ""
        if self._snapshot is not None:  # no registry read just to show the store
            s = self._snapshot
            applied = (
                f", serial={s.serial}, feature_views={len(s.feature_views)}, "
                f"on_demand_feature_views={len(s.on_demand_views)}, "
                f"feature_services={len(s.feature_services)}"
            )
        return (
            f"FeatureStore({str(self.repo_root)!r}, project={self.config.project!r}, "
            f"online_store={self.config.online_store.type!r}{applied})"
        )

    def _repr_html_(self) -> str:
        """The store in a notebook: what ``featurestore list`` shows, as tables."""
        views = [
            (r.view.name, ", ".join(e.name for e in r.view.entities), len(r.view.schema),
             r.view.ttl or "unlimited", r.watermark or "never materialized")
            for r in self.list_feature_views()
        ]  # fmt: skip
        return (
            html_table(repr(self), ["entity", "join keys"],
                       [(e.name, ", ".join(e.join_keys)) for e in self.list_entities()])
            + html_table("Feature views", ["name", "entities", "features", "ttl", "watermark"],
                         views)
            + html_table("On-demand feature views", ["name", "features"],
                         [(o.name, ", ".join(o.feature_names))
                          for o in self.list_on_demand_feature_views()])
            + html_table("Feature services", ["name", "features"],
                         [(s.name, len(s.refs)) for s in self.list_feature_services()])
        )  # fmt: skip

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- definitions --------------------------------------------------------------------------

    def plan(self) -> Plan:
        """Diff the repo's definition files against the registry, without writing anything.

        Each on-demand view is also run on a sample of real rows, whole and row by row, and
        refused when a row's output depends on the other rows (it would skew between training
        and serving).

        Raises:
            RepoLoadError: A repo file failed to import.
            DefinitionError: Definitions are inconsistent (unknown refs, key type clashes), or
                an on-demand view is not row-wise.
            SourceError: A source is missing or lacks a declared column.
            TransformationError: An on-demand view failed on the sample rows.
        """
        contents = self._load_repo()
        key_dtypes = {
            name: self.offline.infer_key_dtypes(view)
            for name, view in contents.feature_views.items()
        }
        plan = self.registry.plan(contents, key_dtypes)
        for report in self.check_transforms(contents_only=contents).values():
            if not report.ok:
                raise DefinitionError(report.explain())
        return plan

    def _load_repo(self) -> RepoContents:
        """The repo's definitions.

        Raises:
            MissingDependencyError: A repo file imports great_expectations, which is not
                installed (one line naming the extra).
        """
        from featurestore.errors import MissingDependencyError, RepoLoadError
        from featurestore.repo.loader import load_repo
        from featurestore.validation.gx import EXTRA

        try:
            contents = load_repo(self.repo_root)
        except RepoLoadError as exc:
            cause = exc.__cause__
            if isinstance(cause, ModuleNotFoundError) and (cause.name or "").startswith(
                "great_expectations"
            ):
                feature = f"Repo file '{exc.path}' imports great_expectations, so it"
                raise MissingDependencyError(feature=feature, extra=EXTRA) from exc
            raise
        return contents

    def check_transforms(
        self, *, rows: int = 200, seed: int = 0, contents_only: RepoContents | None = None
    ) -> dict[str, RowIndependenceReport]:
        """Run every on-demand view of the repo on ``rows`` sampled rows, whole and row by row.

        Stored inputs are real source rows (DuckDB ``USING SAMPLE``); request fields get seeded
        random values of their types, nulls included.
        """
        from featurestore.offline.on_demand import check_on_demand_views
        from featurestore.repo.loader import load_repo

        contents = contents_only if contents_only is not None else load_repo(self.repo_root)
        return check_on_demand_views(
            self.offline.local,
            contents.feature_views,
            contents.on_demand_views,
            rows=rows,
            seed=seed,
        )

    def apply(self) -> Plan:
        """Register the repo's definitions; returns the plan that was applied.

        Raises:
            RegistryConflictError: Another apply landed while this one was planned.
            MissingDependencyError: A view has expectations and Great Expectations is not
                installed (a server only plans, so it reads such a repo without GE).
            DefinitionError: GE cannot read a view's expectations (given as GE's JSON).
        """
        plan = self.plan()
        for record in plan.target.feature_views.values():
            if record.view.suite_json is not None:
                from featurestore.validation.gx import import_gx, suite_from_json

                import_gx(f"Feature view '{record.view.name}' has expectations, so it")
                suite_from_json(record.view.name, record.view.suite_json)  # GE can read it
        self._snapshot = self.registry.apply(plan)
        logger.info("applied registry serial %d", self._snapshot.serial)
        return plan

    def list_entities(self) -> list[Entity]:
        """The applied entities, by name (CLI: ``featurestore list entities``)."""
        return [e for _, e in sorted(self.snapshot.entities.items())]

    def list_feature_views(self) -> list[ViewRecord]:
        """The applied feature views with key types, fingerprint and watermark, by name."""
        return [r for _, r in sorted(self.snapshot.feature_views.items())]

    def list_on_demand_feature_views(self) -> list[OnDemandRecord]:
        """The applied on-demand feature views (inputs, request fields), by name."""
        return [r for _, r in sorted(self.snapshot.on_demand_views.items())]

    def list_feature_services(self) -> list[FeatureService]:
        """The applied feature services, by name."""
        return [s for _, s in sorted(self.snapshot.feature_services.items())]

    def get_feature_view(self, name: str) -> ViewRecord:
        """The applied feature view ``name`` with its key types, fingerprint and watermark."""
        record = self.snapshot.feature_views.get(name)
        if record is None:
            raise FeatureViewNotFoundError(name=name, candidates=self.snapshot.feature_views)
        return record

    def resolve(self, features: str | list[str]) -> list[FeatureRef]:
        """Check feature refs (or a feature service name) against the registry."""
        return resolve_refs(self.snapshot, features)

    def on_demand_views(self, refs: list[FeatureRef]) -> dict[str, OnDemandFeatureView]:
        """The on-demand views behind ``refs`` (upstream included), as applied.

        The registry keeps no function (never a pickle): :attr:`functions` imports the repo's
        code once and checks each view's fingerprint against the applied one.

        Raises:
            RegistryConflictError: A view changed (or vanished) since the last apply.
        """
        return self.functions.on_demand_views(self.snapshot, refs)

    # -- offline ------------------------------------------------------------------------------

    def get_training_frame(
        self,
        entity_df: EntityInput,
        features: str | list[str],
        *,
        full_feature_names: bool = False,
        timestamp_column: str = "event_timestamp",
        point_in_time: Literal["event", "available"] = "event",
        validate: bool | Literal["raise"] = False,
    ) -> Frame | OnDemandTrainingFrame:
        """Point-in-time-correct features for every row of ``entity_df`` (G1 in docs/concepts.md).

        Args:
            entity_df: pandas/polars DataFrame, Arrow table, Parquet path or DuckDB SQL query,
                with the join keys of every requested view and a timestamp column.
            features: ``"view:feature"`` refs, or a feature service name.
            full_feature_names: Name output columns ``view__feature``.
            timestamp_column: The entity frame's timestamp column.
            point_in_time: ``"event"`` joins on event timestamps; ``"available"`` also
                requires ``created_timestamp <= t`` (values that existed at t).
            validate: Check the frame's feature columns against their views' expectations
                (docs/validation.md): the frame is computed now, held in memory and returned
                with the check as ``frame.validation``, failed or not. ``"raise"`` raises
                ``ValidationError`` instead when an expectation fails. Needs the
                ``validation`` extra.

        Returns:
            A lazy TrainingFrame: rows in input order, duplicates kept, every input column.
        """
        refs = self.resolve(features)
        names = output_names(refs, full_feature_names=full_feature_names)
        frame = self._training_frame(
            entity_df, refs, names, timestamp_column=timestamp_column, point_in_time=point_in_time
        )
        if validate:
            from featurestore.validation.frame import check_training_frame

            check_training_frame(
                frame,
                dict(zip(refs, names, strict=True)),
                {name: record.view for name, record in self.snapshot.feature_views.items()},
                timestamp_column=timestamp_column,
                raise_on_failure=validate == "raise",
            )
        return frame

    def _training_frame(
        self,
        entity_df: EntityInput,
        refs: list[FeatureRef],
        names: list[str],
        *,
        timestamp_column: str,
        point_in_time: Literal["event", "available"],
    ) -> Frame | OnDemandTrainingFrame:
        if any(r.view in self.snapshot.on_demand_views for r in refs):
            from featurestore.offline.on_demand import on_demand_training_frame

            return on_demand_training_frame(
                self.offline,
                entity_df,
                refs,
                dict(zip(refs, names, strict=True)),
                feature_views=self.snapshot.feature_views,
                on_demand_views=self.on_demand_views(refs),
                timestamp_column=timestamp_column,
                point_in_time=point_in_time,
            )
        by_view: dict[str, list[str]] = {}
        for ref in refs:
            by_view.setdefault(ref.view, []).append(ref.feature)
        requests = [(self.snapshot.feature_views[v], fs) for v, fs in by_view.items()]
        return self.offline.training_frame(
            entity_df,
            requests,
            output_names=dict(zip(refs, names, strict=True)),
            timestamp_column=timestamp_column,
            point_in_time=point_in_time,
        )

    def get_snapshot(
        self,
        features: str | list[str],
        as_of: datetime | str,
        *,
        keys: EntityInput | None = None,
        request: Mapping[str, object] | None = None,
        full_feature_names: bool = False,
        timestamp_column: str = "event_timestamp",
        point_in_time: Literal["event", "available"] = "event",
    ) -> SnapshotFrame | OnDemandTrainingFrame:
        """Every entity's features as of ``as_of``, by the training rule (docs/snapshots.md).

        Equal to the training frame of the same keys with every row at ``as_of``, computed
        by a single-time plan (the newest row per key, no point-in-time join).

        Args:
            features: ``"view:feature"`` refs, or a feature service name.
            as_of: The time ``T``: a datetime (naive means UTC) or an ISO 8601 string.
            keys: None for every key with a candidate row at ``T`` in a view read (sorted by
                key; the views must share their join keys), or a pandas/polars/Arrow frame or
                DuckDB SQL query of keys: one row per row, in order, all its columns kept.
            request: Request fields of on-demand views, one value for every row (or give
                them as columns of ``keys``).
            full_feature_names: Name output columns ``view__feature``.
            timestamp_column: The output column holding ``as_of``.
            point_in_time: ``"available"`` also requires ``created_timestamp <= as_of``.

        Returns:
            A lazy frame with the ``to_*`` methods of a training frame.
        """
        from featurestore.offline.snapshot import snapshot

        refs = self.resolve(features)
        names = output_names(refs, full_feature_names=full_feature_names)
        on_demand = any(r.view in self.snapshot.on_demand_views for r in refs)
        return snapshot(
            self.offline.local,
            refs,
            dict(zip(refs, names, strict=True)),
            as_of=parse_timestamp(as_of, what="as_of") if isinstance(as_of, str) else to_utc(as_of),
            keys=keys,
            request=request or {},
            feature_views=self.snapshot.feature_views,
            on_demand_views=self.on_demand_views(refs) if on_demand else {},
            timestamp_column=timestamp_column,
            point_in_time=point_in_time,
        )

    # -- online -------------------------------------------------------------------------------

    def _materializer(self) -> Materializer:
        from featurestore.materialization.materializer import Materializer

        return Materializer(
            self.registry,
            self.offline,
            self.online,
            validation_log=self.validation_log,
            history=self.materialization_history,
        )

    # -- validated data (G6, docs/validation.md) ------------------------------------------------

    @property
    def materialization_history(self) -> MaterializationHistory:
        """The finished materialization windows, per view (for people and the web UI).

        Kept in ``materialization/`` beside the validation runs.
        """
        from featurestore.materialization.history import MaterializationHistory

        return MaterializationHistory(self.validation_log.root.parent / "materialization")

    @property
    def validation_log(self) -> ValidationLog:
        """The runs of views' expectations, per view and window.

        Kept in ``validation/`` beside the registry file (in ``data/`` for a database registry).
        """
        from featurestore.validation.result import ValidationLog

        registry = self.registry
        folder = registry.path.parent if isinstance(registry, FileRegistry) else self._path("data")
        return ValidationLog(folder / "validation")

    def validate(
        self, view: str, start: datetime | None = None, end: datetime | None = None
    ) -> ValidationResult:
        """Run ``view``'s expectations over the rows materializing ``[start, end)`` would write.

        Nothing is written online and no watermark moves; the run is kept
        (``validation_result``).

        Args:
            view: An applied feature view with expectations.
            start: Default: the view's earliest source row.
            end: Default: now.

        Raises:
            FeatureViewNotFoundError: ``view`` is not applied.
            DefinitionError: ``view`` has no expectations.
            MissingDependencyError: Great Expectations is not installed.
        """
        from featurestore.materialization.materializer import validate_window

        record = self.get_feature_view(view)
        return validate_window(self.offline, record, start, end, log=self.validation_log)

    def validation_result(self, view: str) -> ValidationResult | None:
        """The latest run of ``view``'s expectations (materialization or ``validate``), or None.

        Raises:
            FeatureViewNotFoundError: ``view`` is not applied.
        """
        self.get_feature_view(view)
        return self.validation_log.latest(view)

    # -- fresh data (G8, docs/push.md) ---------------------------------------------------------

    @property
    def pusher(self) -> Pusher:
        """Writes pushed rows to the push log and the online store (created on first use)."""
        if self._pusher is None:
            from featurestore.materialization.push import Pusher

            self._pusher = Pusher(
                self.offline.local, self.online, validation_log=self.validation_log
            )
        return self._pusher

    def push(
        self,
        view: str,
        rows: PushRows,
        *,
        to: PushMode = "online_and_offline",
        push_ids: Sequence[str | None] | None = None,
    ) -> PushResult:
        """Write rows of ``view`` now: durably to its push log, then online (DESIGN G8).

        The rows are checked against the view's schema and key types before anything is
        written. Online, the newest row of each key replaces the stored one only if it is
        not older (as materialization does). Training frames read the push log after the
        view's source files, in push order.

        Args:
            view: An applied feature view (no batch transform).
            rows: A pandas or polars DataFrame, an Arrow table, a list of dicts or a dict of
                column lists, with the join keys, the features and the source's timestamp
                field (and optionally its created timestamp field).
            to: ``"online_and_offline"``, ``"online"`` or ``"offline"``.
            push_ids: A message id per row, kept in the push log (duplicate checks).

        Raises:
            FeatureViewNotFoundError: ``view`` is not applied.
            EntityFrameError: A column is missing or unknown, or a value is null where it
                cannot be or has the wrong type (the message names the column and the row).
            ValidationError: The rows broke the view's expectations.

        Example:
            >>> store.push("user_stats", [{"user_id": 7, "event_timestamp": now,
            ...             "txn_count_7d": 3, "avg_amount_7d": 12.5}])  # doctest: +SKIP
        """
        record = self.get_feature_view(view)
        return self.pusher.push(record, rows, to=to, push_ids=push_ids)

    def _heal_pushes(self, report: MaterializationReport) -> None:
        """Write online the pushed rows a crash kept from the online store (see docs/push.md)."""
        from featurestore.materialization.push import heal_pushes

        for done in report.views:
            record = self.snapshot.feature_views[done.view]
            if record.view.transform is None:
                heal_pushes(record, self.offline.local.sources, self.pusher)

    def materialize(
        self,
        start: datetime,
        end: datetime,
        *,
        views: list[str] | None = None,
        progress: ProgressCallback | None = None,
    ) -> MaterializationReport:
        """Write the newest row per entity in ``[start, end)`` to the online store (G3, docs/concepts.md).

        Writes are conditional, so windows may repeat, overlap or come in any order. A view's
        watermark moves to ``end`` when the window starts at or before it (or the view was
        never materialized); see docs/online-format.md.

        Raises:
            MaterializationError: The window is empty or a view is not online.
            OnlineStoreUnavailableError: The online store cannot be reached.
        """
        with visible(progress) as callback:
            report = self._materializer().materialize(
                self.refresh(), start, end, views=views, progress=callback
            )
        self.refresh()
        self._heal_pushes(report)
        return report

    def materialize_incremental(
        self,
        end: datetime | None = None,
        *,
        views: list[str] | None = None,
        progress: ProgressCallback | None = None,
    ) -> MaterializationReport:
        """Materialize each online view from its watermark up to ``end`` (default: now).

        A first run starts at ``end - ttl``, or at the earliest row when the ttl is unlimited.
        A view whose values the online store lost (see ``online_problem``) is rebuilt that
        way too, and the report says so (``ViewMaterialization.rebuilt``).
        """
        with visible(progress) as callback:
            report = self._materializer().materialize_incremental(
                self.refresh(), end, views=views, progress=callback
            )
        self.refresh()
        self._heal_pushes(report)
        return report

    def get_online_features(
        self,
        features: str | list[str],
        entity_rows: list[dict[str, object]] | Mapping[str, Sequence[object]],
        *,
        full_feature_names: bool = False,
        request_time: datetime | None = None,
    ) -> OnlineResponse:
        """The online values of ``features`` for ``entity_rows`` (G3, G4 in docs/concepts.md).

        Args:
            features: ``"view:feature"`` refs, or a feature service name.
            entity_rows: ``[{"user_id": 7}, ...]`` or ``{"user_id": [7, ...]}``.
            full_feature_names: Name output columns ``view__feature``.
            request_time: When values must be valid against the ttl (default: now).

        Raises:
            EntityFrameError: A join key is missing or has the wrong type (before any lookup).
            OnlineStoreUnavailableError: The online store cannot be reached.
        """
        reader, log, now = self._online_lookup(features, request_time)
        response = reader.get_online_features(
            features, entity_rows, full_feature_names=full_feature_names, request_time=now
        )
        if log is not None:
            self.feature_logger.submit(
                log, request_time_us=to_micros(now), entity_rows=entity_rows, response=response
            )
        return response

    async def aget_online_features(
        self,
        features: str | list[str],
        entity_rows: list[dict[str, object]] | Mapping[str, Sequence[object]],
        *,
        full_feature_names: bool = False,
        request_time: datetime | None = None,
    ) -> OnlineResponse:
        """:meth:`get_online_features` on an event loop, never blocking it on network I/O.

        The same rules, results and errors; a Redis store is read asynchronously (bounded by
        its ``timeout_s``), a SQLite store (a local file) inline. The feature server uses it.
        """
        reader, log, now = self._online_lookup(features, request_time)
        response = await reader.aget_online_features(
            features, entity_rows, full_feature_names=full_feature_names, request_time=now
        )
        if log is not None:
            self.feature_logger.submit(
                log, request_time_us=to_micros(now), entity_rows=entity_rows, response=response
            )
        return response

    async def aclose_connections(self) -> None:
        """Close the online store's connections of the running event loop (server shutdown)."""
        from featurestore.online.base import AsyncReads

        if isinstance(self._online, AsyncReads):
            await self._online.aclose()

    def _online_lookup(
        self, features: str | list[str], request_time: datetime | None
    ) -> tuple[OnlineReader, ServiceLog | None, datetime]:
        """The reader of the current registry, the log of a sampled logged service, the time."""
        snapshot = self.snapshot
        if self._reader is None or self._reader.snapshot is not snapshot:
            from featurestore.online.lookup import OnlineReader

            self._reader = OnlineReader(
                snapshot, self.online, on_demand=partial(self.functions.on_demand_views, snapshot)
            )
        now = to_utc(request_time) if request_time is not None else utc_now()
        service = snapshot.feature_services.get(features) if isinstance(features, str) else None
        if service is None or service.logging is None:
            return self._reader, None, now
        log = self.feature_logger.plan(snapshot, service.name)
        if log is None or not self.feature_logger.sampled(log):
            return self._reader, None, now
        return self._reader, log, now

    def skew_report(
        self,
        service: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        samples: int = 20,
    ) -> SkewReport:
        """Replay the feature log of ``service`` through the training path (G5, docs/skew.md).

        Every logged row is joined as an entity row at its request time, with the same join
        and on-demand executor as training frames, and each served value is compared with the
        training value; each difference gets one cause (``stale_definition``,
        ``not_materialized`` or ``mismatch``). The log is read in chunks.

        Args:
            service: A feature service with ``logging=`` set.
            since: Only requests at or after this time (naive means UTC).
            until: Only requests before this time.
            samples: How many differing cells to keep as examples.

        Raises:
            FeatureServiceNotFoundError: ``service`` is not applied.
            SkewError: The service has no log in the window (the message says why).
        """
        from featurestore.consistency.replay import skew_report

        if self._feature_logger is not None:
            self._feature_logger.flush()
        snapshot = self.refresh()
        return skew_report(
            self.offline.local,
            snapshot,
            service,
            root=self._path(self.config.feature_logging.path),
            on_demand_views=partial(self.functions.on_demand_views, snapshot),
            since=to_utc(since) if since is not None else None,
            until=to_utc(until) if until is not None else None,
            samples=samples,
        )

    def online_status(self) -> list[ViewStatus]:
        """Per applied view: online flag, fingerprint, watermark, record count and problem.

        ``ViewStatus.problem`` says when the store lost a view's values (see
        :mod:`featurestore.online.epoch`).
        """
        from featurestore.materialization.watermarks import online_status

        return online_status(self.refresh(), self.online)

    def online_problem(self) -> str | None:
        """Why the online store cannot serve the applied views as materialized, or None.

        The store lost what the watermarks describe (another store epoch: emptied, restarted
        without persistence, replaced or deleted file, another store); see
        :mod:`featurestore.online.epoch`. A server's ``/ready`` answers 503 with this reason.

        Raises:
            OnlineStoreUnavailableError: The store cannot be reached.
        """
        from featurestore.online.epoch import lost_reason, lost_views

        try:
            epoch = self.online.read_epoch()
        except OnlineStoreIntegrityError as exc:
            return str(exc)
        lost = lost_views(self.snapshot.feature_views.values(), epoch)
        return lost_reason(lost, epoch, self.online.location) if lost else None

    def rebuild_online(
        self,
        views: list[str] | None = None,
        *,
        end: datetime | None = None,
        progress: ProgressCallback | None = None,
    ) -> MaterializationReport:
        """Delete the online records of ``views`` (default: every online view) and rebuild them.

        Each view is then materialized as on its first run, up to ``end`` (default: now, and
        at least its previous watermark): from ``end - ttl``, or from its first row when the
        ttl is unlimited. Until its rows are written again, lookups answer ``NOT_FOUND``.

        Raises:
            FeatureViewNotFoundError: A named view is not applied.
            MaterializationError: A named view is not online.
            OnlineStoreUnavailableError: The online store cannot be reached.
        """
        with visible(progress) as callback:
            report = self._materializer().materialize_incremental(
                self.refresh(), end, views=views, progress=callback, rebuild=True
            )
        self.refresh()
        return report
