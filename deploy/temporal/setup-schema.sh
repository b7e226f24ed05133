#!/bin/sh
# One-shot of docker-compose.yml (service temporal-schema, image
# temporalio/admin-tools): creates Temporal's two PostgreSQL databases and
# brings their schemas to the version this admin-tools tag ships. Safe to run
# again: the databases may exist already, setup-schema skips a database whose
# version is past 0.0, and update-schema applies only missing versions.
#
# Environment (set in docker-compose.yml): DB (plugin, postgres12),
# POSTGRES_SEEDS, DB_PORT, POSTGRES_USER, SQL_PASSWORD (read by
# temporal-sql-tool itself, so it never shows in a process list).
set -eu

: "${DB:=postgres12}"
: "${DB_PORT:=5432}"
: "${POSTGRES_SEEDS:?POSTGRES_SEEDS must name the Temporal PostgreSQL host}"
: "${POSTGRES_USER:?POSTGRES_USER must be set}"
: "${SQL_PASSWORD:?SQL_PASSWORD must be set}"
SCHEMA_DIR=/etc/temporal/schema/postgresql/v12

echo "waiting for PostgreSQL at ${POSTGRES_SEEDS}:${DB_PORT}"
tries=0
until nc -z -w 2 "${POSTGRES_SEEDS}" "${DB_PORT}"; do
  tries=$((tries + 1))
  if [ "${tries}" -ge 60 ]; then
    echo "PostgreSQL at ${POSTGRES_SEEDS}:${DB_PORT} not reachable after 60 tries" >&2
    exit 1
  fi
  sleep 1
done

sql() {
  temporal-sql-tool --plugin "${DB}" --ep "${POSTGRES_SEEDS}" -p "${DB_PORT}" -u "${POSTGRES_USER}" "$@"
}

# setup DATABASE VERSIONED_DIR
setup() {
  echo "== $1 ($2)"
  # create fails when the database exists (a second "up"); setup-schema
  # right after fails loudly if it really is missing.
  sql --db "$1" create || echo "$1: not created (it probably exists already)"
  sql --db "$1" setup-schema -v 0.0
  sql --db "$1" update-schema -d "$2"
}
setup temporal "${SCHEMA_DIR}/temporal/versioned"
setup temporal_visibility "${SCHEMA_DIR}/visibility/versioned"
echo "Temporal schemas are up to date"
