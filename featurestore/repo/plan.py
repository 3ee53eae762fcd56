"""Plans: the diff between a repo's definitions and the registry, checked before apply."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeVar

from featurestore._html import html_table
from featurestore.errors import (
    DefinitionError,
    FeatureNotFoundError,
    FeatureViewNotFoundError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from datetime import timedelta

    from featurestore.definitions import Entity, FeatureService
    from featurestore.repo.loader import RepoContents
    from featurestore.repo.snapshot import OnDemandRecord, RegistrySnapshot, ViewRecord
    from featurestore.types import DType
from featurestore.repo._json import encode_service
from featurestore.repo.snapshot import key_type_conflict

ChangeAction = Literal["add", "change", "remove", "unchanged"]


ChangeKind = Literal["entity", "feature view", "feature service", "on-demand feature view"]
_T = TypeVar("_T")


@dataclass(frozen=True)
class Change:
    """One line of a plan: what happens to one definition."""

    kind: ChangeKind
    name: str
    action: ChangeAction
    details: tuple[str, ...] = ()
    needs_materialization: bool = False
    """The view's stored online values no longer match its definition (fingerprint changed)."""


@dataclass(frozen=True)
class Plan:
    """What ``apply`` would do, computed against registry serial ``base_serial``."""

    base_serial: int
    changes: tuple[Change, ...]
    target: RegistrySnapshot

    @property
    def has_changes(self) -> bool:
        """Whether applying would change the registry."""
        return any(c.action != "unchanged" for c in self.changes)

    def __repr__(self) -> str:
        counts = Counter(c.action for c in self.changes if c.action != "unchanged")
        summary = ", ".join(f"{action}={counts[action]}" for action in ("add", "change", "remove"))
        stale = [c.name for c in self.changes if c.needs_materialization]
        return f"Plan(base_serial={self.base_serial}, {summary}, needs_materialization={stale})"

    def _repr_html_(self) -> str:
        """The plan in a notebook: one row per definition that applying would change."""
        rows = [
            (c.action, c.kind, c.name, "; ".join(c.details),
             "yes" if c.needs_materialization else "")
            for c in self.changes
            if c.action != "unchanged"
        ]  # fmt: skip
        caption = repr(self) if rows else f"{self!r}: nothing to apply"
        headers = ["action", "kind", "name", "details", "needs materialization"]
        return html_table(caption, headers, rows)


# -- diffing ----------------------------------------------------------------------------------


def _describe_ttl(ttl: timedelta | None) -> str:
    return "unlimited" if not ttl else str(ttl)


def _view_details(old: ViewRecord, new: ViewRecord) -> tuple[str, ...]:
    details: list[str] = []
    old_fields = {f.name: f.dtype for f in old.view.schema}
    new_fields = {f.name: f.dtype for f in new.view.schema}
    details += [f"+ feature {n} ({t})" for n, t in new_fields.items() if n not in old_fields]
    details += [f"- feature {n}" for n in old_fields if n not in new_fields]
    details += [
        f"~ feature {n}: {old_fields[n]} -> {t}"
        for n, t in new_fields.items()
        if n in old_fields and old_fields[n] != t
    ]
    if old.view.join_keys != new.view.join_keys or old.key_dtypes != new.key_dtypes:
        details.append(f"~ join keys: {_keys(old)} -> {_keys(new)}")
    if old.view.source != new.view.source:
        details.append(f"~ source: {old.view.source.path} -> {new.view.source.path}")
    old_tf, new_tf = old.transform, new.transform
    if old_tf is None and new_tf is not None:
        details.append(f"+ transform {new_tf.function_path}")
    elif old_tf is not None and new_tf is None:
        details.append(f"- transform {old_tf.function_path}")
    elif old_tf is not None and new_tf is not None and old_tf != new_tf:
        what = "source changed" if old_tf.fingerprint != new_tf.fingerprint else "moved"
        details.append(f"~ transform {new_tf.function_path}: {what}")
    if old.view.effective_ttl != new.view.effective_ttl:
        old_ttl, new_ttl = old.view.effective_ttl, new.view.effective_ttl
        details.append(f"~ ttl: {_describe_ttl(old_ttl)} -> {_describe_ttl(new_ttl)}")
    details += _expectation_details(old.view.suite_json, new.view.suite_json)
    if old.view.on_failure != new.view.on_failure:
        details.append(f"~ on_failure: {old.view.on_failure} -> {new.view.on_failure}")
    for attr in ("online", "description", "owner", "tags"):
        if getattr(old.view, attr) != getattr(new.view, attr):
            details.append(f"~ {attr}")
    if not details and old.view != new.view:
        details.append("~ definition")
    return tuple(details)


