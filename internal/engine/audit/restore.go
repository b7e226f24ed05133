package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/meta"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

// Restore puts the rows quarantined for (rolloutID, constraintName) back,
// whichever run of the rollout quarantined them: the orphans and, after
// delete_with_dependents, every dependent row removed or changed with
// them. Deleted rows are re-inserted (jsonb_populate_record, identity
// values kept), all tables in one statement so that PostgreSQL checks
// their keys once every row is back (parents, children, self-references
// and cycles alike); then nulled FK columns are restored by primary key
// where they are still NULL, once the rows they reference exist again.
// Everything happens in one transaction and restored quarantine entries
// are removed in it, so a second Restore does nothing. A set_null entry
// whose row has since been deleted or re-pointed stays in quarantine and is
// not counted.
// Its transaction runs under lock, the rollout's lock policy.
func Restore(ctx context.Context, pool *pgxpool.Pool, lock dbx.LockPolicy, rolloutID, constraintName string) (int64, error) {
	return RestoreRun(ctx, pool, lock, rolloutID, "", constraintName)
}

// RestoreRun is Restore limited to the rows run runID of the rollout
// quarantined, plus rows quarantined before runs were recorded (run_id
// NULL, which may be that run's if it was in flight during the upgrade).
// An empty runID restores every run's rows, like Restore.
func RestoreRun(ctx context.Context, pool *pgxpool.Pool, lock dbx.LockPolicy, rolloutID, runID, constraintName string) (int64, error) {
	if rolloutID == "" || constraintName == "" {
		return 0, errors.New("restore: rollout id and constraint name are required")
	}
	n, err := restore(ctx, pool, lock, quarantineSelector{rolloutID: rolloutID, runID: runID, constraintName: constraintName})
	if err != nil {
		return 0, fmt.Errorf("restore %s (rollout %s): %w", constraintName, rolloutID, err)
	}
	return n[constraintName], nil
}

// RestoreAll restores every constraint group the rollout's run runID
// quarantined (every run's when runID is empty) in one transaction, in the
// same safe order as Restore across all groups: a row one group deleted
// may be referenced by a row another group deleted or nulled. It returns
// the rows restored per constraint; constraints with nothing to restore are
// absent.
func RestoreAll(ctx context.Context, pool *pgxpool.Pool, lock dbx.LockPolicy, rolloutID, runID string) (map[string]int64, error) {
	if rolloutID == "" {
		return nil, errors.New("restore: rollout id is required")
	}
	n, err := restore(ctx, pool, lock, quarantineSelector{rolloutID: rolloutID, runID: runID})
	if err != nil {
		return nil, fmt.Errorf("restore rollout %s: %w", rolloutID, err)
	}
	return n, nil
}

func restore(ctx context.Context, pool *pgxpool.Pool, lock dbx.LockPolicy, sel quarantineSelector) (map[string]int64, error) {
	restored := map[string]int64{}
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", meta.QuarantineTable).Scan(&exists); err != nil {
		return nil, err
	}
	if !exists {
		return restored, nil
	}
	// Rows from a quarantine another role can write would be inserted into
	// production tables: check its owner (and add columns if missing).
	if err := meta.EnsureSchema(ctx, pool); err != nil {
		return nil, err
	}
	err := dbx.InLockedTx(ctx, pool, lock, nil, func(ctx context.Context, tx pgx.Tx) error {
		restored = map[string]int64{}
		if err := restoreDeleted(ctx, tx, sel, restored); err != nil {
			return err
		}
		return restoreNulled(ctx, tx, sel, restored)
	})
	if err != nil {
		return nil, err
	}
	return restored, nil
}

// quarantineSelector picks the quarantine rows of one restore; its where()
// uses parameters $1..$3 and the alias q. An empty constraintName selects
// every constraint of the rollout.
type quarantineSelector struct {
	rolloutID, runID, constraintName string
}

func (s quarantineSelector) where() string {
	return `q.rollout_id = $1 AND ($2::text = '' OR q.constraint_name = $2::text) AND ($3::text = '' OR q.run_id IS NULL OR q.run_id = $3::text)`
}

func (s quarantineSelector) args() []any { return []any{s.rolloutID, s.constraintName, s.runID} }

