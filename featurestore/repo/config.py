"""RepoConfig: featurestore.yaml, validated, with ``${ENV}`` references resolved.

Config is loaded once at the edge (the CLI, the server, ``FeatureStore``); components receive
their own section only.

Each section is a frozen record (``_Section``, keyword-built like a dataclass) whose annotations
are its rules: the type, and ``Annotated`` bounds and patterns. One validator reads them, for
``featurestore.yaml`` and for sections built in Python alike, and words every problem in the
file's terms (the key path, the closest key or type, never a configured value). Not pydantic:
importing it and building its models cost a fresh process about 50 ms, a third of a small
training frame's own work (issue 10 item 13).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import tempfile
import types
import typing
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

from featurestore.errors import ConfigError, closest, term

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Self

    import yaml

__all__ = [
    "CONFIG_FILE",
    "DuckDBOfflineStoreConfig",
    "FeatureLoggingConfig",
    "OfflineStoreConfig",
    "OnlineStoreConfig",
    "RedisOnlineStoreConfig",
    "RepoConfig",
    "Secret",
    "ServingConfig",
    "SparkOfflineStoreConfig",
    "SqliteOnlineStoreConfig",
    "load_config",
]

CONFIG_FILE = "featurestore.yaml"
_T = typing.TypeVar("_T")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Secret:
    """A configured secret: shown as ``**********`` in every repr and str.

    Example:
        >>> key = Secret("s3cret")
        >>> key, key.get_secret_value()
        (Secret('**********'), 's3cret')
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        """The secret itself (for the code that uses it, never for output)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# -- rules beyond the type, attached with Annotated --------------------------------------------


class _AtLeast:
    __slots__ = ("bound", "strict")

    def __init__(self, bound: float, *, strict: bool = False) -> None:
        self.bound = bound
        self.strict = strict

    def problem(self, value: float) -> str | None:
        if self.strict:
            return None if value > self.bound else f"Input should be greater than {self.bound:g}"
        if value >= self.bound:
            return None
        return f"Input should be greater than or equal to {self.bound:g}"


def _ge(bound: float) -> _AtLeast:
    return _AtLeast(bound)


def _gt(bound: float) -> _AtLeast:
    return _AtLeast(bound, strict=True)


class _Pattern:
    __slots__ = ("regex",)

    def __init__(self, pattern: str) -> None:
        self.regex = re.compile(pattern)

    def problem(self, value: str) -> str | None:
        if self.regex.fullmatch(value):
            return None
        return f"String should match pattern '{self.regex.pattern}'"


# -- the sections ------------------------------------------------------------------------------


class _Default:
    """A setting's default built anew for each section (``_setting(default_factory=...)``)."""

    __slots__ = ("factory",)

    def __init__(self, factory: Callable[[], object]) -> None:
        self.factory = factory


def _setting(*, default_factory: Callable[[], _T]) -> _T:
    """A setting whose default is ``default_factory()``, called for each new section."""
    default: Any = _Default(default_factory)
    return typing.cast("_T", default)


