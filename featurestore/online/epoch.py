"""The store epoch: which contents of the online store the registry's watermarks describe.

A view's watermark says that every row below it is in the online store. That holds only for
the store it was written to: a Redis restarted without persistence, a ``FLUSHDB``, a replaced
or deleted SQLite file, or another configured ``online_store`` holds none of it. So every
writer of online records (materialization today; pushes and aggregation tiles write the same
way) first calls ``OnlineStore.ensure_epoch()``, which writes a random epoch into an empty
store, and the registry records each watermark together with that epoch
(``ViewRecord.epoch``). Layout of the epoch in each store: docs/online-format.md.

A view is **lost** when its watermark was recorded under an epoch that is not the store's
current one (the store has none, or another). A lost view is refused on reads and by
``/ready`` (:class:`~featurestore.errors.OnlineStoreIntegrityError`), flagged by ``status``,
and rebuilt from the beginning by ``materialize-incremental``. A watermark without an epoch
(recorded before epochs existed) is trusted: there is nothing to compare it with, and the
next materialization records the epoch.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterable

    from featurestore.repo.registry import ViewRecord

__all__ = ["EPOCH_VERSION", "is_lost", "lost_reason", "lost_views", "new_epoch"]

EPOCH_VERSION: Final = 1
"""Version of the epoch value: 32 lowercase hex digits (128 random bits)."""


def new_epoch() -> str:
    """A fresh random epoch (see :data:`EPOCH_VERSION`)."""
    return secrets.token_hex(16)


def is_lost(record: ViewRecord, store_epoch: str | None) -> bool:
    """Whether ``record``'s watermark was recorded under another epoch than the store's."""
    return record.watermark is not None and record.epoch is not None and record.epoch != store_epoch


def lost_views(records: Iterable[ViewRecord], store_epoch: str | None) -> list[ViewRecord]:
    """The online views among ``records`` that are lost in the store of ``store_epoch``."""
    return [r for r in records if r.view.online and is_lost(r, store_epoch)]


def lost_reason(records: Iterable[ViewRecord], store_epoch: str | None, location: str) -> str:
    """Why the lost ``records`` cannot be served, naming the store, the views and the fix."""
    lost = sorted(records, key=lambda r: r.view.name)
    names = ", ".join(f"'{r.view.name}'" for r in lost)
    recorded = sorted({str(r.epoch)[:8] for r in lost})
    if store_epoch is None:
        now = (
            "the store now has no epoch: it was emptied, restarted without persistence, "
            "replaced by a new file, or is another store"
        )
    else:
        now = f"the store now has epoch {store_epoch[:8]}: it is another store"
    return (
        f"The online store ({location}) does not hold what the registry says was materialized "
        f"for feature view{'s' if len(lost) > 1 else ''} {names}: the watermark was recorded "
        f"under store epoch {', '.join(recorded)}, and {now}. Run 'featurestore "
        "materialize-incremental' to rebuild from the beginning."
    )
