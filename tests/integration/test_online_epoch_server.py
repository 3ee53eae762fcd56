"""A running server process whose SQLite online store file is deleted, then replaced by an
empty file, then rebuilt (issue 10 item 2): /ready and lookups say so, and the rebuilt file's
values are served, never the deleted file's."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import httpx
import pyarrow.parquet as pq

from featurestore.online.sqlite import SqliteOnlineStore
from featurestore.store import FeatureStore
from tests.integration.test_http_support import build_repo, free_port, poll, serve_command

BODY = {"entities": {"user_id": [1]}, "features": ["user_stats:txn_count"]}


def delete_files(db: Path) -> None:
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        path.unlink(missing_ok=True)


def test_server_reports_a_deleted_and_an_emptied_file_and_serves_the_rebuilt_one(
    tmp_path: Path,
) -> None:
    repo, now = build_repo(tmp_path / "repo")
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            serve_command(repo, port),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:

                def ready_status() -> int:
                    try:
                        return client.get("/ready").status_code
                    except httpx.HTTPError:
                        return 0

                def online_check() -> str:
                    return str(client.get("/ready").json()["checks"]["online_store"])

                def txn_count() -> object:
                    answer = client.post("/get-online-features", json=BODY)
                    return answer.json()["results"][1]["values"][0] if answer.is_success else None

                assert poll(lambda: ready_status() == 200), log_path.read_text()
                assert txn_count() == 43

                db = repo / "data/online.db"
                delete_files(db)  # the server's connection still reads the deleted inode
                assert ready_status() == 503
                assert "deleted or moved while open" in online_check()
                assert poll(
                    lambda: client.post("/get-online-features", json=BODY).status_code == 503
                )

                SqliteOnlineStore(db).close()  # an empty file in its place
                assert ready_status() == 503
                check = online_check()
                assert "no epoch" in check
                assert "'user_stats'" in check
                assert "materialize-incremental" in check
                assert client.post("/get-online-features", json=BODY).status_code == 503

                table = pq.read_table(repo / "data/user_stats.parquet")
                counts = table.column("txn_count").to_pylist()
                counts[1] = 44  # user 1's newest row moved on meanwhile
                pq.write_table(
                    table.set_column(2, "txn_count", [counts]), repo / "data/user_stats.parquet"
                )
                with FeatureStore(repo) as store:
                    report = store.materialize_incremental(now + timedelta(seconds=1))
                    assert all(v.rebuilt for v in report.views)
                assert poll(lambda: ready_status() == 200), log_path.read_text()
                assert poll(lambda: txn_count() == 44), log_path.read_text()
        finally:
            proc.terminate()
            proc.wait(timeout=15)
