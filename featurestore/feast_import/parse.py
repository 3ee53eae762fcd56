"""Read a Feast repo's definitions with ``ast``: nothing is imported or run, Feast is not needed.

Each Python file of the repo is parsed; module-level assignments and decorated functions
are evaluated by a small interpreter that knows Feast's definition classes (``Entity``,
``FileSource``, ``PushSource``, ``RequestSource``, ``FeatureView``, ``Field`` with
``feast.types``, ``FeatureService``, ``@on_demand_feature_view``), literals, ``timedelta``
and names bound earlier in the repo. Anything else is kept as an :class:`Unsupported` value
with the reason, so the rest of the repo still comes through.
"""

from __future__ import annotations

import ast
import fnmatch
import operator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from featurestore.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

__all__ = [
    "FeastEntity",
    "FeastFeatureView",
    "FeastField",
    "FeastFileSource",
    "FeastObject",
    "FeastOnDemandView",
    "FeastProjection",
    "FeastPushSource",
    "FeastRepo",
    "FeastRequestSource",
    "FeastService",
    "Problem",
    "Unsupported",
    "parse_feast_repo",
]

_T = TypeVar("_T")

# Feast types with a featurestore type of the same meaning (Json is JSON text: a String).
_SCALAR_TYPES = {
    "Int32": "Int32",
    "Int64": "Int64",
    "Float32": "Float32",
    "Float64": "Float64",
    "String": "String",
    "Bool": "Bool",
    "Bytes": "Bytes",
    "UnixTimestamp": "Timestamp",
    "Json": "String",
}
_VIEW_KINDS = ("BatchFeatureView", "StreamFeatureView", "LabelView", "SortedFeatureView")
_IGNORED_DIRS = ("__pycache__", "node_modules", "venv", "site-packages")
_BINARY_OPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
}


@dataclass(frozen=True)
class Problem:
    """Something of the Feast repo that was not carried over, or not exactly."""

    what: str
    """The object, as ``feature view 'driver_stats' (features.py:12)``."""
    reason: str
    suggestion: str


@dataclass(eq=False)
class FeastObject:
    """A Feast definition found in the repo, with where it was written."""

    name: str
    module: str
    """The repo module (file) that defines it, e.g. ``features`` or ``sub.views``."""
    line: int
    var: str | None = field(default=None, init=False)
    """The module-level variable first bound to it in its module, if any."""

    @property
    def kind(self) -> str:
        """How reports name this kind of object."""
        return "object"

    @property
    def label(self) -> str:
        """``kind 'name' (file.py:line)`` for reports."""
        return f"{self.kind} '{self.name}' ({self.module.replace('.', '/')}.py:{self.line})"


@dataclass(eq=False)
class Unsupported(FeastObject):
    """A definition (or value) that cannot be carried over, and why."""

    what: str = ""
    reason: str = ""
    suggestion: str = ""

    @property
    def kind(self) -> str:  # noqa: D102 - see FeastObject
        return self.what or "value"


@dataclass(frozen=True)
class FeastField:
    """A Feast ``Field``; ``dtype`` is our type name, or None when we have no such type."""

    name: str
    feast_type: str
    dtype: str | None
    description: str = ""


@dataclass(eq=False)
class FeastEntity(FeastObject):
    """A Feast ``Entity`` (one join key in Feast)."""

    join_keys: list[str] = field(default_factory=list)
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:  # noqa: D102 - see FeastObject
        return "entity"


@dataclass(eq=False)
class FeastFileSource(FeastObject):
    """A Feast ``FileSource`` over Parquet."""

    path: str = ""
    timestamp_field: str = ""
    created_timestamp_column: str | None = None
    field_mapping: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:  # noqa: D102 - see FeastObject
        return "file source"


@dataclass(eq=False)
class FeastPushSource(FeastObject):
    """A Feast ``PushSource``: rows pushed now, backed by a batch source."""

    batch_source: FeastFileSource | None = None

    @property
    def kind(self) -> str:  # noqa: D102 - see FeastObject
        return "push source"


@dataclass(eq=False)
class FeastRequestSource(FeastObject):
    """A Feast ``RequestSource``."""

    schema: list[FeastField] = field(default_factory=list)

    @property
    def kind(self) -> str:  # noqa: D102 - see FeastObject
        return "request source"


