"""Which on-demand views a request needs, in which order, and which stored features feed them.

Training frames and online reads both plan their on-demand work here and run it with
:meth:`OnDemandPlan.run`, so both compute the same views, in the same (topological) order,
from the same inputs, through the one executor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from featurestore.definitions import FeatureRef
from featurestore.errors import DefinitionError
from featurestore.transformations.decorator import OnDemandInput
from featurestore.transformations.run import run_transformation

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from featurestore.definitions import Field
    from featurestore.transformations.decorator import OnDemandFeatureView

__all__ = ["OnDemandInput", "OnDemandPlan", "plan_on_demand"]


@dataclass(frozen=True)
class OnDemandPlan:
    """The on-demand work of one request.

    Attributes:
        views: Every on-demand view to run, upstream views first.
        stored: Every stored feature the views read (requested or not), first use first.
        request_fields: Every request field the views read (first declaration wins).
        inputs: Per view name, its input columns in the function's order.
    """

    views: tuple[OnDemandFeatureView, ...]
    stored: tuple[FeatureRef, ...]
    request_fields: tuple[Field, ...]
    inputs: dict[str, tuple[OnDemandInput, ...]]

    def stored_inputs(self, view: str) -> tuple[FeatureRef, ...]:
        """The stored features ``view`` depends on, directly or through upstream views."""
        out: list[FeatureRef] = []
        for item in self.inputs[view]:
            if item.kind == "feature" and item.ref is not None:
                out.append(item.ref)
            elif item.kind == "on_demand" and item.ref is not None:
                out += self.stored_inputs(item.ref.view)
        return tuple(dict.fromkeys(out))

    def run(
        self,
        request: Mapping[str, pl.Series],
        stored: Mapping[FeatureRef, pl.Series],
        height: int,
    ) -> dict[FeatureRef, pl.Series]:
        """Run every view on one batch of ``height`` rows, upstream first.

        Args:
            request: Each request field of :attr:`request_fields`, by name.
            stored: Each stored feature of :attr:`stored`, by ref.
            height: The rows of the batch.

        Returns:
            Every output of every view, by ref.

        Raises:
            TransformationError: A function raised or returned wrong rows, columns or types.
        """
        produced: dict[FeatureRef, pl.Series] = {}
        for view in self.views:
            inputs = []
            for item in self.inputs[view.name]:
                if item.kind == "request":
                    series = request[item.column]
                else:
                    assert item.ref is not None
                    series = stored[item.ref] if item.kind == "feature" else produced[item.ref]
                inputs.append(series.alias(item.column))
            result = run_transformation(view, pl.DataFrame(inputs, height=height))
            for name in view.feature_names:
                produced[FeatureRef(view.name, name)] = result.get_column(name)
        return produced


def plan_on_demand(
    refs: Iterable[FeatureRef], views: Mapping[str, OnDemandFeatureView]
) -> OnDemandPlan:
    """Plan the on-demand views behind ``refs`` (refs of stored views are ignored).

    Args:
        refs: The requested feature refs.
        views: The on-demand views by name (as loaded from the repo).

    Raises:
        DefinitionError: On-demand views depend on each other in a cycle.
    """
    order: list[OnDemandFeatureView] = []
    done: set[str] = set()
    active: list[str] = []

    def visit(view: OnDemandFeatureView) -> None:
        if view.name in done:
            return
        if view.name in active:
            cycle = " -> ".join([*active[active.index(view.name) :], view.name])
            msg = f"On-demand feature views depend on each other in a cycle: {cycle}. Break it."
            raise DefinitionError(msg)
        active.append(view.name)
        for upstream in view.upstream:
            visit(views.get(upstream.name, upstream))
        active.pop()
        done.add(view.name)
        order.append(view)

    for ref in refs:
        if ref.view in views:
            visit(views[ref.view])
    inputs = {view.name: view.inputs for view in order}
    stored: dict[FeatureRef, None] = {}
    fields: dict[str, Field] = {}
    for view in order:
        for item in inputs[view.name]:
            if item.kind == "feature" and item.ref is not None:
                stored.setdefault(item.ref)
            elif item.kind == "request" and item.field is not None:
                fields.setdefault(item.field.name, item.field)
    return OnDemandPlan(tuple(order), tuple(stored), tuple(fields.values()), inputs)
