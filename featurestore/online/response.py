"""OnlineResponse: the columnar result of an online lookup.

Values are kept column-major in the codec's Python form (timestamps as int microseconds) and
converted once per column on output, so a server can serialize a response without touching
each value twice. An OnlineResponse is a :class:`~featurestore.frames.Frame`: it converts to
polars and pandas exactly as a training frame does.
"""

from __future__ import annotations

import html
from collections import Counter
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa

from featurestore._time import from_micros
from featurestore.frames import arrow_to_pandas, arrow_to_polars, describe, describe_html
from featurestore.online.base import FieldStatus
from featurestore.types import Array, DType, Timestamp, to_arrow

if TYPE_CHECKING:
    from datetime import datetime

    import polars as pl

__all__ = ["OnlineResponse", "arrow_column"]

PREVIEW_ROWS: Final = 10
"""Rows shown by ``repr`` and ``_repr_html_``."""


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
        # A zero-copy view of the microseconds: a cast costs ~10 us a call, and Arrow would
        # check each value for a datetime if given the timestamp type directly.
        return pa.array(values, type=pa.int64()).view(arrow_type)
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
        return arrow_to_polars(self.to_arrow())

    def to_pandas(self) -> Any:
        """A pandas DataFrame with nullable dtypes, converted exactly as a training frame is.

        An Int64 feature with nulls is pandas ``Int64`` (not float64), as in training.

        Raises:
            MissingDependencyError: pandas is not installed.
        """
        return arrow_to_pandas(self.to_arrow(), what="OnlineResponse.to_pandas")

    # -- notebooks ----------------------------------------------------------------------------

    def _facts(self) -> list[tuple[str, str]]:
        facts = [
            ("rows", str(len(self))),
            ("join keys", ", ".join(self.join_keys)),
            ("features", ", ".join(self.features)),
        ]
        for name, statuses in self.statuses.items():
            counts = Counter(s.value for s in statuses)
            facts.append((f"{name} status", ", ".join(f"{n} {s}" for s, n in counts.items())))
        if len(self) > PREVIEW_ROWS:
            facts.append(("shown", f"the first {PREVIEW_ROWS} rows"))
        return facts

    def _preview(self) -> tuple[list[str], list[list[str]]]:
        """Column names and the first rows as text; a value not PRESENT shows its status."""
        shown = min(len(self), PREVIEW_ROWS)
        columns: list[list[str]] = []
        for name, values in self.join_keys.items():
            columns.append([str(v) for v in _python(values[:shown], self.dtypes[name])])
        for name, values in self.features.items():
            python = _python(values[:shown], self.dtypes[name])
            statuses = self.statuses[name]
            columns.append(
                [
                    repr(v) if statuses[i] is FieldStatus.PRESENT else statuses[i].value
                    for i, v in enumerate(python)
                ]
            )
        return [*self.join_keys, *self.features], [list(row) for row in zip(*columns, strict=True)]

    def __repr__(self) -> str:
        names, rows = self._preview()
        widths = [max([len(n), *(len(r[i]) for r in rows)]) for i, n in enumerate(names)]
        lines = ["  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
        table = "\n".join("  " + line.rstrip() for line in lines)
        return f"{describe(type(self).__name__, self._facts())}\n{table}"

    def _repr_html_(self) -> str:
        names, rows = self._preview()
        head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in rows
        )
        facts = describe_html(type(self).__name__, self._facts())
        return f"{facts}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
