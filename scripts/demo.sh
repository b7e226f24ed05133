#!/usr/bin/env bash
# make demo: one rollout of sql/migration.sql over two local databases
# (staging with a few orphans, production) on the Temporal dev server.
#
# In a terminal the gates are yours to decide (as the demo approvers
# demo-approver / demo-approver-2); elsewhere, or with
# FKROLLOUT_DEMO_GATES=auto, the demo approvers decide them. Starts what is
# missing (dev server, worker), stops what it started; safe to re-run (the
# demo databases are recreated, every rollout gets a fresh id).
#
# The worker does not connect as the admin user: the demo's tables belong to
# an ordinary role (fkr_demo_owner) and the worker uses a login role
# (fkrollout_demo) that sql/role.sql makes a member of it, as in production
# (docs/DATABASE-ROLE.md). Only this script uses the admin DSN.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin
OUT=$PWD/out/demo
mkdir -p "$OUT"
export TEMPORAL_ADDRESS=${TEMPORAL_ADDRESS:-127.0.0.1:7233}
UI_URL=${FKROLLOUT_UI_URL:-http://localhost:8233}
export FKROLLOUT_UI_URL=$UI_URL
ADMIN_DSN=${FKROLLOUT_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
DEMO_OWNER=${FKROLLOUT_DEMO_OWNER:-fkr_demo_owner}
DEMO_ROLE=${FKROLLOUT_DEMO_ROLE:-fkrollout_demo}
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

fail() {
  echo >&2
  echo "make demo: $1" >&2
  shift
  for line in "$@"; do echo "  $line" >&2; done
  exit 1
}

step() { printf '== %s\n' "$*"; }

# --- prerequisites, each with what to do about it ---------------------------
command -v go >/dev/null || fail "Go is not installed." "Install Go 1.26 or newer: https://go.dev/dl/"
for b in temporal worker fkrollout; do
  [ -x "$BIN/$b" ] || fail "$BIN/$b is missing." "Run the demo through make (make demo), which builds it."
done

step "checking PostgreSQL ($ADMIN_DSN)"
if ! pg_major=$(go run ./scripts/demodb -check -admin "$ADMIN_DSN" 2>"$OUT/pgcheck.err"); then
  fail "no PostgreSQL reachable for the demo: $(head -1 "$OUT/pgcheck.err")" \
    "The demo needs PostgreSQL 15+ on 127.0.0.1:5432 where user postgres connects without a password (trust)." \
    "Start one, for example:" \
    "  Debian/Ubuntu:  sudo pg_ctlcluster 15 main start      (or: sudo systemctl start postgresql)" \
    "  macOS (brew):   brew services start postgresql@15" \
    "  Docker:         docker run -d --name fkr-pg -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:15" \
    "or point FKROLLOUT_TEST_PG at another server: FKROLLOUT_TEST_PG=postgres://user:pass@host:5432/postgres make demo"
fi
command -v psql >/dev/null || fail "psql is not installed (the demo creates the worker's role with sql/role.sql)." \
  "Debian/Ubuntu: sudo apt-get install postgresql-client-$pg_major    macOS: brew install postgresql@$pg_major"
command -v pg_dump >/dev/null || fail "pg_dump is not installed (the production phase takes a backup with it)." \
  "Debian/Ubuntu: sudo apt-get install postgresql-client-$pg_major    macOS: brew install postgresql@$pg_major"
dump_major=$(pg_dump --version | sed -E 's/[^0-9]*([0-9]+).*/\1/')
[ "$dump_major" -ge "$pg_major" ] || fail "pg_dump is version $dump_major but the server is $pg_major: pg_dump cannot dump a newer server." \
  "Install postgresql-client-$pg_major (or put its pg_dump first in PATH)."

port_in_use() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }

attrs=(RolloutPhase RolloutEnvironment RolloutStatus Requester)
if "$BIN/temporal" operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; then
  step "using the Temporal server already running at $TEMPORAL_ADDRESS"
  for a in "${attrs[@]}"; do
    "$BIN/temporal" operator search-attribute create --address "$TEMPORAL_ADDRESS" --name "$a" --type Keyword >/dev/null 2>&1 || true
  done
else
  if port_in_use "$TEMPORAL_ADDRESS"; then
    fail "$TEMPORAL_ADDRESS is taken by something that is not a Temporal server." \
      "Stop it, or run the demo on other ports: TEMPORAL_ADDRESS=127.0.0.1:7244 FKROLLOUT_UI_URL=http://localhost:8244 make demo"
  fi
  ui_port=${UI_URL##*:}
  if port_in_use "127.0.0.1:${ui_port%%/*}"; then
    fail "port ${ui_port%%/*} (Temporal UI) is taken." "Free it, or set FKROLLOUT_UI_URL=http://localhost:<free port>."
  fi
  step "starting the Temporal dev server (UI $UI_URL, log $OUT/devserver.log)"
  sa=()
  for a in "${attrs[@]}"; do sa+=(--search-attribute "$a=Keyword"); done
  "$BIN/temporal" server start-dev --ip 127.0.0.1 --port "${TEMPORAL_ADDRESS##*:}" --ui-port "${ui_port%%/*}" \
    --db-filename "$OUT/temporal.db" --log-level error "${sa[@]}" >"$OUT/devserver.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 60); do
    "$BIN/temporal" operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1 && break
    kill -0 "${PIDS[-1]}" 2>/dev/null || fail "the Temporal dev server exited:" "$(tail -5 "$OUT/devserver.log")"
    sleep 1
  done
  "$BIN/temporal" operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null ||
    fail "the Temporal dev server did not become healthy in 60 s; see $OUT/devserver.log"
fi

step "creating demo databases fkr_demo_staging (with orphans) and fkr_demo_production, tables owned by $DEMO_OWNER"
# A fresh password per run: the role also works on servers that do not
# trust local connections. Hex, so it needs no quoting anywhere.
FKROLLOUT_DEMO_ROLE_PASSWORD=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export FKROLLOUT_DEMO_ROLE_PASSWORD
dsns=$(go run ./scripts/demodb -admin "$ADMIN_DSN" -owner "$DEMO_OWNER" -user "$DEMO_ROLE") ||
  fail "could not create the demo databases (see above)."
eval "$dsns"

step "creating the worker's role $DEMO_ROLE (sql/role.sql: member of $DEMO_OWNER, no superuser)"
for env in STAGING PRODUCTION; do
  admin_var=FKROLLOUT_DEMO_ADMIN_DSN_$env
  db=fkr_demo_$(echo "$env" | tr 'A-Z' 'a-z')
  psql "${!admin_var}" -X -q -v ON_ERROR_STOP=1 \
    -v role="$DEMO_ROLE" -v table_owner="$DEMO_OWNER" -v database="$db" \
    -f sql/role.sql >"$OUT/role-$db.log" 2>&1 ||
    fail "sql/role.sql failed on $db:" "$(tail -5 "$OUT/role-$db.log")"
done
# Through stdin, so the password is in no process's argument list.
psql "$ADMIN_DSN" -X -q -v ON_ERROR_STOP=1 -v role="$DEMO_ROLE" >"$OUT/role-password.log" 2>&1 <<SQL ||
ALTER ROLE :"role" PASSWORD '$FKROLLOUT_DEMO_ROLE_PASSWORD';
SQL
  fail "could not set the password of $DEMO_ROLE:" "$(tail -5 "$OUT/role-password.log")"
unset FKROLLOUT_DEMO_ROLE_PASSWORD FKROLLOUT_DEMO_ADMIN_DSN_STAGING FKROLLOUT_DEMO_ADMIN_DSN_PRODUCTION
export FKROLLOUT_DSN_STAGING FKROLLOUT_DSN_PRODUCTION
export FKROLLOUT_BACKUP_DIR=$OUT/backups
export FKROLLOUT_REPORT_DIR=$OUT/reports
export FKROLLOUT_TASK_QUEUE=${FKROLLOUT_TASK_QUEUE:-fkrollout-demo}
export FKROLLOUT_CONFIG=${FKROLLOUT_CONFIG:-$PWD/scripts/demo-config.yaml}

step "starting the worker (log $OUT/worker.log)"
"$BIN/worker" >"$OUT/worker.log" 2>&1 &
PIDS+=($!)
sleep 1
kill -0 "${PIDS[-1]}" 2>/dev/null || fail "the worker exited at start:" "$(tail -5 "$OUT/worker.log")"

gates=${FKROLLOUT_DEMO_GATES:-}
if [ -z "$gates" ]; then
  if [ -t 0 ] && [ -t 1 ]; then gates=ask; else gates=auto; fi
fi
case $gates in
  ask) follow=--interactive
       echo "   gates: you decide them here, as the demo approvers (Enter takes the suggested choice)";;
  auto) follow=--demo-auto-approve
       echo "   gates: decided by the DEMO APPROVERS demo-approver / demo-approver-2 (FKROLLOUT_DEMO_GATES=ask to decide yourself)";;
  *) fail "FKROLLOUT_DEMO_GATES=$gates: want ask or auto";;
esac

step "starting the rollout (production window open now and backed up whole; staging perf phase 5 s per round;"
echo "   production monitored for 1 minute, a check every 15 s: the demo config's policy.min_watch allows it)"
id="fkrollout-demo-$(date -u +%Y%m%d-%H%M%S)"
status=0
"$BIN/fkrollout" start --plan sql/migration.sql --id "$id" --requester demo-requester \
  --environments staging,production --window-now --min-approvals-last 2 \
  --perf 5s --monitor 1m --monitor-interval 15s --monitor-baseline 15s \
  --task-queue "$FKROLLOUT_TASK_QUEUE" "$follow" || status=$?
echo
"$BIN/fkrollout" report "$id" --out "$OUT/report.md" >/dev/null 2>&1 &&
  echo "Completion report: $OUT/report.md (also: bin/fkrollout report $id)"
echo "History:           $UI_URL/namespaces/default/workflows/$id"
echo "Logs:              $OUT/worker.log, $OUT/devserver.log"
exit $status
