"""Write what ``parse`` read from a Feast repo as an ordinary featurestore repo.

One output file per Feast file that defines something (same relative path), the same
variable names, one definition per statement, and ``featurestore.yaml``. On-demand views keep
the user's function as written; a short wrapper runs it through
:mod:`featurestore.feast_import.adapters` on our executor.
"""

from __future__ import annotations

import ast
import json
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import PurePath
from typing import TYPE_CHECKING

import yaml

from featurestore.errors import ConfigError
from featurestore.feast_import.parse import (
    FeastEntity,
    FeastFeatureView,
    FeastField,
    FeastFileSource,
    FeastObject,
    FeastOnDemandView,
    FeastProjection,
    FeastPushSource,
    FeastRepo,
    FeastRequestSource,
    FeastService,
    Problem,
    Unsupported,
)

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["ImportResult", "write_repo"]

_NAME = re.compile(r"[^A-Za-z0-9_]")
_WIDTH = 99


@dataclass
class ImportResult:
    """What an import wrote and what it could not carry over."""

    out: Path
    files: list[str] = field(default_factory=list)
    """The written files, relative to ``out``."""
    counts: dict[str, int] = field(default_factory=dict)
    """Definitions written, by kind."""
    problems: list[Problem] = field(default_factory=list)


def _lit(value: object) -> str:
    """A Python literal of ``value`` as ruff would format it (double quotes)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_lit(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_lit(k)}: {_lit(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _safe_name(name: str) -> str:
    clean = _NAME.sub("_", name)
    return clean if clean[:1].isalpha() or clean[:1] == "_" else f"_{clean}"


def _ttl(ttl: timedelta) -> str:
    seconds = int(ttl.total_seconds())
    if ttl != timedelta(seconds=seconds):
        return f"timedelta(microseconds={ttl // timedelta(microseconds=1)})"
    for unit, size in (("weeks", 604800), ("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds and seconds % size == 0:
            return f"timedelta({unit}={seconds // size})"
    return f"timedelta(seconds={seconds})"


class _File:
    """One output module being written."""

    def __init__(self, writer: _Writer, module: str) -> None:
        self.writer, self.module = writer, module
        self.ours: set[str] = set()
        self.types: set[str] = set()
        self.extra_imports: dict[str, str] = {}
        self.repo_imports: dict[str, set[str]] = {}
        self.copied: dict[str, str] = {}
        self.blocks: list[str] = []
        self.needs_timedelta = False
        self.needs_polars = False
        self.adapters: set[str] = set()

    def ref(self, obj: FeastObject) -> str:
        """The expression naming ``obj`` here: its variable (imported if elsewhere) or inline."""
        if obj.var is None:
            return self.inline(obj)
        if obj.module != self.module:
            self.repo_imports.setdefault(obj.module, set()).add(obj.var)
        return obj.var

    def inline(self, obj: FeastObject) -> str:
        if isinstance(obj, FeastEntity):
            return self.entity(obj)
        if isinstance(obj, FeastFileSource):
            return self.source(obj)
        if isinstance(obj, FeastPushSource) and obj.batch_source is not None:
            return self.ref(obj.batch_source)
        if isinstance(obj, FeastRequestSource):
            return self.request_source(obj)
        msg = f"{obj.label} has no variable and cannot be written inline"  # pragma: no cover
        raise AssertionError(msg)  # pragma: no cover

    def field_text(self, f: FeastField) -> str:
        dtype = f.dtype or "String"
        if dtype.startswith("Array("):
            self.types.update(("Array", dtype[6:-1]))
        else:
            self.types.add(dtype)
        description = f", {_lit(f.description)}" if f.description else ""
        return f"Field({_lit(f.name)}, {dtype}{description})"

    def fields(self, fields: list[FeastField], indent: str) -> str:
        items = [self.field_text(f) for f in fields]
        one_line = f"[{', '.join(items)}]"
        if len(indent) + len(one_line) + 10 <= _WIDTH:
            return one_line
        inner = "".join(f"{indent}    {item},\n" for item in items)
        return f"[\n{inner}{indent}]"

    def entity(self, e: FeastEntity) -> str:
        self.ours.add("Entity")
        parts = [_lit(self.writer.name_of(e)), f"join_keys={_lit(e.join_keys)}"]
        if e.description:
            parts.append(f"description={_lit(e.description)}")
        if e.tags:
            parts.append(f"tags={_lit(e.tags)}")
        return f"Entity({', '.join(parts)})"

    def source(self, s: FeastFileSource) -> str:
        self.ours.add("ParquetSource")
        args = [
            f"path={_lit(self.writer.path_of(s))}",
            f"timestamp_field={_lit(s.timestamp_field)}",
        ]
        if s.created_timestamp_column:
            args.append(f"created_timestamp_field={_lit(s.created_timestamp_column)}")
        if s.field_mapping:
            args.append(f"field_mapping={_lit(s.field_mapping)}")
        return "ParquetSource(\n" + "".join(f"    {a},\n" for a in args) + ")"

    def request_source(self, s: FeastRequestSource) -> str:
        self.ours.update(("RequestSource", "Field"))
        name = _lit(self.writer.name_of(s))
        return f"RequestSource(\n    {name},\n    schema={self.fields(s.schema, '    ')},\n)"

    def view(self, v: FeastFeatureView) -> str:
        self.ours.update(("FeatureView", "Field"))
        source = v.source
        assert source is not None
        lines = [
            f"name={_lit(self.writer.name_of(v))}",
            f"entities=[{', '.join(self.ref(e) for e in v.entities)}]",
            f"source={self.ref(source)}".replace("\n", "\n    "),
            f"schema={self.fields(v.schema, '    ')}",
        ]
        if v.ttl:
            self.needs_timedelta = True
            lines.append(f"ttl={_ttl(v.ttl)}")
        if not v.online:
            lines.append("online=False")
        for key in ("description", "owner"):
            if getattr(v, key):
                lines.append(f"{key}={_lit(getattr(v, key))}")
        if v.tags:
            lines.append(f"tags={_lit(v.tags)}")
        body = "".join(f"    {line},\n" for line in lines)
        return f"FeatureView(\n{body})"

    def projection(self, p: FeastProjection) -> str | None:
        available = self.writer.features_of(p.view)
        features = [f for f in p.features if f in available]
        if not features:
            return None
        if features == list(available):
            return self.ref(p.view)
        return f"{self.ref(p.view)}[{_lit(features)}]"

    def on_demand(self, v: FeastOnDemandView) -> str:
        self.ours.update(("on_demand_feature_view", "Field"))
        self.needs_polars = True
        adapter = "feast_pandas" if v.mode == "pandas" else "feast_python"
        self.adapters.add(adapter)
        var = v.var or _safe_name(v.name)
        function = f"{var}_{v.mode}"
        code = v.function_source.replace(f"def {v.function_name}(", f"def {function}(", 1)
        self.copy_dependencies(v)
        sources = []
        for s in v.sources:
            if isinstance(s, FeastProjection):
                text = self.projection(s)
                if text is not None:
                    sources.append(text)
            else:
                sources.append(self.ref(s))
        args = [f"sources=[{', '.join(sources)}]", f"schema={self.fields(v.schema, '    ')}"]
        name = self.writer.name_of(v)
        if name != var:
            args.append(f"name={_lit(name)}")
        for key in ("description", "owner"):
            if getattr(v, key):
                args.append(f"{key}={_lit(getattr(v, key))}")
        if v.tags:
            args.append(f"tags={_lit(v.tags)}")
        decorator = "@on_demand_feature_view(\n" + "".join(f"    {a},\n" for a in args) + ")"
        singleton = ", singleton=True" if v.singleton else ""
        wrapper = (
            f"def {var}(df: pl.DataFrame) -> pl.DataFrame:\n"
            f'    """Feast\'s {v.mode}-mode function above, run by featurestore\'s executor."""\n'
            f"    return {adapter}({function}, df, {var}{singleton})\n"
        )
        return f"{code.rstrip()}\n\n\n{decorator}\n{wrapper}"

    def copy_dependencies(self, v: FeastOnDemandView) -> None:
        """Copy the imports, helpers and constants the user's function uses."""
        code = self.writer.repo.modules.get(v.module)
        if code is None:
            return
        pending = [v.function_source]
        while pending:
            text = pending.pop()
            try:
                tree = ast.parse(text)
            except SyntaxError:  # pragma: no cover - parsed once already
                continue
            for node in ast.walk(tree):
                if not isinstance(node, ast.Name):
                    continue
                name = node.id
                if name in code.imports:
                    self.extra_imports[name] = code.imports[name]
                elif name in code.statements and name not in self.copied:
                    self.copied[name] = code.statements[name]
                    pending.append(code.statements[name])

    def render(self, source_file: str) -> str:
        head = [f'"""Imported from Feast\'s {source_file} by \'featurestore import-feast\'."""', ""]
        std = []
        if self.needs_timedelta:
            std.append("from datetime import timedelta")
        third = sorted(set(self.extra_imports.values()) - {"from datetime import timedelta"})
        if self.needs_polars:
            third = sorted({*third, "import polars as pl"})
        ours = []
        if self.ours:
            names = sorted(self.ours, key=lambda n: (n.islower(), n))
            ours.append(_import_line("featurestore", names))
        if self.adapters:
            ours.append(_import_line("featurestore.feast_import.adapters", sorted(self.adapters)))
        if self.types:
            ours.append(_import_line("featurestore.types", sorted(self.types)))
        local = [
            _import_line(module, sorted(names))
            for module, names in sorted(self.repo_imports.items())
        ]
        groups = [g for g in (std, third, ours, local) if g]
        lines = head
        for group in groups:
            lines += [*group, ""]
        lines.pop()
        order = list(self.writer.repo.modules[self.module].statements) if self.copied else []
        copied = sorted(self.copied.items(), key=lambda item: order.index(item[0]))
        for _, text in copied:
            lines += ["", text] if not text.startswith("def ") else ["", "", text, ""]
        for block in self.blocks:
            lines += ["", "", block, ""] if "\ndef " in f"\n{block}" else ["", block]
        text = "\n".join(lines).rstrip() + "\n"
        return re.sub(r"\n{4,}", "\n\n\n", text)


