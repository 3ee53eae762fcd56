"""One registry contract, run against the JSON file and a real PostgreSQL database.

Concurrent applies from several processes lose nothing (stale ones are refused, none is half
applied); a process killed inside an apply leaves the previous registry; watermarks moved by
concurrent materializations (and an apply landing meanwhile) never clobber each other; and a
random sequence of applies and watermark moves reads back as a brute-force model says.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.errors import ConfigError, RegistryConflictError, RegistryFileError
from featurestore.repo.loader import RepoContents
from featurestore.repo.registry import Registry, RegistrySnapshot, open_registry
from featurestore.types import Float64, Int64
from tests.postgres_db import postgres_url  # noqa: F401  # fixture: the session's database

user = Entity("user", join_keys=["user_id"])
DAY0 = datetime(2026, 1, 1, tzinfo=UTC)


def view(name: str, *, variant: int = 0) -> FeatureView:
    """A view; another ``variant`` has another schema, so another fingerprint."""
    schema = [Field("n", Int64), *(Field(f"x{i}", Float64) for i in range(variant))]
    return FeatureView(
        name=name,
        entities=[user],
        source=ParquetSource(f"data/{name}.parquet", timestamp_field="ts"),
        schema=schema,
        ttl=timedelta(days=1),
    )


def repo_of(views: dict[str, int]) -> RepoContents:
    repo = RepoContents()
    repo.add(user, origin="features.py")
    for name, variant in sorted(views.items()):
        repo.add(view(name, variant=variant), origin="features.py")
    return repo


def keys(repo: RepoContents) -> dict[str, dict[str, object]]:
    return {n: {k: Int64 for k in v.join_keys} for n, v in repo.feature_views.items()}


def apply_views(registry: Registry, views: dict[str, int]):
    repo = repo_of(views)
    return registry.apply(registry.plan(repo, keys(repo)))


@dataclass(frozen=True)
class Place:
    """Where a backend's registries live; ``open(project)`` works in any process.

    A PostgreSQL database holds every project; files are one per project, in ``root``.
    """

    location: str
    root: str

    def open(self, project: str) -> Registry:
        location = self.location.replace("{project}", project)
        return open_registry(location, repo_root=Path(self.root), project=project)

    def load(self, project: str) -> RegistrySnapshot:
        """The project's registry as a new reader sees it."""
        registry = self.open(project)
        try:
            return registry.load()
        finally:
            registry.close()