@typing.dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(_setting,))
class _Section:
    """A frozen record of settings, built by keyword and validated by its annotations.

    Each annotated class attribute is a setting, its value the default (or ``_setting(...)``);
    sections compare, hash and copy by their settings' values. Not ``dataclasses``: writing
    the methods of six classes cost a fresh process ~3 ms (issue 10 item 13).
    """

    _names: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, object]] = {}

    def __init_subclass__(cls) -> None:
        names = [n for n in vars(cls).get("__annotations__", {}) if not n.startswith("_")]
        cls._names = tuple(names)
        cls._defaults = {n: vars(cls)[n] for n in names if n in vars(cls)}

    def __init__(self, **values: Any) -> None:
        cls = type(self)
        unknown = [n for n in values if n not in cls._names]
        if unknown:
            msg = f"{cls.__name__}() got an unexpected keyword argument '{unknown[0]}'"
            raise TypeError(msg)
        for name in cls._names:
            if name not in values:
                if name not in cls._defaults:
                    msg = f"{cls.__name__}() missing required keyword argument: '{name}'"
                    raise TypeError(msg)
                default = cls._defaults[name]
                values[name] = default.factory() if isinstance(default, _Default) else default
        check = _Check(secrets=_secrets(values))
        converted = check.settings(cls, values, where="")
        if check.problems:
            msg = f"{cls.__name__} is invalid: {' '.join(check.problems)}"
            raise ConfigError(msg)
        for name in cls._names:
            object.__setattr__(self, name, converted[name])

    def __setattr__(self, name: str, value: object) -> None:
        msg = f"cannot assign to field '{name}'"
        raise FrozenInstanceError(msg)

    def __delattr__(self, name: str) -> None:
        msg = f"cannot delete field '{name}'"
        raise FrozenInstanceError(msg)

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, n) for n in self._names)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Section):
            return NotImplemented
        return type(other) is type(self) and other._values() == self._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        shown = (
            f"{n}={_mask_password(v) if n == 'url' and isinstance(v, str) else v!r}"
            for n, v in zip(self._names, self._values(), strict=True)
        )
        return f"{type(self).__name__}({', '.join(shown)})"

    def model_copy(self, *, update: Mapping[str, Any] | None = None) -> Self:
        """A copy with the settings in ``update`` changed, validated as a new section is.

        The name is pydantic's: 0.1's config models were pydantic models.

        Example:
            >>> RepoConfig(project="a").model_copy(update={"project": "b"}).project
            'b'
        """
        values = dict(zip(self._names, self._values(), strict=True))
        return type(self)(**{**values, **(update or {})})


class DuckDBOfflineStoreConfig(_Section):
    """``offline_store: {type: duckdb}``: DuckDB reads the Parquet sources in place."""

    type: Literal["duckdb"] = "duckdb"
    memory_limit: str | None = None
    """DuckDB's memory limit, e.g. ``"8GB"``; past it, joins spill to ``temp_directory``."""
    threads: Annotated[int, _ge(1)] | None = None
    temp_directory: str | None = None
    """Where DuckDB spills; relative to the repo. Default: DuckDB's own choice."""


class SparkOfflineStoreConfig(_Section):
    """``offline_store: {type: spark, master: "local[2]"}``: Spark runs the offline work.

    Training frames and the newest rows for materialization (docs/spark.md); needs the
    ``spark`` extra.
    """

    type: Literal["spark"]
    master: str = "local[*]"
    """Where Spark runs: ``local[N]``, ``spark://host:7077``, ``yarn``, ``k8s://...``."""
    app_name: str = "featurestore"
    conf: dict[str, str] = _setting(default_factory=dict)
    """Spark settings passed to the session builder, e.g. ``spark.executor.memory: 8g``."""

    def __hash__(self) -> int:
        return hash((type(self), self.master, self.app_name, tuple(sorted(self.conf.items()))))


OfflineStoreConfig: typing.TypeAlias = DuckDBOfflineStoreConfig | SparkOfflineStoreConfig
"""The ``offline_store`` section, chosen by its ``type`` key."""


class SqliteOnlineStoreConfig(_Section):
    """``online_store: {type: sqlite, path: data/online.db}``: the embedded default."""

    type: Literal["sqlite"] = "sqlite"
    path: str = "data/online.db"
    """The database file, relative to the repo."""
    timeout_s: Annotated[float, _gt(0)] = 5.0
    """How long a reader or writer waits for a lock before failing."""


class RedisOnlineStoreConfig(_Section):
    """``online_store: {type: redis, url: "${REDIS_URL}"}``: the production store."""

    type: Literal["redis"]
    url: str = "redis://127.0.0.1:6379/0"
    """``redis://[:password@]host:port/db``; a password here is never shown (see ``repr``)."""
    password: Secret | None = None
    timeout_s: Annotated[float, _gt(0)] = 1.0
    """Connect and read timeout; past it a request fails with OnlineStoreUnavailableError."""
    max_connections: Annotated[int, _ge(1)] = 64
    key_prefix: str = "fs"
    """Prefix of every key the store writes, so several stores can share one Redis."""
    cluster: bool = False
    """A Redis Cluster: ``url`` is any one of its nodes (docs/redis-cluster.md)."""
    startup_nodes: tuple[str, ...] = ()
    """More cluster nodes (``host:port``) to discover the cluster from when ``url``'s is down."""


