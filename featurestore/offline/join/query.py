"""The SQL frame shared by the ``range`` and ``asof`` strategies.

Each strategy gives, per view, a query of ``(__fs_row, __fs_vals)`` (the winning row's
requested features as one struct, null when there is none); :func:`training_query` joins
them back onto the entity frame in input order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurestore.offline.join.spec import ROW_COL
from featurestore.offline.sql import Query, quote_ident
from featurestore.types import to_duckdb

if TYPE_CHECKING:
    from collections.abc import Callable

    from featurestore.offline.join.spec import JoinSpec, ViewRequest

__all__ = ["T_COL", "entity_keys_sql", "key_match", "training_query", "values_struct"]

T_COL = "__fs_t"
"""The entity row's time in a view's entity side (:func:`entity_keys_sql`)."""


def training_query(
    spec: JoinSpec,
    view_join: Callable[[JoinSpec, ViewRequest], Query],
    flat: Callable[[ViewRequest], bool] = lambda _: False,
) -> Query:
    """The full training-frame query: entity columns, then features, in input order.

    Args:
        spec: The join.
        view_join: One view's ``(__fs_row, __fs_vals)`` query (the strategy).
        flat: Whether a view's query gives ``(__fs_row, v0, v1, ...)`` instead.
    """
    query = Query().add("WITH __fs_entity AS (").extend(spec.entity).add(")")
    for i, request in enumerate(spec.requests):
        query.add(f", __fs_v{i} AS (").extend(view_join(spec, request)).add(")")
    features: dict[str, str] = {}
    joins: list[str] = []
    for i, request in enumerate(spec.requests):
        values = f"__fs_v{i}" if flat(request) else f"__fs_v{i}.__fs_vals"
        for j, (_, out) in enumerate(request.taken):
            features[out] = f"{values}.v{j} AS {quote_ident(out)}"
        joins.append(f" LEFT JOIN __fs_v{i} ON __fs_v{i}.{ROW_COL} = __fs_entity.{ROW_COL}")
    select = [f"__fs_entity.{quote_ident(c)}" for c in spec.entity_columns]
    select += [features[out] for out in spec.feature_order]
    query.add(" SELECT " + ", ".join(select) + " FROM __fs_entity")
    query.add("".join(joins))
    query.add(f" ORDER BY __fs_entity.{ROW_COL}")
    return query


def entity_keys_sql(request: ViewRequest, timestamp_column: str) -> str:
    """The entity rows that can match: keys cast to the view's key types, non-null."""
    record = request.record
    keys = [
        f"CAST({quote_ident(k)} AS {to_duckdb(record.key_dtypes[k])}) AS {quote_ident(k)}"
        for k in record.view.join_keys
    ]
    conds = [f"{quote_ident(k)} IS NOT NULL" for k in record.view.join_keys]
    conds.append(f"{quote_ident(timestamp_column)} IS NOT NULL")
    return (
        f"SELECT {ROW_COL}, {', '.join(keys)}, {quote_ident(timestamp_column)} AS {T_COL} "
        f"FROM __fs_entity WHERE {' AND '.join(conds)}"
    )


def values_struct(request: ViewRequest, prefix: str) -> str:
    """The values taken from a source row (``request.taken``) as one struct (``v0``, ...)."""
    fields = [f"v{j} := {prefix}{quote_ident(c)}" for j, (c, _) in enumerate(request.taken)]
    return "struct_pack(" + ", ".join(fields) + ")"


def key_match(request: ViewRequest, left: str, right: str) -> str:
    """Every join key of ``left`` equal to ``right``'s."""
    return " AND ".join(
        f"{left}.{quote_ident(k)} = {right}.{quote_ident(k)}" for k in request.record.view.join_keys
    )