@pytest.fixture(params=["file", "postgres"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    if request.param == "file":
        return Place("data/{project}/registry.json", str(tmp_path))
    return Place(request.getfixturevalue("postgres_url"), str(tmp_path))


def new_project() -> str:
    return f"p_{uuid.uuid4().hex[:10]}"


# -- basics ------------------------------------------------------------------------------------


def test_apply_reads_back_and_moves_the_stamp(place):
    registry = place.open(new_project())
    empty = registry.stamp()
    assert registry.load().serial == 0
    snapshot = apply_views(registry, {"a": 0, "b": 1})
    assert registry.load() == snapshot
    assert snapshot.serial == 1
    applied = registry.stamp()
    assert applied != empty
    fingerprint = snapshot.feature_views["a"].fingerprint
    assert registry.set_watermark("a", DAY0, fingerprint=fingerprint)
    moved = registry.stamp()
    assert moved != applied
    # A watermark that does not move (older) and a stale fingerprint write nothing.
    assert registry.set_watermark("a", DAY0 - timedelta(days=1), fingerprint=fingerprint)
    assert not registry.set_watermark("a", DAY0 + timedelta(days=1), fingerprint="stale")
    assert registry.stamp() == moved
    loaded = registry.load()
    assert loaded.serial == 1  # watermarks are not definitions: the serial stays
    assert loaded.feature_views["a"].watermark == DAY0
    registry.close()


def test_a_stale_apply_is_refused_and_changes_nothing(place):
    registry = place.open(new_project())
    apply_views(registry, {"a": 0})
    stale = registry.plan(repo_of({"a": 0, "b": 0}), keys(repo_of({"a": 0, "b": 0})))
    landed = apply_views(registry, {"a": 0, "c": 0})
    with pytest.raises(RegistryConflictError, match="changed while this apply was being planned"):
        registry.apply(stale)
    assert registry.load() == landed
    registry.close()


def test_a_registry_never_applied_is_missing_only_for_readers_that_saw_it(place):
    registry = place.open(new_project())
    assert registry.load(missing_ok=True).feature_views == {}
    with pytest.raises(RegistryFileError, match=r"missing|no registry") as info:
        registry.load(missing_ok=False)
    assert registry.last_error is info.value
    apply_views(registry, {"a": 0})
    registry.load(missing_ok=False)
    assert registry.last_error is None
    registry.close()


# -- property: a random history reads back as the model says ------------------------------------


@dataclass
class Model:
    """The registry as the rules say it must be: views, fingerprints, watermarks, serial."""

    serial: int = 0
    variants: dict[str, int] = field(default_factory=dict)
    marks: dict[str, tuple[datetime | None, str | None]] = field(default_factory=dict)

    def apply(self, views: dict[str, int]) -> None:
        self.marks = {
            name: self.marks[name] if self.variants.get(name) == variant else (None, None)
            for name, variant in views.items()
        }
        self.variants = dict(views)
        self.serial += 1

    def set_watermark(self, name: str, at: datetime, epoch: str | None, current: bool) -> bool:
        if name not in self.variants or not current:
            return False
        old, old_epoch = self.marks[name]
        epoch = old_epoch if epoch is None else epoch
        same_store = old_epoch is None or old_epoch == epoch
        self.marks[name] = (max(at, old) if old is not None and same_store else at, epoch)
        return True


NAMES = ("a", "b", "c")
applies = st.dictionaries(st.sampled_from(NAMES), st.integers(0, 1), max_size=3).map(
    lambda views: ("apply", views)
)
moves = st.tuples(
    st.just("watermark"),
    st.sampled_from(NAMES),
    st.integers(0, 5),
    st.sampled_from([None, "e1", "e2"]),
    st.booleans(),
)
stale_applies = st.just(("stale", None))


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(st.one_of(applies, moves, stale_applies), min_size=1, max_size=12))
def test_a_random_history_reads_back_as_the_model_says(place, steps):
    registry = place.open(new_project())
    model = Model()
    old_plan = registry.plan(repo_of({}), {})
    for step in steps:
        if step[0] == "apply":
            old_plan = registry.plan(repo_of(step[1]), keys(repo_of(step[1])))
            registry.apply(old_plan)
            model.apply(step[1])
        elif step[0] == "stale":
            if old_plan.base_serial == model.serial:
                continue  # not stale: nothing landed since it was planned
            with pytest.raises(RegistryConflictError):
                registry.apply(old_plan)
        else:
            _, name, day, epoch, current = step
            record = registry.load().feature_views.get(name)
            fingerprint = record.fingerprint if record is not None and current else "stale"
            at = DAY0 + timedelta(days=day)
            moved = registry.set_watermark(name, at, fingerprint=fingerprint, epoch=epoch)
            assert moved == model.set_watermark(name, at, epoch, current)
        loaded = registry.load()
        assert loaded.serial == model.serial
        assert {n: len(r.view.schema) - 1 for n, r in loaded.feature_views.items()} == (
            model.variants
        )
        assert {n: (r.watermark, r.epoch) for n, r in loaded.feature_views.items()} == (model.marks)
    registry.close()


# -- several processes -------------------------------------------------------------------------


def _apply_until_it_lands(place: Place, project: str, name: str, refused: object) -> None:
    """Add view ``name`` to whatever is applied, re-planning after each refusal."""
    registry = place.open(project)
    while True:
        current = registry.load()
        views = {n: len(r.view.schema) - 1 for n, r in current.feature_views.items()}
        repo = repo_of({**views, name: 0})
        try:
            registry.apply(registry.plan(repo, keys(repo), current=current))
        except RegistryConflictError:
            with refused.get_lock():  # type: ignore[attr-defined]
                refused.value += 1  # type: ignore[attr-defined]
            continue
        registry.close()
        return


def test_concurrent_applies_from_processes_lose_nothing(place):
    project = new_project()
    names = [f"view_{i}" for i in range(6)]
    ctx = multiprocessing.get_context("spawn")
    refused = ctx.Value("i", 0)
    procs = [
        ctx.Process(target=_apply_until_it_lands, args=(place, project, n, refused)) for n in names
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    final = place.load(project)
    assert set(final.feature_views) == set(names)
    # Each process landed exactly one apply; every refused one changed nothing.
    assert final.serial == len(names)


def _advance(place: Place, project: str, name: str, days: list[int]) -> None:
    registry = place.open(project)
    for day in days:
        for target in (name, "shared"):
            fingerprint = registry.load().feature_views[target].fingerprint
            assert registry.set_watermark(
                target, DAY0 + timedelta(days=day), fingerprint=fingerprint
            )
    registry.close()


def test_concurrent_watermarks_and_an_apply_do_not_clobber_each_other(place):
    project = new_project()
    registry = place.open(project)
    movers = [f"own_{i}" for i in range(4)]
    apply_views(registry, dict.fromkeys([*movers, "shared"], 0))
    rng = random.Random(7)
    plans = {name: rng.sample(range(1, 40), 12) for name in movers}
    ctx = multiprocessing.get_context("spawn")
    refused = ctx.Value("i", 0)
    procs = [ctx.Process(target=_advance, args=(place, project, n, d)) for n, d in plans.items()]
    procs += [
        ctx.Process(target=_apply_until_it_lands, args=(place, project, f"new_{i}", refused))
        for i in range(2)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    final = registry.load()
    for name, days in plans.items():
        assert final.feature_views[name].watermark == DAY0 + timedelta(days=max(days))
    top = max(d for days in plans.values() for d in days)
    assert final.feature_views["shared"].watermark == DAY0 + timedelta(days=top)
    assert {"new_0", "new_1"} <= set(final.feature_views)
    assert final.serial == 3
    registry.close()


# -- a crash inside an apply -------------------------------------------------------------------

_CHILD = """
import sys
from tests.contract.test_registry_contract import Place, apply_views
place = Place(sys.argv[1], sys.argv[2])
registry = place.open(sys.argv[3])
registry.load()
print("ready", flush=True)
sys.stdin.readline()
apply_views(registry, {f"big_{i}": 1 for i in range(int(sys.argv[4]))})
print("applied", flush=True)
"""


def _child(place: Place, project: str, views: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, place.location, place.root, project, str(views)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _previous_or_next(place: Place, project: str, before, views: int) -> str:
    """The registry is exactly the one before the apply, or exactly the applied one."""
    after = place.load(project)
    if after == before:
        return "previous"
    assert after.serial == before.serial + 1
    assert set(after.feature_views) == {f"big_{i}" for i in range(views)}
    return "applied"


def test_a_process_killed_at_any_moment_of_an_apply_leaves_a_whole_registry(place):
    project = new_project()
    registry = place.open(project)
    before = apply_views(registry, {"a": 0, "big_0": 0})
    rng = random.Random(3)
    for _ in range(8):
        proc = _child(place, project, 60)
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        if _previous_or_next(place, project, before, 60) == "applied":
            before = apply_views(registry, {"a": 0, "big_0": 0})
    registry.close()


def test_postgres_apply_killed_inside_its_transaction_leaves_the_previous_registry(
    postgres_url,  # noqa: F811  # the fixture imported above
):
    """Deterministic: the child is killed while its transaction waits, with writes done."""
    import psycopg

    place = Place(postgres_url, "/")
    project = new_project()
    registry = place.open(project)
    before = apply_views(registry, {"big_0": 0, "big_1": 0})
    proc = _child(place, project, 3)  # big_0, big_1 change schema; big_2 is new
    with psycopg.connect(postgres_url) as blocker:
        # Hold big_1's row: the apply rewrites big_0's row, then waits on big_1's.
        blocker.execute(
            "SELECT 1 FROM featurestore_view_state WHERE project = %s AND view_name = 'big_1' "
            "FOR UPDATE",
            (project,),
        )
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        with psycopg.connect(postgres_url, autocommit=True) as watcher:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                waiting = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                ).fetchone()
                if waiting and waiting[0]:
                    break
                time.sleep(0.02)
            else:
                pytest.fail("the apply never reached the held row")
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    assert registry.load() == before
    # The killed transaction's locks are gone: the next apply goes through.
    assert apply_views(registry, {"big_0": 1}).serial == before.serial + 1
    registry.close()


def test_a_registry_url_of_another_kind_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"'registry' is a s3:// URL.*postgresql://"):
        open_registry("s3://bucket/registry.json", repo_root=tmp_path, project="p")
    # A PostgreSQL URL names the database without connecting, and never shows the password.
    registry = open_registry(
        "postgresql://u:secret@127.0.0.1:1/db", repo_root=tmp_path, project="p"
    )
    assert registry.location == "postgresql://u:***@127.0.0.1:1/db"
    with pytest.raises(RegistryFileError, match="PostgreSQL cannot be reached") as info:
        registry.load()
    assert "secret" not in str(info.value)
    assert registry.stamp() == registry.stamp()  # an unreachable marker of its own, no raise
    registry.close()
