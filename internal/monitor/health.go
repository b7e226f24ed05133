package monitor

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

// CatalogFK is a foreign key as the catalog has it, with whether it is
// validated (a NOT VALID one still guards new writes, but old rows were
// never checked).
type CatalogFK struct {
	FK        plan.ForeignKey `json:"fk"`
	Validated bool            `json:"validated"`
}

// ListForeignKeys returns every foreign key of the given schemas (all user
// schemas when none), NOT VALID ones included, built from pg_constraint.
// Per-partition clones of a partitioned table's key are skipped: the user
// declared it once.
func ListForeignKeys(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, schemas []string) ([]CatalogFK, error) {
	const sql = `
SELECT n.nspname, c.relname, k.conname, rn.nspname, rc.relname,
       ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY u(attnum, i)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum ORDER BY u.i)::text[],
       ARRAY(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY u(attnum, i)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.attnum ORDER BY u.i)::text[],
       k.confdeltype::text, k.confupdtype::text, k.confmatchtype::text, k.condeferrable, k.condeferred, k.convalidated
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class rc ON rc.oid = k.confrelid
JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE k.contype = 'f' AND k.conparentid = 0
  AND (CASE WHEN cardinality($1::text[]) > 0 THEN n.nspname = ANY($1::text[])
       ELSE n.nspname NOT IN ('pg_catalog', 'information_schema', 'fkrollout') AND n.nspname NOT LIKE 'pg\_%' END)
ORDER BY n.nspname, c.relname, k.conname`
	if schemas == nil {
		schemas = []string{}
	}
	rows, err := q.Query(ctx, sql, schemas)
	if err != nil {
		return nil, fmt.Errorf("list foreign keys: %w", err)
	}
	defer rows.Close()
	var out []CatalogFK
	for rows.Next() {
		var fk plan.ForeignKey
		var del, upd, match string
		var cf CatalogFK
		if err := rows.Scan(&fk.Table.Schema, &fk.Table.Name, &fk.Name, &fk.RefTable.Schema, &fk.RefTable.Name,
			&fk.Columns, &fk.RefColumns, &del, &upd, &match, &fk.Deferrable, &fk.InitiallyDeferred, &cf.Validated); err != nil {
			return nil, fmt.Errorf("list foreign keys: %w", err)
		}
		fk.OnDelete, fk.OnUpdate = actionCode(del), actionCode(upd)
		if match == "f" {
			fk.Match = plan.MatchFull
		}
		fk.Priority = plan.PriorityLow
		cf.FK = fk
		out = append(out, cf)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list foreign keys: %w", err)
	}
	return out, nil
}

func actionCode(c string) plan.Action {
	switch c {
	case "r":
		return plan.ActionRestrict
	case "c":
		return plan.ActionCascade
	case "n":
		return plan.ActionSetNull
	case "d":
		return plan.ActionSetDefault
	}
	return plan.ActionNoAction
}

// HealthFK is one foreign key's monthly health.
type HealthFK struct {
	Constraint string   `json:"constraint"`
	Table      string   `json:"table"`
	References string   `json:"references"`
	Columns    []string `json:"columns"`
	Validated  bool     `json:"validated"`
	Orphans    int64    `json:"orphans"`
	// Error says why this key could not be audited (timeout...).
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}
