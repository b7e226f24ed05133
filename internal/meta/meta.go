// Package meta owns fkrollout's own bookkeeping schema in a target
// database: which constraints a rollout created (so rollback drops exactly
// those) and the quarantine of rows remediation removed or changed (so
// nothing is lost).
package meta

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Schema is the name of fkrollout's schema in every target database.
const Schema = "fkrollout"

// Tables, fully quoted.
var (
	ConstraintsTable = pgx.Identifier{Schema, "constraints"}.Sanitize()
	QuarantineTable  = pgx.Identifier{Schema, "quarantine"}.Sanitize()
)

// ddl is idempotent. The advisory lock serialises concurrent first runs
// (CREATE ... IF NOT EXISTS alone can still race on the catalog).
const ddl = `
SELECT pg_advisory_xact_lock(7426110011);
CREATE SCHEMA IF NOT EXISTS fkrollout;
COMMENT ON SCHEMA fkrollout IS 'fkrollout bookkeeping: constraint ownership and remediation quarantine';
CREATE TABLE IF NOT EXISTS fkrollout.constraints (
    table_schema    text        NOT NULL,
    table_name      text        NOT NULL,
    constraint_name text        NOT NULL,
    rollout_id      text        NOT NULL,
    definition      text        NOT NULL,
    priority        int         NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_schema, table_name, constraint_name)
);
CREATE TABLE IF NOT EXISTS fkrollout.quarantine (
    id              bigserial   PRIMARY KEY,
    rollout_id      text        NOT NULL,
    constraint_name text        NOT NULL,
    table_schema    text        NOT NULL,
    table_name      text        NOT NULL,
    action          text        NOT NULL CHECK (action IN ('delete', 'set_null')),
    row_data        jsonb       NOT NULL,
    quarantined_at  timestamptz NOT NULL DEFAULT now()
);
-- fk_columns: for set_null, the columns remediation nulled (so a restore
-- puts back exactly those); NULL for delete.
ALTER TABLE fkrollout.quarantine ADD COLUMN IF NOT EXISTS fk_columns text[];
CREATE INDEX IF NOT EXISTS quarantine_rollout_idx ON fkrollout.quarantine (rollout_id, constraint_name);
`

// EnsureSchema creates fkrollout's schema and tables when missing.
func EnsureSchema(ctx context.Context, db interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("ensure fkrollout schema: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("ensure fkrollout schema: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("ensure fkrollout schema: commit: %w", err)
	}
	return nil
}
