"""RepoConfig: featurestore.yaml, validated, with ``${ENV}`` references resolved.

Config is loaded once at the edge (the CLI, the server, ``FeatureStore``); components receive
their own section only.
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from featurestore.errors import ConfigError, closest, term

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from pydantic_core import ErrorDetails

__all__ = [
    "CONFIG_FILE",
    "DuckDBOfflineStoreConfig",
    "OnlineStoreConfig",
    "RedisOnlineStoreConfig",
    "RepoConfig",
    "ServingConfig",
    "SqliteOnlineStoreConfig",
    "load_config",
]

CONFIG_FILE = "featurestore.yaml"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DuckDBOfflineStoreConfig(_Section):
    """``offline_store: {type: duckdb}``: DuckDB reads the Parquet sources in place."""

    type: Literal["duckdb"] = "duckdb"
    memory_limit: str | None = None
    """DuckDB's memory limit, e.g. ``"8GB"``; past it, joins spill to ``temp_directory``."""
    threads: int | None = Field(default=None, ge=1)
    temp_directory: str | None = None
    """Where DuckDB spills; relative to the repo. Default: DuckDB's own choice."""


class SqliteOnlineStoreConfig(_Section):
    """``online_store: {type: sqlite, path: data/online.db}``: the embedded default."""

    type: Literal["sqlite"] = "sqlite"
    path: str = "data/online.db"
    """The database file, relative to the repo."""
    timeout_s: float = Field(default=5.0, gt=0)
    """How long a reader or writer waits for a lock before failing."""


class RedisOnlineStoreConfig(_Section):
    """``online_store: {type: redis, url: "${REDIS_URL}"}``: the production store."""

    type: Literal["redis"]
    url: str = "redis://127.0.0.1:6379/0"
    """``redis://[:password@]host:port/db``; a password here is never logged."""
    password: SecretStr | None = None
    timeout_s: float = Field(default=1.0, gt=0)
    """Connect and read timeout; past it a request fails with OnlineStoreUnavailableError."""
    max_connections: int = Field(default=64, ge=1)
    key_prefix: str = "fs"
    """Prefix of every key the store writes, so several stores can share one Redis."""

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """The fields, with a password in ``url`` masked (reprs end up in logs)."""
        for name, value in super().__repr_args__():
            yield name, (_mask_password(value) if name == "url" else value)


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


OnlineStoreConfig = Annotated[
    SqliteOnlineStoreConfig | RedisOnlineStoreConfig, Field(discriminator="type")
]


class ServingConfig(_Section):
    """``serving:``: the feature server's settings."""

    api_keys: tuple[SecretStr, ...] = ()
    """Keys accepted as ``Authorization: Bearer <key>`` or ``X-API-Key``; empty = no auth."""
    max_entities: int = Field(default=1000, ge=1)
    """Most entity rows one request may ask for (413 beyond)."""
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    """Largest request body accepted (413 beyond)."""
    registry_refresh_s: float = Field(default=5.0, ge=0)
    """How often the server checks the registry for a new apply; 0 = never."""
    max_header_bytes: int = Field(default=16_384, ge=1024)
    """Largest request head (request line and headers) accepted (431 beyond)."""
    header_timeout_s: float = Field(default=10.0, gt=0)
    """Time from a request's first byte to the end of its headers; past it the connection closes."""
    body_timeout_s: float = Field(default=10.0, gt=0)
    """Time to receive a whole request body once the headers are in (408 beyond)."""
    idle_timeout_s: float = Field(default=5.0, gt=0)
    """A connection with no request in progress (new or kept alive) is closed after this."""
    max_connections: int = Field(default=1000, ge=1)
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
    queue_size: int = Field(default=10_000, ge=1)
    """Requests waiting to be written; a request arriving at a full queue is dropped (counted)."""
    batch_rows: int = Field(default=50_000, ge=1)
    """Rows per Parquet file at most; a file is written sooner after ``flush_interval_s``."""
    flush_interval_s: float = Field(default=1.0, gt=0)
    """Seconds a logged row waits at most before it is written."""


class RepoConfig(_Section):
    """The contents of ``featurestore.yaml``.

    Example:
        >>> RepoConfig(project="fraud").online_store.type
        'sqlite'
    """

    project: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    registry: str = "data/registry.json"
    """The registry file, relative to the repo."""
    offline_store: DuckDBOfflineStoreConfig = DuckDBOfflineStoreConfig()
    online_store: OnlineStoreConfig = SqliteOnlineStoreConfig()
    serving: ServingConfig = ServingConfig()
    feature_logging: FeatureLoggingConfig = FeatureLoggingConfig()


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
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        # Not str(exc): it quotes the offending line, which may hold a literal secret.
        msg = f"{path} is not valid YAML: {_yaml_problem(exc)}."
        raise ConfigError(msg) from None
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"{path} cannot be read as UTF-8 text: {exc}."
        raise ConfigError(msg) from None
    if not isinstance(raw, dict):
        msg = f"{path} must be a mapping with at least 'project: <name>'."
        raise ConfigError(msg)
    from_env: set[str] = set()
    data = _expand(raw, where="", used=from_env)
    try:
        return RepoConfig.model_validate(data)
    except ValidationError as exc:
        secrets = _secrets(data) | from_env
        msg = f"{path} is invalid: {' '.join(_problem(err, secrets) for err in exc.errors())}"
    # Raised outside the except block: pydantic's error quotes the values, secrets included.
    raise ConfigError(msg)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "unreadable"
    if mark is None:
        return str(problem)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"


