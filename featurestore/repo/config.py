"""RepoConfig: featurestore.yaml, validated, with ``${ENV}`` references resolved.

Config is loaded once at the edge (the CLI, the server, ``FeatureStore``); components receive
their own section only.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from featurestore.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

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


def _expand(value: Any, *, where: str) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            found = os.environ.get(name)
            if found is not None:
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
        return {k: _expand(v, where=f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, where=f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def load_config(repo_root: Path) -> RepoConfig:
    """Read and validate ``featurestore.yaml`` in ``repo_root``.

    Raises:
        ConfigError: The file is missing, is not YAML, has unknown keys or bad values, or
            refers to an unset environment variable.
    """
    path = repo_root / CONFIG_FILE
    if not path.is_file():
        msg = (
            f"No {CONFIG_FILE} in '{repo_root}'. Run 'featurestore init' to create a repo, "
            "or pass --repo pointing at one."
        )
        raise ConfigError(msg)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        msg = f"{path} is not valid YAML: {exc}"
        raise ConfigError(msg) from exc
    if not isinstance(raw, dict):
        msg = f"{path} must be a mapping with at least 'project: <name>'."
        raise ConfigError(msg)
    try:
        return RepoConfig.model_validate(_expand(raw, where=""))
    except ValidationError as exc:
        problems = "; ".join(
            f"'{'.'.join(str(p) for p in err['loc'])}': {err['msg']}" for err in exc.errors()
        )
        msg = f"{path} is invalid: {problems}."
        raise ConfigError(msg) from exc
