"""Feast's own Python client (feast==0.67.0, remote online store) against our server.

Feast lives in a separate virtualenv (``scripts/install-feast-client`` creates ``.feast-venv``);
the client runs in a subprocess there. Without that venv the test is skipped locally and fails
in CI (CI set).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import textwrap
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from featurestore.serving.app import create_app
from featurestore.store import FeatureStore
from tests.integration.test_http_support import USER_FEATURES, build_repo, running_server

ROOT = Path(__file__).resolve().parents[2]
FEAST_PYTHON = Path(os.environ.get("FEAST_VENV", ROOT / ".feast-venv")) / "bin" / "python"
TOKEN = "feast-client-token"

CLIENT_SCRIPT = textwrap.dedent(
    """
    import json, sys, pathlib

    from feast import FeatureStore

    url, root, requests = sys.argv[1], pathlib.Path(sys.argv[2]), json.loads(sys.argv[3])
    outputs = []
    for number, request in enumerate(requests):
        repo = root / f"feast_repo_{number}"
        repo.mkdir(parents=True, exist_ok=True)
        (repo / "feature_store.yaml").write_text(
            "project: httptest\\n"
            f"registry: {repo}/registry.db\\n"
            "provider: local\\n"
            "online_store:\\n"
            "  type: remote\\n"
            f"  path: {url}\\n"
            "entity_key_serialization_version: 3\\n"
            "auth:\\n"
            "  type: oidc\\n"
            f"  token: {request['token']}\\n"
        )
        store = FeatureStore(repo_path=str(repo))
        try:
            response = store.get_online_features(
                features=request["features"],
                entity_rows=request["entity_rows"],
                full_feature_names=request["full_feature_names"],
            )
        except Exception as exc:
            outputs.append({"error": type(exc).__name__, "message": str(exc)})
        else:
            outputs.append({"result": response.to_dict()})
    print(json.dumps(outputs, default=str))
    """
)


@pytest.fixture(scope="module")
def feast_python() -> Path:
    if not FEAST_PYTHON.is_file():
        message = (
            f"Feast's client venv is missing ({FEAST_PYTHON}); run scripts/install-feast-client"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return FEAST_PYTHON


def run_feast(
    feast_python: Path, url: str, tmp_path: Path, requests: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Run Feast's client once (its import takes seconds) for several requests."""
    script = tmp_path / "feast_client.py"
    script.write_text(CLIENT_SCRIPT)
    result = subprocess.run(
        [str(feast_python), str(script), url, str(tmp_path), json.dumps(requests)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    output: list[dict[str, Any]] = json.loads(result.stdout.strip().splitlines()[-1])
    return output


def _as_feast_sees_it(value: Any) -> Any:
    # Feast infers types from JSON: timestamps arrive as their RFC 3339 text, NaN as null.
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


ROWS = [
    {"user_id": 1, "merchant_id": "m0"},
    {"user_id": 2, "merchant_id": "m1"},
    {"user_id": 3, "merchant_id": "m0"},
    {"user_id": 99, "merchant_id": "missing"},
]
FEATURES = [*USER_FEATURES, "merchant_stats:fraud_rate", "pair_stats:pair_txn_count"]


def test_feast_client_reads_what_our_sdk_reads(feast_python: Path, tmp_path: Path) -> None:
    repo, _ = build_repo(tmp_path / "repo", serving=f"{{api_keys: [{TOKEN}]}}")
    requests = [
        {"token": TOKEN, "features": FEATURES, "entity_rows": ROWS, "full_feature_names": False},
        {"token": TOKEN, "features": FEATURES, "entity_rows": ROWS, "full_feature_names": True},
        {
            "token": TOKEN,
            "features": ["user_stats:txn_cnt"],
            "entity_rows": [{"user_id": 1}],
            "full_feature_names": False,
        },
        {"token": "wrong", "features": FEATURES, "entity_rows": ROWS, "full_feature_names": False},
    ]
    with running_server(create_app(repo_path=repo)) as url:
        plain, full, unknown, unauthorized = run_feast(feast_python, url, tmp_path, requests)

    with FeatureStore(repo) as store:
        for got, full_names in ((plain, False), (full, True)):
            ours = store.get_online_features(FEATURES, ROWS, full_feature_names=full_names)
            expected = {k: [_as_feast_sees_it(v) for v in vs] for k, vs in ours.to_dict().items()}
            assert "result" in got, got
            assert got["result"] == expected
            assert list(got["result"]) == list(expected)  # join keys first, then features
            assert got["result"]["user_id"] == [1, 2, 3, 99]
            name = "user_stats__txn_count" if full_names else "txn_count"
            assert got["result"][name] == [43, 6, None, None]  # ints stay ints; expired null
    # Errors reach the Feast user with our status and message.
    assert "404" in unknown["message"]
    assert "Did you mean 'user_stats:txn_count'" in unknown["message"]
    assert "401" in unauthorized["message"]
