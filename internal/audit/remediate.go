package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fkrollout/fkrollout/internal/dbx"
	"github.com/fkrollout/fkrollout/internal/meta"
	"github.com/fkrollout/fkrollout/internal/plan"
)

// Mode is how orphans are remediated.
type Mode string

const (
	// ModeDelete deletes orphan rows (the seeds' Step 1.2 option 1).
	ModeDelete Mode = "delete"
	// ModeSetNull sets every FK column of orphan rows to NULL. Under MATCH
	// SIMPLE nulling one column would already satisfy the constraint, but a
	// half-nulled key is misleading data and is a violation under MATCH
	// FULL, so all FK columns are nulled.
	ModeSetNull Mode = "set_null"
)

// RemediateOptions tunes remediation.
type RemediateOptions struct {
	// BatchSize is the number of rows per transaction (default 1000).
	BatchSize int `json:"batch_size"`
	// Lock is the lock_timeout/retry policy of each batch transaction.
	Lock dbx.LockPolicy `json:"lock"`
	// RunID is the run of the rollout remediating, recorded on every
	// quarantine row: a workflow id can be reused once its run has closed,
	// and the quarantine should say which run removed a row.
	RunID string `json:"run_id,omitempty"`
}

// RemediationResult counts what one remediation did.
type RemediationResult struct {
	FK          string `json:"fk"`
	Mode        Mode   `json:"mode"`
	Quarantined int64  `json:"quarantined"`
	Affected    int64  `json:"affected"`
	Batches     int    `json:"batches"`
}

