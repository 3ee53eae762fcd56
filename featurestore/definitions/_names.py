"""Validation of the names users give to definitions, shared by every definition module."""

from __future__ import annotations

import re

from featurestore.errors import DefinitionError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_PREFIX = "__fs"


def check_name(name: object, *, kind: str) -> str:
    """Return ``name`` if it is a valid identifier-like name, else raise DefinitionError."""
    if not isinstance(name, str) or not _NAME.match(name):
        msg = (
            f"{kind} name {name!r} is invalid: use letters, digits and underscores, "
            "starting with a letter or underscore (e.g. 'user_stats')."
        )
        raise DefinitionError(msg)
    if name.startswith(RESERVED_PREFIX):
        msg = f"{kind} name {name!r} is reserved: names starting with '{RESERVED_PREFIX}' are internal."
        raise DefinitionError(msg)
    return name


def check_unique(names: list[str], *, what: str, owner: str) -> None:
    """Raise DefinitionError naming the first duplicate in ``names``."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            msg = f"{owner} lists {what} '{name}' twice; remove the duplicate."
            raise DefinitionError(msg)
        seen.add(name)