@dataclass(eq=False)
class FeastFeatureView(FeastObject):
    """A Feast ``FeatureView`` whose source is Parquet (directly or behind a push source)."""

    entities: list[FeastEntity] = field(default_factory=list)
    source: FeastFileSource | FeastPushSource | None = None
    schema: list[FeastField] = field(default_factory=list)
    """The features (entity columns removed; fields of unsupported types removed)."""
    ttl: timedelta | None = None
    online: bool = True
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:  # noqa: D102 - see FeastObject
        return "feature view"

    @property
    def batch_source(self) -> FeastFileSource:
        """The Parquet source the view's rows are read from."""
        source = self.source
        if isinstance(source, FeastPushSource):
            source = source.batch_source
        if not isinstance(source, FeastFileSource):  # pragma: no cover - checked when built
            msg = f"{self.label} has no file source"
            raise TypeError(msg)
        return source


@dataclass(frozen=True)
class FeastProjection:
    """``view[["f1", "f2"]]``: some features of a view or on-demand view."""

    view: FeastFeatureView | FeastOnDemandView
    features: list[str]


@dataclass(eq=False)
class FeastOnDemandView(FeastObject):
    """A Feast ``@on_demand_feature_view`` function in pandas or python mode."""

    sources: list[FeastFeatureView | FeastProjection | FeastRequestSource] = field(
        default_factory=list
    )
    schema: list[FeastField] = field(default_factory=list)
    mode: str = "pandas"
    singleton: bool = False
    function_name: str = ""
    function_source: str = ""
    """The function's ``def`` (decorators removed), as written."""
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:  # noqa: D102 - see FeastObject
        return "on-demand feature view"


@dataclass(eq=False)
class FeastService(FeastObject):
    """A Feast ``FeatureService``."""

    features: list[FeastFeatureView | FeastOnDemandView | FeastProjection] = field(
        default_factory=list
    )
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:  # noqa: D102 - see FeastObject
        return "feature service"


@dataclass
class ModuleCode:
    """What of a repo file's own code the written repo may need (for on-demand functions)."""

    imports: dict[str, str] = field(default_factory=dict)
    """Bound name -> the import statement binding it (imports of Feast and repo files excluded)."""
    statements: dict[str, str] = field(default_factory=dict)
    """Bound name -> the module-level ``def`` or assignment binding it (no Feast objects)."""


@dataclass
class FeastRepo:
    """Everything read from a Feast repo."""

    root: Path
    project: str
    config: dict[str, Any]
    """``feature_store.yaml`` as parsed."""
    objects: list[FeastObject] = field(default_factory=list)
    """Every definition (and unsupported definition), in the order the repo binds them."""
    problems: list[Problem] = field(default_factory=list)
    modules: dict[str, ModuleCode] = field(default_factory=dict)

    def of_type(self, kind: type[_T]) -> list[_T]:
        """The objects of one kind, in repo order."""
        return [o for o in self.objects if isinstance(o, kind)]


