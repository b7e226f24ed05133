package audit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/meta"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

// Mode is how orphans are remediated.
type Mode string

const (
	// ModeDelete deletes orphan rows (the simplest remediation, for rows
	// nothing else depends on).
	ModeDelete Mode = "delete"
	// ModeDeleteWithDependents deletes orphan rows together with every row
	// that existing FK constraints make depend on them (RESTRICT/NO ACTION
	// and CASCADE dependents deleted, SET NULL dependents nulled), all
	// copied to quarantine first; see Impact for what that is.
	ModeDeleteWithDependents Mode = "delete_with_dependents"
	// ModeSetNull sets every FK column of orphan rows to NULL. Under MATCH
	// SIMPLE nulling one column would already satisfy the constraint, but a
	// half-nulled key is misleading data and is a violation under MATCH
	// FULL, so all FK columns are nulled.
	ModeSetNull Mode = "set_null"
)

// Valid reports whether m is one of the modes above.
func (m Mode) Valid() bool {
	return m == ModeDelete || m == ModeDeleteWithDependents || m == ModeSetNull
}

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
	FK   string `json:"fk"`
	Mode Mode   `json:"mode"`
	// Quarantined counts every quarantine row written: the orphans and,
	// for delete_with_dependents, every dependent row removed or changed.
	Quarantined int64 `json:"quarantined"`
	// Affected counts the orphan rows deleted or nulled.
	Affected int64 `json:"affected"`
	Batches  int   `json:"batches"`
}

