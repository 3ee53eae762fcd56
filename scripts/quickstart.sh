#!/usr/bin/env bash
# The README quickstart, end to end on the embedded SQLite online store: install (if needed),
# generate the example data, apply, build a training frame and a snapshot, materialize, read
# online, serve and query over HTTP. Safe to re-run. PORT (default 6566) picks the server's port.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
PORT="${PORT:-6566}"
step() { printf '\n==> %s\n' "$*"; }

if [ ! -x .venv/bin/featurestore ]; then
  step "Installing (first run only)"
  bash scripts/install
fi
# shellcheck disable=SC1091
. .venv/bin/activate
cd feature_repo

step "Generating the example data"
python generate_data.py
step "Registering the definitions"
featurestore apply
step "Building a training frame"
featurestore training-frame --entities data/entities.parquet --service fraud_v1 --output data/training.parquet
step "Scoring input for every card holder as of one hour ago (a snapshot)"
AS_OF="$(python -c 'from datetime import UTC, datetime, timedelta; print((datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:00:00Z"))')"
featurestore snapshot --features user_stats:txn_count_7d,user_stats:avg_amount_7d --as-of "$AS_OF" -o data/snapshot.parquet
step "Materializing into the online store"
featurestore materialize-incremental
step "Reading online features"
featurestore get-online --features fraud_v1 --entity user_id=7,merchant_id=m_00035 --request amount=120.0
featurestore status

step "Serving on port $PORT and querying over HTTP"
featurestore serve --port "$PORT" &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -sf "localhost:$PORT/health" >/dev/null && break
  sleep 0.1
done
curl -s "localhost:$PORT/get-online-features" -d '{"entities": {"user_id": [7], "merchant_id": ["m_00035"], "amount": [120.0]}, "feature_service": "fraud_v1"}'
echo
echo "Quickstart done; the example repo is in $ROOT/feature_repo."
