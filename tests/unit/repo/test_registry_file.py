"""Reading the registry file back: every bad file gives one RegistryFileError naming the place.

The document is written by a real apply (a view with a transform-free source, an on-demand view,
a service), then damaged the ways issue 10 reproduced.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from featurestore import FeatureService
from featurestore.errors import ConfigError, RegistryFileError
from featurestore.repo.registry import FileRegistry
from featurestore.repo.snapshot import view_fingerprint
from featurestore.types import String
from tests.unit.repo.test_registry import _ratio_view, apply, contents, view

RESTORE = "Restore the file from a backup or version control, or delete it and run"


@pytest.fixture
def registry(tmp_path: Path) -> FileRegistry:
    reg = FileRegistry(tmp_path / "data" / "registry.json", project="demo")
    ratio = _ratio_view()
    apply(reg, contents(view(), ratio, FeatureService("svc", features=[ratio, "user_stats:n"])))
    return reg


def document(registry: FileRegistry) -> dict[str, Any]:
    return json.loads(registry.path.read_text())


def write(registry: FileRegistry, doc: object) -> None:
    registry.path.write_text(json.dumps(doc))


def refused(registry: FileRegistry, *, where: str, problem: str) -> RegistryFileError:
    with pytest.raises(RegistryFileError) as info:
        registry.load()
    err = info.value
    assert isinstance(err, ConfigError)  # callers catching ConfigError keep working
    assert (err.path, err.where) == (str(registry.path), where)
    assert problem in err.problem
    message = str(err)
    assert message.startswith(f"Registry '{registry.path}'")
    assert "\n" not in message
    assert registry.last_error is err
    return err


def test_a_valid_registry_loads_and_clears_the_last_error(registry):
    good = registry.path.read_text()
    registry.path.write_text("{")
    with pytest.raises(RegistryFileError):
        registry.load()
    assert registry.last_error is not None
    registry.path.write_text(good)
    assert registry.load().serial == 1
    assert registry.last_error is None


def test_non_utf8_bytes(registry):
    registry.path.write_bytes(b'{"format_version": 1, "project": "\xff"}')
    err = refused(registry, where="", problem="not UTF-8 text (byte 34)")
    assert RESTORE in str(err)


@pytest.mark.parametrize(
    ("doc", "shown"), [(None, "null"), ([], "a list ([])"), ("x", 'a string ("x")')]
)
def test_a_document_that_is_not_an_object(registry, doc, shown):
    write(registry, doc)
    refused(registry, where="", problem=f"expected an object, got {shown}")


def test_a_directory_in_place_of_the_file(tmp_path):
    path = tmp_path / "registry.json"
    path.mkdir()
    registry = FileRegistry(path, project="demo")
    refused(registry, where="", problem="it is a directory, not a file")


def test_invalid_json_and_absurd_nesting(registry):
    registry.path.write_text("[" * 100_000)
    refused(registry, where="", problem="not valid JSON")
    registry.path.write_text('{"format_version": 1,')
    refused(registry, where="", problem="not valid JSON")


def test_a_missing_file_is_empty_unless_the_reader_already_had_one(registry):
    registry.path.unlink()
    assert registry.load().serial == 0
    assert registry.last_error is None
    with pytest.raises(RegistryFileError, match="the file is missing") as info:
        registry.load(missing_ok=False)
    assert registry.last_error is info.value


@pytest.mark.parametrize(
    ("damage", "where", "problem"),
    [
        (lambda d: d["feature_views"]["user_stats"].pop("schema"), "feature_views.user_stats.schema", "the key is missing"),
        (lambda d: d.update(serial="x"), "serial", 'expected an integer from 0 to 9223372036854775807, got a string ("x")'),
        (lambda d: d.update(serial=-1), "serial", "got an integer (-1)"),
        (lambda d: d.update(serial=True), "serial", "got a boolean (true)"),
        (lambda d: d["feature_views"]["user_stats"].update(fingerprint=123), "feature_views.user_stats.fingerprint", "expected a string, got an integer (123)"),
        (lambda d: d["feature_views"]["user_stats"].update(ttl_seconds=float("nan")), "feature_views.user_stats.ttl_seconds", "got a number (NaN)"),
        (lambda d: d["feature_views"]["user_stats"].update(ttl_seconds=1e300), "feature_views.user_stats.ttl_seconds", "a number of seconds from 0 to"),
        (lambda d: d["feature_views"]["user_stats"].update(online="yes"), "feature_views.user_stats.online", "expected true or false"),
        (lambda d: d["feature_views"]["user_stats"].update(watermark="soon"), "feature_views.user_stats.watermark", "Cannot parse timestamp 'soon'"),
        (lambda d: d["feature_views"]["user_stats"]["schema"][1].update(dtype="Float65"), "feature_views.user_stats.schema[1].dtype", "Unknown feature type 'Float65'"),
        (lambda d: d["feature_views"]["user_stats"]["schema"][0].update(name="bad name"), "feature_views.user_stats.schema[0]", "Field name 'bad name' is invalid"),
        (lambda d: d["feature_views"]["user_stats"]["entities"].append("ghost"), "feature_views.user_stats.entities[1]", "there is no entity 'ghost'"),
        (lambda d: d["feature_views"]["user_stats"]["key_dtypes"].clear(), "feature_views.user_stats.key_dtypes", "expected the view's join keys ['user_id'], got []"),
        (lambda d: d["feature_views"]["user_stats"]["tags"].update(team=7), "feature_views.user_stats.tags.team", "expected a string"),
        (lambda d: d["feature_views"]["user_stats"]["source"].update(path=""), "feature_views.user_stats.source", "path"),
        (lambda d: d["feature_views"]["user_stats"].update(transform={"function_path": 1}), "feature_views.user_stats.transform.function_path", "expected a string"),
        (lambda d: d["entities"]["user"].update(join_keys=[]), "entities.user", "has no join keys"),
        (lambda d: d["feature_services"]["svc"]["features"].append("user_stats:nope"), "feature_services.svc.features[2]", "view 'user_stats' has no feature 'nope'"),
        (lambda d: d["feature_services"]["svc"]["features"].append("ghost:n"), "feature_services.svc.features[2]", "there is no view 'ghost'"),
        (lambda d: d["on_demand_views"]["ratio"].update(mode="sql"), "on_demand_views.ratio.mode", "expected one of polars, python"),
        (lambda d: d["on_demand_views"]["ratio"]["view_inputs"].append("nocolon"), "on_demand_views.ratio.view_inputs[1]", "malformed"),
        (lambda d: d["on_demand_views"]["ratio"]["upstream"].append("ghost"), "on_demand_views.ratio.upstream[0]", "there is no on-demand view 'ghost'"),
        (lambda d: d["on_demand_views"].update(user_stats=d["on_demand_views"]["ratio"]), "on_demand_views.user_stats", "a feature view has the same name"),
        (lambda d: d.update(feature_views=[]), "feature_views", "expected an object mapping names to definitions, got a list"),
        (lambda d: d.update(project="other"), "project", "belongs to project 'other', not 'demo'"),
    ],
)  # fmt: skip
def test_each_bad_value_is_named_by_its_path(registry, damage, where, problem):
    doc = document(registry)
    damage(doc)
    write(registry, doc)
    refused(registry, where=where, problem=problem)


def test_another_format_version_says_to_upgrade(registry):
    doc = document(registry)
    doc["format_version"] = 2
    write(registry, doc)
    err = refused(registry, where="format_version", problem="format version an integer (2)")
    assert "Upgrade featurestore" in str(err)


def test_keys_this_version_does_not_know_are_ignored(registry):
    doc = document(registry)
    doc["written_by"] = "a later featurestore"
    doc["feature_views"]["user_stats"]["note"] = "abc"
    before = registry.load()
    write(registry, doc)
    assert registry.load() == before


def test_optional_keys_of_older_files_may_be_absent(registry):
    doc = document(registry)
    del doc["on_demand_views"]
    doc["feature_services"]["svc"]["features"] = ["user_stats:n"]
    del doc["feature_views"]["user_stats"]["transform"]
    write(registry, doc)
    snapshot = registry.load()
    assert snapshot.on_demand_views == {}
    assert snapshot.feature_views["user_stats"].transform is None


def test_a_join_key_typed_differently_in_two_views_is_refused(tmp_path):
    registry = FileRegistry(tmp_path / "registry.json", project="demo")
    apply(registry, contents(view(), view("user_totals")))
    doc = document(registry)
    doc["feature_views"]["user_totals"]["key_dtypes"]["user_id"] = "String"
    # A consistent fingerprint, as a hand-made file could carry: the key types are checked too.
    totals = registry.load().feature_views["user_totals"].view
    doc["feature_views"]["user_totals"]["fingerprint"] = view_fingerprint(
        totals, {"user_id": String}
    )
    write(registry, doc)
    refused(
        registry,
        where="feature_views.user_totals.key_dtypes.user_id",
        problem="join key 'user_id' is String here but Int64 in feature view 'user_stats'",
    )


def test_names_with_line_breaks_keep_the_message_on_one_line(registry):
    doc = document(registry)
    doc["feature_views"]["user_stats"]["entities"] = ["us\ner\u2028"]
    doc["feature_views"]["a\nb"] = doc["feature_views"].pop("user_stats")
    write(registry, doc)
    err = refused(registry, where='feature_views["a\\nb"].entities[0]', problem="no entity")
    assert len(str(err).splitlines()) == 1


@pytest.mark.parametrize(
    "edit",
    [
        lambda v: v["schema"][0].update(dtype="Float64"),
        lambda v: v["schema"].reverse(),
        lambda v: v["schema"].pop(),
        lambda v: v["key_dtypes"].update(user_id="String"),
        lambda v: v["source"].update(path="data/other.parquet"),
        lambda v: v.update(transform={"function_path": "features.py:f", "fingerprint": "abc"}),
    ],
)
def test_an_edit_of_what_the_fingerprint_covers_is_refused(registry, edit):
    """Stored online values are decoded with the schema the fingerprint stands for."""
    doc = document(registry)
    edit(doc["feature_views"]["user_stats"])
    write(registry, doc)
    refused(registry, where="feature_views.user_stats.fingerprint", problem="the file was edited")


def test_an_edit_of_what_the_fingerprint_does_not_cover_is_read(registry):
    doc = document(registry)
    view_doc = doc["feature_views"]["user_stats"]
    view_doc.update(ttl_seconds=5.0, online=False, description="d", owner="o", tags={"a": "b"})
    write(registry, doc)
    record = registry.load().feature_views["user_stats"]
    assert (record.view.ttl.total_seconds(), record.view.online) == (5.0, False)
