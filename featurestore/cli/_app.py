"""The Typer app, its global options and the helpers every command shares."""

# No ``from __future__ import annotations`` here: Typer reads the parameter annotations at
# runtime to build the command line.

import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from featurestore import __version__
from featurestore._time import parse_timestamp
from featurestore.cli import render
from featurestore.errors import EntityFrameError, FeatureStoreError

if TYPE_CHECKING:
    from featurestore.store import FeatureStore

__all__ = [
    "CliState",
    "FeatureRefsOption",
    "FullFeatureNamesOption",
    "JsonOption",
    "LogLevel",
    "OutputFileOption",
    "PointInTime",
    "ServiceOption",
    "ViewsOption",
    "app",
    "keep_examples",
    "list_app",
    "parse_pairs",
    "parse_time",
    "request_value",
    "split_values",
    "state_of",
]


class LogLevel(StrEnum):
    """``--log-level`` choices."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class PointInTime(StrEnum):
    """``--point-in-time`` choices (see docs/point-in-time.md)."""

    EVENT = "event"
    AVAILABLE = "available"


class _Group(TyperGroup):
    """The root command group: turns FeatureStoreError into a message and exit code 1."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]  # typer.Context subclasses the vendored click Context
        try:
            return super().invoke(ctx)
        except FeatureStoreError as exc:
            state = ctx.obj if isinstance(ctx.obj, CliState) else None
            render.error(exc, debug=state is not None and state.debug)
            raise typer.Exit(1) from None


@dataclass
class CliState:
    """What the global options decide, shared by every command."""

    repo: Path
    debug: bool = False
    _store: "FeatureStore | None" = field(default=None, repr=False)

    def store(self) -> "FeatureStore":
        """The repo's FeatureStore; ``featurestore.yaml`` is read once, on first use.

        The store (and with it DuckDB, Arrow and Polars) is imported here, not at start-up, so
        ``--version``, ``--help`` and usage errors answer at once.
        """
        if self._store is None:
            from featurestore.store import FeatureStore

            self._store = FeatureStore(self.repo)
        return self._store

    def close(self) -> None:
        """Release the store's resources."""
        if self._store is not None:
            self._store.close()
            self._store = None


def state_of(ctx: typer.Context) -> CliState:
    state = ctx.obj
    if not isinstance(state, CliState):  # pragma: no cover - the root callback always runs
        msg = "featurestore CLI state missing; invoke commands through the 'featurestore' app."
        raise TypeError(msg)
    return state


class _StderrHandler(logging.Handler):
    """Writes log lines to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # pragma: no cover - logging must never crash a command
            self.handleError(record)


def _configure_logging(level: str) -> None:
    logger = logging.getLogger("featurestore")
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level.upper())


def _version(value: bool) -> None:
    if value:
        typer.echo(f"featurestore {__version__}")
        raise typer.Exit


_F = TypeVar("_F", bound=Callable[..., Any])


def keep_examples(func: _F) -> _F:
    """Show a command docstring's ``Example:`` block verbatim in ``--help``.

    Click re-wraps help paragraphs, which would run the example onto one line; a paragraph
    opening with a lone backspace character (click's no-rewrap marker) is left as written.
    """
    if func.__doc__:
        func.__doc__ = func.__doc__.replace("\n    Example:\n", "\n    \b\n    Example:\n")
    return func


app = typer.Typer(
    cls=_Group,
    name="featurestore",
    help="A feature store whose training frames and online lookups cannot disagree.\n\n"
    "Example:\n\n"
    "    featurestore init my_repo && cd my_repo && featurestore apply",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
list_app = typer.Typer(
    help="List the applied entities, feature views or feature services.\n\n"
    "Example:\n\n    featurestore list feature-views --json",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.callback()
def _root(
    ctx: typer.Context,
    repo: Annotated[
        Path,
        typer.Option(
            "--repo",
            "-r",
            envvar="FEATURESTORE_REPO",
            help="The feature repo folder (holding featurestore.yaml).",
            file_okay=False,
        ),
    ] = Path(),
    log_level: Annotated[
        LogLevel,
        typer.Option(
            "--log-level",
            envvar="FEATURESTORE_LOG_LEVEL",
            case_sensitive=False,
            help="Log verbosity (on stderr).",
        ),
    ] = LogLevel.WARNING,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    _configure_logging(log_level.value)
    state = CliState(repo=repo, debug=debug)
    ctx.obj = state
    ctx.call_on_close(state.close)


# -- option parsing helpers -------------------------------------------------------------------

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
OutputFileOption = Annotated[
    Path,
    typer.Option(
        "--output", "-o", metavar="FILE", dir_okay=False, help="Where to write (.parquet or .csv)."
    ),
]
FeatureRefsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--features",
        "-f",
        metavar="REF",
        help="'view:feature' refs; repeat the option or separate with commas.",
    ),
]
ServiceOption = Annotated[
    str | None, typer.Option("--service", "-s", metavar="NAME", help="A feature service name.")
]
FullFeatureNamesOption = Annotated[
    bool, typer.Option("--full-feature-names", help="Name output columns view__feature.")
]
ViewsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--views",
        "-v",
        metavar="VIEW",
        help="Only these views; repeat or separate with commas.",
    ),
]


def parse_time(value: str) -> datetime:
    """ISO 8601 on the command line, naive = UTC; bad input is a usage error (exit 2)."""
    try:
        return parse_timestamp(value, what="time")
    except EntityFrameError as exc:
        raise typer.BadParameter(str(exc)) from None


def split_values(values: list[str] | None) -> list[str]:
    """Repeated options whose values may also be comma-separated."""
    return [part.strip() for v in values or [] for part in v.split(",") if part.strip()]


def parse_pairs(text: str, *, option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            msg = (
                f"{option} expects key=value[,key=value...], e.g. {option} user_id=7; got {text!r}."
            )
            raise typer.BadParameter(msg)
        pairs[key.strip()] = value.strip()
    return pairs


def request_value(text: str) -> object:
    """A request field's value: a JSON literal (12.5, true, null, "x") or else the raw string."""
    try:
        value: object = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value
