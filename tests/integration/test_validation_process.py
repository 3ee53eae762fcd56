"""Expectations across processes (issue 12): they survive the registry and a fresh process, the
CLI prints a blocked window and exits 1, a changed suite shows in ``plan`` without making
values stale, a machine without Great Expectations gets one line naming the extra, and the
paths that do not validate never import GE."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from featurestore import FeatureStore
from featurestore.online.response import FieldStatus
from tests.conftest import make_repo, write_parquet
from tests.integration.test_validation_gate import BAD_DAY2, CLEAN, DAY1, DAY2, DAY3, write_rows

ROOT = Path(__file__).resolve().parents[2]

FEATURES_PY = """
import great_expectations.expectations as gxe

from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Float64, Int64

user = Entity("user", join_keys=["user_id"])

stats = FeatureView(
    name="stats",
    entities=[user],
    source=ParquetSource("data/s.parquet", timestamp_field="ts"),
    schema=[Field("amount", Float64), Field("cnt", Int64)],
    expectations=[gxe.ExpectColumnValuesToBeBetween(column="amount", min_value=MIN)],
)
"""

# GE's JSON of the same suite: a repo file that imports no GE at all.
FEATURES_JSON_PY = """
from featurestore import Entity, FeatureView, Field, ParquetSource
from featurestore.types import Float64, Int64

user = Entity("user", join_keys=["user_id"])

stats = FeatureView(
    name="stats",
    entities=[user],
    source=ParquetSource("data/s.parquet", timestamp_field="ts"),
    schema=[Field("amount", Float64), Field("cnt", Int64)],
    expectations={
        "name": "stats",
        "expectations": [
            {"type": "expect_column_values_to_be_between",
             "kwargs": {"column": "amount", "min_value": 0}},
        ],
    },
)
"""

HIDE_GX = """
import sys