// Remediate removes the orphans of fk (delete) or detaches them (set_null),
// batch by batch. Each batch is one short transaction (dbx.InLockedTx, so
// lock_timeout with retry) that locks up to BatchSize orphan rows with
// FOR UPDATE, copies them whole (to_jsonb) into fkrollout.quarantine and
// deletes/updates exactly those rows, re-checking the orphan predicate so a
// parent inserted meanwhile saves its child. A crash therefore never loses a
// row: a batch either commits both the copy and the change or neither.
//
// FOR UPDATE (not SKIP LOCKED) is deliberate: a row a client holds locked
// makes the batch wait up to lock_timeout and retry, instead of being
// silently left behind. Re-running when no orphans remain does nothing.
//
// set_null is refused, before anything changes, when an FK column is NOT
// NULL or the table has no primary key (Restore finds rows by primary key).
func Remediate(ctx context.Context, pool *pgxpool.Pool, fk plan.ForeignKey, mode Mode, rolloutID string, o RemediateOptions) (RemediationResult, error) {
	res := RemediationResult{FK: fk.ID(), Mode: mode}
	if err := checkFK(fk); err != nil {
		return res, err
	}
	if mode != ModeDelete && mode != ModeSetNull {
		return res, fmt.Errorf("remediate %s: unknown mode %q (want %q or %q)", fk.ID(), mode, ModeDelete, ModeSetNull)
	}
	if rolloutID == "" {
		return res, fmt.Errorf("remediate %s: rollout id is required (quarantine rows are keyed by it)", fk.ID())
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 1000
	}
	info, err := loadTable(ctx, pool, fk)
	if err != nil {
		return res, fmt.Errorf("remediate %s: %w", fk.ID(), err)
	}
	if mode == ModeSetNull {
		var notNull []string
		for _, c := range fk.Columns {
			if info.notNull[c] {
				notNull = append(notNull, c)
			}
		}
		if len(notNull) > 0 {
			return res, fmt.Errorf("remediate %s: set_null impossible, column(s) %s of %s are NOT NULL (use delete)", fk.ID(), strings.Join(notNull, ", "), fk.Table)
		}
		if len(info.pk) == 0 {
			return res, fmt.Errorf("remediate %s: set_null needs a primary key on %s to restore rows later (use delete)", fk.ID(), fk.Table)
		}
	}
	if err := meta.EnsureSchema(ctx, pool); err != nil {
		return res, fmt.Errorf("remediate %s: %w", fk.ID(), err)
	}

	pred := orphanPredicate(fk)
	// Batches walk the table in key order (keyset cursor), so each batch
	// scans forward from the last one instead of re-reading rows already
	// seen. A pass that found anything is followed by a pass from the start
	// (orphans written meanwhile behind the cursor); a pass from the start
	// that finds nothing ends the run.
	_, keyExprs := info.keyColumns()
	selectList := "c.ctid::text, " + strings.Join(keyExprs, ", ")
	firstSQL := "SELECT " + selectList + " FROM " + fk.Table.Sanitize() + " c WHERE " + pred +
		" ORDER BY " + info.orderBy() + " LIMIT $1 FOR UPDATE OF c"
	nextSQL := "SELECT " + selectList + " FROM " + fk.Table.Sanitize() + " c WHERE " + info.after(2) + " AND " + pred +
		" ORDER BY " + info.orderBy() + " LIMIT $1 FOR UPDATE OF c"
	var changeSQL string
	args := []any{nil, rolloutID, fk.Name, fk.Table.Schema, fk.Table.Name, o.RunID}
	switch mode {
	case ModeDelete:
		changeSQL = `WITH d AS (DELETE FROM ` + fk.Table.Sanitize() + ` c WHERE c.ctid = ANY($1::text[]::tid[]) AND ` + pred + ` RETURNING c.*),
q AS (INSERT INTO ` + meta.QuarantineTable + ` (rollout_id, run_id, constraint_name, table_schema, table_name, action, row_data)
      SELECT $2, NULLIF($6::text, ''), $3, $4, $5, 'delete', to_jsonb(d) FROM d RETURNING 1)
SELECT (SELECT count(*) FROM q), (SELECT count(*) FROM d)`
	case ModeSetNull:
		sets := make([]string, len(fk.Columns))
		for i, c := range fk.Columns {
			sets[i] = quote(c) + " = NULL"
		}
		changeSQL = `WITH old AS (SELECT c.ctid AS tid, to_jsonb(c) AS row_data FROM ` + fk.Table.Sanitize() + ` c WHERE c.ctid = ANY($1::text[]::tid[]) AND ` + pred + `),
q AS (INSERT INTO ` + meta.QuarantineTable + ` (rollout_id, run_id, constraint_name, table_schema, table_name, action, row_data, fk_columns)
      SELECT $2, NULLIF($6::text, ''), $3, $4, $5, 'set_null', row_data, $7::text[] FROM old RETURNING 1),
u AS (UPDATE ` + fk.Table.Sanitize() + ` c SET ` + strings.Join(sets, ", ") + ` FROM old WHERE c.ctid = old.tid RETURNING 1)
SELECT (SELECT count(*) FROM q), (SELECT count(*) FROM u)`
		args = append(args, fk.Columns)
	}

	var cursor []any // key of the last row of the previous batch; nil = start
	for {
		var quarantined, affected int64
		var locked int
		var last []any
		err := dbx.InLockedTx(ctx, pool, o.Lock, nil, func(ctx context.Context, tx pgx.Tx) error {
			q, qargs := firstSQL, []any{o.BatchSize}
			if cursor != nil {
				q, qargs = nextSQL, append([]any{o.BatchSize}, cursor...)
			}
			rows, err := tx.Query(ctx, q, qargs...)
			if err != nil {
				return fmt.Errorf("lock orphan batch: %w", err)
			}
			var tids []string
			last = nil
			for rows.Next() {
				vals := make([]*string, 1+len(keyExprs))
				dest := make([]any, len(vals))
				for i := range vals {
					dest[i] = &vals[i]
				}
				if err := rows.Scan(dest...); err != nil {
					rows.Close()
					return fmt.Errorf("lock orphan batch: %w", err)
				}
				tids = append(tids, *vals[0])
				last = last[:0]
				for _, v := range vals[1:] {
					last = append(last, *v) // key columns are never NULL
				}
			}
			if err := rows.Err(); err != nil {
				return fmt.Errorf("lock orphan batch: %w", err)
			}
			locked = len(tids)
			if locked == 0 {
				return nil
			}
			a := append([]any{tids}, args[1:]...)
			if err := tx.QueryRow(ctx, changeSQL, a...).Scan(&quarantined, &affected); err != nil {
				return fmt.Errorf("quarantine and %s batch: %w", mode, err)
			}
			if quarantined != affected {
				// Cannot happen with the statement above; refuse to commit if it does.
				return fmt.Errorf("quarantined %d rows but changed %d; batch rolled back", quarantined, affected)
			}
			return nil
		})
		if err != nil {
			return res, fmt.Errorf("remediate %s (%s, batch %d): %w", fk.ID(), mode, res.Batches+1, err)
		}
		if locked == 0 {
			if cursor == nil {
				return res, nil
			}
			cursor = nil // end of a pass that found orphans: check again from the start
			continue
		}
		res.Batches++
		res.Quarantined += quarantined
		res.Affected += affected
		cursor = last
	}
}

// Restore puts the rows quarantined for (rolloutID, constraintName) back,
// whichever run of the rollout quarantined them: deleted rows are
// re-inserted (jsonb_populate_record, identity values kept), nulled FK
// columns are restored by primary key where they are still NULL. Restored
// quarantine entries are removed in the same transaction, so a second
// Restore does nothing. A set_null entry whose row has since been deleted
// or re-pointed stays in quarantine and is not counted.
func Restore(ctx context.Context, pool *pgxpool.Pool, rolloutID, constraintName string) (int64, error) {
	return RestoreRun(ctx, pool, rolloutID, "", constraintName)
}

