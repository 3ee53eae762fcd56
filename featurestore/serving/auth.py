"""API keys: ``Authorization: Bearer <key>`` (what Feast clients send) or ``X-API-Key``."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from featurestore.repo.config import Secret

__all__ = ["ApiKeyChecker"]


class ApiKeyChecker:
    """Checks request headers against the configured keys, in constant time per key.

    Args:
        keys: The accepted keys (``serving.api_keys``); none means every request is allowed.

    Example:
        >>> from featurestore.repo.config import Secret
        >>> checker = ApiKeyChecker([Secret("s3cret")])
        >>> checker.allows({b"authorization": b"Bearer s3cret"})
        True
        >>> checker.allows({b"x-api-key": b"nope"})
        False
    """

    def __init__(self, keys: Iterable[Secret]) -> None:
        self._keys = tuple(k.get_secret_value().encode() for k in keys if k.get_secret_value())

    @property
    def enabled(self) -> bool:
        """Whether requests need a key."""
        return bool(self._keys)

    def _matches(self, candidate: bytes) -> bool:
        # Compare against every key (no early exit), so timing says nothing about which matched.
        found = False
        for key in self._keys:
            found |= hmac.compare_digest(candidate, key)
        return found

    def allows(self, headers: dict[bytes, bytes]) -> bool:
        """Whether the (lower-cased) request headers carry a valid key."""
        if not self._keys:
            return True
        authorization = headers.get(b"authorization")
        if authorization is not None:
            scheme, _, token = authorization.strip().partition(b" ")
            if scheme.lower() == b"bearer" and self._matches(token.strip()):
                return True
        api_key = headers.get(b"x-api-key")
        return api_key is not None and self._matches(api_key.strip())
