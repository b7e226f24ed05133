// Package meta owns fkrollout's own bookkeeping schema in a target
// database: which constraints a rollout created (so rollback drops exactly
// those) and the quarantine of rows remediation removed or changed (so
// nothing is lost).
package meta

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Schema is the name of fkrollout's schema in every target database.
const Schema = "fkrollout"

// Tables, fully quoted.
var (
	ConstraintsTable = pgx.Identifier{Schema, "constraints"}.Sanitize()
	QuarantineTable  = pgx.Identifier{Schema, "quarantine"}.Sanitize()
)

// ErrForeignOwner: the bookkeeping schema or one of its tables belongs to a
// role the worker's role is not a member of.
var ErrForeignOwner = errors.New("fkrollout bookkeeping owned by another role")

// lock serialises concurrent first runs (CREATE ... IF NOT EXISTS alone can
// still race on the catalog).
const lock = `SELECT pg_advisory_xact_lock(7426110011)`

// createSchema runs only when the schema is missing: CREATE SCHEMA checks
// the database's CREATE privilege even when the schema exists, which a
// worker using a schema its DBA created for its role need not have.
const createSchema = `CREATE SCHEMA IF NOT EXISTS fkrollout`

// ddl is idempotent. It runs only after checkOwners: CREATE ... IF NOT
// EXISTS silently accepts objects someone else created.
const ddl = `
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
-- run_id: the run of the rollout that created the constraint. A workflow id
-- can be reused once its run has closed, so ownership is bound to the run:
-- a later run must not own, and so must not roll back, what an earlier one
-- created. NULL for rows written before this column existed; those stay
-- matched by rollout_id alone (catalog.Owner.Owns).
ALTER TABLE fkrollout.constraints ADD COLUMN IF NOT EXISTS run_id text;
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
-- run_id: the run whose remediation quarantined the row (NULL before runs
-- were recorded).
ALTER TABLE fkrollout.quarantine ADD COLUMN IF NOT EXISTS run_id text;
-- depth: how many references away from an orphan of constraint_name the
-- row was when delete_with_dependents removed or changed it (0 = the orphan
-- itself); via_constraint: the FK of table_name through which it
-- referenced a removed row (NULL for the orphans). Restore inserts
-- shallower rows first and puts nulled values back after every insert.
ALTER TABLE fkrollout.quarantine ADD COLUMN IF NOT EXISTS depth int NOT NULL DEFAULT 0;
ALTER TABLE fkrollout.quarantine ADD COLUMN IF NOT EXISTS via_constraint text;
CREATE INDEX IF NOT EXISTS quarantine_rollout_idx ON fkrollout.quarantine (rollout_id, constraint_name);
`

// owners lists the bookkeeping objects that exist and belong to a role the
// current user is not a member of (superusers are members of every role).
const owners = `
SELECT o.kind, o.name, pg_catalog.pg_get_userbyid(o.owner)::text, current_user::text
FROM (
    SELECT 1 AS ord, 'schema' AS kind, n.nspname::text AS name, n.nspowner AS owner
    FROM pg_catalog.pg_namespace n WHERE n.nspname = 'fkrollout'
  UNION ALL
    SELECT 2, 'table', n.nspname || '.' || c.relname, c.relowner
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'fkrollout' AND c.relname IN ('constraints', 'quarantine')
) o
WHERE NOT pg_catalog.pg_has_role(current_user, o.owner, 'MEMBER')
ORDER BY o.ord, o.name`

// EnsureSchema creates fkrollout's schema and tables when missing, and adds
// columns later versions need. It refuses to use a schema or table that a
// role outside the worker's own owns: that role could rewrite the ownership
// rows (making a rollback drop a constraint fkrollout never created) or the
// quarantine (making a restore insert rows of its choosing).
func EnsureSchema(ctx context.Context, db interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("ensure fkrollout schema: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, lock); err != nil {
		return fmt.Errorf("ensure fkrollout schema: %w", err)
	}
	if err := checkOwners(ctx, tx); err != nil {
		return err
	}
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'fkrollout')`).Scan(&exists); err != nil {
		return fmt.Errorf("ensure fkrollout schema: %w", err)
	}
	if !exists {
		if _, err := tx.Exec(ctx, createSchema); err != nil {
			return fmt.Errorf("ensure fkrollout schema: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, ddl); err != nil {
		return fmt.Errorf("ensure fkrollout schema: %w", err)
	}
	// Again after the DDL, in the same transaction: another role may have
	// created the schema between the first check and CREATE ... IF NOT EXISTS.
	if err := checkOwners(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("ensure fkrollout schema: commit: %w", err)
	}
	return nil
}

func checkOwners(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, owners)
	if err != nil {
		return fmt.Errorf("ensure fkrollout schema: check owners: %w", err)
	}
	var problems []string
	for rows.Next() {
		var kind, name, owner, me string
		if err := rows.Scan(&kind, &name, &owner, &me); err != nil {
			rows.Close()
			return fmt.Errorf("ensure fkrollout schema: check owners: %w", err)
		}
		problems = append(problems, fmt.Sprintf("%s %s is owned by role %s, which this worker's role %s is not a member of", kind, name, owner, me))
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("ensure fkrollout schema: check owners: %w", err)
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s: someone else could rewrite ownership or quarantine rows; drop it or change its owner",
		ErrForeignOwner, strings.Join(problems, "; "))
}
