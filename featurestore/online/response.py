"""OnlineResponse: the columnar result of an online lookup.

Values are kept column-major in the codec's Python form (timestamps as int microseconds) and
converted once per column on output, so a server can serialize a response without touching
each value twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from featurestore._time import from_micros
from featurestore.dtypes import Array, DType, Timestamp, to_arrow
from featurestore.errors import MissingDependencyError

if TYPE_CHECKING:
    from datetime import datetime

    import polars as pl

    from featurestore.online.base import FieldStatus

__all__ = ["OnlineResponse", "arrow_column"]


def _timestamps(values: list[Any]) -> list[Any]:
    return [None if v is None else from_micros(v) for v in values]


def _python(values: list[Any], dtype: DType) -> list[Any]:
    if dtype == Timestamp:
        return _timestamps(values)
    if dtype == Array(Timestamp):
        return [None if v is None else _timestamps(v) for v in values]
    return values


def arrow_column(values: list[Any], dtype: DType) -> pa.Array:
    """Codec-form values (timestamps as int microseconds) as an Arrow array of ``dtype``."""
    arrow_type = to_arrow(dtype)
    if dtype == Timestamp:
        return pa.array(values, type=pa.int64()).cast(arrow_type)
    if dtype == Array(Timestamp):
        return pa.array(values, type=pa.large_list(pa.int64())).cast(arrow_type)
    return pa.array(values, type=arrow_type)


class OnlineResponse:
    """Feature values of the entities of one online request, column by column.

    Attributes:
        join_keys: The join key columns, echoed from the request, in request order.
        features: Output name -> values (codec form: Timestamp values are int microseconds;
            use :meth:`to_dict` or :meth:`to_arrow` for datetimes).
        statuses: Output name -> one :class:`FieldStatus` per entity.
        event_micros: Output name -> the stored event timestamp (int microseconds) of the
            value's record, None when nothing usable is stored.
        dtypes: Column name -> feature or key type.
    """

    __slots__ = ("dtypes", "event_micros", "features", "join_keys", "statuses")

    def __init__(
        self,
        *,
        join_keys: dict[str, list[Any]],
        features: dict[str, list[Any]],
        statuses: dict[str, list[FieldStatus]],
        event_micros: dict[str, list[int | None]],
        dtypes: dict[str, DType],
    ) -> None:
        self.join_keys = join_keys
        self.features = features
        self.statuses = statuses
        self.event_micros = event_micros
        self.dtypes = dtypes

    def __len__(self) -> int:
        columns = next(iter(self.join_keys.values()), None)
        return len(columns) if columns is not None else 0

    @property
    def event_timestamps(self) -> dict[str, list[datetime | None]]:
        """Output name -> event timestamp (aware UTC) of each value's stored record."""
        return {name: _timestamps(values) for name, values in self.event_micros.items()}

    def to_dict(
        self, *, include_statuses: bool = False, include_event_timestamps: bool = False
    ) -> dict[str, list[Any]]:
        """``{column: [values]}``: join keys first, then features (Feast's shape).

        Args:
            include_statuses: Add a ``<name>__status`` column (status names) per feature.
            include_event_timestamps: Add a ``<name>__event_timestamp`` column per feature.

        Example:
            >>> response.to_dict()  # doctest: +SKIP
            {'user_id': [7], 'txn_count_7d': [3]}
        """
        out: dict[str, list[Any]] = {}
        for name, values in self.join_keys.items():
            out[name] = _python(values, self.dtypes[name])
        for name, values in self.features.items():
            out[name] = _python(values, self.dtypes[name])
        if include_statuses:
            for name, statuses in self.statuses.items():
                out[f"{name}__status"] = [s.value for s in statuses]
        if include_event_timestamps:
            for name, stamps in self.event_timestamps.items():
                out[f"{name}__event_timestamp"] = stamps
        return out

    def to_arrow(self) -> pa.Table:
        """An Arrow table with the declared types (the training frame's types)."""
        arrays = []
        names = []
        for group in (self.join_keys, self.features):
            for name, values in group.items():
                arrays.append(arrow_column(values, self.dtypes[name]))
                names.append(name)
        return pa.Table.from_arrays(arrays, names=names)

    def to_polars(self) -> pl.DataFrame:
        """A polars DataFrame with the declared types."""
        import polars as pl

        frame = pl.from_arrow(self.to_arrow())
        assert isinstance(frame, pl.DataFrame)
        return frame

    def to_pandas(self) -> Any:
        """A pandas DataFrame, converted from Arrow exactly as the training frame is."""
        try:
            import pandas  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError(
                feature="OnlineResponse.to_pandas", extra="pandas"
            ) from exc
        return self.to_arrow().to_pandas()
