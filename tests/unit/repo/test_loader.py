from __future__ import annotations

import pytest

from featurestore.errors import DefinitionError, RepoLoadError
from featurestore.repo.loader import load_repo, repo_files
from tests.conftest import make_repo

FEATURES = """
from datetime import timedelta
from featurestore import Entity, FeatureService, FeatureView, Field, ParquetSource
from featurestore.types import Int64

from entities import user

stats = FeatureView(
    name="user_stats",
    entities=[user],
    source=ParquetSource("data/u.parquet", timestamp_field="ts"),
    schema=[Field("n", Int64)],
    ttl=timedelta(days=1),
)
svc = FeatureService("svc", features=[stats])
"""

ENTITIES = """
from featurestore import Entity
user = Entity("user", join_keys=["user_id"])
"""


def test_loads_definitions_across_files_that_import_each_other(tmp_path):
    root = make_repo(tmp_path, FEATURES, files={"entities.py": ENTITIES})
    contents = load_repo(root)
    assert set(contents.entities) == {"user"}
    assert set(contents.feature_views) == {"user_stats"}
    assert set(contents.feature_services) == {"svc"}


def test_two_repos_with_the_same_file_names_load_independently(tmp_path):
    a = make_repo(tmp_path / "a", FEATURES, files={"entities.py": ENTITIES})
    b = make_repo(
        tmp_path / "b",
        FEATURES.replace("user_stats", "other_stats"),
        files={"entities.py": ENTITIES},
    )
    assert set(load_repo(a).feature_views) == {"user_stats"}
    assert set(load_repo(b).feature_views) == {"other_stats"}


def test_a_file_that_raises_is_reported_with_its_path_and_line(tmp_path):
    root = make_repo(tmp_path, "x = 1\nraise ValueError('boom')\n")
    with pytest.raises(RepoLoadError, match=r"'features.py': ValueError: boom \(line 2\)"):
        load_repo(root)


def test_a_syntax_error_is_a_repo_load_error(tmp_path):
    root = make_repo(tmp_path, "def broken(:\n")
    with pytest.raises(RepoLoadError, match="SyntaxError"):
        load_repo(root)


def test_two_different_definitions_with_one_name_are_refused(tmp_path):
    root = make_repo(
        tmp_path,
        FEATURES,
        files={
            "entities.py": ENTITIES,
            "more.py": "from featurestore import Entity\nuser = Entity('user', join_keys=['uid'])\n",
        },
    )
    with pytest.raises(
        DefinitionError,
        match=r"Two different definitions of entity 'user' \(entities.py and more.py\)",
    ):
        load_repo(root)


def test_ignored_files_data_and_hidden_folders_are_skipped(tmp_path):
    root = make_repo(
        tmp_path,
        FEATURES,
        files={
            "entities.py": ENTITIES,
            "generate_data.py": "raise SystemExit('must not be imported')\n",
            ".featurestoreignore": "# comment\ngenerate_data.py\n",
            "data/script.py": "raise SystemExit('data is skipped')\n",
            ".hidden/x.py": "raise SystemExit('hidden is skipped')\n",
        },
    )
    assert [p.name for p in repo_files(root)] == ["entities.py", "features.py"]
    assert set(load_repo(root).feature_views) == {"user_stats"}
