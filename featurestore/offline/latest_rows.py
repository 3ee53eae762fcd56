"""The newest row per key tuple in a window: what materialization writes online (G3).

Rows are ranked with the same order "newer" as the training join
(:func:`featurestore.offline.sql.newer_order_key`), so ties resolve the same way offline and
online (G3, "online equals offline", in docs/concepts.md's "Guarantees").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurestore.offline.sql import CREATED_TS, EVENT_TS, Query, newer_order_key, quote_ident

if TYPE_CHECKING:
    from datetime import datetime

    from featurestore.repo.registry import ViewRecord

__all__ = ["latest_rows_query"]


def latest_rows_query(
    scan: Query,
    record: ViewRecord,
    start: datetime,
    end: datetime,
    *,
    count: bool = False,
    ordered: bool = False,
) -> Query:
    """The newest row (by the one order) per key tuple with ``start <= event_ts < end``.

    Columns: join keys, the scan's features, ``__fs_event_ts``, ``__fs_created_ts``. With
    ``count=True``: one row holding the number of such key tuples. With ``ordered=True``:
    rows sorted by the join keys in name order (materialization writes them in key order).
    """
    keys = ", ".join(quote_ident(k) for k in record.view.join_keys)
    window = Query().add("SELECT * FROM (").extend(scan)
    window.add(f") WHERE {EVENT_TS} >= ? AND {EVENT_TS} < ?", start, end)
    if count:
        return (
            Query()
            .add("SELECT count(*) FROM (SELECT DISTINCT " + keys + " FROM (")
            .extend(window)
            .add("))")
        )
    features = [f for f in record.view.feature_names]
    fields = [f"v{j} := {quote_ident(f)}" for j, f in enumerate(features)]
    fields += [f"e := {EVENT_TS}", f"c := {CREATED_TS}"]
    outs = [quote_ident(k) for k in record.view.join_keys]
    outs += [f"__fs_vals.v{j} AS {quote_ident(f)}" for j, f in enumerate(features)]
    outs += [f"__fs_vals.e AS {EVENT_TS}", f"__fs_vals.c AS {CREATED_TS}"]
    query = Query().add(f"SELECT {', '.join(outs)} FROM (SELECT {keys}, ")
    query.add(f"arg_max(struct_pack({', '.join(fields)}), {newer_order_key()}) AS __fs_vals FROM (")
    query.extend(window).add(f") GROUP BY {keys})")
    if ordered:
        query.add(" ORDER BY " + ", ".join(quote_ident(k) for k in sorted(record.view.join_keys)))
    return query