// Remediate removes the orphans of fk (delete, delete_with_dependents) or
// detaches them (set_null), batch by batch. Each batch is one short
// transaction (dbx.InLockedTx, so lock_timeout with retry) that locks up to
// BatchSize orphan rows with FOR UPDATE, copies every row it removes or
// changes whole (to_jsonb) into fkrollout.quarantine and deletes/updates
// exactly those rows, re-checking the orphan predicate so a parent inserted
// meanwhile saves its child. A crash therefore never loses a row: a batch
// either commits both the copies and the changes or neither.
//
// FOR UPDATE (not SKIP LOCKED) is deliberate: a row a client holds locked
// makes the batch wait up to lock_timeout and retry, instead of being
// silently left behind. Re-running when no orphans remain does nothing.
//
// Before anything changes: delete is refused (ErrDependents) when deleting
// the orphans would remove, change or be blocked by any other row (Impact);
// delete_with_dependents when Impact finds it impossible for another reason
// (ErrNotPossible); set_null when an FK column is NOT NULL or the table has
// no primary key (Restore finds rows by primary key).
//
// Every batch ends with a completeness check: a batch in which any table
// lost or had changed more rows than were copied to quarantine (a trigger,
// an unforeseen cascade) is rolled back with ErrUncapturedChanges.
func Remediate(ctx context.Context, pool *pgxpool.Pool, fk plan.ForeignKey, mode Mode, rolloutID string, o RemediateOptions) (RemediationResult, error) {
	res := RemediationResult{FK: fk.ID(), Mode: mode}
	if err := checkFK(fk); err != nil {
		return res, err
	}
	if !mode.Valid() {
		return res, fmt.Errorf("remediate %s: unknown mode %q (want %q, %q or %q)", fk.ID(), mode, ModeDelete, ModeDeleteWithDependents, ModeSetNull)
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
	if err := precheck(ctx, pool, fk, mode, info); err != nil {
		return res, fmt.Errorf("remediate %s: %w", fk.ID(), err)
	}
	root, err := lookupRelation(ctx, pool, fk.Table)
	if err != nil {
		return res, fmt.Errorf("remediate %s: %w", fk.ID(), err)
	}
	if err := meta.EnsureSchema(ctx, pool); err != nil {
		return res, fmt.Errorf("remediate %s: %w", fk.ID(), err)
	}
	b := &batchRun{fk: fk, mode: mode, root: root, info: info, pred: orphanPredicate(fk), rolloutID: rolloutID, runID: o.RunID, size: o.BatchSize}
	var cursor []any // key of the last row of the previous batch; nil = start
	rescued := 0
	for {
		var out batchOutcome
		err := dbx.InLockedTx(ctx, pool, o.Lock, nil, func(ctx context.Context, tx pgx.Tx) error {
			var err error
			out, err = b.run(ctx, tx, cursor)
			return err
		})
		if errors.Is(err, errRescued) && rescued < maxRescueRetries {
			rescued++ // an orphan of the batch got a parent meanwhile: redo the batch without it
			continue
		}
		if err != nil {
			return res, fmt.Errorf("remediate %s (%s, batch %d): %w", fk.ID(), mode, res.Batches+1, err)
		}
		if out.locked == 0 {
			if cursor == nil {
				return res, nil
			}
			cursor = nil // end of a pass that found orphans: check again from the start
			continue
		}
		res.Batches++
		res.Quarantined += out.quarantined
		res.Affected += out.affected
		cursor = out.last
	}
}

// maxRescueRetries bounds how often one batch is redone because an orphan
// stopped being one between locking and deleting.
const maxRescueRetries = 10

// precheck refuses a mode, before anything changes, when it cannot run.
func precheck(ctx context.Context, pool *pgxpool.Pool, fk plan.ForeignKey, mode Mode, info tableInfo) error {
	if mode == ModeSetNull {
		var notNull []string
		for _, c := range fk.Columns {
			if info.notNull[c] {
				notNull = append(notNull, c)
			}
		}
		if len(notNull) > 0 {
			return fmt.Errorf("set_null impossible, column(s) %s of %s are NOT NULL (use delete)", strings.Join(notNull, ", "), fk.Table)
		}
		if len(info.pk) == 0 {
			return fmt.Errorf("set_null needs a primary key on %s to restore rows later (use delete)", fk.Table)
		}
		return nil
	}
	rep, err := impact(ctx, pool, fk, mode, true)
	if err != nil {
		return err
	}
	c := rep.Choice(mode)
	switch {
	case c.Possible:
		return nil
	case mode == ModeDelete && len(rep.Dependents) > 0:
		return fmt.Errorf("%w: %s", ErrDependents, c.Reason)
	case mode == ModeDeleteWithDependents && len(rep.Dependents) == 0 && rep.Choice(ModeDelete).Possible:
		return nil // nothing depends on the orphans (any more): a plain delete, still checked per batch
	}
	return fmt.Errorf("%w: %s: %s", ErrNotPossible, mode, c.Reason)
}

// batchRun is one remediation's per-batch work.
type batchRun struct {
	fk               plan.ForeignKey
	mode             Mode
	root             relation
	info             tableInfo
	pred             string
	rolloutID, runID string
	size             int
}

type batchOutcome struct {
	locked                int
	quarantined, affected int64
	last                  []any
}

// run is one batch transaction: lock, remediate, check completeness.
func (b *batchRun) run(ctx context.Context, tx pgx.Tx, cursor []any) (batchOutcome, error) {
	var out batchOutcome
	// Batch statements are short; JIT compiling them would cost more.
	if _, err := tx.Exec(ctx, "SET LOCAL jit = off"); err != nil {
		return out, fmt.Errorf("set jit: %w", err)
	}
	before, err := statSnapshot(ctx, tx)
	if err != nil {
		return out, err
	}
	rows, last, err := b.lock(ctx, tx, cursor)
	if err != nil {
		return out, fmt.Errorf("lock orphan batch: %w", err)
	}
	out.locked, out.last = len(rows), last
	if len(rows) == 0 {
		return out, nil
	}
	var cp captured
	if b.mode == ModeSetNull {
		cp, out.affected, err = b.setNull(ctx, tx, rows)
	} else {
		cp, out.affected, err = b.deleteBatch(ctx, tx, rows)
	}
	if err != nil {
		return out, err
	}
	if err := checkComplete(ctx, tx, before, cp); err != nil {
		return out, err
	}
	out.quarantined = cp.total()
	return out, nil
}

// lock selects and locks the next batch of orphans in key order (keyset
// cursor), so each batch scans forward from the last one instead of
// re-reading rows already seen. A pass that found anything is followed by
// a pass from the start (orphans written meanwhile behind the cursor); a
// pass from the start that finds nothing ends the run.
func (b *batchRun) lock(ctx context.Context, tx pgx.Tx, cursor []any) ([]rid, []any, error) {
	_, keyExprs := b.info.keyColumns()
	q := "SELECT c.tableoid::oid::text, c.ctid::text, " + strings.Join(keyExprs, ", ") + " FROM " + b.fk.Table.Sanitize() + " c WHERE "
	args := []any{b.size}
	if cursor != nil {
		q += b.info.after(2) + " AND "
		args = append(args, cursor...)
	}
	q += b.pred + " ORDER BY " + b.info.orderBy() + " LIMIT $1 FOR UPDATE OF c"
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var out []rid
	var last []any
	vals := make([]*string, 2+len(keyExprs))
	dest := make([]any, len(vals))
	for i := range vals {
		dest[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, nil, err
		}
		rel, err := strconv.ParseUint(*vals[0], 10, 32)
		if err != nil {
			return nil, nil, fmt.Errorf("tableoid %q: %w", *vals[0], err)
		}
		out = append(out, rid{rel: uint32(rel), tid: *vals[1]})
		last = last[:0]
		for _, v := range vals[2:] {
			last = append(last, *v) // key columns are never NULL
		}
	}
	return out, last, rows.Err()
}

// setNull nulls every FK column of the locked orphans, copying each row
// first.
func (b *batchRun) setNull(ctx context.Context, tx pgx.Tx, rows []rid) (captured, int64, error) {
	sets := make([]string, len(b.fk.Columns))
	for i, c := range b.fk.Columns {
		sets[i] = quote(c) + " = NULL"
	}
	from := b.fk.Table.Sanitize()
	sql := `WITH old AS (SELECT to_jsonb(c) AS row_data FROM ` + from + ` c WHERE ` + ridFilter("c", 1) + ` AND ` + b.pred + `),
q AS (INSERT INTO ` + meta.QuarantineTable + ` (rollout_id, run_id, constraint_name, table_schema, table_name, action, row_data, fk_columns)
      SELECT $3, NULLIF($4::text, ''), $5, $6, $7, 'set_null', row_data, $8::text[] FROM old RETURNING 1),
u AS (UPDATE ` + from + ` c SET ` + strings.Join(sets, ", ") + ` WHERE ` + ridFilter("c", 1) + ` AND ` + b.pred + ` RETURNING 1)
SELECT (SELECT count(*) FROM q), (SELECT count(*) FROM u)`
	tids, keys := ridArgs(rows)
	var quarantined, affected int64
	if err := tx.QueryRow(ctx, sql, tids, keys, b.rolloutID, b.runID, b.fk.Name, b.fk.Table.Schema, b.fk.Table.Name, b.fk.Columns).
		Scan(&quarantined, &affected); err != nil {
		return nil, 0, fmt.Errorf("quarantine and set_null batch: %w", err)
	}
	if quarantined != affected {
		// Cannot happen with the statement above; refuse to commit if it does.
		return nil, 0, fmt.Errorf("quarantined %d rows but changed %d; batch rolled back", quarantined, affected)
	}
	cp := captured{}
	cp.add(b.root, 0, affected)
	return cp, affected, nil
}