def _import_line(module: str, names: list[str]) -> str:
    line = f"from {module} import {', '.join(names)}"
    if len(line) <= _WIDTH:
        return line
    inner = "".join(f"    {n},\n" for n in names)
    return f"from {module} import (\n{inner})"


class _Writer:
    def __init__(self, repo: FeastRepo, out: Path) -> None:
        self.repo, self.out = repo, out
        self.result = ImportResult(out=out, problems=list(repo.problems))
        self.names: dict[int, str] = {}
        self.name_unbound()

    def name_unbound(self) -> None:
        """Give views and services written inline in Feast (no variable) one of their own."""
        taken = {(o.module, o.var) for o in self.repo.objects if o.var is not None}
        for obj in self.repo.objects:
            if obj.var is None and isinstance(obj, FeastFeatureView | FeastService):
                var = _safe_name(obj.name)
                while (obj.module, var) in taken:
                    var = f"{var}_{obj.kind.split()[-1]}"
                obj.var = var
                taken.add((obj.module, var))

    def name_of(self, obj: FeastObject) -> str:
        if id(obj) not in self.names:
            name = _safe_name(obj.name)
            if name != obj.name:
                self.result.problems.append(
                    Problem(
                        obj.label,
                        f"its name is not a featurestore name; it is written as '{name}'",
                        "refer to it by the new name (feature refs, services, HTTP requests)",
                    )
                )
            self.names[id(obj)] = name
        return self.names[id(obj)]

    def path_of(self, source: FeastFileSource) -> str:
        path = source.path
        if PurePath(path).is_absolute():
            return path
        absolute = self.repo.root / path
        return os.path.relpath(absolute, self.out)

    def features_of(self, view: FeastFeatureView | FeastOnDemandView) -> list[str]:
        return [f.name for f in view.schema]

    def problem(self, obj: FeastObject | str, reason: str, suggestion: str) -> None:
        what = obj.label if isinstance(obj, FeastObject) else obj
        self.result.problems.append(Problem(what, reason, suggestion))

    def service(self, f: _File, s: FeastService) -> str | None:
        items = []
        for item in s.features:
            if isinstance(item, FeastProjection):
                missing = [x for x in item.features if x not in self.features_of(item.view)]
                if missing:
                    self.problem(
                        s,
                        f"it selects {missing} of {item.view.label}, which were left out",
                        "see the entries of those fields",
                    )
                text = f.projection(item)
                if text is not None:
                    items.append(text)
            else:
                items.append(f.ref(item))
        if not items:
            self.problem(s, "none of its features was carried over", "see the entries above")
            return None
        f.ours.add("FeatureService")
        features = f"features=[{', '.join(items)}]"
        if len(features) > _WIDTH - 8:
            features = "features=[\n" + "".join(f"        {i},\n" for i in items) + "    ]"
        args = [_lit(self.name_of(s)), features]
        for key in ("description", "owner"):
            if getattr(s, key):
                args.append(f"{key}={_lit(getattr(s, key))}")
        if s.tags:
            args.append(f"tags={_lit(s.tags)}")
        one = f"FeatureService({', '.join(args)})"
        if len(one) + len(s.var or "") + 3 <= _WIDTH and "\n" not in one:
            return one
        return "FeatureService(\n" + "".join(f"    {a},\n" for a in args) + ")"

    def block(self, f: _File, obj: FeastObject) -> str | None:
        if isinstance(obj, FeastEntity):
            text: str | None = f.entity(obj)
        elif isinstance(obj, FeastFileSource):
            text = f.source(obj)
        elif isinstance(obj, FeastPushSource):
            return self.push_source(f, obj)
        elif isinstance(obj, FeastRequestSource):
            text = f.request_source(obj)
        elif isinstance(obj, FeastFeatureView):
            text = f.view(obj)
        elif isinstance(obj, FeastOnDemandView):
            return f.on_demand(obj)
        elif isinstance(obj, FeastService):
            text = self.service(f, obj)
        else:
            return None
        if text is None:
            return None
        return f"{obj.var} = {text}"

    def push_source(self, f: _File, p: FeastPushSource) -> str:
        views = [self.name_of(v) for v in self.repo.of_type(FeastFeatureView) if v.source is p]
        self.problem(
            p,
            "featurestore pushes to a feature view by its name, not to a push source "
            f"(Feast's push_source_name='{p.name}' becomes the view's name)",
            "push with push_source_name set to " + " or ".join(f"'{v}'" for v in views),
        )
        assert p.batch_source is not None
        return (
            f"# Feast's PushSource '{p.name}': push to {', '.join(views)} by view name.\n"
            f"{p.var} = {f.ref(p.batch_source)}"
        )

    def config(self) -> str:
        project = _safe_name(self.repo.project or self.repo.root.name)
        if project != self.repo.project:
            self.problem(
                "feature_store.yaml, project",
                f"the project name is not a featurestore name; it is written as '{project}'",
                "keep it, or edit featurestore.yaml",
            )
        online: dict[str, object] = {"type": "sqlite", "path": "data/online.db"}
        feast_online = self.repo.config.get("online_store")
        feast_type = feast_online.get("type") if isinstance(feast_online, dict) else feast_online
        if feast_type == "redis" and isinstance(feast_online, dict):
            connection = str(feast_online.get("connection_string", "localhost:6379"))
            host = connection.split(",")[0]
            online = {"type": "redis", "url": f"redis://{host}/0"}
            if "," in connection:
                self.problem(
                    "feature_store.yaml, online_store.connection_string",
                    "only its host:port is carried over (password, ssl and db options are not)",
                    "set online_store.url (redis://:${REDIS_PASSWORD}@host:port/db) by hand",
                )
        elif feast_type not in (None, "sqlite"):
            self.problem(
                "feature_store.yaml, online_store",
                f"online store type {_lit(feast_type)} has no featurestore equivalent; "
                "the embedded SQLite store is written instead",
                "use type: redis for production (docs/repo-and-config.md)",
            )
        offline = self.repo.config.get("offline_store")
        offline_type = offline.get("type") if isinstance(offline, dict) else offline
        if offline_type not in (None, "file", "dask", "duckdb"):
            self.problem(
                "feature_store.yaml, offline_store",
                f"offline store type {_lit(offline_type)}: featurestore reads Parquet with DuckDB",
                "export the tables to Parquet",
            )
        document = {
            "project": project,
            "registry": "data/registry.json",
            "offline_store": {"type": "duckdb"},
            "online_store": online,
        }
        body = yaml.safe_dump(document, sort_keys=False)
        return (
            "# Imported from Feast's feature_store.yaml by 'featurestore import-feast'.\n"
            "# Paths are relative to this folder (docs/repo-and-config.md).\n" + body
        )

    def used_sources(self) -> set[int]:
        """The sources some carried-over view reads (others are not written)."""
        used: set[int] = set()
        for view in self.repo.of_type(FeastFeatureView):
            used.add(id(view.source))
            if isinstance(view.source, FeastPushSource):
                used.add(id(view.source.batch_source))
        for odfv in self.repo.of_type(FeastOnDemandView):
            used.update(id(s) for s in odfv.sources if isinstance(s, FeastRequestSource))
        return used

    def write(self) -> ImportResult:
        files: dict[str, _File] = {}
        used = self.used_sources()
        sources = FeastFileSource | FeastPushSource | FeastRequestSource
        for obj in self.repo.objects:
            if isinstance(obj, Unsupported) or obj.var is None:
                continue
            if isinstance(obj, sources) and id(obj) not in used:
                continue
            f = files.setdefault(obj.module, _File(self, obj.module))
            text = self.block(f, obj)
            if text is None:
                continue
            f.blocks.append(text)
            kind = obj.kind
            self.result.counts[kind] = self.result.counts.get(kind, 0) + 1
        self.out.mkdir(parents=True, exist_ok=True)
        for module, f in files.items():
            if not f.blocks:
                continue
            rel = module.replace(".", "/") + ".py"
            source = (self.repo.root / rel).relative_to(self.repo.root).as_posix()
            target = self.out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f.render(source), encoding="utf-8")
            self.result.files.append(rel)
        (self.out / "featurestore.yaml").write_text(self.config(), encoding="utf-8")
        self.result.files.append("featurestore.yaml")
        return self.result


def write_repo(repo: FeastRepo, out: Path) -> ImportResult:
    """Write ``repo`` as a featurestore repo in ``out`` (created; must not hold a repo yet).

    Raises:
        ConfigError: ``out`` already holds a ``featurestore.yaml``.
    """
    out = out.resolve()
    if (out / "featurestore.yaml").exists():
        msg = (
            f"'{out}' already holds a featurestore repo (featurestore.yaml); pass a new "
            "folder to --out, or delete that one to import again."
        )
        raise ConfigError(msg)
    return _Writer(repo, out).write()