# -- error messages: key paths, closest keys and types, no secrets ---------------------------

_QUOTED = re.compile(r"'([^']*)'")
_Level = type[BaseModel] | dict[str, type[BaseModel]] | None
"""What a config key holds: a section, a choice of sections by ``type``, or a plain value."""


def _level_of(annotation: object) -> _Level:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    choices = [a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    if not choices:
        return None
    return {get_args(c.model_fields["type"].annotation)[0]: c for c in choices}


def _walk(loc: tuple[int | str, ...]) -> tuple[str, _Level, _Level]:
    """The key path as written in the file (no pydantic type tags), its level and its parent's."""
    shown = ""
    parent: _Level = None
    level: _Level = RepoConfig
    for part in loc:
        if isinstance(level, dict) and part in level:
            level = level[str(part)]  # pydantic's tag of the chosen section: not a key
            continue
        parent = level
        if isinstance(part, int):
            shown += f"[{part}]"
        else:
            shown = f"{shown}.{part}" if shown else part
        fields = level.model_fields if isinstance(level, type) else {}
        level = _level_of(fields[part].annotation) if part in fields else None
    return shown, level, parent


def _tags(level: _Level) -> list[str]:
    return list(level) if isinstance(level, dict) else []


def _did_you_mean(word: str, candidates: list[str], prefix: str = "") -> str:
    match = closest(word, candidates)
    return f" Did you mean '{prefix}{match}'?" if match else ""


def _problem(err: ErrorDetails, secrets: set[str]) -> str:
    """One error of pydantic's as a sentence in the file's terms.

    It quotes no value but a section's unknown ``type``, and not even that one when it is in
    ``secrets`` (secret keys' values, URL passwords, anything from an environment variable).
    """
    shown, level, parent = _walk(err["loc"])
    kind, ctx = err["type"], err.get("ctx", {})
    if kind == "extra_forbidden":
        head, _, key = shown.rpartition(".")
        known = list(parent.model_fields) if isinstance(parent, type) else []
        prefix = f"{head}." if head else ""
        hint = _did_you_mean(key, known, prefix) or f" The keys there are: {', '.join(known)}."
        return f"'{shown}' is not a setting.{hint}"
    if kind == "union_tag_invalid":
        tag, tags = str(ctx.get("tag")), _tags(level)
        if tag in secrets:
            return f"'{shown}.type' is not a type of {shown}. Use one of: {', '.join(tags)}."
        return (
            f"'{shown}.type' is '{tag}', which is not a type of {shown}."
            f"{_did_you_mean(tag, tags)} Use one of: {', '.join(tags)}."
        )
    if kind == "union_tag_not_found":
        return f"'{shown}' needs a 'type:' key, one of: {', '.join(_tags(level))}."
    if kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        value = err["input"]
        hint = _did_you_mean(value, _QUOTED.findall(expected)) if isinstance(value, str) else ""
        return f"'{shown}' must be {expected}.{hint}"
    if kind == "missing":
        return f"'{shown}' is required."
    if kind in {"tuple_type", "list_type"}:
        return f"'{shown}' must be a list, e.g. [a, b] (or [a] for one)."
    return f"'{shown}': {err['msg']}."


def _secrets(data: object, *, secret: bool = False) -> set[str]:
    """The configured secrets in raw config ``data``: values of secret keys, URL passwords."""
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            found |= _secrets(value, secret=secret or key in _SECRET_KEYS)
    elif isinstance(data, list):
        for item in data:
            found |= _secrets(item, secret=secret)
    elif isinstance(data, str):
        if secret and data:
            found.add(data)
        with contextlib.suppress(ValueError):
            password = urlsplit(data).password
            if password:
                found.add(password)
    return found


def _secret_keys(model: type[BaseModel]) -> set[str]:
    keys: set[str] = set()
    for name, info in model.model_fields.items():
        if "SecretStr" in repr(info.annotation):
            keys.add(name)
        level = _level_of(info.annotation)
        for section in level.values() if isinstance(level, dict) else [level] if level else []:
            keys |= _secret_keys(section)
    return keys


_SECRET_KEYS = _secret_keys(RepoConfig)
"""Keys whose values are secrets (``SecretStr`` fields), wherever they appear."""
