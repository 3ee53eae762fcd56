"""The PostgreSQL registry: the same registry, in a database several machines apply to.

``registry: postgresql://user@host:5432/dbname`` in featurestore.yaml (psycopg 3, the
``postgres`` extra). Two tables, created on first use, hold every project of the database:

- ``featurestore_registry``: one row per project: ``serial`` (bumped by each apply),
  ``version`` (bumped by each apply *and* each watermark move: what servers poll),
  ``applied_at`` and the definitions as the registry file's JSON document (``jsonb``).
- ``featurestore_view_state``: one row per applied feature view: its fingerprint, watermark
  and online store epoch. A materialization updates its view's row only.

An apply is one transaction: it locks the project's row, refuses a plan made against another
serial (the error the file registry gives), rewrites the definitions and the view rows, and
commits; a crash before the commit leaves the previous registry. A watermark update locks the
same row first (so it orders with applies, in the same lock order), checks the view's
fingerprint and moves the watermark by the rule in :func:`~featurestore.repo.registry.next_watermark`.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from featurestore._time import to_utc, utc_now
from featurestore.errors import MissingDependencyError, RegistryFileError
from featurestore.repo._json import decode_snapshot, encode_snapshot
from featurestore.repo.registry import (
    ViewState,
    keep_current_watermark,
    next_watermark,
    plan_against,
    stale_apply_error,
)
from featurestore.repo.snapshot import RegistrySnapshot

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Mapping
    from datetime import datetime

    import psycopg

    from featurestore.repo.loader import RepoContents
    from featurestore.repo.plan import Plan
    from featurestore.types import DType

__all__ = ["EXTRA", "SCHEMA", "PostgresRegistry", "redact_url"]

EXTRA = "postgres"
SCHEMA = """
CREATE TABLE IF NOT EXISTS featurestore_registry (
    project    text PRIMARY KEY,
    serial     bigint NOT NULL,
    version    bigint NOT NULL,
    applied_at timestamptz,
    document   jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS featurestore_view_state (
    project     text NOT NULL REFERENCES featurestore_registry (project) ON DELETE CASCADE,
    view_name   text NOT NULL,
    fingerprint text NOT NULL,
    watermark   timestamptz,
    epoch       text,
    PRIMARY KEY (project, view_name)
);
"""
_SCHEMA_LOCK = 0x46_53_52_45_47  # pg_advisory_xact_lock key: concurrent first uses create once
_CONNECT_TIMEOUT_S = 5
_UNREACHABLE = "unreachable"


def redact_url(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise MissingDependencyError(feature="A PostgreSQL registry", extra=EXTRA) from exc
    return psycopg


class PostgresRegistry:
    """The registry of one project in a PostgreSQL database.

    One connection per instance, opened on first use and reopened after a failure; calls
    from several threads take turns on it.

    Args:
        url: A libpq URL (``postgresql://user:password@host:port/dbname?sslmode=...``).
        project: The project whose rows this registry reads and writes.
    """

    def __init__(self, url: str, *, project: str) -> None:
        self.url = url
        self.project = project
        self.location = redact_url(url)
        self.last_error: RegistryFileError | None = None
        self._connection: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    # -- connection and errors ----------------------------------------------------------------

    def _error(self, problem: str, fix: str) -> RegistryFileError:
        return RegistryFileError(path=self.location, problem=problem, fix=fix)

    def _connect(self) -> psycopg.Connection[Any]:
        connection: psycopg.Connection[Any] = _psycopg().connect(
            self.url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S
        )
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            connection.execute(SCHEMA)
        return connection

    def _run(self, work: Callable[[psycopg.Connection[Any]], Any]) -> Any:
        """``work(connection)``, with psycopg's errors translated where they enter."""
        driver = _psycopg()
        with self._lock:
            try:
                if self._connection is None or self._connection.closed:
                    self._connection = self._connect()
                return work(self._connection)
            except driver.OperationalError as exc:
                self._drop()
                detail = " ".join(str(exc).split()) or type(exc).__name__
                raise self._error(
                    f"PostgreSQL cannot be reached or failed ({detail})",
                    "Check that the database server is running and that 'registry:' in "
                    "featurestore.yaml points at it, then run the command again.",
                ) from exc
            except driver.Error as exc:
                detail = " ".join(str(exc).split()) or type(exc).__name__
                raise self._error(
                    f"PostgreSQL refused a registry query ({detail})",
                    "Check that the user in 'registry:' may create and write tables in "
                    "this database.",
                ) from exc

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def close(self) -> None:
        """Close the connection (a later call opens a new one)."""
        with self._lock:
            self._drop()

    # -- reading ------------------------------------------------------------------------------

    def load(self, *, missing_ok: bool = True) -> RegistrySnapshot:
        """The project's snapshot, read in one consistent transaction, checked throughout.

        Raises:
            RegistryFileError: The database cannot be reached, the project was never applied
                (with ``missing_ok=False``), or its document is not a valid registry.
        """
        try:
            snapshot = self._load(missing_ok=missing_ok)
        except RegistryFileError as exc:
            self.last_error = exc
            raise
        self.last_error = None
        return snapshot

    def _load(self, *, missing_ok: bool) -> RegistrySnapshot:
        def read(conn: psycopg.Connection[Any]) -> tuple[Any, dict[str, ViewState]] | None:
            with conn.transaction():
                # Both tables as of one moment: a watermark move is never half seen.
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                row = conn.execute(
                    "SELECT serial, applied_at, document FROM featurestore_registry "
                    "WHERE project = %s",
                    (self.project,),
                ).fetchone()
                if row is None:
                    return None
                return row, self._view_states(conn)

        found = self._run(read)
        if found is None:
            if missing_ok:
                return RegistrySnapshot(project=self.project)
            raise self._error(
                f"project '{self.project}' has no registry in this database",
                "Run 'featurestore apply', or 'featurestore registry copy --to' from the "
                "project's registry file.",
            )
        (serial, applied_at, document), states = found
        if not isinstance(document, dict):
            raise self._error("the stored document is not a JSON object", RegistryFileError.RESTORE)
        document = {**document, "project": self.project, "serial": serial}
        document["applied_at"] = to_utc(applied_at).isoformat() if applied_at else None
        views = document.get("feature_views")
        if isinstance(views, dict):
            document["feature_views"] = {
                name: _with_state(body, states.get(name)) for name, body in views.items()
            }
        return decode_snapshot(document, path=self.location)

    def _view_states(self, conn: psycopg.Connection[Any]) -> dict[str, ViewState]:
        rows = conn.execute(
            "SELECT view_name, fingerprint, watermark, epoch FROM featurestore_view_state "
            "WHERE project = %s",
            (self.project,),
        ).fetchall()
        return {
            name: ViewState(
                fingerprint, to_utc(watermark) if watermark is not None else None, epoch
            )
            for name, fingerprint, watermark, epoch in rows
        }

    def stamp(self) -> Hashable:
        """The project's ``version`` (moved by every apply and watermark move).

        An unreachable database gives a marker of its own, so the next ``load`` reports it.
        """

        def read(conn: psycopg.Connection[Any]) -> Hashable:
            row = conn.execute(
                "SELECT version FROM featurestore_registry WHERE project = %s", (self.project,)
            ).fetchone()
            return None if row is None else int(row[0])

        try:
            stamp: Hashable = self._run(read)
        except RegistryFileError:
            return _UNREACHABLE
        return stamp

    def plan(
        self,
        contents: RepoContents,
        key_dtypes: Mapping[str, Mapping[str, DType]],
        *,
        current: RegistrySnapshot | None = None,
    ) -> Plan:
        """Diff the repo's definitions against the registry (see ``plan_against``)."""
        current = current if current is not None else self.load()
        return plan_against(self.project, current, contents, key_dtypes)

    # -- writing ------------------------------------------------------------------------------

    def apply(self, plan: Plan) -> RegistrySnapshot:
        """Write ``plan``'s target in one transaction, if the serial is still the plan's.

        Raises:
            RegistryConflictError: Another apply landed after this plan was computed.
            RegistryFileError: The database cannot be reached (nothing was written).
        """

        def write(conn: psycopg.Connection[Any]) -> RegistrySnapshot:
            with conn.transaction():
                return self._apply(conn, plan)

        snapshot: RegistrySnapshot = self._run(write)
        return snapshot

    def _apply(self, conn: psycopg.Connection[Any], plan: Plan) -> RegistrySnapshot:
        jsonb = _psycopg().types.json.Jsonb
        empty = encode_snapshot(RegistrySnapshot(project=self.project))
        conn.execute(
            "INSERT INTO featurestore_registry (project, serial, version, applied_at, document) "
            "VALUES (%s, 0, 0, NULL, %s) ON CONFLICT (project) DO NOTHING",
            (self.project, jsonb(empty)),
        )
        row = conn.execute(
            "SELECT serial FROM featurestore_registry WHERE project = %s FOR UPDATE",
            (self.project,),
        ).fetchone()
        serial = int(row[0]) if row is not None else 0
        if serial != plan.base_serial:
            raise stale_apply_error(self.location, plan.base_serial, serial)
        states = self._view_states(conn)
        views = {
            name: keep_current_watermark(record, states.get(name))
            for name, record in plan.target.feature_views.items()
        }
        gone = [name for name in states if name not in views]
        if gone:
            conn.execute(
                "DELETE FROM featurestore_view_state WHERE project = %s AND view_name = ANY(%s)",
                (self.project, gone),
            )
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO featurestore_view_state "
                "(project, view_name, fingerprint, watermark, epoch) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (project, view_name) DO UPDATE SET fingerprint = "
                "EXCLUDED.fingerprint, watermark = EXCLUDED.watermark, epoch = EXCLUDED.epoch",
                [
                    (self.project, name, r.fingerprint, r.watermark, r.epoch)
                    for name, r in sorted(views.items())
                    if states.get(name) != ViewState.of(r)
                ],
            )
        snapshot = replace(
            plan.target, serial=serial + 1, applied_at=utc_now(), feature_views=views
        )
        conn.execute(
            "UPDATE featurestore_registry SET serial = %s, version = version + 1, "
            "applied_at = %s, document = %s WHERE project = %s",
            (snapshot.serial, snapshot.applied_at, jsonb(encode_snapshot(snapshot)), self.project),
        )
        return snapshot

    def set_watermark(
        self, view: str, watermark: datetime, *, fingerprint: str, epoch: str | None = None
    ) -> bool:
        """Advance ``view``'s watermark in its own row, if its fingerprint is still current.

        Raises:
            RegistryFileError: The database cannot be reached (nothing was written).
        """

        def write(conn: psycopg.Connection[Any]) -> bool:
            rollback = _psycopg().Rollback
            current = False
            with conn.transaction():
                # The project's row first, as apply locks it: one lock order, no deadlock.
                # The version bump is rolled back when nothing moves (servers need not reload).
                bumped = conn.execute(
                    "UPDATE featurestore_registry SET version = version + 1 "
                    "WHERE project = %s RETURNING serial",
                    (self.project,),
                ).fetchone()
                state = self._view_states(conn).get(view) if bumped is not None else None
                if state is None or state.fingerprint != fingerprint:
                    raise rollback
                current = True
                new, new_epoch = next_watermark(state, watermark, epoch)
                if (new, new_epoch) == (state.watermark, state.epoch):
                    raise rollback
                conn.execute(
                    "UPDATE featurestore_view_state SET watermark = %s, epoch = %s "
                    "WHERE project = %s AND view_name = %s",
                    (new, new_epoch, self.project, view),
                )
            return current

        moved: bool = self._run(write)
        return moved


def _with_state(body: object, state: ViewState | None) -> object:
    """A view's document with the watermark and epoch of its row (none without a row)."""
    if not isinstance(body, dict):
        return body  # decode_snapshot names the bad value
    watermark, epoch = (state.watermark, state.epoch) if state is not None else (None, None)
    return {**body, "watermark": watermark.isoformat() if watermark else None, "epoch": epoch}