class _HideGreatExpectations:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "great_expectations":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _HideGreatExpectations())
"""


def run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
        check=False,
    )


def cli(repo: Path, *args: str, hide_gx: bool = False) -> subprocess.CompletedProcess[str]:
    code = (HIDE_GX if hide_gx else "") + (
        "import sys\nfrom featurestore.cli.main import main\n"
        f"sys.argv = ['featurestore', *{list(args)!r}]\nmain()\n"
    )
    return run(code, repo)


def repo(tmp_path: Path, features_py: str = FEATURES_PY, minimum: float = 0) -> Path:
    root = make_repo(tmp_path / "repo", features_py.replace("MIN", repr(minimum)))
    write_rows(root, CLEAN)
    return root


def test_a_blocked_window_in_a_fresh_process_prints_each_failure_and_exits_1(tmp_path: Path):
    root = repo(tmp_path)
    assert cli(root, "apply").returncode == 0
    assert cli(root, "materialize", DAY1.isoformat(), DAY2.isoformat()).returncode == 0
    write_rows(root, BAD_DAY2)

    blocked = cli(root, "materialize", DAY2.isoformat(), DAY3.isoformat())

    assert blocked.returncode == 1
    assert "Feature view 'stats' failed its expectations in window" in blocked.stderr
    assert f"[{DAY2.isoformat()}, {DAY3.isoformat()})" in blocked.stderr
    assert (
        "expect_column_values_to_be_between(column=amount, min_value=0.0): "
        "1 of 2 rows unexpected, e.g. [-7.5]" in blocked.stderr
    )
    shown = cli(root, "validation-result", "stats", "--json")
    assert shown.returncode == 0, shown.stderr
    result = json.loads(shown.stdout)
    assert result["success"] is False
    assert result["failures"][0]["unexpected_count"] == 1
    assert result["gx_result"]["statistics"]["unsuccessful_expectations"] == 1
    status = json.loads(cli(root, "status", "--json").stdout)
    assert status[0]["watermark"] == "2026-01-02T00:00:00Z"
    assert status[0]["validation"]["success"] is False
    validate = cli(
        root, "validate", "stats", "--start", DAY1.isoformat(), "--end", DAY2.isoformat()
    )
    assert validate.returncode == 0, validate.stderr
    assert "passed of 1 expectations on 2 rows" in validate.stdout


def test_expectations_survive_the_registry_and_a_fresh_process(tmp_path: Path):
    root = repo(tmp_path)
    with FeatureStore(root) as store:
        applied = store.apply().target.feature_views["stats"].view
    document = json.loads((root / "data/registry.json").read_text())
    stored = document["feature_views"]["stats"]["expectations"]
    assert stored["expectations"] == [
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "amount", "min_value": 0.0},
            "meta": {},
            "severity": "critical",
        }
    ]
    assert document["feature_views"]["stats"]["on_failure"] == "block"
    code = (
        "from featurestore import FeatureStore\n"
        "store = FeatureStore('.')\n"
        "view = store.get_feature_view('stats').view\n"
        "print(view.suite_json)\n"
        "print(store.plan().has_changes)\n"
    )
    fresh = run(code, root)
    assert fresh.returncode == 0, fresh.stderr
    suite_json, has_changes = fresh.stdout.splitlines()
    assert suite_json == applied.suite_json
    assert has_changes == "False"


def test_a_changed_suite_shows_in_plan_and_keeps_values_present(tmp_path: Path):
    root = repo(tmp_path)
    with FeatureStore(root) as store:
        store.apply()
        store.materialize(DAY1, DAY2)
        fingerprint = store.get_feature_view("stats").fingerprint
    (root / "features.py").write_text(FEATURES_PY.replace("MIN", "-100"))

    planned = cli(root, "plan")
    assert planned.returncode == 0, planned.stderr
    assert (
        "+ expectation expect_column_values_to_be_between(column=amount, min_value=-100.0)"
        in planned.stdout
    )
    assert (
        "- expectation expect_column_values_to_be_between(column=amount, min_value=0.0)"
        in planned.stdout
    )
    with FeatureStore(root) as store:
        (change,) = [c for c in store.apply().changes if c.name == "stats"]
        assert change.action == "change"
        assert not change.needs_materialization
        assert store.get_feature_view("stats").fingerprint == fingerprint
        got = store.get_online_features(["stats:amount"], {"user_id": [1]}, request_time=DAY3)
        assert got.statuses["amount"] == [FieldStatus.PRESENT]
        assert got.to_dict()["amount"] == [10.0]


@pytest.mark.parametrize(
    ("features_py", "named"),
    [
        (FEATURES_PY, "Repo file 'features.py' imports great_expectations"),
        (FEATURES_JSON_PY, "Feature view 'stats' has expectations"),
    ],
)
def test_apply_without_great_expectations_is_one_line_naming_the_extra(
    tmp_path: Path, features_py: str, named: str
):
    root = repo(tmp_path, features_py)
    result = cli(root, "apply", hide_gx=True)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert named in line
    assert "needs the 'validation' extra: pip install 'featurestore[validation]'" in line
    assert not (root / "data/registry.json").exists()


def test_reading_without_great_expectations_never_imports_it(tmp_path: Path):
    """A registry holding a suite is read, served and joined where GE is not installed, and a
    repo without expectations applies there."""
    root = repo(tmp_path, FEATURES_JSON_PY)
    with FeatureStore(root) as store:
        store.apply()
        store.materialize(DAY1, DAY2)
    plain = make_repo(tmp_path / "plain", FEATURES_JSON_PY.split("    expectations={")[0] + ")\n")
    write_parquet(
        plain / "data/s.parquet", {"user_id": [1], "ts": [DAY1], "amount": [1.0], "cnt": [1]}
    )
    code = HIDE_GX + (
        "from datetime import datetime, timezone\n"
        "import polars as pl\n"
        "from featurestore import FeatureStore\n"
        f"assert FeatureStore({str(plain)!r}).apply().has_changes\n"
        "store = FeatureStore('.')\n"
        "at = datetime(2026, 1, 3, tzinfo=timezone.utc)\n"
        "got = store.get_online_features(['stats:amount'], {'user_id': [1]}, request_time=at)\n"
        "print(got.to_dict()['amount'])\n"
        "entities = pl.DataFrame({'user_id': [1], 'event_timestamp': [at]})\n"
        "frame = store.get_training_frame(entities, ['stats:amount']).to_polars()\n"
        "print(frame['amount'].to_list())\n"
        "print(store.plan().has_changes)\n"  # what 'serve' checks before it starts
        "print([m for m in sys.modules if m.startswith('great_expectations')])\n"
    )
    result = run(code, root)
    assert result.returncode == 0, result.stderr
    online, training, planned, imported = result.stdout.splitlines()
    assert online == "[10.0]"
    assert training == "[10.0]"
    assert planned == "False"
    assert imported == "[]"


def test_import_featurestore_does_not_import_great_expectations():
    result = run(
        "import sys, featurestore, featurestore.validation\n"
        "print(sorted(m for m in sys.modules if m.startswith('great_expectations')))\n",
        ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
