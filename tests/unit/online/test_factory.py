"""The factory opens stores lazily: no redis import for SQLite users, a clear missing-extra error."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )


def test_import_and_sqlite_store_do_not_import_redis(tmp_path) -> None:
    result = run(
        f"""
        import sys, pathlib
        import featurestore
        from featurestore.online.factory import open_online_store
        from featurestore.repo.config import SqliteOnlineStoreConfig
        store = open_online_store(SqliteOnlineStoreConfig(), repo_root=pathlib.Path({str(tmp_path)!r}),
                                  project="p")
        store.close()
        assert "redis" not in sys.modules, "redis imported"
        """
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data/online.db").exists()


def test_missing_redis_extra_names_the_pip_command() -> None:
    result = run(
        """
        import sys
        sys.modules["redis"] = None  # simulate: the 'redis' extra is not installed
        import pathlib
        from featurestore.errors import MissingDependencyError
        from featurestore.online.factory import open_online_store
        from featurestore.repo.config import RedisOnlineStoreConfig
        try:
            open_online_store(RedisOnlineStoreConfig(type="redis"), repo_root=pathlib.Path("."),
                              project="p")
        except MissingDependencyError as exc:
            print(exc)
        """
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'featurestore[redis]'" in result.stdout
