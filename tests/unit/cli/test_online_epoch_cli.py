"""The CLI on a lost online store: status warns, materialize-incremental rebuilds and says so,
and --rebuild rebuilds on purpose (issue 10 items 2 and 11)."""

from __future__ import annotations

import json

from tests.unit.cli.conftest import Cli


def test_status_warns_and_incremental_rebuilds_a_deleted_store(applied: Cli) -> None:
    applied.ok("materialize-incremental")
    for suffix in ("", "-wal", "-shm"):
        (applied.repo / f"data/online.db{suffix}").unlink(missing_ok=True)

    status = applied.ok("status")
    assert "Warning:" in status.stderr
    assert "no epoch" in status.stderr
    assert "materialize-incremental" in status.stderr
    rows = json.loads(applied.ok("status", "--json").stdout)
    assert all(r["problem"] for r in rows if r["online"] and r["watermark"])

    rebuilt = applied.ok("materialize-incremental")
    assert "Rebuilt '" in rebuilt.stderr
    assert "had lost them" in rebuilt.stderr
    after = applied.ok("status")
    assert "Warning:" not in after.stderr
    rows = json.loads(applied.ok("status", "--json").stdout)
    assert all(r["problem"] is None and r["records"] > 0 for r in rows if r["online"])


def test_rebuild_option_rebuilds_the_named_view_only(applied: Cli) -> None:
    applied.ok("materialize-incremental")
    views = [r["view"] for r in json.loads(applied.ok("status", "--json").stdout) if r["online"]]
    result = applied.ok("materialize-incremental", "--rebuild", "--views", views[0], "--json")
    (run,) = json.loads(result.stdout)["views"]
    assert run["view"] == views[0]
    assert run["rows"] > 0
    assert run["rebuilt"] is True
    assert f"Rebuilt '{views[0]}'" in result.stderr
    assert all(f"Rebuilt '{v}'" not in result.stderr for v in views[1:])
    plain = applied.ok("materialize-incremental", "--json")
    assert "Rebuilt" not in plain.stderr
    assert not any(run["rebuilt"] for run in json.loads(plain.stdout)["views"])
