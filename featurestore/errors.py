"""The whole exception hierarchy of featurestore; stdlib imports only.

Every error raised on purpose is a :class:`FeatureStoreError`. Constructors take keyword
arguments, build a message that names the object and the fix, and keep the values as attributes.

```
FeatureStoreError
├── DefinitionError          invalid DSL use: bad name, missing annotation, unknown dtype
├── ConfigError              featurestore.yaml or environment invalid
│   └── RegistryFileError    the registry file is missing, unreadable or malformed
├── RepoLoadError            importing a feature_repo file failed
├── NotFoundError
│   ├── EntityNotFoundError
│   ├── FeatureViewNotFoundError
│   ├── FeatureNotFoundError
│   └── FeatureServiceNotFoundError
├── RegistryConflictError    apply would break definitions, or the registry is stale
├── EntityFrameError         entity frame lacks join keys/timestamps, or a key has the wrong type
├── SourceError              Parquet source missing, unreadable or off-schema
├── OnlineStoreError
│   └── OnlineStoreUnavailableError   connection lost or timed out; retryable
│       └── OnlineStoreIntegrityError  data lost or replaced, or a foreign key; not retryable
├── MaterializationError
├── TransformationError      a transformation failed, returned the wrong shape or types
├── ValidationError          a window broke its view's expectations (G6); carries the result
├── SkewError                offline/online mismatch beyond tolerance; carries the report
└── MissingDependencyError   optional extra not installed (also an ImportError)

FeatureStoreWarning
```
"""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "ConfigError",
    "DefinitionError",
    "EntityFrameError",
    "EntityNotFoundError",
    "FeatureNotFoundError",
    "FeatureServiceNotFoundError",
    "FeatureStoreError",
    "FeatureStoreWarning",
    "FeatureViewNotFoundError",
    "MaterializationError",
    "MissingDependencyError",
    "NotFoundError",
    "OnlineStoreError",
    "OnlineStoreIntegrityError",
    "OnlineStoreUnavailableError",
    "RegistryConflictError",
    "RegistryFileError",
    "RepoLoadError",
    "SkewError",
    "SourceError",
    "Surface",
    "TransformationError",
    "ValidationError",
    "closest",
    "term",
]


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """Return the candidate closest to ``name``, or None when nothing is close.

    Example:
        >>> closest("user_stat", ["user_stats", "merchant_stats"])
        'user_stats'
    """
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    match = closest(name, candidates)
    return f" Did you mean '{match}'?" if match else ""


Surface = Literal["python", "cli", "http"]
"""Where a user meets an error: Python arguments, CLI flags, or HTTP JSON fields."""

_TERM = re.compile("\x1e([^\x1e\x1f]*)\x1f([^\x1e\x1f]*)\x1f([^\x1e\x1f]*)\x1e")
_SURFACES: dict[Surface, int] = {"python": 1, "cli": 2, "http": 3}


def term(python: str, *, cli: str | None = None, http: str | None = None) -> str:
    """A phrase of an error message worded for each surface; the others fall back to ``python``.

    The message keeps all forms; :meth:`FeatureStoreError.message` picks one, so the code that
    raises names the fix once and each entry point (``str(exc)``, the CLI, the server) shows it
    in the user's terms.

    Example:
        >>> err = FeatureStoreError(f"Pass {term('timestamp_column=...', cli='--timestamp-column')}.")
        >>> str(err), err.message("cli")
        ('Pass timestamp_column=....', 'Pass --timestamp-column.')
    """
    forms = (python, python if cli is None else cli, python if http is None else http)
    return "\x1e" + "\x1f".join(forms) + "\x1e"


class FeatureStoreError(Exception):
    """Base class of every error featurestore raises on purpose.

    ``str(exc)`` is the message as a Python user reads it; ``exc.message("cli")`` and
    ``exc.message("http")`` word its :func:`term` phrases as flags or JSON fields.
    """

    def message(self, surface: Surface = "python") -> str:
        """The message with each :func:`term` phrase worded for ``surface``."""
        index = _SURFACES[surface]
        return _TERM.sub(lambda m: m.group(index), super().__str__())

    def __str__(self) -> str:
        return self.message("python")


class FeatureStoreWarning(UserWarning):
    """Base class of featurestore's warnings."""


class DefinitionError(FeatureStoreError):
    """A definition (entity, source, feature view, service) is invalid."""


class ConfigError(FeatureStoreError):
    """featurestore.yaml or the environment it refers to is invalid."""


class RegistryFileError(ConfigError):
    """The registry file is missing, unreadable, or not a valid registry document.

    ``where`` is the path inside the document (``feature_views.user_stats.fingerprint``), empty
    when the file as a whole is at fault.
    """

    RESTORE = (
        "Restore the file from a backup or version control, or delete it and run "
        "'featurestore apply' (then materialize again: its watermarks are lost with it)."
    )

    def __init__(self, *, path: str, problem: str, where: str = "", fix: str = RESTORE) -> None:
        self.path = path
        self.where = where
        self.problem = problem
        at = f", at {where}" if where else ""
        super().__init__(f"Registry '{path}'{at}: {problem}. {fix}")


