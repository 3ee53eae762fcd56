"""On-demand features of an online request: run the one executor once on the batch of entities.

The stored inputs are read with the request's other features (one round trip; those not
requested are hidden). Request fields come from the entity rows. Values are what the function
returns on the inputs the read produced, exactly as the training frame computes them.

Statuses of an on-demand feature: ``PRESENT`` when every stored input it depends on
(through upstream on-demand views too) is ``PRESENT``, else the first non-``PRESENT`` input
status in input order. The value is kept even then (the function ran on the null inputs, as it
does in training), so value and status together say what happened. The event timestamp is the
newest event timestamp of those inputs (None when none is stored).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from featurestore._time import parse_timestamp, to_utc
from featurestore.definitions import FeatureRef
from featurestore.errors import EntityFrameError, term
from featurestore.online.base import FieldStatus
from featurestore.online.response import arrow_column
from featurestore.types import Array, DType, Timestamp, to_polars

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from featurestore.definitions import Field
    from featurestore.transformations.graph import OnDemandPlan

__all__ = ["HIDDEN_PREFIX", "OnlineOnDemand"]

HIDDEN_PREFIX = "__fs_input__"
_PRESENT = FieldStatus.PRESENT
_ADD_FIELD = term(
    "Add it to every entity row",
    cli="Pass it with --request name=value",
    http='Add it as a column of "entities"',
)
_ENTITY_COLUMNS = term("entity_rows", http='"entities"')


def hidden_name(ref: FeatureRef) -> str:
    """The internal column of a stored input that was not requested."""
    return f"{HIDDEN_PREFIX}{ref.view}__{ref.feature}"


def _polars_column(name: str, values: list[Any], dtype: DType) -> pl.Series:
    """Decoded values as a polars column of ``dtype`` (the training frame's column type)."""
    if dtype == Timestamp or isinstance(dtype, Array):
        return pl.Series(name, arrow_column(values, dtype))
    return pl.Series(name, values, dtype=to_polars(dtype), strict=True)


def _codec_values(series: pl.Series, dtype: DType) -> list[Any]:
    """A polars column back in codec form (timestamps as int microseconds)."""
    if dtype == Timestamp:
        return series.dt.epoch("us").to_list()
    if dtype == Array(Timestamp):
        return series.list.eval(pl.element().dt.epoch("us")).to_list()
    return series.to_list()


def _request_series(field: Field, values: list[Any], views: str) -> pl.Series:
    target = to_polars(field.dtype)
    if field.dtype == Timestamp:
        try:
            values = [
                None
                if v is None
                else to_utc(v)
                if isinstance(v, datetime)
                else parse_timestamp(v, what=f"request field '{field.name}'")
                for v in values
            ]
        except TypeError as exc:
            msg = f"Request field '{field.name}' must be {field.dtype}: {exc}."
            raise EntityFrameError(msg) from exc
    kinds = sorted({type(v).__name__ for v in values if v is not None})
    msg = (
        f"Request field '{field.name}' of on-demand feature view(s) {views} is declared "
        f"{field.dtype}, but the request sent {', '.join(kinds)} values. Send values of the "
        "declared type."
    )
    # Python's bool is an int, and polars takes it as a number even when strict: a JSON
    # ``true`` is not an amount.
    if target.is_numeric() and "bool" in kinds:
        raise EntityFrameError(msg)
    try:
        return pl.Series(field.name, values, dtype=target, strict=True)
    except (TypeError, OverflowError, pl.exceptions.PolarsError) as exc:
        raise EntityFrameError(msg) from exc


@dataclass(frozen=True)
class OnlineOnDemand:
    """The on-demand part of one online read plan.

    Attributes:
        plan: The views to run and their inputs.
        columns_of: Stored input ref -> its column in the decoded features (output or hidden).
        dtypes: Stored input column -> its type.
        outputs: Requested on-demand ref -> its output name.
    """

    plan: OnDemandPlan
    columns_of: dict[FeatureRef, str]
    dtypes: dict[str, DType]
    outputs: dict[FeatureRef, str]
    # Derived once per plan (plans are cached per feature list), not on every request.
    _output_dtypes: dict[FeatureRef, DType] = dataclasses.field(
        init=False, repr=False, compare=False
    )
    _stored_columns: dict[str, list[str]] = dataclasses.field(init=False, repr=False, compare=False)
    """Per on-demand view requested: the columns of the stored inputs its statuses come from."""
    _field_views: dict[str, str] = dataclasses.field(init=False, repr=False, compare=False)
    """Per request field: the views reading it, quoted (for error messages)."""

    def __post_init__(self) -> None:
        schemas = {FeatureRef(v.name, f.name): f.dtype for v in self.plan.views for f in v.schema}
        object.__setattr__(self, "_output_dtypes", {ref: schemas[ref] for ref in self.outputs})
        stored_columns = {
            ref.view: [self.columns_of[r] for r in self.plan.stored_inputs(ref.view)]
            for ref in self.outputs
        }
        object.__setattr__(self, "_stored_columns", stored_columns)
        field_views = {
            f.name: ", ".join(
                f"'{v.name}'"
                for v in self.plan.views
                if any(f.name in s.field_names for s in v.request_sources)
            )
            for f in self.plan.request_fields
        }
        object.__setattr__(self, "_field_views", field_views)

    def check_request(
        self,
        entity_rows: list[dict[str, object]] | Mapping[str, Sequence[object]],
        n: int,
    ) -> dict[str, pl.Series]:
        """The request fields as typed columns (raises before any lookup when one is missing)."""
        out: dict[str, pl.Series] = {}
        for field in self.plan.request_fields:
            views = self._field_views[field.name]
            if isinstance(entity_rows, list):
                try:
                    values = [row[field.name] for row in entity_rows]
                except KeyError:
                    index = next(i for i, r in enumerate(entity_rows) if field.name not in r)
                    msg = (
                        f"Entity row {index} has no request field '{field.name}', which "
                        f"on-demand feature view(s) {views} read. "
                        f"{_ADD_FIELD}."
                    )
                    raise EntityFrameError(msg) from None
            else:
                if field.name not in entity_rows:
                    msg = (
                        f"{_ENTITY_COLUMNS} has no "
                        f"request field column '{field.name}', which "
                        f"on-demand feature view(s) {views} read. Add the column."
                    )
                    raise EntityFrameError(msg)
                values = list(entity_rows[field.name])
            if len(values) != n:  # pragma: no cover - lengths are checked with the keys
                msg = f"Request field '{field.name}' has {len(values)} values for {n} rows."
                raise EntityFrameError(msg)
            out[field.name] = _request_series(field, values, views)
        return out

    def compute(
        self,
        request: dict[str, pl.Series],
        n: int,
        features: dict[str, list[Any]],
        statuses: dict[str, list[FieldStatus]],
        events: dict[str, list[int | None]],
    ) -> None:
        """Run the views once on the batch; add their outputs to the three dicts."""
        columns = {
            column: _polars_column(column, features[column], self.dtypes[column])
            for column in dict.fromkeys(self.columns_of.values())
        }
        stored = {ref: columns[self.columns_of[ref]] for ref in self.plan.stored}
        produced = self.plan.run(request, stored, n)
        # One status and event column per view, shared by its outputs (as a stored view's).
        combined: dict[str, tuple[list[FieldStatus], list[int | None]]] = {}
        for ref, name in self.outputs.items():
            features[name] = _codec_values(produced[ref], self._output_dtypes[ref])
            view_columns = combined.get(ref.view)
            if view_columns is None:
                view_columns = combined[ref.view] = _combine(
                    self._stored_columns[ref.view], n, statuses, events
                )
            statuses[name], events[name] = view_columns


def _combine(
    columns: list[str],
    n: int,
    statuses: dict[str, list[FieldStatus]],
    events: dict[str, list[int | None]],
) -> tuple[list[FieldStatus], list[int | None]]:
    if not columns:
        return [_PRESENT] * n, [None] * n
    status_columns = [statuses[c] for c in columns]
    event_columns = [events[c] for c in columns]
    out_status: list[FieldStatus] = []
    out_events: list[int | None] = []
    for row in range(n):
        status = _PRESENT
        for column in status_columns:
            if column[row] is not _PRESENT:
                status = column[row]
                break
        out_status.append(status)
        stamps = [stamp for e in event_columns if (stamp := e[row]) is not None]
        out_events.append(max(stamps) if stamps else None)
    return out_status, out_events