// RestoreRun is Restore limited to the rows run runID of the rollout
// quarantined, plus rows quarantined before runs were recorded (run_id
// NULL, which may be that run's if it was in flight during the upgrade).
// An empty runID restores every run's rows, like Restore.
func RestoreRun(ctx context.Context, pool *pgxpool.Pool, rolloutID, runID, constraintName string) (int64, error) {
	if rolloutID == "" || constraintName == "" {
		return 0, errors.New("restore: rollout id and constraint name are required")
	}
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", meta.QuarantineTable).Scan(&exists); err != nil {
		return 0, fmt.Errorf("restore %s: %w", constraintName, err)
	}
	if !exists {
		return 0, nil
	}
	// Rows from a quarantine another role can write would be inserted into
	// production tables: check its owner (and add run_id if missing).
	if err := meta.EnsureSchema(ctx, pool); err != nil {
		return 0, fmt.Errorf("restore %s: %w", constraintName, err)
	}
	sel := quarantineSelector{rolloutID: rolloutID, runID: runID, constraintName: constraintName}
	var restored int64
	err := dbx.InLockedTx(ctx, pool, dbx.DefaultLockPolicy(), nil, func(ctx context.Context, tx pgx.Tx) error {
		restored = 0
		type group struct {
			table   plan.TableName
			action  string
			columns []string
		}
		rows, err := tx.Query(ctx, `SELECT DISTINCT table_schema, table_name, action, coalesce(fk_columns, '{}')
			FROM `+meta.QuarantineTable+` q WHERE `+sel.where()+` ORDER BY 1, 2, 3`, sel.args()...)
		if err != nil {
			return err
		}
		groups, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (group, error) {
			var g group
			err := r.Scan(&g.table.Schema, &g.table.Name, &g.action, &g.columns)
			return g, err
		})
		if err != nil {
			return err
		}
		for _, g := range groups {
			n, err := restoreGroup(ctx, tx, sel, g.table, g.action, g.columns)
			if err != nil {
				return fmt.Errorf("%s rows of %s: %w", g.action, g.table, err)
			}
			restored += n
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("restore %s (rollout %s): %w", constraintName, rolloutID, err)
	}
	return restored, nil
}

// quarantineSelector picks the quarantine rows of one restore; its where()
// uses parameters $1..$3 and the alias q.
type quarantineSelector struct {
	rolloutID, runID, constraintName string
}

func (s quarantineSelector) where() string {
	return `q.rollout_id = $1 AND q.constraint_name = $2 AND ($3::text = '' OR q.run_id IS NULL OR q.run_id = $3::text)`
}

func (s quarantineSelector) args() []any { return []any{s.rolloutID, s.constraintName, s.runID} }

func restoreGroup(ctx context.Context, tx pgx.Tx, sel quarantineSelector, t plan.TableName, action string, fkCols []string) (int64, error) {
	info, err := loadTable(ctx, tx, plan.ForeignKey{Name: sel.constraintName, Table: t, RefTable: t})
	if err != nil {
		return 0, err
	}
	match := sel.where() + ` AND q.table_schema = $4 AND q.table_name = $5`
	args := append(sel.args(), t.Schema, t.Name)
	var n int64
	switch action {
	case string(ModeDelete):
		rows, err := tx.Query(ctx, `SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum`, t.Sanitize())
		if err != nil {
			return 0, err
		}
		cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return 0, err
		}
		ins := make([]string, len(cols))
		sel := make([]string, len(cols))
		for i, c := range cols {
			ins[i] = quote(c)
			sel[i] = "r." + quote(c)
		}
		// One statement: if any row cannot go back (its key was reused),
		// nothing is removed from quarantine.
		err = tx.QueryRow(ctx, `WITH q AS (DELETE FROM `+meta.QuarantineTable+` q WHERE `+match+` AND q.action = 'delete' RETURNING q.id, q.row_data),
ins AS (INSERT INTO `+t.Sanitize()+` (`+strings.Join(ins, ", ")+`) OVERRIDING SYSTEM VALUE
        SELECT `+strings.Join(sel, ", ")+` FROM q CROSS JOIN LATERAL jsonb_populate_record(NULL::`+t.Sanitize()+`, q.row_data) r ORDER BY q.id RETURNING 1)
SELECT count(*) FROM ins`, args...).Scan(&n)
		return n, err
	case string(ModeSetNull):
		if len(info.pk) == 0 {
			return 0, fmt.Errorf("table %s has no primary key to find rows by", t)
		}
		if len(fkCols) == 0 {
			return 0, errors.New("quarantine entry has no fk_columns")
		}
		var sets, isNull, keyEq []string
		for _, c := range fkCols {
			sets = append(sets, quote(c)+" = r."+quote(c))
			isNull = append(isNull, "c."+quote(c)+" IS NULL")
		}
		for _, k := range info.pk {
			keyEq = append(keyEq, "c."+quote(k)+" = r."+quote(k))
		}
		args = append(args, fkCols)
		err := tx.QueryRow(ctx, `WITH u AS (UPDATE `+t.Sanitize()+` c SET `+strings.Join(sets, ", ")+`
        FROM `+meta.QuarantineTable+` q CROSS JOIN LATERAL jsonb_populate_record(NULL::`+t.Sanitize()+`, q.row_data) r
        WHERE `+match+` AND q.action = 'set_null' AND q.fk_columns = $6::text[]
          AND `+strings.Join(keyEq, " AND ")+` AND `+strings.Join(isNull, " AND ")+`
        RETURNING q.id),
d AS (DELETE FROM `+meta.QuarantineTable+` WHERE id IN (SELECT id FROM u) RETURNING 1)
SELECT count(*) FROM d`, args...).Scan(&n)
		return n, err
	}
	return 0, fmt.Errorf("unknown quarantine action %q", action)
}
