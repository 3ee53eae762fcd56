"""ParquetSource: where a feature view's rows live (a file, a directory, a glob, hive partitions)."""

from __future__ import annotations

from dataclasses import dataclass, field

from featurestore.definitions._names import check_name
from featurestore.errors import DefinitionError


@dataclass(frozen=True)
class ParquetSource:
    """Parquet files holding a feature view's rows, read in place by DuckDB.

    Args:
        path: A file, a directory (read recursively, hive partitions allowed) or a glob.
            A relative path is relative to the feature repo's root.
        timestamp_field: The event timestamp column: when the values became true.
        created_timestamp_field: Optional column of when a row was written; breaks ties
            between rows with the same event timestamp (later wins, null lowest).
        field_mapping: Optional renames from source column to feature/join-key name.

    Example:
        >>> ParquetSource(path="data/user_stats.parquet", timestamp_field="event_timestamp").path
        'data/user_stats.parquet'
    """

    path: str
    timestamp_field: str = field(kw_only=True)
    created_timestamp_field: str | None = field(default=None, kw_only=True)
    field_mapping: dict[str, str] = field(default_factory=dict, kw_only=True)

    def __post_init__(self) -> None:
        path: object = self.path  # checked at run time: repos are often untyped
        if not isinstance(path, str) or not path.strip():
            msg = f"ParquetSource path {self.path!r} is invalid; pass a file, directory or glob."
            raise DefinitionError(msg)
        check_name(self.timestamp_field, kind=f"timestamp_field of source '{self.path}'")
        if self.created_timestamp_field is not None:
            check_name(
                self.created_timestamp_field,
                kind=f"created_timestamp_field of source '{self.path}'",
            )
            if self.created_timestamp_field == self.timestamp_field:
                msg = (
                    f"ParquetSource '{self.path}' uses '{self.timestamp_field}' as both the event "
                    "and the created timestamp; name a different created_timestamp_field or none."
                )
                raise DefinitionError(msg)
        mapping = dict(self.field_mapping)
        for src, dst in mapping.items():
            check_name(dst, kind=f"field_mapping target of source '{self.path}'")
            if not src:
                msg = f"ParquetSource '{self.path}' has an empty field_mapping key."
                raise DefinitionError(msg)
        object.__setattr__(self, "field_mapping", mapping)

    def __hash__(self) -> int:
        return hash((self.path, self.timestamp_field, self.created_timestamp_field))