class RepoLoadError(FeatureStoreError):
    """A Python file of the feature repo failed to import."""

    def __init__(self, *, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(
            f"Could not import feature repo file '{path}': {reason}. "
            "Fix the file and run the command again."
        )


class NotFoundError(FeatureStoreError):
    """A named object is not in the registry."""

    kind = "Object"

    def __init__(self, *, name: str, candidates: Iterable[str] = (), hint: str = "") -> None:
        self.name = name
        fix = hint or "Define it in the feature repo and run 'featurestore apply'."
        super().__init__(
            f"{self.kind} '{name}' is not in the registry.{_did_you_mean(name, candidates)} {fix}"
        )


class EntityNotFoundError(NotFoundError):
    """An entity name is unknown."""

    kind = "Entity"


class FeatureViewNotFoundError(NotFoundError):
    """A feature view name is unknown."""

    kind = "Feature view"


class FeatureServiceNotFoundError(NotFoundError):
    """A feature service name is unknown."""

    kind = "Feature service"


class FeatureNotFoundError(NotFoundError):
    """A feature is not part of the view a reference names."""

    kind = "Feature"

    def __init__(self, *, view: str, name: str, candidates: Iterable[str] = ()) -> None:
        self.view = view
        super().__init__(
            name=f"{view}:{name}",
            candidates=[f"{view}:{c}" for c in candidates],
            hint=f"Feature view '{view}' has no feature '{name}'; add it to the view's schema "
            "and run 'featurestore apply', or fix the reference.",
        )


class RegistryConflictError(FeatureStoreError):
    """The registry changed underneath an apply, or an apply would break it."""


class EntityFrameError(FeatureStoreError):
    """The entity frame (or online entity rows) is missing columns or has wrong key types."""


class SourceError(FeatureStoreError):
    """A data source is missing, unreadable or does not match its declared schema."""


class OnlineStoreError(FeatureStoreError):
    """The online store failed."""


class OnlineStoreUnavailableError(OnlineStoreError):
    """The online store cannot be reached (connection refused, lost or timed out); retryable."""


class OnlineStoreIntegrityError(OnlineStoreUnavailableError):
    """The online store answers, but what it holds cannot be served; retrying does not help.

    Its data was lost or replaced since the registry's watermarks were recorded (another store
    epoch: a restarted Redis without persistence, ``FLUSHDB``, a replaced or deleted SQLite
    file, another ``online_store``), or a key under the store's prefix is not ours. The
    message names the store, what is wrong and the fix (usually ``featurestore
    materialize-incremental``, which rebuilds lost views).
    """


class MaterializationError(FeatureStoreError):
    """Materialization of a window failed; the previous online state is still served."""


class TransformationError(FeatureStoreError):
    """A transformation raised, returned the wrong columns, or returned the wrong types."""


class ValidationError(FeatureStoreError):
    """Rows of a view broke its Great Expectations suite (DESIGN G6), so nothing was written.

    ``kind`` says which rows: a materialization ``"window"`` (the watermark is unchanged too),
    rows pushed to the view (``"push"``), or a training frame's columns (``"training_frame"``,
    raised only when asked with ``validate="raise"``). ``result`` is the run
    (``featurestore.validation.result.ValidationResult``) with GE's own validation result.
    (STYLE.md's placeholder name ``DataValidationError`` is this class.)
    """

    def __init__(
        self,
        *,
        view: str,
        window: str,
        failures: Sequence[str],
        result: object = None,
        kind: Literal["window", "push", "training_frame"] = "window",
    ) -> None:
        self.view = view
        self.window = window
        self.failures = tuple(failures)
        self.result = result
        self.kind = kind
        lines = "".join(f"\n  - {f}" for f in self.failures)
        shown = f" ('featurestore validation-result {view}' shows Great Expectations' full result)"
        if kind == "push":
            head = f"Rows pushed to feature view '{view}' failed its expectations; none was written"
            fix = f"Fix the rows or the expectations, then push again{shown}."
        elif kind == "training_frame":
            head = f"The training frame's columns of feature view '{view}' failed its expectations"
            fix = (
                "Fix the source rows or the expectations, or pass validate=True to get the frame "
                "with the result attached (frame.validation)."
            )
        else:
            head = (
                f"Feature view '{view}' failed its expectations in window {window}; nothing was "
                "written and its watermark is unchanged"
            )
            fix = f"Fix the source rows or the expectations, then materialize again{shown}."
        super().__init__(f"{head}:{lines}\n{fix}")


class SkewError(FeatureStoreError):
    """Offline and online values disagree beyond the tolerance; ``report`` holds the figures."""

    def __init__(self, message: str, *, report: object = None) -> None:
        self.report = report
        super().__init__(message)


class MissingDependencyError(FeatureStoreError, ImportError):
    """An optional extra is not installed."""

    def __init__(self, *, feature: str, extra: str) -> None:
        self.extra = extra
        super().__init__(
            f"{feature} needs the '{extra}' extra: pip install 'featurestore[{extra}]'"
        )
