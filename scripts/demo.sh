#!/usr/bin/env bash
# make demo: one rollout of sql/migration.sql over two local databases
# (staging with a few orphans, production) on the Temporal dev server, with
# every gate approved by demo identities. Starts what is missing (dev
# server, worker), stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin
OUT=$PWD/out/demo
mkdir -p "$OUT"
export TEMPORAL_ADDRESS=${TEMPORAL_ADDRESS:-127.0.0.1:7233}
UI_URL=${FKROLLOUT_UI_URL:-http://localhost:8233}
export FKROLLOUT_UI_URL=$UI_URL
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

pg_isready -h 127.0.0.1 -p 5432 -q || { echo "PostgreSQL is not running on 127.0.0.1:5432 (start it, or set FKROLLOUT_TEST_PG)" >&2; exit 1; }

attrs=(RolloutPhase RolloutEnvironment RolloutStatus Requester)
if "$BIN/temporal" operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; then
  echo "== using the Temporal server at $TEMPORAL_ADDRESS"
  for a in "${attrs[@]}"; do
    "$BIN/temporal" operator search-attribute create --address "$TEMPORAL_ADDRESS" --name "$a" --type Keyword >/dev/null 2>&1 || true
  done
else
  echo "== starting the Temporal dev server (UI $UI_URL, log $OUT/devserver.log)"
  sa=()
  for a in "${attrs[@]}"; do sa+=(--search-attribute "$a=Keyword"); done
  "$BIN/temporal" server start-dev --ip 127.0.0.1 --port "${TEMPORAL_ADDRESS##*:}" --ui-port "${UI_URL##*:}" \
    --db-filename "$OUT/temporal.db" --log-level error "${sa[@]}" >"$OUT/devserver.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 60); do
    "$BIN/temporal" operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1 && break
    sleep 1
  done
  "$BIN/temporal" operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null
fi

echo "== creating demo databases fkr_demo_staging and fkr_demo_production"
eval "$(go run ./scripts/demodb)"
export FKROLLOUT_DSN_STAGING FKROLLOUT_DSN_PRODUCTION
export FKROLLOUT_BACKUP_DIR=$OUT/backups
export FKROLLOUT_TASK_QUEUE=${FKROLLOUT_TASK_QUEUE:-fkrollout-demo}
export FKROLLOUT_CONFIG=${FKROLLOUT_CONFIG:-$PWD/scripts/demo-config.yaml}

echo "== starting the worker (log $OUT/worker.log)"
"$BIN/worker" >"$OUT/worker.log" 2>&1 &
PIDS+=($!)

echo "== starting the rollout (approvals by demo identities; production window open now;"
echo "   staging perf phase 2 x 5 s; production monitored for 1 minute, a check every 15 s)"
id="fkrollout-demo-$(date -u +%Y%m%d-%H%M%S)"
"$BIN/starter" start --plan sql/migration.sql --id "$id" --requester demo-requester \
  --environments staging,production --window-now --min-approvals-last 2 \
  --perf 5s --monitor 1m --monitor-interval 15s --monitor-baseline 15s \
  --task-queue "$FKROLLOUT_TASK_QUEUE" --demo-auto-approve
echo
echo "Rollout $id finished. History: $UI_URL/namespaces/default/workflows/$id"
