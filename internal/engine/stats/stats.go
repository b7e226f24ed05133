// Package stats takes the runbook's before/after snapshot of a database's
// integrity machinery (foreign keys validated or not, CHECKs, unique indexes,
// orphans: the completion report's "Database Metrics" table) and checks that
// every foreign key has an index leading with its referencing columns (without
// one, every parent DELETE scans the child), creating the missing ones without
// blocking writes.
package stats

import (
	"context"
	"fmt"
	"time"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/jackc/pgx/v5"
)

// Querier is satisfied by *pgxpool.Pool, *pgx.Conn and pgx.Tx, so a snapshot
// can be taken inside a caller's read-only transaction (dbx.ReadOnly).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// MetaSchema is fkrollout's own bookkeeping schema; it is never counted.
const MetaSchema = "fkrollout"

// Snapshot is the runbook's census of one database at one moment.
type Snapshot struct {
	TakenAt              time.Time `json:"taken_at"`
	Tables               int       `json:"tables"`
	ForeignKeys          int       `json:"foreign_keys"`
	ForeignKeysValidated int       `json:"foreign_keys_validated"`
	ForeignKeysNotValid  int       `json:"foreign_keys_not_valid"`
	CheckConstraints     int       `json:"check_constraints"`
	// UniqueIndexes counts every unique index, including those backing
	// primary keys and UNIQUE constraints (partial ones included).
	UniqueIndexes        int `json:"unique_indexes"`
	PartialUniqueIndexes int `json:"partial_unique_indexes"`
	// Orphans is filled by the caller from an orphan audit; nil = not measured.
	Orphans *int64 `json:"orphans,omitempty"`
	// NotValid lists schema.table.constraint of foreign keys still NOT VALID.
	NotValid []string `json:"not_valid"`
}

// schemaFilter selects the user's schemas: the listed ones, or (when none
// are listed) everything except the system schemas and fkrollout's own.
// $1 is the text[] of schemas (possibly empty), $2 the meta schema.
const schemaFilter = `(CASE WHEN cardinality($1::text[]) > 0 THEN n.nspname = ANY($1::text[])
  ELSE n.nspname NOT IN ('pg_catalog', 'information_schema', $2::text)
   AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%' END)`

const countsSQL = `
WITH tbl AS (
  SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND ` + schemaFilter + `
), con AS (
  -- conparentid <> 0 are the per-partition clones of a partitioned table's
  -- constraint: the user declared it once, count it once.
  SELECT k.contype, k.convalidated FROM pg_constraint k
  WHERE k.conrelid IN (SELECT oid FROM tbl) AND k.conparentid = 0
), idx AS (
  SELECT i.indpred IS NOT NULL AS partial FROM pg_index i
  WHERE i.indisunique AND i.indrelid IN (SELECT oid FROM tbl)
)
SELECT
  (SELECT count(*) FROM tbl),
  (SELECT count(*) FROM con WHERE contype = 'f'),
  (SELECT count(*) FROM con WHERE contype = 'f' AND convalidated),
  (SELECT count(*) FROM con WHERE contype = 'f' AND NOT convalidated),
  (SELECT count(*) FROM con WHERE contype = 'c'),
  (SELECT count(*) FROM idx),
  (SELECT count(*) FROM idx WHERE partial)`

const notValidSQL = `
SELECT n.nspname, c.relname, k.conname
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE k.contype = 'f' AND NOT k.convalidated AND k.conparentid = 0
  AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND ` + schemaFilter + `
ORDER BY 1, 2, 3`

// Take counts tables, constraints and unique indexes in the given schemas
// (empty = every non-system schema except fkrollout). It only reads the
// catalog, so it is cheap on any database size.
func Take(ctx context.Context, q Querier, schemas []string) (Snapshot, error) {
	if schemas == nil {
		schemas = []string{}
	}
	s := Snapshot{TakenAt: time.Now().UTC(), NotValid: []string{}}
	err := q.QueryRow(ctx, countsSQL, schemas, MetaSchema).Scan(
		&s.Tables, &s.ForeignKeys, &s.ForeignKeysValidated, &s.ForeignKeysNotValid,
		&s.CheckConstraints, &s.UniqueIndexes, &s.PartialUniqueIndexes)
	if err != nil {
		return Snapshot{}, fmt.Errorf("stats snapshot: count catalog objects: %w", err)
	}
	rows, err := q.Query(ctx, notValidSQL, schemas, MetaSchema)
	if err != nil {
		return Snapshot{}, fmt.Errorf("stats snapshot: list NOT VALID foreign keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var schema, table, con string
		if err := rows.Scan(&schema, &table, &con); err != nil {
			return Snapshot{}, fmt.Errorf("stats snapshot: scan NOT VALID foreign key: %w", err)
		}
		s.NotValid = append(s.NotValid, plan.TableName{Schema: schema, Name: table}.String()+"."+plan.QuoteIfNeeded(con))
	}
	if err := rows.Err(); err != nil {
		return Snapshot{}, fmt.Errorf("stats snapshot: list NOT VALID foreign keys: %w", err)
	}
	return s, nil
}
