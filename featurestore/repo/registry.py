"""The registry: the applied definitions, their fingerprints and per-view watermarks.

:class:`Registry` is the interface; two implementations sit behind it. ``registry:`` in
featurestore.yaml names one JSON file (:class:`FileRegistry`, below) or a PostgreSQL database
(``postgresql://...``, :class:`~featurestore.repo.registry_pg.PostgresRegistry`, for teams
applying from several machines); :func:`open_registry` picks one. The rules both follow live
here, once: an apply planned against an older ``serial`` is refused (two concurrent applies
never silently lose one), and a watermark never moves backwards within one online store epoch.

The file is written atomically (temp file + rename) under an exclusive file lock; every write
is a read-modify-write under that lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

from featurestore._time import to_utc, utc_now
from featurestore.errors import ConfigError, RegistryConflictError, RegistryFileError

if TYPE_CHECKING:
    from collections.abc import Hashable, Iterator, Mapping
    from datetime import datetime

    from featurestore.repo.loader import RepoContents
    from featurestore.repo.plan import Change as Change
    from featurestore.repo.plan import Plan as Plan
    from featurestore.types import DType
from featurestore.repo._json import FORMAT_VERSION, decode_snapshot, encode_snapshot
from featurestore.repo.snapshot import (
    OnDemandRecord,
    RegistrySnapshot,
    TransformRecord,
    ViewRecord,
    on_demand_record,
    resolve_refs,
    transform_record,
    view_fingerprint,
)

__all__ = [
    "FORMAT_VERSION",
    "FileRegistry",
    "OnDemandRecord",
    "Registry",
    "RegistrySnapshot",
    "TransformRecord",
    "ViewRecord",
    "ViewState",
    "copy_registry",
    "is_postgres_url",
    "keep_current_watermark",
    "next_watermark",
    "on_demand_record",
    "open_registry",
    "plan_against",
    "resolve_refs",
    "stale_apply_error",
    "transform_record",
    "view_fingerprint",
]


class Registry(Protocol):
    """Where a project's applied definitions and watermarks are kept.

    Implementations: :class:`FileRegistry` (one JSON file) and
    :class:`~featurestore.repo.registry_pg.PostgresRegistry`; one contract suite
    (``tests/contract/test_registry_contract.py``) runs against both.
    """

    project: str
    location: str
    """Where the registry is, for messages (a file path, or a URL without its password)."""
    last_error: RegistryFileError | None
    """Why the last ``load`` failed; None once a load succeeds (a server's ``/ready``)."""

    def load(self, *, missing_ok: bool = True) -> RegistrySnapshot:
        """The applied snapshot, checked throughout.

        Args:
            missing_ok: Whether a registry never applied to reads as empty (serial 0). A
                reader that already loaded it passes False: for it, a vanished registry is a
                failure, not an empty one.

        Raises:
            RegistryFileError: The registry is missing (``missing_ok=False``), unreachable or
                not a valid registry of this project.
        """
        ...

    def plan(
        self,
        contents: RepoContents,
        key_dtypes: Mapping[str, Mapping[str, DType]],
        *,
        current: RegistrySnapshot | None = None,
    ) -> Plan:
        """Diff the repo's definitions against ``current`` (read when None)."""
        ...

    def apply(self, plan: Plan) -> RegistrySnapshot:
        """Write ``plan``'s target at once, if the registry has not moved since the plan.

        Raises:
            RegistryConflictError: Another apply landed after this plan was computed.
        """
        ...

    def set_watermark(
        self, view: str, watermark: datetime, *, fingerprint: str, epoch: str | None = None
    ) -> bool:
        """Advance ``view``'s watermark (see :func:`next_watermark`) if its fingerprint is current.

        Returns False (and writes nothing) when the view was removed or redefined since the
        materialization that computed ``watermark`` started. Never rewrites the definitions.
        """
        ...

    def stamp(self) -> Hashable:
        """A cheap marker that changes whenever an apply or a watermark move lands.

        A server polls it and re-reads the registry only when it moved; an unreachable
        registry has a marker of its own, so the failure is noticed and reported by ``load``.
        """
        ...

    def close(self) -> None:
        """Release connections (nothing for a file)."""
        ...


def is_postgres_url(location: str) -> bool:
    """Whether ``registry:`` names a PostgreSQL database rather than a file."""
    return location.startswith(("postgresql://", "postgres://"))


def open_registry(location: str, *, repo_root: Path, project: str) -> Registry:
    """The registry ``registry:`` names: a ``postgresql://`` URL, or a file relative to the repo.

    Raises:
        ConfigError: ``location`` is a URL of another kind (``s3://...``).
        MissingDependencyError: A PostgreSQL registry without the ``postgres`` extra (at first
            use, not here: the driver is imported when the registry is first read).
    """
    if is_postgres_url(location):
        from featurestore.repo.registry_pg import PostgresRegistry  # only for PostgreSQL repos

        return PostgresRegistry(location, project=project)
    url = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", location)
    if url is not None:
        scheme = url[1]
        msg = (
            f"featurestore.yaml is invalid: 'registry' is a {scheme}:// URL; the registry is a "
            "file (relative to the repo) or a PostgreSQL database (postgresql://user@host:5432/"
            "dbname). Use one of those."
        )
        raise ConfigError(msg)
    path = Path(location)
    return FileRegistry(path if path.is_absolute() else repo_root / path, project=project)


def plan_against(
    project: str,
    current: RegistrySnapshot,
    contents: RepoContents,
    key_dtypes: Mapping[str, Mapping[str, DType]],
) -> Plan:
    """Diff the repo's definitions against ``current``: the plan every registry returns.

    Raises:
        DefinitionError: A service refers to an unknown view or feature, or a join key has
            different types in different views.
    """
    from featurestore.repo.plan import Plan, check_repo, diff  # here: readers never plan

    check_repo(contents, key_dtypes)
    views: dict[str, ViewRecord] = {}
    for name, view in contents.feature_views.items():
        keys = {k: key_dtypes[name][k] for k in view.join_keys}
        fingerprint = view_fingerprint(view, keys)
        old = current.feature_views.get(name)
        watermark = old.watermark if old and old.fingerprint == fingerprint else None
        origin = contents.origins.get(f"feature view:{name}", "?")
        transform = transform_record(view, origin=origin)
        epoch = old.epoch if old and watermark else None
        views[name] = ViewRecord(view, keys, fingerprint, watermark, transform, epoch)
    target = RegistrySnapshot(
        project=project,
        serial=current.serial,
        applied_at=current.applied_at,
        entities=dict(contents.entities),
        feature_views=views,
        feature_services=dict(contents.feature_services),
        on_demand_views={
            name: on_demand_record(
                odfv, origin=contents.origins.get(f"on-demand feature view:{name}", "?")
            )
            for name, odfv in contents.on_demand_views.items()
        },
    )
    return Plan(base_serial=current.serial, changes=diff(current, target), target=target)


def stale_apply_error(location: str, base_serial: int, serial: int) -> RegistryConflictError:
    """The refusal of an apply planned at ``base_serial`` when the registry is at ``serial``."""
    return RegistryConflictError(
        f"Registry '{location}' changed while this apply was being planned (serial "
        f"{base_serial} -> {serial}): another apply or materialization landed. Run "
        "'featurestore plan' again and re-apply."
    )


class ViewState(NamedTuple):
    """What a materialization moves in a view's record: its watermark and epoch, by fingerprint."""

    fingerprint: str
    watermark: datetime | None
    epoch: str | None

    @classmethod
    def of(cls, record: ViewRecord) -> ViewState:
        """The state ``record`` holds."""
        return cls(record.fingerprint, record.watermark, record.epoch)


def next_watermark(
    current: ViewState, watermark: datetime, epoch: str | None
) -> tuple[datetime, str | None]:
    """The (watermark, epoch) a view gets when a materialization reports ``watermark``.

    The watermark never moves backwards within one online store epoch (the store the rows
    were written to; ``epoch`` None = keep the recorded one); one recorded under another epoch
    describes a store that is gone, so it is replaced.
    """
    new = to_utc(watermark)
    epoch = current.epoch if epoch is None else epoch
    if current.watermark is not None and current.epoch in (None, epoch):
        new = max(new, current.watermark)
    return new, epoch


def keep_current_watermark(record: ViewRecord, current: ViewState | None) -> ViewRecord:
    """``record`` (being applied) with the watermark ``current`` holds, if it is the same view.

    A watermark that moved between plan and apply is kept; a redefined view starts over.
    """
    if current is None or current.fingerprint != record.fingerprint:
        return record
    return replace(record, watermark=current.watermark, epoch=current.epoch)


def copy_registry(source: Registry, destination: Registry) -> RegistrySnapshot:
    """Copy ``source``'s applied registry, watermarks included, into an empty ``destination``.

    The copy is one apply on the destination (its serial starts at 1). Stop applies and
    materializations meanwhile: one landing during the copy is not in it (the caller can
    compare ``source.stamp()`` before and after).

    Raises:
        RegistryFileError: The source was never applied, or a registry cannot be read.
        RegistryConflictError: The destination already holds this project's registry.
    """
    from featurestore.repo.plan import Plan, diff

    snapshot = source.load(missing_ok=False)
    current = destination.load()
    if current.serial != 0:
        msg = (
            f"Registry '{destination.location}' already holds project '{destination.project}' "
            f"(serial {current.serial}): copying '{source.location}' would overwrite it. Copy "
            "into an empty database or a new file, or point 'registry:' at the existing one."
        )
        raise RegistryConflictError(msg)
    target = replace(snapshot, serial=0, applied_at=None)
    plan = Plan(base_serial=0, changes=diff(current, target), target=target)
    return destination.apply(plan)


# -- the registry file ------------------------------------------------------------------------


class FileRegistry:
    """The registry file of one project.

    Example:
        >>> import tempfile, pathlib
        >>> reg = FileRegistry(pathlib.Path(tempfile.mkdtemp()) / "registry.json", project="demo")
        >>> reg.load().serial
        0
    """

    def __init__(self, path: Path, *, project: str) -> None:
        self.path = path
        self.project = project
        self.location = str(path)
        self.last_error: RegistryFileError | None = None

    def load(self, *, missing_ok: bool = True) -> RegistrySnapshot:
        """Read the registry, checking the whole document (see :meth:`Registry.load`).

        Raises:
            RegistryFileError: The file is missing (with ``missing_ok=False``), unreadable,
                not UTF-8 JSON, not a registry document, or another project's registry.
        """
        try:
            snapshot = self._read(missing_ok=missing_ok)
        except RegistryFileError as exc:
            self.last_error = exc
            raise
        self.last_error = None
        return snapshot

    def _read(self, *, missing_ok: bool) -> RegistrySnapshot:
        try:
            data = json.loads(self.path.read_bytes().decode("utf-8"))
        except FileNotFoundError:
            if missing_ok:
                return RegistrySnapshot(project=self.project)
            raise self._error("the file is missing") from None
        except IsADirectoryError:
            raise self._error("it is a directory, not a file") from None
        except OSError as exc:
            raise self._error(f"it cannot be read ({exc.strerror or exc})") from exc
        except UnicodeDecodeError as exc:
            raise self._error(f"it is not UTF-8 text (byte {exc.start})") from exc
        except (ValueError, RecursionError) as exc:
            raise self._error(f"it is not valid JSON ({exc})") from exc
        snapshot = decode_snapshot(data, path=self.path)
        if snapshot.project != self.project:
            raise RegistryFileError(
                path=str(self.path),
                where="project",
                problem=f"it belongs to project '{snapshot.project}', not '{self.project}'",
                fix="Point 'registry:' in featurestore.yaml at this project's file.",
            )
        return snapshot

    def _error(self, problem: str) -> RegistryFileError:
        return RegistryFileError(path=str(self.path), problem=problem)

    def plan(
        self,
        contents: RepoContents,
        key_dtypes: Mapping[str, Mapping[str, DType]],
        *,
        current: RegistrySnapshot | None = None,
    ) -> Plan:
        """Diff the repo's definitions against the registry (see :func:`plan_against`).

        Args:
            contents: The definitions loaded from the repo.
            key_dtypes: Per view, the inferred type of each join key (from its source).
            current: The snapshot to diff against; read from disk when None.

        Raises:
            DefinitionError: A service refers to an unknown view or feature, or a join key has
                different types in different views.
        """
        current = current if current is not None else self.load()
        return plan_against(self.project, current, contents, key_dtypes)

    def stamp(self) -> Hashable:
        """The file's inode, size and mtime (written by rename, so any write moves them)."""
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def close(self) -> None:
        """Nothing to release: the file is opened per read and write."""

    @contextlib.contextmanager
    def _locked(self) -> Iterator[RegistrySnapshot]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with lock_path.open("a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield self.load()
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _write(self, snapshot: RegistrySnapshot) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".registry-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(encode_snapshot(snapshot), handle, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            Path(tmp).replace(self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def apply(self, plan: Plan) -> RegistrySnapshot:
        """Write ``plan``'s target, atomically, if the registry has not moved since the plan.

        Raises:
            RegistryConflictError: Another apply landed after this plan was computed; plan
                again.
        """
        with self._locked() as current:
            if current.serial != plan.base_serial:
                raise stale_apply_error(str(self.path), plan.base_serial, current.serial)
            views = {
                name: keep_current_watermark(record, _state_of(current.feature_views.get(name)))
                for name, record in plan.target.feature_views.items()
            }
            snapshot = replace(
                plan.target, serial=current.serial + 1, applied_at=utc_now(), feature_views=views
            )
            self._write(snapshot)
            return snapshot

    def set_watermark(
        self, view: str, watermark: datetime, *, fingerprint: str, epoch: str | None = None
    ) -> bool:
        """Advance ``view``'s watermark if its fingerprint is still current (see the protocol).

        The file is small, so the whole file is rewritten (under the lock); the serial, which
        guards applies, stays.
        """
        with self._locked() as current:
            record = current.feature_views.get(view)
            if record is None or record.fingerprint != fingerprint:
                return False
            new, epoch = next_watermark(ViewState.of(record), watermark, epoch)
            if (new, epoch) == (record.watermark, record.epoch):
                return True
            views = dict(current.feature_views)
            views[view] = replace(record, watermark=new, epoch=epoch)
            self._write(replace(current, feature_views=views))
            return True


def _state_of(record: ViewRecord | None) -> ViewState | None:
    return ViewState.of(record) if record is not None else None