@dataclass(frozen=True)
class _Qual:
    """A name that stands for something imported: ``feast.Entity``, ``datetime.timedelta``."""

    name: str

    @property
    def last(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    @property
    def is_feast(self) -> bool:
        return self.name == "feast" or self.name.startswith("feast.")


@dataclass(frozen=True)
class _Type:
    """A Feast type: its name as written and ours (None when we have none)."""

    feast: str
    ours: str | None


@dataclass(frozen=True)
class _Opaque:
    """A value the reader cannot evaluate, with why."""

    reason: str


class _Module:
    """One repo file being evaluated."""

    def __init__(self, reader: _Reader, name: str, path: Path) -> None:
        self.reader, self.name, self.path = reader, name, path
        self.text = path.read_text(encoding="utf-8")
        self.values: dict[str, object] = {}
        self.aliases: dict[str, _Qual | tuple[str, str]] = {}
        """Imported name -> a qualified name, or (repo module, name) for repo imports."""
        self.code = ModuleCode()
        self.done = False

    # -- evaluation ---------------------------------------------------------------------

    def run(self) -> None:
        try:
            tree = ast.parse(self.text, filename=str(self.path))
        except SyntaxError as exc:
            self.reader.repo.problems.append(
                Problem(
                    what=f"file {self.name.replace('.', '/')}.py",
                    reason=f"it does not parse ({exc.msg}, line {exc.lineno})",
                    suggestion="fix the syntax error and import again",
                )
            )
            return
        for stmt in tree.body:
            if isinstance(stmt, ast.Import | ast.ImportFrom):
                self._import(stmt)
            elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                self._assign(stmt.targets[0], stmt.value, stmt)
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                self._assign(stmt.target, stmt.value, stmt)
            elif isinstance(stmt, ast.FunctionDef):
                self._function(stmt)

    def _import(self, stmt: ast.Import | ast.ImportFrom) -> None:
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                bound = alias.asname or alias.name.split(".")[0]
                target = alias.name if alias.asname else bound
                if self.reader.is_repo_module(alias.name):
                    continue
                self.aliases[bound] = _Qual(target)
                if not _Qual(target).is_feast:
                    self.code.imports[bound] = f"import {alias.name}" + (
                        f" as {alias.asname}" if alias.asname else ""
                    )
            return
        module = self._absolute(stmt)
        for alias in stmt.names:
            bound = alias.asname or alias.name
            if self.reader.is_repo_module(module):
                self.aliases[bound] = (module, alias.name)
            elif self.reader.is_repo_module(f"{module}.{alias.name}"):
                continue
            else:
                self.aliases[bound] = _Qual(f"{module}.{alias.name}")
                if not _Qual(module).is_feast and stmt.level == 0:
                    self.code.imports[bound] = f"from {module} import {alias.name}" + (
                        f" as {alias.asname}" if alias.asname else ""
                    )

    def _absolute(self, stmt: ast.ImportFrom) -> str:
        if not stmt.level:
            return stmt.module or ""
        package = self.name.split(".")[: -stmt.level]
        return ".".join([*package, *([stmt.module] if stmt.module else [])])

    def _assign(self, target: ast.expr, value: ast.expr, stmt: ast.stmt) -> None:
        if not isinstance(target, ast.Name):
            return
        result = self.eval(value)
        self.values[target.id] = result
        if isinstance(result, FeastObject):
            self.reader.bind(result, self.name, target.id)
        elif not isinstance(result, _Opaque | _Type | FeastProjection):
            self.code.statements[target.id] = ast.get_source_segment(self.text, stmt) or ""

    def _function(self, stmt: ast.FunctionDef) -> None:
        decorator = next(
            (
                d
                for d in stmt.decorator_list
                if isinstance(d, ast.Call)
                and isinstance(q := self.qualify(d.func), _Qual)
                and q.last == "on_demand_feature_view"
            ),
            None,
        )
        if decorator is None:
            if not stmt.decorator_list:
                self.code.statements[stmt.name] = ast.get_source_segment(self.text, stmt) or ""
            return
        view = self._on_demand(stmt, decorator)
        self.values[stmt.name] = view
        self.reader.bind(view, self.name, stmt.name)

    def lookup(self, name: str) -> object:
        if name in self.values:
            return self.values[name]
        alias = self.aliases.get(name)
        if isinstance(alias, _Qual):
            return alias
        if isinstance(alias, tuple):
            return self.reader.value_of(*alias)
        if name == "None":  # pragma: no cover - a Constant since Python 3.8
            return None
        return _Opaque(f"'{name}' is not a module-level name the importer can read")

    def qualify(self, node: ast.expr) -> object:
        if isinstance(node, ast.Name):
            return self.lookup(node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualify(node.value)
            if isinstance(base, _Qual):
                return _Qual(f"{base.name}.{node.attr}")
            return _Opaque(f"'{ast.unparse(node)}' cannot be read without running the repo")
        return self.eval(node)

    def eval(self, node: ast.expr) -> object:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.List | ast.Tuple):
            return [self.eval(e) for e in node.elts]
        if isinstance(node, ast.Dict):
            return {
                self.eval(k) if k is not None else None: self.eval(v)
                for k, v in zip(node.keys, node.values, strict=True)
            }
        if isinstance(node, ast.Name | ast.Attribute):
            value = self.qualify(node)
            if isinstance(value, _Qual) and value.is_feast:
                return _feast_type(value) or value
            return value
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.Subscript):
            return self._subscript(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            operand = self.eval(node.operand)
            if isinstance(operand, int | float | timedelta):
                return -operand
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPS:
            left, right = self.eval(node.left), self.eval(node.right)
            if isinstance(left, int | float | timedelta | str) and isinstance(
                right, int | float | timedelta | str
            ):
                try:
                    return _BINARY_OPS[type(node.op)](left, right)
                except (TypeError, ZeroDivisionError):
                    pass
        return _Opaque(f"'{ast.unparse(node)}' cannot be read without running the repo")

    def _subscript(self, node: ast.Subscript) -> object:
        base = self.eval(node.value)
        index = self.eval(node.slice)
        if isinstance(base, FeastFeatureView | FeastOnDemandView):
            names = [index] if isinstance(index, str) else index
            if isinstance(names, list) and all(isinstance(n, str) for n in names):
                return FeastProjection(base, [str(n) for n in names])
        if isinstance(base, Unsupported):
            return base
        return _Opaque(f"'{ast.unparse(node)}' cannot be read without running the repo")

    def _call(self, node: ast.Call) -> object:
        callee = self.qualify(node.func)
        if not isinstance(callee, _Qual):
            return _Opaque(f"'{ast.unparse(node.func)}(...)' cannot be read without running it")
        args = [self.eval(a) for a in node.args]
        kwargs = {k.arg: self.eval(k.value) for k in node.keywords if k.arg is not None}
        if callee.name in ("datetime.timedelta", "timedelta"):
            return _timedelta(args, kwargs, ast.unparse(node))
        if not callee.is_feast:
            return _Opaque(f"'{ast.unparse(node.func)}(...)' is not a Feast definition")
        builder = _BUILDERS.get(callee.last)
        line = node.lineno
        if builder is not None:
            return builder(self, line, args, kwargs)
        if callee.last == "Array" and len(args) == 1 and isinstance(args[0], _Type):
            inner = args[0]
            ours = f"Array({inner.ours})" if inner.ours in _SCALAR_TYPES.values() else None
            return _Type(f"Array({inner.feast})", None if inner.ours == "Timestamp" else ours)
        if callee.last in ("Struct", "Map", "Set"):
            return _Type(callee.last, None)
        name = kwargs.get("name") or kwargs.get("table") or kwargs.get("path") or callee.last
        name = name if isinstance(name, str) else callee.last
        if callee.last.endswith("Source"):
            return self.unsupported(
                name,
                line,
                "data source",
                f"it is a {callee.last}; featurestore reads Parquet files only",
                "export the table to Parquet and point a FileSource (ParquetSource) at it",
            )
        if callee.last in _VIEW_KINDS:
            return self.unsupported(
                name,
                line,
                "feature view",
                f"it is a {callee.last}, which featurestore does not have",
                "define it as a plain FeatureView over Parquet (or an aggregation view, "
                "docs/aggregations.md) by hand",
            )
        return _Opaque(f"'feast {callee.last}(...)' is not a definition the importer knows")

    def unsupported(
        self, name: str, line: int, what: str, reason: str, suggestion: str
    ) -> Unsupported:
        item = Unsupported(
            name or "?", self.name, line, what=what, reason=reason, suggestion=suggestion
        )
        self.reader.repo.objects.append(item)
        self.reader.repo.problems.append(Problem(item.label, reason, suggestion))
        return item

    def note(self, obj: FeastObject | str, reason: str, suggestion: str) -> None:
        what = obj.label if isinstance(obj, FeastObject) else obj
        self.reader.repo.problems.append(Problem(what, reason, suggestion))

    def _on_demand(self, stmt: ast.FunctionDef, decorator: ast.Call) -> FeastObject:
        kwargs = {k.arg: self.eval(k.value) for k in decorator.keywords if k.arg is not None}
        name = kwargs.get("name") or stmt.name
        name = name if isinstance(name, str) else stmt.name
        label = f"on-demand feature view '{name}'"
        mode = kwargs.get("mode", "pandas")
        if mode not in ("pandas", "python"):
            return self.unsupported(
                name,
                stmt.lineno,
                "on-demand feature view",
                f"its mode is {mode!r}; featurestore carries over Feast's 'pandas' and "
                "'python' modes",
                "rewrite the function in pandas or python mode, or as a polars function",
            )
        for arg in ("aggregations", "entities"):
            if kwargs.get(arg):
                return self.unsupported(
                    name,
                    stmt.lineno,
                    "on-demand feature view",
                    f"it declares {arg}=, which featurestore's on-demand views do not have",
                    "compute it in a feature view (or an aggregation view) instead",
                )
        sources = kwargs.get("sources")
        if not isinstance(sources, list) or not sources:
            return self.unsupported(
                name,
                stmt.lineno,
                "on-demand feature view",
                "its sources=[...] cannot be read",
                "list the feature views and request sources it reads",
            )
        for source in sources:
            if isinstance(source, Unsupported):
                return self.unsupported(
                    name,
                    stmt.lineno,
                    "on-demand feature view",
                    f"it reads {source.label}, which is not carried over",
                    "carry that over first (see its entry)",
                )
            if not isinstance(source, FeastFeatureView | FeastProjection | FeastRequestSource) or (
                isinstance(source, FeastProjection) and isinstance(source.view, FeastOnDemandView)
            ):
                return self.unsupported(
                    name,
                    stmt.lineno,
                    "on-demand feature view",
                    f"one of its sources cannot be read ({_why(source)})",
                    "list feature views, view[['feature']] projections and request sources",
                )
            if isinstance(source, FeastProjection):
                kept = {f.name for f in source.view.schema}
                lost = [f for f in source.features if f not in kept]
                if lost:
                    return self.unsupported(
                        name,
                        stmt.lineno,
                        "on-demand feature view",
                        f"it reads {lost} of {source.view.label}, which were left out",
                        "see the entries of those fields; rewrite the function without them",
                    )
        schema = self._fields(kwargs.get("schema"), label)
        if isinstance(schema, Unsupported | _Opaque) or not schema:
            reason = schema.reason if isinstance(schema, _Opaque) else "it has no readable schema"
            return self.unsupported(
                name,
                stmt.lineno,
                "on-demand feature view",
                reason,
                "declare schema=[Field(name=..., dtype=...)] with supported types",
            )
        if kwargs.get("write_to_online_store"):
            self.note(
                label,
                "write_to_online_store=True: Feast stores the outputs at write time; "
                "featurestore computes them at every read",
                "nothing to do; the values are the same function's outputs",
            )
        lines = self.text.splitlines(keepends=True)
        start = stmt.lineno - 1
        end = stmt.end_lineno or stmt.lineno
        source = "".join(lines[start:end])
        view = FeastOnDemandView(
            name,
            self.name,
            stmt.lineno,
            sources=[
                s
                for s in sources
                if isinstance(s, FeastFeatureView | FeastProjection | FeastRequestSource)
            ],
            schema=schema,
            mode=str(mode),
            singleton=bool(kwargs.get("singleton", False)),
            function_name=stmt.name,
            function_source=source,
            description=_text(kwargs.get("description")),
            owner=_text(kwargs.get("owner")),
            tags=_tags(kwargs.get("tags")),
        )
        self.reader.repo.objects.append(view)
        return view

    def _fields(self, value: object, owner: str) -> list[FeastField] | _Opaque:
        if not isinstance(value, list):
            return _Opaque(f"its schema cannot be read ({_why(value)})")
        fields = []
        for item in value:
            if not isinstance(item, FeastField):
                return _Opaque(f"a field of its schema cannot be read ({_why(item)})")
            if item.dtype is None:
                self.note(
                    f"{owner}, field '{item.name}'",
                    f"its type {item.feast_type} has no featurestore equivalent",
                    "the field is left out; store it as String (e.g. JSON text) or split it "
                    "into scalar fields",
                )
                continue
            fields.append(item)
        return fields


def _why(value: object) -> str:
    if isinstance(value, _Opaque):
        return value.reason
    if isinstance(value, Unsupported):
        return f"{value.label} is not carried over"
    return f"got {type(value).__name__}"


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _tags(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def _timedelta(args: list[object], kwargs: dict[str, object], text: str) -> object:
    values = [*args, *kwargs.values()]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return _Opaque(f"'{text}' cannot be read without running the repo")
    try:
        return timedelta(*args, **kwargs)  # type: ignore[arg-type]  # checked numbers above
    except (TypeError, OverflowError) as exc:
        return _Opaque(f"'{text}' is not a valid timedelta ({exc})")


def _feast_type(qual: _Qual) -> _Type | None:
    if qual.name.startswith("feast.types.") or qual.name in {
        f"feast.{t}" for t in (*_SCALAR_TYPES, "Map", "Struct", "PdfBytes", "ImageBytes")
    }:
        return _Type(qual.last, _SCALAR_TYPES.get(qual.last))
    return None


def _first(args: list[object], kwargs: dict[str, object], key: str) -> object:
    return kwargs[key] if key in kwargs else (args[0] if args else None)


def _build_field(m: _Module, line: int, args: list[object], kw: dict[str, object]) -> object:
    del m, line
    name, dtype = _first(args, kw, "name"), kw.get("dtype", args[1] if len(args) > 1 else None)
    if not isinstance(name, str) or not isinstance(dtype, _Type):
        return _Opaque(f"a Field's name or dtype cannot be read ({_why(dtype)})")
    return FeastField(name, dtype.feast, dtype.ours, _text(kw.get("description")))


def _build_entity(m: _Module, line: int, args: list[object], kw: dict[str, object]) -> object:
    name = _first(args, kw, "name")
    if not isinstance(name, str):
        return _Opaque(f"an Entity's name cannot be read ({_why(name)})")
    keys = kw.get("join_keys") or [name]
    if isinstance(keys, str):
        keys = [keys]
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        return m.unsupported(
            name, line, "entity", "its join_keys cannot be read", "use a list of strings"
        )
    entity = FeastEntity(
        name,
        m.name,
        line,
        join_keys=[str(k) for k in keys],
        description=_text(kw.get("description")),
        tags=_tags(kw.get("tags")),
    )
    m.reader.repo.objects.append(entity)
    return entity


def _build_file_source(m: _Module, line: int, args: list[object], kw: dict[str, object]) -> object:
    path = kw.get("path", args[0] if args else None)
    name = kw.get("name")
    name = name if isinstance(name, str) else (path if isinstance(path, str) else "?")
    timestamp = kw.get("timestamp_field") or kw.get("event_timestamp_column")
    file_format = kw.get("file_format")
    if not isinstance(path, str):
        return m.unsupported(
            name, line, "file source", f"its path cannot be read ({_why(path)})", "use a literal"
        )
    if "://" in path and not path.startswith("file://"):
        return m.unsupported(
            name,
            line,
            "file source",
            f"its path {path!r} is remote; featurestore reads local Parquet files",
            "copy the files to local disk (or a mounted volume) and point the source there",
        )
    if isinstance(file_format, _Qual | _Opaque) or (
        file_format is not None and not isinstance(file_format, _ParquetFormat)
    ):
        return m.unsupported(
            name,
            line,
            "file source",
            "its file_format is not Parquet",
            "convert the files to Parquet",
        )
    if not isinstance(timestamp, str) or not timestamp:
        return m.unsupported(
            name,
            line,
            "file source",
            "it names no timestamp_field (Feast guesses one; featurestore needs it written)",
            "add timestamp_field='<the event timestamp column>' to the FileSource",
        )
    created = kw.get("created_timestamp_column") or None
    mapping = kw.get("field_mapping") or {}
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
    ):
        return m.unsupported(
            name, line, "file source", "its field_mapping cannot be read", "use literal strings"
        )
    source = FeastFileSource(
        name,
        m.name,
        line,
        path=path.removeprefix("file://"),
        timestamp_field=timestamp,
        created_timestamp_column=created if isinstance(created, str) else None,
        field_mapping={str(k): str(v) for k, v in mapping.items()},
    )
    m.reader.repo.objects.append(source)
    return source


@dataclass(frozen=True)
class _ParquetFormat:
    """``ParquetFormat()``: the one file format carried over."""


def _build_parquet_format(
    m: _Module, line: int, args: list[object], kw: dict[str, object]
) -> object:
    del m, line, args, kw
    return _ParquetFormat()


def _build_push_source(m: _Module, line: int, args: list[object], kw: dict[str, object]) -> object:
    name = _first(args, kw, "name")
    name = name if isinstance(name, str) else "?"
    batch = kw.get("batch_source")
    if not isinstance(batch, FeastFileSource):
        return m.unsupported(
            name,
            line,
            "push source",
            f"its batch_source is not a Parquet FileSource ({_why(batch)})",
            "back the push source with a FileSource over Parquet",
        )
    source = FeastPushSource(name, m.name, line, batch_source=batch)
    m.reader.repo.objects.append(source)
    return source


def _build_request_source(
    m: _Module, line: int, args: list[object], kw: dict[str, object]
) -> object:
    name = _first(args, kw, "name")
    name = name if isinstance(name, str) else "?"
    schema = m._fields(kw.get("schema"), f"request source '{name}'")
    if isinstance(schema, _Opaque) or not schema:
        reason = schema.reason if isinstance(schema, _Opaque) else "no field has a supported type"
        return m.unsupported(name, line, "request source", reason, "declare its fields")
    source = FeastRequestSource(name, m.name, line, schema=schema)
    m.reader.repo.objects.append(source)
    return source


_VIEW_ARGS = {"name", "entities", "source", "schema", "ttl", "online", "description", "owner"}
_VIEW_ARGS |= {"tags"}
_HARMLESS_VIEW_ARGS = {"offline", "enable_validation", "version", "mode"}


def _build_feature_view(m: _Module, line: int, args: list[object], kw: dict[str, object]) -> object:
    name = _first(args, kw, "name")
    if not isinstance(name, str):
        return _Opaque(f"a FeatureView's name cannot be read ({_why(name)})")
    label = f"feature view '{name}'"

    def fail(reason: str, suggestion: str) -> Unsupported:
        return m.unsupported(name, line, "feature view", reason, suggestion)

    source = kw.get("source")
    if isinstance(source, Unsupported):
        return fail(f"its source {source.label} is not carried over", "see that entry")
    if not isinstance(source, FeastFileSource | FeastPushSource):
        return fail(f"its source cannot be read ({_why(source)})", "use a FileSource over Parquet")
    entities = kw.get("entities") or []
    if not isinstance(entities, list):
        return fail(f"its entities cannot be read ({_why(entities)})", "list Entity objects")
    bad = [e for e in entities if not isinstance(e, FeastEntity)]
    if bad:
        return fail(f"its entities cannot be read ({_why(bad[0])})", "list Entity objects")
    if not entities:
        return fail(
            "it has no entities; featurestore's views always have a join key",
            "add an entity (a constant key column works for a global view)",
        )
    keys = {k for e in entities for k in e.join_keys}
    raw_schema = kw.get("schema")
    if raw_schema is None:
        raw_schema = _inferred_schema(m, source)
        if raw_schema is None:
            return fail(
                "it has no schema, and its Parquet file cannot be read to infer one as Feast does",
                "list the features with schema=[Field(name=..., dtype=...)]",
            )
        m.note(
            label,
            "it has no schema: the features are inferred from the Parquet file's columns, "
            "as Feast does",
            "check the written schema",
        )
    if isinstance(raw_schema, list):
        raw_schema = [f for f in raw_schema if not (isinstance(f, FeastField) and f.name in keys)]
    schema = m._fields(raw_schema, label)
    if isinstance(schema, _Opaque):
        return fail(schema.reason, "declare schema=[Field(name=..., dtype=...)]")
    if not schema:
        return fail("none of its features has a supported type", "see the field entries")
    ttl = kw.get("ttl")
    if ttl is not None and not isinstance(ttl, timedelta):
        return fail(f"its ttl cannot be read ({_why(ttl)})", "write ttl=timedelta(...)")
    for arg in sorted(set(kw) - _VIEW_ARGS):
        if arg in _HARMLESS_VIEW_ARGS:
            continue
        m.note(
            f"{label}, argument {arg}=",
            "featurestore has no equivalent; the argument is left out",
            "check docs/migrating-from-feast.md for what it meant in Feast",
        )
    online = kw.get("online", True)
    view = FeastFeatureView(
        name,
        m.name,
        line,
        entities=[e for e in entities if isinstance(e, FeastEntity)],
        source=source,
        schema=schema,
        ttl=ttl,
        online=online if isinstance(online, bool) else True,
        description=_text(kw.get("description")),
        owner=_text(kw.get("owner")),
        tags=_tags(kw.get("tags")),
    )
    m.reader.repo.objects.append(view)
    return view


def _inferred_schema(m: _Module, source: FeastFileSource | FeastPushSource) -> list[object] | None:
    """Feast's inference: every column but the join keys and timestamps, after field_mapping."""
    import pyarrow.parquet as pq

    from featurestore.types import dtype_from_arrow

    batch = source.batch_source if isinstance(source, FeastPushSource) else source
    if batch is None:
        return None
    path = m.reader.repo.root / batch.path
    if path.is_dir():
        path = next(iter(sorted(path.rglob("*.parquet"))), path)
    try:
        schema = pq.read_schema(path)
    except (OSError, ValueError):
        return None
    skip = {batch.timestamp_field, batch.created_timestamp_column}
    fields: list[object] = []
    for column in schema:
        name = batch.field_mapping.get(column.name, column.name)
        if column.name in skip or name in skip:
            continue
        dtype = dtype_from_arrow(column.type)
        ours = str(dtype) if dtype is not None else None
        fields.append(FeastField(name, str(column.type), ours))
    return fields


def _build_service(m: _Module, line: int, args: list[object], kw: dict[str, object]) -> object:
    name = _first(args, kw, "name")
    if not isinstance(name, str):
        return _Opaque(f"a FeatureService's name cannot be read ({_why(name)})")
    features = kw.get("features") or []
    if not isinstance(features, list):
        return m.unsupported(
            name, line, "feature service", "its features cannot be read", "list them"
        )
    kept: list[FeastFeatureView | FeastOnDemandView | FeastProjection] = []
    for item in features:
        if isinstance(item, FeastFeatureView | FeastOnDemandView | FeastProjection):
            kept.append(item)
        else:
            m.note(
                f"feature service '{name}'",
                f"one of its features is left out ({_why(item)})",
                "add it to the service by hand once it exists",
            )
    if kw.get("logging_config") is not None:
        m.note(
            f"feature service '{name}', logging_config=",
            "Feast's logging destination is not carried over",
            "add logging=LoggingConfig(sample_rate=...) to log served features (docs/skew.md)",
        )
    service = FeastService(
        name,
        m.name,
        line,
        features=kept,
        description=_text(kw.get("description")),
        owner=_text(kw.get("owner")),
        tags=_tags(kw.get("tags")),
    )
    m.reader.repo.objects.append(service)
    return service


def _build_project(m: _Module, line: int, args: list[object], kw: dict[str, object]) -> object:
    del line
    name = _first(args, kw, "name")
    if isinstance(name, str):
        m.reader.project_object = name
    return _Opaque("a Feast Project is read for its name only")


_BUILDERS: dict[str, Callable[[_Module, int, list[object], dict[str, object]], object]] = {
    "Field": _build_field,
    "Entity": _build_entity,
    "FileSource": _build_file_source,
    "ParquetFormat": _build_parquet_format,
    "PushSource": _build_push_source,
    "RequestSource": _build_request_source,
    "FeatureView": _build_feature_view,
    "FeatureService": _build_service,
    "Project": _build_project,
}


class _Reader:
    """Evaluates the repo's modules on demand, in import order."""

    def __init__(self, repo: FeastRepo, files: dict[str, Path]) -> None:
        self.repo = repo
        self.modules = {name: _Module(self, name, path) for name, path in files.items()}
        self.running: list[str] = []
        self.project_object: str | None = None

    def is_repo_module(self, name: str) -> bool:
        return name in self.modules

    def run(self, name: str) -> _Module:
        module = self.modules[name]
        if not module.done and name not in self.running:
            self.running.append(name)
            module.run()
            self.running.remove(name)
            module.done = True
            self.repo.modules[name] = module.code
        return module

    def value_of(self, module: str, name: str) -> object:
        if module in self.running:
            return _Opaque(f"'{name}' comes from a circular import of {module}")
        return self.run(module).lookup(name)

    def bind(self, obj: FeastObject, module: str, var: str) -> None:
        if obj.var is None and obj.module == module:
            obj.var = var


def _repo_files(root: Path) -> dict[str, Path]:
    ignore_file = root / ".feastignore"
    patterns = []
    if ignore_file.is_file():
        lines = ignore_file.read_text(encoding="utf-8").splitlines()
        patterns = [p.strip().rstrip("/") for p in lines if p.strip() and not p.startswith("#")]
    files = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(p.startswith(".") or p in _IGNORED_DIRS for p in rel.parts[:-1]):
            continue
        text = rel.as_posix()
        if any(fnmatch.fnmatch(text, p) or text.startswith(p + "/") for p in patterns):
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            files[".".join(parts)] = path
    return files


def read_feast_config(root: Path) -> dict[str, Any]:
    """``feature_store.yaml`` of the Feast repo at ``root``, parsed.

    Raises:
        ConfigError: The file is missing or is not a YAML mapping.
    """
    path = root / "feature_store.yaml"
    if not path.is_file():
        msg = (
            f"'{root}' is not a Feast repo: it has no feature_store.yaml. Pass the folder "
            "holding feature_store.yaml (often <project>/feature_repo)."
        )
        raise ConfigError(msg)
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        msg = f"{path} is not valid YAML ({exc}); fix it and import again."
        raise ConfigError(msg) from exc
    if not isinstance(config, dict):
        msg = f"{path} is not a YAML mapping of Feast settings; fix it and import again."
        raise ConfigError(msg)
    return config


def parse_feast_repo(root: Path) -> FeastRepo:
    """Read the Feast repo at ``root`` (the folder holding ``feature_store.yaml``).

    Raises:
        ConfigError: ``feature_store.yaml`` is missing or unreadable.
    """
    root = root.resolve()
    config = read_feast_config(root)
    project = config.get("project")
    repo = FeastRepo(root=root, project=project if isinstance(project, str) else "", config=config)
    reader = _Reader(repo, _repo_files(root))
    for name in reader.modules:
        reader.run(name)
    if not repo.project and reader.project_object:
        repo.project = reader.project_object
    return repo
