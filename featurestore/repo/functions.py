"""The applied user functions (batch transforms and on-demand views), loaded once.

The registry keeps no function (never a pickle): a view read back from it has a fingerprint
but no code. :class:`AppliedFunctions` imports the repo's code when a function is first
needed, checks each function's view against the applied fingerprint, and keeps what it
loaded until a registry version asks for another fingerprint. Training frames,
materialization and online reads are all handed this one component.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import TYPE_CHECKING

from featurestore.errors import RegistryConflictError
from featurestore.repo.loader import load_repo
from featurestore.repo.snapshot import view_fingerprint

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from featurestore.definitions import FeatureRef
    from featurestore.repo.loader import RepoContents
    from featurestore.repo.snapshot import RegistrySnapshot, ViewRecord
    from featurestore.transformations import OnDemandFeatureView

__all__ = ["AppliedFunctions"]


class AppliedFunctions:
    """The repo's functions, loaded and fingerprint-checked once per registry version.

    Args:
        repo_root: The feature repo whose ``*.py`` files define the functions.
    """

    def __init__(self, repo_root: Path) -> None:
        self.repo_root = repo_root
        self._contents: RepoContents | None = None
        self._lock = threading.Lock()

    def _loaded(self, *, stale: bool) -> RepoContents:
        """The repo's definitions: imported on first use, and again when ``stale``."""
        with self._lock:
            if self._contents is None or stale:
                self._contents = load_repo(self.repo_root)
            return self._contents

    def with_transform(self, record: ViewRecord) -> ViewRecord:
        """``record`` with its view carrying its batch transform (as applied).

        Raises:
            RegistryConflictError: The repo's view (or its transform) is not the applied one.
        """
        if record.transform is None or record.view.transform is not None:
            return record

        def current(contents: RepoContents) -> ViewRecord | None:
            view = contents.feature_views.get(record.view.name)
            if view is None or view.transform is None:
                return None
            if view_fingerprint(view, record.key_dtypes) != record.fingerprint:
                return None
            return replace(record, view=view)

        found = current(self._loaded(stale=False)) or current(self._loaded(stale=True))
        if found is None:
            msg = (
                f"Feature view '{record.view.name}' changed since the last apply (its batch "
                f"transform {record.transform.function_path} in {self.repo_root} is not the "
                "applied one): run 'featurestore apply' (then materialize again)."
            )
            raise RegistryConflictError(msg)
        return found

    def on_demand_views(
        self, snapshot: RegistrySnapshot, refs: Iterable[FeatureRef]
    ) -> dict[str, OnDemandFeatureView]:
        """The on-demand views behind ``refs`` (upstream included), as applied in ``snapshot``.

        Raises:
            RegistryConflictError: A view changed (or vanished) since the last apply.
        """
        todo = [r.view for r in refs if r.view in snapshot.on_demand_views]
        out: dict[str, OnDemandFeatureView] = {}
        while todo:
            name = todo.pop()
            applied = snapshot.on_demand_views[name].fingerprint
            view = self._loaded(stale=False).on_demand_views.get(name)
            if view is None or view.fingerprint != applied:
                view = self._loaded(stale=True).on_demand_views.get(name)
            if view is None or view.fingerprint != applied:
                msg = (
                    f"On-demand feature view '{name}' changed since the last apply (its code in "
                    f"{self.repo_root} is not the applied one): run 'featurestore apply'."
                )
                raise RegistryConflictError(msg)
            out[name] = view
            todo += [u.name for u in view.upstream if u.name not in out]
        return out
