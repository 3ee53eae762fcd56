"""Import a feature repo's Python files and collect its definitions into RepoContents."""

from __future__ import annotations

import fnmatch
import importlib
import logging
import sys
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from featurestore._quiet import quiet_pyspark
from featurestore.definitions import Entity, FeatureService, FeatureView
from featurestore.errors import DefinitionError, RepoLoadError

if TYPE_CHECKING:
    from pathlib import Path

    from featurestore.transformations import OnDemandFeatureView

__all__ = ["IGNORE_FILE", "RepoContents", "load_repo", "repo_files"]

logger = logging.getLogger(__name__)

IGNORE_FILE = ".featurestoreignore"
_ALWAYS_IGNORED = ("data", "__pycache__", "node_modules", "venv")


@dataclass
class RepoContents:
    """Every definition found in a feature repo, by name."""

    entities: dict[str, Entity] = field(default_factory=dict)
    feature_views: dict[str, FeatureView] = field(default_factory=dict)
    feature_services: dict[str, FeatureService] = field(default_factory=dict)
    on_demand_views: dict[str, OnDemandFeatureView] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    """``"<kind>:<name>"`` -> the repo file that defined it, for error messages."""

    def add(self, obj: object, *, origin: str) -> None:
        """Add a definition; the same name defined twice differently is an error."""
        from featurestore.transformations import OnDemandFeatureView  # only repo loads need it

        table: dict[str, object]
        if isinstance(obj, Entity):
            table, kind = self.entities, "entity"  # type: ignore[assignment]  # invariant dict
        elif isinstance(obj, FeatureView):
            table, kind = self.feature_views, "feature view"  # type: ignore[assignment]  # same
            for entity in obj.entities:
                self.add(entity, origin=origin)
        elif isinstance(obj, FeatureService):
            table, kind = self.feature_services, "feature service"  # type: ignore[assignment]
        elif isinstance(obj, OnDemandFeatureView):
            table, kind = self.on_demand_views, "on-demand feature view"  # type: ignore[assignment]
            for source in obj.sources:
                self.add(source, origin=origin)
        else:
            return
        name: str = obj.name
        existing = table.get(name)
        key = f"{kind}:{name}"
        if existing is not None and existing != obj:
            msg = (
                f"Two different definitions of {kind} '{name}' ({self.origins[key]} and "
                f"{origin}); rename one of them or keep one definition."
            )
            raise DefinitionError(msg)
        table[name] = obj
        self.origins.setdefault(key, origin)


def _ignore_patterns(root: Path) -> list[str]:
    path = root / IGNORE_FILE
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def repo_files(root: Path) -> list[Path]:
    """The Python files of the repo that define features, sorted.

    Hidden folders, ``data/``, ``__pycache__`` and anything matched by ``.featurestoreignore``
    (glob patterns, one per line, relative to the repo root) are skipped.
    """
    patterns = _ignore_patterns(root)
    found: list[Path] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        parts = rel.parts
        if any(p.startswith(".") or p in _ALWAYS_IGNORED for p in parts[:-1]):
            continue
        text = rel.as_posix()
        if any(
            fnmatch.fnmatch(text, pat)
            or fnmatch.fnmatch(parts[0], pat)
            or text.startswith(pat + "/")
            for pat in patterns
        ):
            continue
        found.append(path)
    return found


def _module_name(root: Path, path: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def load_repo(root: Path) -> RepoContents:
    """Import every definition file of the repo at ``root`` and collect the definitions.

    The repo root is on ``sys.path`` while importing, so repo files may import each other
    (``from entities import user``). Modules are removed from ``sys.modules`` afterwards, so
    loading another repo with the same file names in the same process is safe.

    Raises:
        RepoLoadError: A file raised while being imported.
        DefinitionError: Two different definitions share a name.
    """
    root = root.resolve()
    contents = RepoContents()
    files = repo_files(root)
    names = {_module_name(root, p): p for p in files if _module_name(root, p)}
    for module_name in [m for m in names if m in sys.modules]:
        del sys.modules[module_name]  # a module of the same name from another repo
    sys.path.insert(0, str(root))
    try:
        for module_name, path in names.items():
            rel = path.relative_to(root).as_posix()
            try:
                with quiet_pyspark():  # definitions importing Great Expectations
                    module = importlib.import_module(module_name)
            except Exception as exc:
                frames = traceback.extract_tb(exc.__traceback__)
                where = next(
                    (f"line {f.lineno}" for f in reversed(frames) if f.filename == str(path)), ""
                )
                reason = f"{type(exc).__name__}: {exc}" + (f" ({where})" if where else "")
                raise RepoLoadError(path=rel, reason=reason) from exc
            for value in vars(module).values():
                contents.add(value, origin=rel)
    finally:
        sys.path.remove(str(root))
        for module_name in list(sys.modules):
            if module_name in names:
                del sys.modules[module_name]
    logger.debug(
        "loaded %d entities, %d feature views, %d services from %s",
        len(contents.entities),
        len(contents.feature_views),
        len(contents.feature_services),
        root,
    )
    return contents
