from __future__ import annotations

import multiprocessing
from datetime import timedelta
from pathlib import Path

import pytest

from featurestore import Entity, FeatureService, FeatureView, Field, ParquetSource
from featurestore.errors import (
    ConfigError,
    DefinitionError,
    FeatureNotFoundError,
    FeatureServiceNotFoundError,
    FeatureViewNotFoundError,
    RegistryConflictError,
)
from featurestore.repo.loader import RepoContents
from featurestore.repo.registry import FileRegistry, resolve_refs
from featurestore.types import Float64, Int64, String
from tests.conftest import utc

user = Entity("user", join_keys=["user_id"])


def view(name: str = "user_stats", **overrides: object) -> FeatureView:
    kwargs: dict[str, object] = {
        "name": name,
        "entities": [user],
        "source": ParquetSource(f"data/{name}.parquet", timestamp_field="ts"),
        "schema": [Field("n", Int64), Field("avg", Float64)],
        "ttl": timedelta(days=1),
    }
    kwargs.update(overrides)
    return FeatureView(**kwargs)  # type: ignore[arg-type]


def contents(*objects: object) -> RepoContents:
    repo = RepoContents()
    for obj in objects:
        repo.add(obj, origin="features.py")
    return repo


def keys(repo: RepoContents, dtype=Int64) -> dict[str, dict[str, object]]:
    return {n: {k: dtype for k in v.join_keys} for n, v in repo.feature_views.items()}


@pytest.fixture
def registry(tmp_path: Path) -> FileRegistry:
    return FileRegistry(tmp_path / "data" / "registry.json", project="demo")


def apply(registry: FileRegistry, repo: RepoContents):
    plan = registry.plan(repo, keys(repo))
    return plan, registry.apply(plan)


def test_first_apply_adds_everything_and_roundtrips(registry):
    repo = contents(view(), FeatureService("svc", features=["user_stats:n"]))
    plan, snapshot = apply(registry, repo)
    assert {(c.kind, c.name, c.action) for c in plan.changes} == {
        ("entity", "user", "add"),
        ("feature view", "user_stats", "add"),
        ("feature service", "svc", "add"),
    }
    loaded = registry.load()
    assert loaded == snapshot
    assert loaded.serial == 1
    assert loaded.feature_views["user_stats"].view == view()
    assert loaded.feature_views["user_stats"].key_dtypes == {"user_id": Int64}


def test_reapplying_the_same_repo_changes_nothing(registry):
    repo = contents(view())
    apply(registry, repo)
    plan = registry.plan(repo, keys(repo))
    assert not plan.has_changes


def test_ttl_change_does_not_need_rematerialization(registry):
    apply(registry, contents(view()))
    plan = registry.plan(contents(view(ttl=timedelta(days=3))), keys(contents(view())))
    change = next(c for c in plan.changes if c.kind == "feature view")
    assert change.action == "change"
    assert change.details == ("~ ttl: 1 day, 0:00:00 -> 3 days, 0:00:00",)
    assert not change.needs_materialization


def test_schema_change_needs_rematerialization_and_resets_the_watermark(registry):
    _, snapshot = apply(registry, contents(view()))
    fingerprint = snapshot.feature_views["user_stats"].fingerprint
    assert registry.set_watermark("user_stats", utc(2026, 1, 2), fingerprint=fingerprint)
    changed = view(schema=[Field("n", Int64), Field("avg", Float64), Field("max", Float64)])
    plan, snapshot = apply(registry, contents(changed))
    change = next(c for c in plan.changes if c.kind == "feature view")
    assert change.needs_materialization
    assert "+ feature max (Float64)" in change.details
    assert snapshot.feature_views["user_stats"].watermark is None


