"""Registry hot reload: pick up a later ``apply`` (or a watermark move) without a restart.

Every ``serving.registry_refresh_s`` seconds the server reads the registry's stamp
(``Registry.stamp``: the file's inode, size and mtime, which the atomic rename of every write
moves; a PostgreSQL registry's version counter, which every apply and watermark move bumps);
when it moved, the snapshot is re-read. Both run in a worker thread. A registry that fails to
load (corrupt, the file vanished, the database unreachable) is logged and the previous snapshot
keeps being served; ``Registry.last_error`` keeps the reason, which ``/ready`` reports, until a
later version loads. With ``--workers N`` every worker runs its own watcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from typing import TYPE_CHECKING

import anyio.to_thread

from featurestore.errors import FeatureStoreError

if TYPE_CHECKING:
    from collections.abc import Hashable

    from featurestore.serving.metrics import ServingMetrics
    from featurestore.store import FeatureStore

__all__ = ["RegistryWatcher"]

logger = logging.getLogger(__name__)

_READ_NOW = object()


class RegistryWatcher:
    """Reloads ``store``'s registry snapshot when the registry changes.

    Args:
        store: The store whose ``refresh()`` re-reads the registry.
        interval_s: Seconds between checks.
        metrics: Counts reloads.
        stamp: The registry's stamp taken before the snapshot being served was read
            (default: read now, which misses an apply landing between that read and now).
    """

    def __init__(
        self,
        store: FeatureStore,
        *,
        interval_s: float,
        metrics: ServingMetrics,
        stamp: Hashable = _READ_NOW,
    ) -> None:
        self.store = store
        self.interval_s = interval_s
        self.metrics = metrics
        self._last = store.registry.stamp() if stamp is _READ_NOW else stamp
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> bool:
        """Reload when the registry changed since the last check; return whether it reloaded."""
        stamp = await anyio.to_thread.run_sync(self.store.registry.stamp)
        if stamp == self._last:
            return False
        self._last = stamp  # a registry that failed is retried once it changes again
        try:
            # It was loaded before: now a missing registry is a failure, not an empty one.
            snapshot = await anyio.to_thread.run_sync(
                functools.partial(self.store.refresh, missing_ok=False)
            )
        except FeatureStoreError as exc:
            logger.error(  # noqa: TRY400  # the message says it all; no traceback wanted
                "%s Serving the previous registry (serial %d) until it loads.",
                exc,
                self.store.snapshot.serial,
            )
            return False
        self.metrics.registry_reloads.inc()
        logger.info(
            "reloaded registry %s at serial %d", self.store.registry.location, snapshot.serial
        )
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check()
            except Exception:
                # A reload bug must not kill the watcher: keep serving, keep trying.
                logger.exception("registry watcher failed; retrying in %.1f s", self.interval_s)

    def start(self) -> None:
        """Start checking in the background (on the running event loop)."""
        if self._task is None and self.interval_s > 0:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the background checks."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