def _mask_password(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "***"
    if not password:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


OnlineStoreConfig: typing.TypeAlias = SqliteOnlineStoreConfig | RedisOnlineStoreConfig
"""The ``online_store`` section, chosen by its ``type`` key."""


class ServingConfig(_Section):
    """``serving:``: the feature server's settings."""

    api_keys: tuple[Secret, ...] = ()
    """Keys accepted as ``Authorization: Bearer <key>`` or ``X-API-Key``; empty = no auth."""
    push_api_keys: tuple[Secret, ...] = ()
    """Keys that may also write (``POST /push``); a key only in ``api_keys`` cannot push.
    With any key configured, pushing needs one of these."""
    max_entities: Annotated[int, _ge(1)] = 1000
    """Most entity rows one request may ask for (413 beyond)."""
    max_body_bytes: Annotated[int, _ge(1024)] = 1_048_576
    """Largest request body accepted (413 beyond)."""
    registry_refresh_s: Annotated[float, _ge(0)] = 5.0
    """How often the server checks the registry for a new apply; 0 = never."""
    max_header_bytes: Annotated[int, _ge(1024)] = 16_384
    """Largest request head (request line and headers) accepted (431 beyond)."""
    header_timeout_s: Annotated[float, _gt(0)] = 10.0
    """Time from a request's first byte to the end of its headers; past it the connection closes."""
    body_timeout_s: Annotated[float, _gt(0)] = 10.0
    """Time to receive a whole request body once the headers are in (408 beyond)."""
    idle_timeout_s: Annotated[float, _gt(0)] = 5.0
    """A connection with no request in progress (new or kept alive) is closed after this."""
    max_connections: Annotated[int, _ge(1)] = 1000
    """Open connections per worker; at the limit the longest-idle one is closed for a new one."""
    docs: bool | None = None
    """Serve ``/docs``, ``/redoc`` and ``/openapi.json``; default: only when no api_keys."""

    @property
    def auth_enabled(self) -> bool:
        """Whether requests need a key: empty keys are ignored (``${KEY:-}`` = optional auth)."""
        return any(key.get_secret_value() for key in self.api_keys)


class FeatureLoggingConfig(_Section):
    """``feature_logging:``: where services with ``logging=`` write what they serve (G5)."""

    path: str = "data/feature_logs"
    """The log folder (Parquet, by service and date), relative to the repo."""
    queue_size: Annotated[int, _ge(1)] = 10_000
    """Requests waiting to be written; a request arriving at a full queue is dropped (counted)."""
    batch_rows: Annotated[int, _ge(1)] = 50_000
    """Rows per Parquet file at most; a file is written sooner after ``flush_interval_s``."""
    flush_interval_s: Annotated[float, _gt(0)] = 1.0
    """Seconds a logged row waits at most before it is written."""


class RepoConfig(_Section):
    """The contents of ``featurestore.yaml``.

    Example:
        >>> RepoConfig(project="fraud").online_store.type
        'sqlite'
    """

    project: Annotated[str, _Pattern(r"^[A-Za-z_][A-Za-z0-9_]*$")]
    registry: str = "data/registry.json"
    """The registry: a file relative to the repo, or a PostgreSQL URL (``postgresql://...``)."""
    offline_store: OfflineStoreConfig = _setting(default_factory=DuckDBOfflineStoreConfig)
    online_store: OnlineStoreConfig = _setting(default_factory=SqliteOnlineStoreConfig)
    serving: ServingConfig = _setting(default_factory=ServingConfig)
    feature_logging: FeatureLoggingConfig = _setting(default_factory=FeatureLoggingConfig)


# -- loading -----------------------------------------------------------------------------------


def _expand(value: Any, *, where: str, used: set[str]) -> Any:
    """``value`` with ``${VAR}`` references replaced; the values put in are added to ``used``."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            found = os.environ.get(name)
            if found is not None:
                used.add(found)
                return found
            if default is not None:
                return default
            msg = (
                f"{CONFIG_FILE}: '{where}' refers to ${{{name}}}, which is not set. "
                f"Export {name}, or write ${{{name}:-default}} to give a default."
            )
            raise ConfigError(msg)

        return _ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {
            k: _expand(v, where=f"{where}.{k}" if where else str(k), used=used)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_expand(v, where=f"{where}[{i}]", used=used) for i, v in enumerate(value)]
    return value


def load_config(repo_root: Path) -> RepoConfig:
    """Read and validate ``featurestore.yaml`` in ``repo_root``.

    No message (nor the exception chain a traceback shows) carries a configured secret.

    Raises:
        ConfigError: The file is missing, is not YAML, has unknown keys or bad values, or
            refers to an unset environment variable.
    """
    path = repo_root / CONFIG_FILE
    if not path.is_file():
        option = term("FeatureStore(repo_path=...)", cli="--repo", http="FEATURESTORE_REPO")
        msg = (
            f"No {CONFIG_FILE} in '{repo_root}'. Run 'featurestore init' to create a repo, "
            f"or point {option} at the folder that holds one."
        )
        raise ConfigError(msg)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"{path} cannot be read as UTF-8 text: {exc}."
        raise ConfigError(msg) from None
    raw = _parse(text, path)
    if not isinstance(raw, dict):
        msg = f"{path} must be a mapping with at least 'project: <name>'."
        raise ConfigError(msg)
    from_env: set[str] = set()
    data = _expand(raw, where="", used=from_env)
    check = _Check(secrets=_secrets(data) | from_env)
    config: RepoConfig | None = check.section(RepoConfig, data, where="")
    if config is None:
        msg = f"{path} is invalid: {' '.join(check.problems)}"
        raise ConfigError(msg)
    return config


_CACHE_FORMAT = 1


def _parse(text: str, path: Path) -> object:
    """The YAML document ``text`` (read from ``path``), parsed once per content.

    Importing PyYAML costs a fresh process about 8 ms, as much as the rest of loading the
    config (issue 10 item 13). So a document that JSON holds exactly (types included) is kept
    in ``__pycache__/featurestore.yaml.json`` beside the file, under the SHA-256 of its text,
    and a later load of the same text reads it back without PyYAML. Like Python's own
    ``__pycache__``, the cache trusts whoever can write the repo folder. A missing, stale or
    unreadable cache is ignored and a folder that cannot be written is no error;
    ``${ENV}`` references and validation run on every load, after this.

    Raises:
        ConfigError: ``text`` is not YAML.
    """
    cache = path.parent / "__pycache__" / f"{path.name}.json"
    digest = hashlib.sha256(text.encode()).hexdigest()
    with contextlib.suppress(OSError, ValueError):
        entry = json.loads(cache.read_bytes())
        if (
            isinstance(entry, dict)
            and entry.get("format") == _CACHE_FORMAT
            and entry.get("sha256") == digest
            and "document" in entry
        ):
            return entry["document"]
    import yaml

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # Not str(exc): it quotes the offending line, which may hold a literal secret.
        msg = f"{path} is not valid YAML: {_yaml_problem(exc)}."
        raise ConfigError(msg) from None
    if _json_holds(document):
        _write_cache(cache, {"format": _CACHE_FORMAT, "sha256": digest, "document": document})
    return document


def _json_holds(value: object) -> bool:
    """Whether JSON gives ``value`` back exactly: same types, no NaN, string keys only."""
    if value is None or type(value) in (str, bool, int):
        return True
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is list:
        return all(_json_holds(v) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _json_holds(v) for k, v in value.items())
    return False


def _write_cache(cache: Path, entry: dict[str, object]) -> None:
    """Write ``entry`` to ``cache`` atomically (readers see the old file or the new one)."""
    with contextlib.suppress(OSError):
        cache.parent.mkdir(exist_ok=True)
        fd, name = tempfile.mkstemp(dir=cache.parent, prefix=f".{cache.name}.", suffix=".tmp")
        temp = Path(name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(entry, handle)
            temp.replace(cache)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "unreadable"
    if mark is None:
        return str(problem)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"


# -- validation: key paths, closest keys and types, no secrets ---------------------------------

_INVALID: Any = object()
"""What a converter returns for a value it rejected (the problem is already recorded)."""

_HINTS: dict[type[_Section], dict[str, Any]] = {}


def _hints(section: type[_Section]) -> dict[str, Any]:
    """The section's field annotations, evaluated (``Annotated`` rules kept), cached."""
    hints = _HINTS.get(section)
    if hints is None:
        hints = typing.get_type_hints(section, include_extras=True)
        hints = _HINTS[section] = {name: hints[name] for name in section._names}
    return hints


def _sections(hint: Any) -> list[type[_Section]]:
    """The sections a setting's annotation can hold (unwrapping unions and ``Annotated``)."""
    if isinstance(hint, type) and issubclass(hint, _Section):
        return [hint]
    return [s for arg in typing.get_args(hint) for s in _sections(arg)]


def _tag(section: type[_Section]) -> str:
    """The ``type:`` value that selects ``section`` in a choice of sections."""
    tag: str = typing.get_args(_hints(section)["type"])[0]
    return tag


def _did_you_mean(word: str, candidates: list[str], prefix: str = "") -> str:
    match = closest(word, candidates)
    return f" Did you mean '{prefix}{match}'?" if match else ""


def _join(where: str, key: object) -> str:
    return f"{where}.{key}" if where else str(key)


_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


def _to_str(value: object) -> object:
    return value if isinstance(value, str) else _INVALID


def _to_secret(value: object) -> object:
    if isinstance(value, Secret):
        return value
    return Secret(value) if isinstance(value, str) else _INVALID


def _to_int(value: object) -> object:
    """An int from an int, an integral float, or their text (``${ENV}`` values are text)."""
    if isinstance(value, bool):
        return _INVALID
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return int(value)
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return _INVALID


def _to_float(value: object) -> object:
    if isinstance(value, bool):
        return _INVALID
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return float(value)
    return _INVALID


def _to_bool(value: object) -> object:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return _INVALID


def _to_text(value: object) -> object:
    """A pass-through setting's value as text: booleans as ``true``/``false``, numbers as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, str | int | float) else _INVALID


_SCALARS: dict[Any, tuple[Callable[[object], object], str]] = {
    str: (_to_str, "Input should be a valid string"),
    Secret: (_to_secret, "Input should be a valid string"),
    int: (_to_int, "Input should be a valid integer"),
    float: (_to_float, "Input should be a valid number"),
    bool: (_to_bool, "Input should be a valid boolean"),
}


class _Check:
    """One validation: converts settings by their annotations, collecting every problem.

    A problem is a sentence naming the key path as written in the file. It quotes no value but
    a section's unknown ``type``, and not even that one when it is in ``secrets`` (secret keys'
    values, URL passwords, anything from an environment variable).
    """

    def __init__(self, *, secrets: set[str]) -> None:
        self.secrets = secrets
        self.problems: list[str] = []

    def section(self, section: type[_Section], data: object, *, where: str) -> Any:
        """``section`` built from a mapping of its settings, or None when a problem was found."""
        if isinstance(data, section):
            return data
        start = len(self.problems)
        if not isinstance(data, dict):
            self.problems.append(
                f"'{where}' must be a mapping of its settings or a {section.__name__}."
            )
            return None
        known = list(_hints(section))
        prefix = f"{where}." if where else ""
        for key in data:
            if key not in known:
                hint = _did_you_mean(str(key), known, prefix)
                hint = hint or f" The keys there are: {', '.join(known)}."
                self.problems.append(f"'{_join(where, key)}' is not a setting.{hint}")
        for name in section._names:
            if name not in data and name not in section._defaults:
                self.problems.append(f"'{_join(where, name)}' is required.")
        values = self.settings(section, {k: v for k, v in data.items() if k in known}, where=where)
        return section(**values) if len(self.problems) == start else None

    def settings(
        self, section: type[_Section], values: dict[str, Any], *, where: str
    ) -> dict[str, Any]:
        """``values`` (a subset of the section's settings) converted; problems recorded."""
        hints = _hints(section)
        return {name: self.value(hints[name], v, _join(where, name)) for name, v in values.items()}

    def value(self, hint: Any, value: object, where: str) -> Any:
        """``value`` converted to ``hint``, or ``_INVALID`` (with the problem recorded)."""
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if origin is Annotated:
            value = self.value(args[0], value, where)
            for rule in args[1:] if value is not _INVALID else ():
                problem = rule.problem(value)
                if problem is not None:
                    self.problems.append(f"'{where}': {problem}.")
                    return _INVALID
            return value
        if origin in (types.UnionType, typing.Union):
            if value is None and type(None) in args:
                return None
            choices = [a for a in args if a is not type(None)]
            if len(choices) == 1:
                return self.value(choices[0], value, where)
            return self.choice(choices, value, where)
        if origin is Literal:
            if value in args:
                return value
            expected = " or ".join(f"'{a}'" for a in args)
            hint_text = _did_you_mean(value, list(args)) if isinstance(value, str) else ""
            self.problems.append(f"'{where}' must be {expected}.{hint_text}")
            return _INVALID
        if origin is tuple:
            if not isinstance(value, list | tuple):
                self.problems.append(f"'{where}' must be a list, e.g. [a, b] (or [a] for one).")
                return _INVALID
            items = [self.value(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
            return _INVALID if _INVALID in items else tuple(items)
        if origin is dict:  # settings passed through to a library (Spark conf): text values
            if not isinstance(value, dict):
                self.problems.append(f"'{where}' must be a mapping, e.g. {{key: value}}.")
                return _INVALID
            texts = {str(k): _to_text(v) for k, v in value.items()}
            bad = [k for k, v in texts.items() if v is _INVALID]
            for key in bad:
                self.problems.append(f"'{where}.{key}': Input should be a string or a number.")
            return _INVALID if bad else texts
        if isinstance(hint, type) and issubclass(hint, _Section):
            built = self.section(hint, value, where=where)
            return _INVALID if built is None else built
        convert, problem = _SCALARS[hint]
        converted = convert(value)
        if converted is _INVALID:
            self.problems.append(f"'{where}': {problem}.")
        return converted

    def choice(self, choices: list[Any], value: object, where: str) -> Any:
        """One of several sections, chosen by the mapping's ``type`` key."""
        by_tag = {_tag(c): c for c in choices}
        if isinstance(value, tuple(choices)):
            return value
        if not isinstance(value, dict):
            names = " or ".join(c.__name__ for c in choices)
            self.problems.append(f"'{where}' must be a mapping of its settings or a {names}.")
            return _INVALID
        tags = ", ".join(by_tag)
        if "type" not in value:
            self.problems.append(f"'{where}' needs a 'type:' key, one of: {tags}.")
            return _INVALID
        tag = str(value["type"])
        if tag not in by_tag:
            if tag in self.secrets:
                self.problems.append(
                    f"'{where}.type' is not a type of {where}. Use one of: {tags}."
                )
            else:
                self.problems.append(
                    f"'{where}.type' is '{tag}', which is not a type of {where}."
                    f"{_did_you_mean(tag, list(by_tag))} Use one of: {tags}."
                )
            return _INVALID
        built = self.section(by_tag[tag], value, where=where)
        return _INVALID if built is None else built


def _secrets(data: object, *, secret: bool = False) -> set[str]:
    """The configured secrets in ``data``: values of secret keys, URL passwords."""
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            found |= _secrets(value, secret=secret or key in _secret_keys())
    elif isinstance(data, list | tuple):
        for item in data:
            found |= _secrets(item, secret=secret)
    elif isinstance(data, Secret):
        found.add(data.get_secret_value())
    elif isinstance(data, str):
        if secret and data:
            found.add(data)
        with contextlib.suppress(ValueError):
            password = urlsplit(data).password
            if password:
                found.add(password)
    return found


_SECRET_KEYS: set[str] = set()


def _secret_keys() -> set[str]:
    """Keys whose values are secrets (``Secret`` settings), wherever they appear."""
    if not _SECRET_KEYS:
        _SECRET_KEYS.update(_secret_keys_of(RepoConfig))
    return _SECRET_KEYS


def _secret_keys_of(section: type[_Section]) -> set[str]:
    keys: set[str] = set()
    for name, hint in _hints(section).items():
        if _holds_secret(hint):
            keys.add(name)
        for sub in _sections(hint):
            keys |= _secret_keys_of(sub)
    return keys


def _holds_secret(hint: Any) -> bool:
    return hint is Secret or any(_holds_secret(arg) for arg in typing.get_args(hint))
