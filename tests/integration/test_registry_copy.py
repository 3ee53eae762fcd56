"""``featurestore registry copy``: a registry file moved into PostgreSQL (and back to a file).

The copy holds every definition, fingerprint, watermark and epoch of the source; a
destination that already holds the project is refused with a message naming it; and a repo
pointed at the copy serves the same online values.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from featurestore import FeatureStore
from featurestore.cli.main import app
from featurestore.repo.registry import open_registry
from tests.integration.test_http_support import build_repo
from tests.postgres_db import postgres_url  # noqa: F401  # fixture: the session's database


def _same_registry(a, b) -> None:
    """Equal but for the serial and the time of the apply that wrote each."""
    assert replace(a, serial=0, applied_at=None) == replace(b, serial=0, applied_at=None)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root, _ = build_repo(tmp_path / "repo")
    config = root / "featurestore.yaml"  # a project of its own in the session's database
    config.write_text(
        config.read_text().replace("project: httptest", f"project: p_{uuid.uuid4().hex[:10]}")
    )
    with FeatureStore(root) as store:  # apply and materialize under that project
        (root / "data" / "registry.json").unlink()
        store.apply()
        store.materialize_incremental(store.snapshot.applied_at)  # type: ignore[arg-type]
    return root


def test_copy_to_postgres_keeps_everything_and_serves_the_same(repo: Path, postgres_url: str):  # noqa: F811
    runner = CliRunner()
    with FeatureStore(repo) as store:
        source = store.snapshot
        rows = {"user_id": [1, 2, 3]}
        before = store.get_online_features(["user_stats:txn_count"], rows).to_dict()
    assert all(r.watermark is not None for r in source.feature_views.values())

    copied = runner.invoke(app, ["--repo", str(repo), "registry", "copy", "--to", postgres_url])
    assert copied.exit_code == 0, copied.output
    assert "3 feature views (3 with watermarks)" in copied.output
    target = open_registry(postgres_url, repo_root=repo, project=source.project)
    try:
        _same_registry(target.load(), source)
    finally:
        target.close()

    again = runner.invoke(app, ["--repo", str(repo), "registry", "copy", "--to", postgres_url])
    assert again.exit_code == 1
    assert f"already holds project '{source.project}'" in again.output

    config = repo / "featurestore.yaml"
    config.write_text(
        config.read_text().replace("registry: data/registry.json", f"registry: {postgres_url}")
    )
    with FeatureStore(repo) as store:
        assert not store.plan().has_changes
        assert store.get_online_features(["user_stats:txn_count"], rows).to_dict() == before
    # And back to a file, as a backup.
    backup = runner.invoke(
        app, ["--repo", str(repo), "registry", "copy", "--to", "data/backup.json"]
    )
    assert backup.exit_code == 0, backup.output
    restored = open_registry("data/backup.json", repo_root=repo, project=source.project)
    _same_registry(restored.load(), source)