// restoreDeleted re-inserts every deleted row selected, shallowest first
// within each table, in one statement: one quarantine DELETE feeding one
// INSERT per table. If any row cannot go back (its key was reused, its
// parent is gone), nothing is removed from quarantine.
func restoreDeleted(ctx context.Context, tx pgx.Tx, sel quarantineSelector, restored map[string]int64) error {
	rows, err := tx.Query(ctx, `SELECT DISTINCT table_schema, table_name FROM `+meta.QuarantineTable+` q
		WHERE `+sel.where()+` AND q.action = 'delete' ORDER BY 1, 2`, sel.args()...)
	if err != nil {
		return fmt.Errorf("list quarantined tables: %w", err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (plan.TableName, error) {
		var t plan.TableName
		err := r.Scan(&t.Schema, &t.Name)
		return t, err
	})
	if err != nil || len(tables) == 0 {
		return err
	}
	args := sel.args()
	var pairs, ctes, inserted []string
	for i, t := range tables {
		cols, err := insertableColumns(ctx, tx, t)
		if err != nil {
			return err
		}
		n := len(args) + 1
		args = append(args, t.Schema, t.Name)
		pairs = append(pairs, fmt.Sprintf("($%d::text, $%d::text)", n, n+1))
		ins := make([]string, len(cols))
		vals := make([]string, len(cols))
		for j, c := range cols {
			ins[j], vals[j] = quote(c), "r."+quote(c)
		}
		ctes = append(ctes, fmt.Sprintf(`i%d AS (INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE
        SELECT %s FROM q CROSS JOIN LATERAL jsonb_populate_record(NULL::%s, q.row_data) r
        WHERE q.table_schema = $%d AND q.table_name = $%d ORDER BY q.depth, q.id RETURNING 1)`,
			i, t.Sanitize(), strings.Join(ins, ", "), strings.Join(vals, ", "), t.Sanitize(), n, n+1))
		inserted = append(inserted, fmt.Sprintf("(SELECT count(*) FROM i%d)", i))
	}
	sql := `WITH q AS (DELETE FROM ` + meta.QuarantineTable + ` q WHERE ` + sel.where() + ` AND q.action = 'delete'
        AND (q.table_schema, q.table_name) IN (VALUES ` + strings.Join(pairs, ", ") + `)
        RETURNING q.id, q.constraint_name, q.table_schema, q.table_name, q.depth, q.row_data),
` + strings.Join(ctes, ",\n") + `
SELECT (SELECT count(*) FROM q), ` + strings.Join(inserted, " + ") + `,
       (SELECT coalesce(jsonb_object_agg(constraint_name, n), '{}') FROM (SELECT constraint_name, count(*) AS n FROM q GROUP BY 1) s)`
	var removed, ins int64
	var per map[string]int64
	if err := tx.QueryRow(ctx, sql, args...).Scan(&removed, &ins, &per); err != nil {
		return fmt.Errorf("re-insert deleted rows: %w", err)
	}
	if removed != ins {
		return fmt.Errorf("re-insert deleted rows: %d quarantine entries but %d rows inserted", removed, ins)
	}
	for k, v := range per {
		restored[k] += v
	}
	return nil
}

// insertableColumns lists the columns of t a row can be inserted with
// (generated columns are recomputed).
func insertableColumns(ctx context.Context, tx pgx.Tx, t plan.TableName) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum`, t.Sanitize())
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", t, err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", t, err)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("table %s no longer exists (its quarantined rows stay)", t)
	}
	return cols, nil
}

// restoreNulled puts back nulled FK columns, per table and column set.
func restoreNulled(ctx context.Context, tx pgx.Tx, sel quarantineSelector, restored map[string]int64) error {
	type group struct {
		table   plan.TableName
		columns []string
	}
	rows, err := tx.Query(ctx, `SELECT DISTINCT table_schema, table_name, coalesce(fk_columns, '{}')
		FROM `+meta.QuarantineTable+` q WHERE `+sel.where()+` AND q.action = 'set_null' ORDER BY 1, 2, 3`, sel.args()...)
	if err != nil {
		return fmt.Errorf("list nulled rows: %w", err)
	}
	groups, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (group, error) {
		var g group
		err := r.Scan(&g.table.Schema, &g.table.Name, &g.columns)
		return g, err
	})
	if err != nil {
		return fmt.Errorf("list nulled rows: %w", err)
	}
	for _, g := range groups {
		per, err := restoreNulledGroup(ctx, tx, sel, g.table, g.columns)
		if err != nil {
			return fmt.Errorf("set_null rows of %s: %w", g.table, err)
		}
		for k, v := range per {
			restored[k] += v
		}
	}
	return nil
}

func restoreNulledGroup(ctx context.Context, tx pgx.Tx, sel quarantineSelector, t plan.TableName, fkCols []string) (map[string]int64, error) {
	info, err := loadTable(ctx, tx, plan.ForeignKey{Name: "restore", Table: t, RefTable: t})
	if err != nil {
		return nil, err
	}
	if len(info.pk) == 0 {
		return nil, fmt.Errorf("table %s has no primary key to find rows by", t)
	}
	if len(fkCols) == 0 {
		return nil, errors.New("quarantine entry has no fk_columns")
	}
	var sets, isNull, keyEq []string
	for _, c := range fkCols {
		sets = append(sets, quote(c)+" = r."+quote(c))
		isNull = append(isNull, "c."+quote(c)+" IS NULL")
	}
	for _, k := range info.pk {
		keyEq = append(keyEq, "c."+quote(k)+" = r."+quote(k))
	}
	args := append(sel.args(), t.Schema, t.Name, fkCols)
	var per map[string]int64
	err = tx.QueryRow(ctx, `WITH u AS (UPDATE `+t.Sanitize()+` c SET `+strings.Join(sets, ", ")+`
        FROM `+meta.QuarantineTable+` q CROSS JOIN LATERAL jsonb_populate_record(NULL::`+t.Sanitize()+`, q.row_data) r
        WHERE `+sel.where()+` AND q.table_schema = $4 AND q.table_name = $5 AND q.action = 'set_null' AND q.fk_columns = $6::text[]
          AND `+strings.Join(keyEq, " AND ")+` AND `+strings.Join(isNull, " AND ")+`
        RETURNING q.id),
d AS (DELETE FROM `+meta.QuarantineTable+` WHERE id IN (SELECT id FROM u) RETURNING constraint_name)
SELECT coalesce(jsonb_object_agg(constraint_name, n), '{}') FROM (SELECT constraint_name, count(*) AS n FROM d GROUP BY 1) s`, args...).Scan(&per)
	return per, err
}
