"""Property: a view's ``event_column`` is the event timestamp of the row G1 picks, every strategy.

The skew report classifies ``not_materialized`` by it (DESIGN G5), so it must come from the
very row that supplies the view's features: checked against the brute-force oracle (the
oracle's winning row's ``event_ts``), with ties on event time, nulls, ttl boundaries, both
``point_in_time`` modes, and one view without the option beside one with it.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import pytest
from hypothesis import given, settings

from featurestore import FeatureRef, FeatureStore
from tests.conftest import make_repo
from tests.oracle import pit_oracle
from tests.property.test_training_frame import FEATURES_PY, M_SCHEMA, TTLS, U_SCHEMA, present
from tests.strategies import TTL, entity_rows, feature_rows, write_timeline


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    root = make_repo(tmp_path_factory.mktemp("events"), FEATURES_PY)
    write_timeline(root / "data/u", [], U_SCHEMA)
    write_timeline(root / "data/m", [], M_SCHEMA)
    fs = FeatureStore(root)
    fs.apply()
    return fs


def joined(
    fs: FeatureStore, entity: Any, refs: list[str], events: dict[str, str], **options: Any
) -> list[dict[str, Any]]:
    parsed = [FeatureRef.parse(r) for r in refs]
    by_view: dict[str, list[str]] = {}
    for ref in parsed:
        by_view.setdefault(ref.view, []).append(ref.feature)
    frame = fs.offline.training_frame(
        entity,
        [(fs.get_feature_view(v), features) for v, features in by_view.items()],
        output_names={r: f"{r.view}__{r.feature}" for r in parsed},
        timestamp_column="event_timestamp",
        event_columns=events,
        **options,
    )
    rows: list[dict[str, Any]] = frame.to_arrow().to_pylist()
    return rows


@pytest.mark.parametrize("strategy", ["asof", "range", "arrays"])
@pytest.mark.parametrize("point_in_time", ["event", "available"])
@pytest.mark.parametrize("view", ["u_nottl", "u_zero", "u_ttl"])
@settings(max_examples=15, deadline=None)
@given(rows=feature_rows(), m_rows=feature_rows(composite=True, with_created=False),
       entities=entity_rows(composite=True))  # fmt: skip
def test_event_column_is_the_winning_rows_event_timestamp(
    store: FeatureStore, strategy: str, point_in_time: str, view: str, rows, m_rows, entities
) -> None:
    write_timeline(store.repo_root / "data/u", rows, U_SCHEMA)
    write_timeline(store.repo_root / "data/m", m_rows, M_SCHEMA)
    got = joined(
        store,
        present(entities, UTC, "arrow", composite=True),
        [f"{view}:f_int", "m_ttl:f_str"],
        {view: "__u_event"},
        strategy=strategy,
        point_in_time=point_in_time,
    )
    winners = pit_oracle(
        entities,
        rows,
        join_keys=["user_id"],
        features=["f_int", "event_ts"],
        ttl=TTLS[view],
        point_in_time=point_in_time,  # type: ignore[arg-type]
    )
    m_values = pit_oracle(
        entities,
        m_rows,
        join_keys=["user_id", "merchant"],
        features=["f_str"],
        ttl=TTL,
        point_in_time=point_in_time,  # type: ignore[arg-type]
    )
    assert [list(r)[-3:] for r in got[:1]] == [[f"{view}__f_int", "m_ttl__f_str", "__u_event"]][
        : len(got[:1])
    ]
    assert [(r[f"{view}__f_int"], r["m_ttl__f_str"], r["__u_event"]) for r in got] == [
        (w["f_int"], m["f_str"], w["event_ts"]) for w, m in zip(winners, m_values, strict=True)
    ]