def _expectation_details(old: str | None, new: str | None) -> list[str]:
    """``+``/``-`` per expectation (GE's type and kwargs) between two suites' JSON (G6)."""
    if old == new:
        return []

    def lines(suite: str | None) -> list[str]:
        items = json.loads(suite)["expectations"] if suite is not None else []
        return [
            f"{e['type']}({', '.join(f'{k}={v}' for k, v in e['kwargs'].items())})" for e in items
        ]

    before, after = lines(old), lines(new)
    details = [f"+ expectation {e}" for e in after if e not in before]
    details += [f"- expectation {e}" for e in before if e not in after]
    return details or ["~ expectations (meta or notes)"]


def _keys(record: ViewRecord) -> str:
    return ", ".join(f"{k} {record.key_dtypes.get(k)}" for k in record.view.join_keys)


def _changes(
    kind: ChangeKind,
    old: Mapping[str, _T],
    new: Mapping[str, _T],
    changed: Callable[[_T, _T], tuple[tuple[str, ...], bool] | None],
    *,
    added_needs_materialization: Callable[[_T], bool] = lambda _: False,
) -> Iterator[Change]:
    """One Change per name of one kind; ``changed`` gives (details, stale) or None if equal."""
    for name in sorted(old.keys() | new.keys()):
        before, after = old.get(name), new.get(name)
        if after is None:
            yield Change(kind, name, "remove")
        elif before is None:
            yield Change(
                kind, name, "add", needs_materialization=added_needs_materialization(after)
            )
        elif (found := changed(before, after)) is None:
            yield Change(kind, name, "unchanged")
        else:
            yield Change(kind, name, "change", *found)


def _entity_change(before: Entity, after: Entity) -> tuple[tuple[str, ...], bool] | None:
    return None if before == after and before.tags == after.tags else ((), False)


def _view_change(before: ViewRecord, after: ViewRecord) -> tuple[tuple[str, ...], bool] | None:
    details = _view_details(before, after)
    stale = before.fingerprint != after.fingerprint and after.view.online
    return (details, stale) if details else None


def _on_demand_change(
    before: OnDemandRecord, after: OnDemandRecord
) -> tuple[tuple[str, ...], bool] | None:
    if before == after:
        return None
    code = before.fingerprint != after.fingerprint
    return (("~ function or inputs",) if code else ("~ metadata",)), False


def _service_change(
    before: FeatureService, after: FeatureService
) -> tuple[tuple[str, ...], bool] | None:
    same = before.refs == after.refs and encode_service(before) == encode_service(after)
    return None if same else ((), False)


def diff(old: RegistrySnapshot, new: RegistrySnapshot) -> tuple[Change, ...]:
    """What changes, per definition, from ``old`` to ``new`` (unchanged ones included)."""
    return (
        *_changes("entity", old.entities, new.entities, _entity_change),
        *_changes(
            "feature view",
            old.feature_views,
            new.feature_views,
            _view_change,
            added_needs_materialization=lambda record: record.view.online,
        ),
        *_changes(
            "on-demand feature view", old.on_demand_views, new.on_demand_views, _on_demand_change
        ),
        *_changes("feature service", old.feature_services, new.feature_services, _service_change),
    )


def _check_names(contents: RepoContents) -> None:
    for name in contents.on_demand_views.keys() & contents.feature_views.keys():
        msg = (
            f"A feature view and an on-demand feature view are both named '{name}', so "
            f"'{name}:feature' refs would be ambiguous; rename one of them."
        )
        raise DefinitionError(msg)


def _check_services(contents: RepoContents) -> None:
    features: dict[str, tuple[str, ...]] = {
        **{n: v.feature_names for n, v in contents.feature_views.items()},
        **{n: v.feature_names for n, v in contents.on_demand_views.items()},
    }
    for service in contents.feature_services.values():
        for ref in service.refs:
            names = features.get(ref.view)
            if names is None:
                raise FeatureViewNotFoundError(
                    name=ref.view,
                    candidates=features,
                    hint=f"Feature service '{service.name}' refers to it; define the view or "
                    "remove it from the service.",
                )
            if ref.feature not in names:
                raise FeatureNotFoundError(view=ref.view, name=ref.feature, candidates=names)


def check_repo(contents: RepoContents, key_dtypes: Mapping[str, Mapping[str, DType]]) -> None:
    """Check a repo's definitions hang together before they are planned.

    Raises:
        DefinitionError: Names clash, a service refers to an unknown view or feature, or a join
            key has different types in different views.
    """
    _check_names(contents)
    _check_services(contents)
    conflict = key_type_conflict(contents.feature_views.values(), key_dtypes)
    if conflict is not None:
        msg = (
            f"Join key '{conflict.key}' is {conflict.first_dtype} in feature view "
            f"'{conflict.first}' but {conflict.dtype} in '{conflict.view}'. Cast one source so "
            "the key has one type everywhere."
        )
        raise DefinitionError(msg)
