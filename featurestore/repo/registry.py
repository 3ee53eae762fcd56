"""The registry: the applied definitions, their fingerprints and per-view watermarks.

One JSON file, written atomically (temp file + rename) under an exclusive file lock. Every
write is a read-modify-write under that lock and bumps ``serial``; an apply planned against an
older serial is refused, so two concurrent applies can never silently lose one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from featurestore._time import to_utc, utc_now
from featurestore.errors import RegistryConflictError, RegistryFileError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
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
    "OnDemandRecord",
    "Registry",
    "RegistrySnapshot",
    "TransformRecord",
    "ViewRecord",
    "on_demand_record",
    "resolve_refs",
    "transform_record",
    "view_fingerprint",
]

# -- the registry file ------------------------------------------------------------------------


class Registry:
    """The registry file of one project.

    Example:
        >>> import tempfile, pathlib
        >>> reg = Registry(pathlib.Path(tempfile.mkdtemp()) / "registry.json", project="demo")
        >>> reg.load().serial
        0
    """

    def __init__(self, path: Path, *, project: str) -> None:
        self.path = path
        self.project = project
        self.last_error: RegistryFileError | None = None
        """Why the last ``load`` failed; None once a load succeeds (a server's ``/ready``)."""

    def load(self, *, missing_ok: bool = True) -> RegistrySnapshot:
        """Read the registry, checking the whole document.

        Args:
            missing_ok: Whether a missing file is an empty registry at serial 0 (before the
                first apply). A reader that already loaded the file passes False: for it, a
                vanished file is a failure, not an empty registry.

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
        """Diff the repo's definitions against the registry.

        Args:
            contents: The definitions loaded from the repo.
            key_dtypes: Per view, the inferred type of each join key (from its source).
            current: The snapshot to diff against; read from disk when None.

        Raises:
            DefinitionError: A service refers to an unknown view or feature, or a join key has
                different types in different views.
        """
        from featurestore.repo.plan import Plan, check_repo, diff  # here: readers never plan

        check_repo(contents, key_dtypes)
        current = current if current is not None else self.load()
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
            project=self.project,
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
            RegistryConflictError: Another apply (or a watermark update of a changed view)
                landed after this plan was computed; plan again.
        """
        with self._locked() as current:
            if current.serial != plan.base_serial:
                msg = (
                    f"Registry '{self.path}' changed while this apply was being planned (serial "
                    f"{plan.base_serial} -> {current.serial}): another apply or materialization "
                    "landed. Run 'featurestore plan' again and re-apply."
                )
                raise RegistryConflictError(msg)
            views = {
                name: _keep_newer_watermark(record, current.feature_views.get(name))
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
        """Advance ``view``'s watermark to ``watermark`` if its fingerprint is still current.

        The watermark never moves backwards within one online store epoch (the store the rows
        were written to; None = keep the recorded one); one recorded under another epoch
        describes a store that is gone, so it is replaced. Returns False (and writes nothing)
        when the view was removed or redefined since the materialization that computed
        ``watermark`` started.
        """
        with self._locked() as current:
            record = current.feature_views.get(view)
            if record is None or record.fingerprint != fingerprint:
                return False
            new = to_utc(watermark)
            epoch = record.epoch if epoch is None else epoch
            if record.watermark is not None and record.epoch in (None, epoch):
                new = max(new, record.watermark)
            if (new, epoch) == (record.watermark, record.epoch):
                return True
            views = dict(current.feature_views)
            views[view] = replace(record, watermark=new, epoch=epoch)
            # Watermarks are not definitions: the serial (which guards applies) stays.
            self._write(replace(current, feature_views=views))
            return True


def _keep_newer_watermark(record: ViewRecord, current: ViewRecord | None) -> ViewRecord:
    if current is None or current.fingerprint != record.fingerprint:
        return record
    return replace(record, watermark=current.watermark, epoch=current.epoch)