def test_unchanged_view_keeps_its_watermark_across_applies(registry):
    _, snapshot = apply(registry, contents(view()))
    fingerprint = snapshot.feature_views["user_stats"].fingerprint
    registry.set_watermark("user_stats", utc(2026, 1, 2), fingerprint=fingerprint)
    _, snapshot = apply(registry, contents(view(description="now documented")))
    assert snapshot.feature_views["user_stats"].watermark == utc(2026, 1, 2)


def test_watermark_never_moves_back_and_ignores_stale_fingerprints(registry):
    _, snapshot = apply(registry, contents(view()))
    fingerprint = snapshot.feature_views["user_stats"].fingerprint
    registry.set_watermark("user_stats", utc(2026, 1, 5), fingerprint=fingerprint)
    registry.set_watermark("user_stats", utc(2026, 1, 3), fingerprint=fingerprint)
    assert not registry.set_watermark("user_stats", utc(2026, 2, 1), fingerprint="stale")
    assert registry.load().feature_views["user_stats"].watermark == utc(2026, 1, 5)


def test_removal_is_planned(registry):
    apply(registry, contents(view(), view("other")))
    plan = registry.plan(contents(view()), keys(contents(view())))
    assert ("feature view", "other", "remove") in {(c.kind, c.name, c.action) for c in plan.changes}


def test_key_type_disagreement_names_both_views(registry):
    repo = contents(view(), view("other"))
    dtypes = {"user_stats": {"user_id": Int64}, "other": {"user_id": String}}
    with pytest.raises(
        DefinitionError,
        match=r"Join key 'user_id' is Int64 in feature view 'user_stats' but String in 'other'",
    ):
        registry.plan(repo, dtypes)


def test_service_with_unknown_feature_suggests_the_closest(registry):
    repo = contents(view(), FeatureService("svc", features=["user_stats:avgg"]))
    with pytest.raises(FeatureNotFoundError, match="Did you mean 'user_stats:avg'"):
        registry.plan(repo, keys(repo))


def test_an_apply_planned_before_another_apply_is_refused(registry):
    repo_a = contents(view())
    repo_b = contents(view(), view("other"))
    plan_a = registry.plan(repo_a, keys(repo_a))
    plan_b = registry.plan(repo_b, keys(repo_b))
    registry.apply(plan_b)
    with pytest.raises(RegistryConflictError, match="changed while this apply was being planned"):
        registry.apply(plan_a)
    assert set(registry.load().feature_views) == {"user_stats", "other"}


def _apply_with_retry(path: str, name: str) -> None:
    registry = FileRegistry(Path(path), project="demo")
    while True:
        current = registry.load()
        repo = RepoContents()
        for existing in current.feature_views.values():
            repo.add(existing.view, origin="x")
        repo.add(view(name), origin="x")
        try:
            registry.apply(registry.plan(repo, keys(repo), current=current))
        except RegistryConflictError:
            continue
        return


def test_concurrent_applies_from_processes_lose_nothing(registry):
    names = [f"view_{i}" for i in range(6)]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_apply_with_retry, args=(str(registry.path), n)) for n in names]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    final = registry.load()
    assert set(final.feature_views) == set(names)
    assert final.serial == len(names)


def test_corrupt_registry_says_how_to_recover(registry):
    registry.path.parent.mkdir(parents=True)
    registry.path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"not valid JSON.*featurestore apply"):
        registry.load()


def test_registry_of_another_project_is_refused(registry):
    apply(registry, contents(view()))
    with pytest.raises(ConfigError, match="belongs to project 'demo'"):
        FileRegistry(registry.path, project="other").load()


