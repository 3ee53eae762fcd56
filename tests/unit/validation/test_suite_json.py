"""Expectations on a feature view: GE's objects -> GE's JSON, checked, stored in the registry
and diffed by plan, never in the fingerprint (issue 12 item 1)."""

from __future__ import annotations

import json
from pathlib import Path

import great_expectations as gx
import great_expectations.expectations as gxe
import pytest

from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.errors import DefinitionError, RegistryFileError
from featurestore.repo._json import decode_snapshot, encode_snapshot
from featurestore.repo.plan import diff
from featurestore.repo.snapshot import RegistrySnapshot, ViewRecord, view_fingerprint
from featurestore.types import Float64, Int64

USER = Entity("user", join_keys=["user_id"])
SOURCE = ParquetSource("data/s.parquet", timestamp_field="ts", created_timestamp_field="created")
SCHEMA = [Field("amount", Float64), Field("cnt", Int64)]


def view(expectations: object = None, **kwargs: object) -> FeatureView:
    return FeatureView(
        "stats",
        entities=[USER],
        source=SOURCE,
        schema=SCHEMA,
        expectations=expectations,
        **kwargs,  # type: ignore[arg-type]
    )


BETWEEN = gxe.ExpectColumnValuesToBeBetween(column="amount", min_value=0, max_value=10)
NOT_NULL = gxe.ExpectColumnValuesToNotBeNull(column="user_id")


def test_a_list_and_a_suite_of_the_same_expectations_give_the_same_json():
    suite = gx.ExpectationSuite(name="stats", expectations=[BETWEEN, NOT_NULL])
    assert view(suite).suite_json == view([BETWEEN, NOT_NULL]).suite_json
    assert view(suite) == view([BETWEEN, NOT_NULL])


def test_the_json_is_ges_own_without_ids_or_ge_version():
    suite = gx.ExpectationSuite(name="s", expectations=[BETWEEN], meta={"team": "risk"})
    stored = json.loads(view(suite).suite_json or "")
    assert stored == {
        "name": "s",
        "expectations": [
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "amount", "min_value": 0.0, "max_value": 10.0},
                "meta": {},
                "severity": "critical",
            }
        ],
        "meta": {"team": "risk"},
        "notes": None,
    }
    rebuilt = gx.ExpectationSuite(**stored)  # GE reads it back
    assert rebuilt.expectations[0].configuration.to_json_dict()["kwargs"]["max_value"] == 10.0
    assert view(stored).suite_json == view(suite).suite_json


def test_no_expectations_is_none_and_block_is_the_default():
    plain = view()
    assert plain.suite_json is None
    assert plain.on_failure == "block"


@pytest.mark.parametrize("column", ["user_id", "amount", "cnt", "ts", "created"])
def test_expectations_may_name_keys_features_and_timestamps(column: str):
    assert view([gxe.ExpectColumnValuesToNotBeNull(column=column)]).suite_json is not None


def test_an_expectation_on_a_column_the_view_lacks_is_refused():
    with pytest.raises(DefinitionError, match=r"'stats' has expectation .* column 'amout'"):
        view([gxe.ExpectColumnValuesToNotBeNull(column="amout")])
    pair = gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="amount", column_B="nope")
    with pytest.raises(DefinitionError, match="column 'nope'"):
        view([pair])


@pytest.mark.parametrize("bad", ["amount >= 0", [1, 2], [], {"expectations": []}, 3.5])
def test_something_other_than_ge_expectations_is_refused(bad: object):
    with pytest.raises(DefinitionError, match="Feature view 'stats'"):
        view(bad)


def test_on_failure_is_block_or_warn():
    assert view([BETWEEN], on_failure="warn").on_failure == "warn"
    with pytest.raises(DefinitionError, match="on_failure='stop'"):
        view([BETWEEN], on_failure="stop")


def record(v: FeatureView) -> ViewRecord:
    keys = {"user_id": Int64}
    return ViewRecord(v, keys, view_fingerprint(v, keys))


def snapshot(v: FeatureView, serial: int = 1) -> RegistrySnapshot:
    return RegistrySnapshot(
        project="p", serial=serial, entities={"user": USER}, feature_views={"stats": record(v)}
    )


def test_expectations_survive_the_registry_document():
    original = view([BETWEEN, NOT_NULL], on_failure="warn")
    text = json.dumps(encode_snapshot(snapshot(original)))
    back = decode_snapshot(json.loads(text), path=Path("registry.json"))
    restored = back.feature_views["stats"].view
    assert restored.suite_json == original.suite_json
    assert restored.on_failure == "warn"
    assert restored == original


def test_a_registry_without_the_keys_reads_as_no_expectations():
    document = encode_snapshot(snapshot(view()))
    del document["feature_views"]["stats"]["expectations"]
    del document["feature_views"]["stats"]["on_failure"]
    restored = decode_snapshot(document, path=Path("r.json")).feature_views["stats"].view
    assert (restored.suite_json, restored.on_failure) == (None, "block")


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("expectations", ["x"], "feature_views.stats.expectations: expected GE's JSON"),
        ("expectations", {"expectations": [{"kwargs": {}}]}, "not GE's JSON of an expectation"),
        ("on_failure", "stop", "feature_views.stats.on_failure: expected 'block' or 'warn'"),
    ],
)
def test_a_bad_suite_in_the_registry_file_is_refused_with_its_path(
    key: str, value: object, problem: str
):
    document = encode_snapshot(snapshot(view([BETWEEN])))
    document["feature_views"]["stats"][key] = value
    with pytest.raises(RegistryFileError, match=problem):
        decode_snapshot(document, path=Path("registry.json"))


def test_expectations_are_not_in_the_fingerprint():
    keys = {"user_id": Int64}
    assert view_fingerprint(view([BETWEEN]), keys) == view_fingerprint(view(), keys)


def test_plan_lists_added_and_removed_expectations_without_rematerialization():
    old, new = (
        view([BETWEEN, NOT_NULL]),
        view([gxe.ExpectColumnValuesToNotBeNull(column="cnt"), NOT_NULL], on_failure="warn"),
    )
    (change,) = [c for c in diff(snapshot(old), snapshot(new)) if c.kind == "feature view"]
    assert change.action == "change"
    assert not change.needs_materialization
    assert change.details == (
        "+ expectation expect_column_values_to_not_be_null(column=cnt)",
        "- expectation expect_column_values_to_be_between(column=amount, max_value=10.0, min_value=0.0)",
        "~ on_failure: block -> warn",
    )
    (same,) = [c for c in diff(snapshot(old), snapshot(old)) if c.kind == "feature view"]
    assert same.action == "unchanged"
    meta_only = view(gx.ExpectationSuite(name="stats", expectations=[BETWEEN, NOT_NULL], notes="n"))
    (noted,) = [c for c in diff(snapshot(old), snapshot(meta_only)) if c.kind == "feature view"]
    assert noted.details == ("~ expectations (meta or notes)",)