def test_resolve_refs_accepts_services_and_suggests_names(registry):
    repo = contents(view(), FeatureService("svc", features=["user_stats:n"]))
    _, snapshot = apply(registry, repo)
    assert [str(r) for r in resolve_refs(snapshot, "svc")] == ["user_stats:n"]
    assert [str(r) for r in resolve_refs(snapshot, ["svc", "user_stats:avg", "user_stats:n"])] == [
        "user_stats:n",
        "user_stats:avg",
    ]
    with pytest.raises(FeatureViewNotFoundError, match="Did you mean 'user_stats'"):
        resolve_refs(snapshot, ["user_stat:n"])
    with pytest.raises(FeatureServiceNotFoundError, match="Did you mean 'svc'"):
        resolve_refs(snapshot, "svcc")
    with pytest.raises(FeatureNotFoundError, match="Did you mean 'user_stats:avg'"):
        resolve_refs(snapshot, ["user_stats:av"])


def _ratio_view():
    import polars as pl

    from featurestore import RequestSource
    from featurestore.transformations import on_demand_feature_view

    txn = RequestSource("txn", schema=[Field("amount", Float64)])

    @on_demand_feature_view(sources=[view()[["avg"]], txn], schema=[Field("ratio", Float64)])
    def ratio(df: pl.DataFrame) -> pl.DataFrame:
        return df.select((pl.col("amount") / pl.col("avg")).alias("ratio"))

    return ratio


def test_on_demand_views_are_registered_resolved_and_roundtrip(registry):
    ratio = _ratio_view()
    repo = contents(view(), ratio, FeatureService("svc", features=[ratio, "user_stats:n"]))
    plan, snapshot = apply(registry, repo)
    assert ("on-demand feature view", "ratio", "add") in {
        (c.kind, c.name, c.action) for c in plan.changes
    }
    record = registry.load().on_demand_views["ratio"]
    assert record == snapshot.on_demand_views["ratio"]
    assert record.fingerprint == ratio.fingerprint
    assert [str(r) for r in record.view_inputs] == ["user_stats:avg"]
    assert [f.name for f in record.request_fields] == ["amount"]
    assert record.function_path.endswith(":_ratio_view.<locals>.ratio")
    assert [str(r) for r in resolve_refs(snapshot, "svc")] == ["ratio:ratio", "user_stats:n"]
    with pytest.raises(FeatureNotFoundError, match="Did you mean 'ratio:ratio'"):
        resolve_refs(snapshot, ["ratio:rati"])


def test_editing_an_on_demand_function_is_a_planned_change(registry):
    ratio = _ratio_view()
    apply(registry, contents(view(), ratio))
    import dataclasses

    edited = dataclasses.replace(ratio, function=lambda df: df)
    repo = contents(view(), edited)
    plan = registry.plan(repo, keys(repo))
    change = next(c for c in plan.changes if c.kind == "on-demand feature view")
    assert change.action == "change"
    assert change.details == ("~ function or inputs",)
    assert not change.needs_materialization


def test_a_feature_view_and_an_on_demand_view_cannot_share_a_name(registry):
    from featurestore.transformations import on_demand_feature_view

    def identity(df: object) -> object:
        return df

    clash = on_demand_feature_view(
        sources=[view()], schema=[Field("x", Float64)], name="user_stats"
    )(identity)
    repo = contents(view(), clash)
    with pytest.raises(DefinitionError, match="both named 'user_stats'"):
        registry.plan(repo, keys(repo))


def test_a_plan_shows_itself_briefly_and_as_a_table(registry):
    apply(registry, contents(view()))
    changed = view(schema=[Field("n", Int64), Field("avg", Float64), Field("max", Float64)])
    plan = registry.plan(contents(changed, FeatureService("svc", features=["user_stats:n"])),
                         keys(contents(changed)))  # fmt: skip
    assert repr(plan) == (
        "Plan(base_serial=1, add=1, change=1, remove=0, needs_materialization=['user_stats'])"
    )
    assert "target" not in repr(plan)  # not the whole snapshot
    page = plan._repr_html_()
    assert page.count("<tr>") == 3  # the header and the two changes, not the unchanged entity
    assert "+ feature max (Float64)" in page
    assert (
        "nothing to apply" in registry.plan(contents(view()), keys(contents(view())))._repr_html_()
    )
