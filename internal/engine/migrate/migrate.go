// Package migrate changes the database: ADD CONSTRAINT ... NOT VALID (short
// lock, no scan), VALIDATE CONSTRAINT (scan under SHARE UPDATE EXCLUSIVE, so
// reads and writes continue), verification and rollback of exactly the
// constraints a rollout created. Every statement runs through dbx.RunDDL:
// it waits, without queueing, while a long transaction holds a conflicting
// lock, then runs under SET LOCAL lock_timeout with retries of 55P03, in a
// session labelled with the rollout, step and attempt (a retry ends a dead
// attempt's backend). One constraint per transaction, and ownership is
// recorded in the same transaction as the DDL so a crash never leaves an
// unowned constraint or an ownership row without one.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fkrollout/fkrollout/internal/engine/catalog"
	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/meta"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

// ErrOrphans wraps a VALIDATE that failed with 23503 (rows without a parent
// appeared since the audit); the pg error stays in the chain.
var ErrOrphans = errors.New("orphan rows prevent validation")

// ErrDefinitionConflict: a constraint with the plan's name exists with a
// different definition.
var ErrDefinitionConflict = errors.New("constraint exists with a different definition")

// ErrNotOwned: a partition already carries a matching constraint this
// rollout did not create; adding the parent would adopt it and a rollback
// would then drop it too.
var ErrNotOwned = errors.New("constraint not owned by this rollout")

// ErrMissing: VALIDATE was asked for a constraint that does not exist
// (dropped by someone since it was applied); only applying it again helps.
var ErrMissing = errors.New("constraint does not exist")

// Options for Apply, Validate, Verify and Rollback.
type Options struct {
	RolloutID string
	// RunID is the run of the rollout (the Temporal run id). A workflow id
	// can be reused once its run has closed; ownership is recorded per run
	// so a later run never owns, and so never rolls back, a constraint an
	// earlier run created. Empty means "any run of RolloutID" (operators'
	// manual commands); see catalog.Owner.Owns.
	RunID string
	Lock  dbx.LockPolicy
	// Attempt is the activity attempt running the step (0 outside a
	// workflow). With RolloutID it labels each statement's session
	// (dbx.Label): a retry ends a previous attempt's backend of the same
	// rollout run, step and constraint that is still running.
	Attempt int
	// Progress, when set, sees every start, attempt, wait and finish.
	Progress func(Event)
	// KeepValidated makes Rollback drop only constraints still NOT VALID;
	// a validated one stays, with its ownership, as ActionKeptValidated.
	KeepValidated bool
}

// label is the session label of one step on one constraint.
func (o Options) label(step string, fk plan.ForeignKey) dbx.Label {
	if o.RolloutID == "" {
		return dbx.Label{}
	}
	return dbx.Label{Rollout: o.RolloutID, Identity: []string{o.RunID, step, fk.ID()}, Step: step, Attempt: o.Attempt}
}

// Event reports progress (the workflow heartbeats from it).
type Event struct {
	FK      string        `json:"fk"`
	Step    string        `json:"step"` // apply|validate|drop
	Attempt int           `json:"attempt"`
	Done    int           `json:"done"`
	Total   int           `json:"total"`
	Message string        `json:"message"`
	Elapsed time.Duration `json:"elapsed"`
	// Waiting is set while the statement waits, without queueing for its
	// locks, for conflicting transactions to end (who, and how long).
	Waiting *dbx.Wait `json:"waiting,omitempty"`
}

// Actions in Result.
const (
	ActionCreated          = "created"
	ActionExistsSame       = "exists-same"
	ActionValidated        = "validated"
	ActionAlreadyValidated = "already-validated"
	ActionDropped          = "dropped"
	ActionAbsent           = "absent"
	ActionNotOwned         = "not-owned"
	ActionSkipped          = "skipped"
	ActionKeptValidated    = "kept-validated"
)

// Result of one constraint.
type Result struct {
	FK         string `json:"fk"`
	Table      string `json:"table"`
	Action     string `json:"action"`
	Attempts   int    `json:"attempts"`
	DurationMS int64  `json:"duration_ms"`
	// Owned: the constraint is recorded as this run's (catalog.Owner.Owns)
	// after the step.
	Owned bool `json:"owned"`
	// Partitions lists the leaf partitions handled for a partitioned table.
	Partitions []string `json:"partitions,omitempty"`
	Note       string   `json:"note,omitempty"`
	// WaitedMS is the time spent waiting, without queueing, for
	// conflicting transactions to end; WaitedFor names the last one.
	WaitedMS  int64  `json:"waited_ms,omitempty"`
	WaitedFor string `json:"waited_for,omitempty"`
	// Terminated lists the backends of a previous attempt of this step
	// that were still running its statement and were ended first.
	Terminated []int `json:"terminated,omitempty"`
}

// Verification is the state of one plan constraint.
type Verification struct {
	FK             string `json:"fk"`
	Exists         bool   `json:"exists"`
	Validated      bool   `json:"validated"`
	SameDefinition bool   `json:"same_definition"`
	// Owned: see VerifyRun.
	Owned        bool   `json:"owned"`
	OwnerRollout string `json:"owner_rollout,omitempty"`
	// OwnerRun is the run of OwnerRollout that created the constraint ("" when
	// recorded before runs were).
	OwnerRun string `json:"owner_run,omitempty"`
}

// ordered returns the plan's FKs in priority order (stable).
func ordered(p plan.Plan) []plan.ForeignKey {
	fks := slices.Clone(p.ForeignKeys)
	slices.SortStableFunc(fks, func(a, b plan.ForeignKey) int { return int(a.Priority) - int(b.Priority) })
	return fks
}

type tracker struct {
	o        Options
	step     string
	key      plan.ForeignKey
	fk       string
	done     int
	total    int
	attempts int
	start    time.Time
	rep      dbx.Report
}

func newTracker(o Options, step string, fk plan.ForeignKey, done, total int) *tracker {
	t := &tracker{o: o, step: step, key: fk, fk: fk.ID(), done: done, total: total, start: time.Now()}
	t.emit(0, "start")
	return t
}

func (t *tracker) emit(attempt int, msg string) { t.emitWait(attempt, msg, nil) }

func (t *tracker) emitWait(attempt int, msg string, w *dbx.Wait) {
	if t.o.Progress != nil {
		t.o.Progress(Event{FK: t.fk, Step: t.step, Attempt: attempt, Done: t.done, Total: t.total, Message: msg, Elapsed: time.Since(t.start), Waiting: w})
	}
}

func (t *tracker) waiting(w dbx.Wait) { t.emitWait(t.attempts, w.String(), &w) }

// running is the detail every heartbeat carries while the statement runs
// (a VALIDATE scan: for hours).
func (t *tracker) running(n int) {
	t.emit(n, fmt.Sprintf("attempt %d running (lock_timeout %s)", n, t.o.Lock.WithDefaults().LockTimeout))
}

// run runs the tracker's statement through dbx.RunDDL: labelled, after a
// previous attempt's backend is ended, and after the targets are clear of
// blockers. statementTimeout 0 keeps the lock policy's.
func (t *tracker) run(ctx context.Context, pool *pgxpool.Pool, targets []dbx.LockTarget, statementTimeout time.Duration,
	fn func(ctx context.Context, tx pgx.Tx) error) error {
	rep, err := dbx.RunDDL(ctx, pool, t.o.Lock, dbx.DDL{Targets: targets, Label: t.o.label(t.step, t.key), StatementTimeout: statementTimeout,
		Observe: t.observe, Waiting: t.waiting, Running: t.running}, fn)
	t.rep.Waited += rep.Waited
	if len(rep.Blockers) > 0 {
		t.rep.Blockers = rep.Blockers
	}
	t.rep.Terminated = append(t.rep.Terminated, rep.Terminated...)
	if len(rep.Terminated) > 0 {
		t.emit(t.attempts, fmt.Sprintf("ended backend(s) %v of a previous attempt still running this statement", rep.Terminated))
	}
	return err
}

func (t *tracker) observe(a dbx.Attempt) {
	t.attempts++
	msg := "ok"
	if a.Err != nil {
		msg = a.Err.Error()
	}
	t.emit(t.attempts, msg)
}

func (t *tracker) finish(r *Result, err error) {
	r.Attempts = t.attempts
	r.DurationMS = time.Since(t.start).Milliseconds()
	r.WaitedMS = t.rep.Waited.Milliseconds()
	if len(t.rep.Blockers) > 0 {
		r.WaitedFor = t.rep.Blockers[0].String()
	}
	r.Terminated = t.rep.Terminated
	msg := r.Action
	if err != nil {
		msg = "error: " + err.Error()
	}
	t.done++
	t.emit(t.attempts, msg)
}

// Apply adds every plan constraint NOT VALID, in priority order, one per
// transaction. It stops at the first error, returning the results so far.
func Apply(ctx context.Context, pool *pgxpool.Pool, p plan.Plan, o Options) ([]Result, error) {
	if o.RolloutID == "" {
		return nil, errors.New("apply: rollout id is required (it records ownership for rollback)")
	}
	if err := meta.EnsureSchema(ctx, pool); err != nil {
		return nil, err
	}
	return inOrder(p, func(fk plan.ForeignKey, done, total int) (Result, error) {
		return applyOne(ctx, pool, fk, o, done, total)
	})
}

// inOrder runs one step per plan constraint in priority order and stops at
// the first error, returning the results so far.
func inOrder(p plan.Plan, step func(fk plan.ForeignKey, done, total int) (Result, error)) ([]Result, error) {
	fks := ordered(p)
	out := make([]Result, 0, len(fks))
	for i, fk := range fks {
		r, err := step(fk, i, len(fks))
		out = append(out, r)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// ApplyOne adds one constraint (see Apply).
func ApplyOne(ctx context.Context, pool *pgxpool.Pool, fk plan.ForeignKey, o Options) (Result, error) {
	if o.RolloutID == "" {
		return Result{FK: fk.ID()}, errors.New("apply: rollout id is required (it records ownership for rollback)")
	}
	if err := meta.EnsureSchema(ctx, pool); err != nil {
		return Result{FK: fk.ID()}, err
	}
	return applyOne(ctx, pool, fk, o, 0, 1)
}

func applyOne(ctx context.Context, pool *pgxpool.Pool, fk plan.ForeignKey, o Options, done, total int) (r Result, err error) {
	r = Result{FK: fk.ID(), Table: fk.Table.String()}
	st, err := catalog.Lookup(ctx, pool, fk)
	if err != nil {
		return r, fmt.Errorf("apply %s: %w", fk.ID(), err)
	}
	if st.Partitioned {
		return applyPartitioned(ctx, pool, fk, o, done, total)
	}
	t := newTracker(o, "apply", fk, done, total)
	defer func() { t.finish(&r, err) }()
	err = t.run(ctx, pool, addTargets(fk), 0, func(ctx context.Context, tx pgx.Tx) error {
		action, owned, note, err := addIfAbsent(ctx, tx, fk, o, true)
		r.Action, r.Owned, r.Note = action, owned, note
		return err
	})
	if err != nil {
		return r, fmt.Errorf("apply %s: %w", fk.ID(), err)
	}
	return r, nil
}

// addIfAbsent re-reads the state inside the transaction and adds the
// constraint plus its ownership row when absent.
func addIfAbsent(ctx context.Context, tx pgx.Tx, fk plan.ForeignKey, o Options, notValid bool) (action string, owned bool, note string, err error) {
	st, err := catalog.Lookup(ctx, tx, fk)
	if err != nil {
		return "", false, "", err
	}
	if st.Exists {
		if !st.SameDefinition {
			return "", false, "", fmt.Errorf("%w: %s has %q, plan wants %q (%v)", ErrDefinitionConflict, fk.ID(), st.Definition, catalog.PlanDefinition(fk), st.Differences)
		}
		owner := st.Owner()
		switch {
		case owner.RolloutID == o.RolloutID && (o.RunID == "" || owner.RunID == o.RunID):
			// Ours from an earlier attempt of this run whose result was lost.
			return ActionCreated, true, "", nil
		case owner.Owns(o.RolloutID, o.RunID):
			// Recorded for this rollout before runs were: it stays the
			// rollout's (a rollback of it drops it), but this run did not
			// create it.
			return ActionExistsSame, true, "recorded for this rollout before runs were recorded", nil
		case owner.RolloutID == o.RolloutID:
			return ActionExistsSame, false, fmt.Sprintf("created by run %s of this rollout, not by this run", owner.RunID), nil
		}
		return ActionExistsSame, false, "", nil
	}
	// The constraint does not exist, so an ownership row under its name is
	// stale (the constraint was dropped by hand): remove it now, before the
	// ADD, while "no live constraint" still means exactly that. claim then
	// never has to take a row over.
	if err := dropStaleOwnership(ctx, tx, fk); err != nil {
		return "", false, "", err
	}
	if _, err := tx.Exec(ctx, fk.AddSQL(notValid)); err != nil {
		return "", false, "", err
	}
	if err := claim(ctx, tx, fk, o); err != nil {
		return "", false, "", err
	}
	return ActionCreated, true, "", nil
}

// dropStaleOwnership deletes the ownership row of fk only when no constraint
// of that name exists on the table: a row whose constraint is live is never
// removed, whoever owns it.
func dropStaleOwnership(ctx context.Context, tx pgx.Tx, fk plan.ForeignKey) error {
	_, err := tx.Exec(ctx, `DELETE FROM `+meta.ConstraintsTable+` k
		WHERE k.table_schema = $1 AND k.table_name = $2 AND k.constraint_name = $3
		  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conrelid = to_regclass($4) AND c.conname = $3)`,
		fk.Table.Schema, fk.Table.Name, fk.Name, fk.Table.Sanitize())
	if err != nil {
		return fmt.Errorf("remove stale ownership of %s: %w", fk.ID(), err)
	}
	return nil
}

// claim records this run as the creator of fk, which the caller has just
// added. It never takes over an existing row: after dropStaleOwnership one
// can only come from a concurrent writer, and that is an error, not a
// transfer of ownership.
func claim(ctx context.Context, tx pgx.Tx, fk plan.ForeignKey, o Options) error {
	tag, err := tx.Exec(ctx, `INSERT INTO `+meta.ConstraintsTable+` (table_schema, table_name, constraint_name, rollout_id, run_id, definition, priority)
		VALUES ($1, $2, $3, $4, NULLIF($5, ''), $6, $7)
		ON CONFLICT (table_schema, table_name, constraint_name) DO NOTHING`,
		fk.Table.Schema, fk.Table.Name, fk.Name, o.RolloutID, o.RunID, catalog.PlanDefinition(fk), int(fk.Priority))
	if err != nil {
		return fmt.Errorf("record ownership of %s: %w", fk.ID(), err)
	}
	if tag.RowsAffected() != 1 {
		owner, err := catalog.OwnerOf(ctx, tx, fk.Table, fk.Name)
		if err != nil {
			return fmt.Errorf("record ownership of %s: %w", fk.ID(), err)
		}
		return fmt.Errorf("record ownership of %s: already recorded for rollout %q run %q; refusing to take it over", fk.ID(), owner.RolloutID, owner.RunID)
	}
	return nil
}

// leafPartitions lists the leaf partitions of a partitioned table.
func leafPartitions(ctx context.Context, q catalog.Querier, t plan.TableName) ([]plan.TableName, error) {
	rows, err := q.Query(ctx, `SELECT n.nspname::text, c.relname::text
		FROM pg_partition_tree($1::regclass) pt
		JOIN pg_catalog.pg_class c ON c.oid = pt.relid
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE pt.isleaf ORDER BY 1, 2`, t.Sanitize())
	if err != nil {
		return nil, fmt.Errorf("list partitions of %s: %w", t, err)
	}
	defer rows.Close()
	var out []plan.TableName
	for rows.Next() {
		var tn plan.TableName
		if err := rows.Scan(&tn.Schema, &tn.Name); err != nil {
			return nil, err
		}
		out = append(out, tn)
	}
	return out, rows.Err()
}

// applyPartitioned: PostgreSQL 15 refuses ADD FOREIGN KEY ... NOT VALID on a
// partitioned table (42809 "cannot add NOT VALID foreign key on partitioned
// table"), and a plain ADD would scan every partition under SHARE ROW
// EXCLUSIVE. So each leaf gets NOT VALID + VALIDATE in its own short
// transactions, then the parent constraint is added: PostgreSQL attaches the
// matching, already validated leaf constraints (tryAttachPartitionForeignKey)
// without rescanning them (proved by TestPartitionedParentAddDoesNotRescan).
func applyPartitioned(ctx context.Context, pool *pgxpool.Pool, fk plan.ForeignKey, o Options, done, total int) (Result, error) {
	r := Result{FK: fk.ID(), Table: fk.Table.String()}
	st, err := catalog.Lookup(ctx, pool, fk)
	if err != nil {
		return r, fmt.Errorf("apply %s: %w", fk.ID(), err)
	}
	if st.Exists {
		// Parent already there: settle it with the ordinary path (state
		// re-read in the tx; no DDL when it exists).
		t := newTracker(o, "apply", fk, done, total)
		err = t.run(ctx, pool, addTargets(fk), 0, func(ctx context.Context, tx pgx.Tx) error {
			a, owned, note, err := addIfAbsent(ctx, tx, fk, o, false)
			r.Action, r.Owned, r.Note = a, owned, note
			return err
		})
		t.finish(&r, err)
		if err != nil {
			return r, fmt.Errorf("apply %s: %w", fk.ID(), err)
		}
		return r, nil
	}
	leaves, err := leafPartitions(ctx, pool, fk.Table)
	if err != nil {
		return r, fmt.Errorf("apply %s: %w", fk.ID(), err)
	}
	start := time.Now()
	attempts := 0
	for _, leaf := range leaves {
		lfk := fk
		lfk.Table = leaf
		r.Partitions = append(r.Partitions, leaf.String())
		if err := refuseAdoption(ctx, pool, lfk, o); err != nil {
			return r, fmt.Errorf("apply %s: %w", fk.ID(), err)
		}
		lr, err := applyOne(ctx, pool, lfk, o, done, total)
		attempts += lr.Attempts
		if err != nil {
			return r, fmt.Errorf("apply %s (partition %s): %w", fk.ID(), leaf, err)
		}
		if lr.Action == ActionExistsSame && !lr.Owned {
			return r, fmt.Errorf("apply %s: %w: partition %s already has %q", fk.ID(), ErrNotOwned, leaf, fk.Name)
		}
		vr, err := validateOne(ctx, pool, lfk, o, done, total)
		attempts += vr.Attempts
		if err != nil {
			return r, fmt.Errorf("apply %s (partition %s): %w", fk.ID(), leaf, err)
		}
	}
	t := newTracker(o, "apply", fk, done, total)
	err = t.run(ctx, pool, addTargets(fk, leaves...), 0, func(ctx context.Context, tx pgx.Tx) error {
		// Validating form: NOT VALID is refused on partitioned tables; with
		// every leaf constraint validated the parent add attaches them.
		a, owned, note, err := addIfAbsent(ctx, tx, fk, o, false)
		r.Action, r.Owned, r.Note = a, owned, note
		return err
	})
	t.finish(&r, err)
	r.Attempts += attempts
	r.DurationMS = time.Since(start).Milliseconds()
	if err != nil {
		return r, fmt.Errorf("apply %s: %w", fk.ID(), err)
	}
	return r, nil
}

// refuseAdoption fails when the leaf has a foreign key of the same
// definition that this run does not own: the parent add would attach
// (adopt) it, whatever its name, and rolling back would drop it.
func refuseAdoption(ctx context.Context, q catalog.Querier, lfk plan.ForeignKey, o Options) error {
	rows, err := q.Query(ctx, `SELECT c.conname::text FROM pg_catalog.pg_constraint c
		WHERE c.conrelid = $1::regclass AND c.contype = 'f' AND c.confrelid = $2::regclass
		  AND c.conname <> $3`, lfk.Table.Sanitize(), lfk.RefTable.Sanitize(), lfk.Name)
	if err != nil {
		return fmt.Errorf("look up foreign keys of %s: %w", lfk.Table, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("look up foreign keys of %s: %w", lfk.Table, err)
	}
	for _, n := range names {
		other := lfk
		other.Name = n
		st, err := catalog.Lookup(ctx, q, other)
		if err != nil {
			return err
		}
		if st.SameDefinition && !st.Owner().Owns(o.RolloutID, o.RunID) {
			return fmt.Errorf("%w: partition %s has foreign key %q with the same definition; adding the parent constraint would adopt it", ErrNotOwned, lfk.Table, n)
		}
	}
	return nil
}

// Validate validates every plan constraint, one at a time in priority
// order, and stops at the first error.
func Validate(ctx context.Context, pool *pgxpool.Pool, p plan.Plan, o Options) ([]Result, error) {
	return inOrder(p, func(fk plan.ForeignKey, done, total int) (Result, error) {
		return validateOne(ctx, pool, fk, o, done, total)
	})
}

// ValidateOne runs VALIDATE CONSTRAINT (SHARE UPDATE EXCLUSIVE: reads and
// writes continue) and confirms pg_constraint.convalidated. Its statement
// timeout is o.Lock.ValidateStatementTimeout, none when 0: a big table
// takes long.
func ValidateOne(ctx context.Context, pool *pgxpool.Pool, fk plan.ForeignKey, o Options) (Result, error) {
	return validateOne(ctx, pool, fk, o, 0, 1)
}

func validateOne(ctx context.Context, pool *pgxpool.Pool, fk plan.ForeignKey, o Options, done, total int) (r Result, err error) {
	r = Result{FK: fk.ID(), Table: fk.Table.String()}
	t := newTracker(o, "validate", fk, done, total)
	defer func() { t.finish(&r, err) }()
	// VALIDATE's scan can take hours: its own statement timeout, none by
	// default.
	timeout := o.Lock.ValidateStatementTimeout
	if timeout == 0 {
		timeout = dbx.NoTimeout
	}
	targets := []dbx.LockTarget{{Table: fk.Table.Sanitize(), Mode: dbx.ShareUpdateExclusive}, {Table: fk.RefTable.Sanitize(), Mode: dbx.RowShare}}
	err = t.run(ctx, pool, targets, timeout, func(ctx context.Context, tx pgx.Tx) error {
		st, err := catalog.Lookup(ctx, tx, fk)
		if err != nil {
			return err
		}
		if !st.Exists {
			return fmt.Errorf("%w: %q on %s (apply it first)", ErrMissing, fk.Name, fk.Table)
		}
		if !st.SameDefinition {
			return fmt.Errorf("%w: %s has %q", ErrDefinitionConflict, fk.ID(), st.Definition)
		}
		r.Owned = st.Owner().Owns(o.RolloutID, o.RunID)
		if st.Validated {
			r.Action = ActionAlreadyValidated
			return nil
		}
		if _, err := tx.Exec(ctx, fk.ValidateSQL()); err != nil {
			if dbx.IsCode(err, dbx.CodeForeignKeyViolation) {
				return fmt.Errorf("%w: %w", ErrOrphans, err)
			}
			return err
		}
		r.Action = ActionValidated
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("validate %s: %w", fk.ID(), err)
	}
	st, err := catalog.Lookup(ctx, pool, fk)
	if err != nil {
		return r, fmt.Errorf("validate %s: confirm: %w", fk.ID(), err)
	}
	if !st.Validated {
		return r, fmt.Errorf("validate %s: pg_constraint.convalidated is still false after VALIDATE", fk.ID())
	}
	return r, nil
}

// Verify reads the state of every plan constraint. Owned means recorded by
// any rollout; VerifyRun answers for one run.
func Verify(ctx context.Context, pool *pgxpool.Pool, p plan.Plan) ([]Verification, error) {
	return VerifyRun(ctx, pool, p, Options{})
}

// VerifyRun reads the state of every plan constraint. With o.RolloutID set,
// Owned means owned by that rollout's run o.RunID (catalog.Owner.Owns): a
// constraint another run of the same rollout created is not owned. Without
// it, Owned means recorded by any rollout.
func VerifyRun(ctx context.Context, pool *pgxpool.Pool, p plan.Plan, o Options) ([]Verification, error) {
	out := make([]Verification, 0, len(p.ForeignKeys))
	for _, fk := range ordered(p) {
		st, err := catalog.Lookup(ctx, pool, fk)
		if err != nil {
			return out, fmt.Errorf("verify %s: %w", fk.ID(), err)
		}
		owned := st.OwnerRollout != ""
		if o.RolloutID != "" {
			owned = st.Owner().Owns(o.RolloutID, o.RunID)
		}
		out = append(out, Verification{FK: fk.ID(), Exists: st.Exists, Validated: st.Validated, SameDefinition: st.SameDefinition,
			Owned: owned, OwnerRollout: st.OwnerRollout, OwnerRun: st.OwnerRun})
	}
	return out, nil
}

type owned struct {
	fk       plan.ForeignKey
	priority int
	created  time.Time
}

// ownedBy is the SQL form of catalog.Owner.Owns over fkrollout.constraints,
// with the rollout id in parameter $<r> and the run id ("" for any run) in
// $<r+1>. Rows without a run id were written before runs were recorded and
// stay their rollout's, so a rollout in flight during the upgrade can still
// roll back what it created.
func ownedBy(r int) string {
	return fmt.Sprintf(`rollout_id = $%d AND ($%d::text = '' OR run_id IS NULL OR run_id = $%d::text)`, r, r+1, r+1)
}

// Rollback drops exactly the constraints fkrollout.constraints records for
// rolloutID and its run o.RunID (every run when o.RunID is empty; see
// catalog.Owner.Owns), only those of the plan when it is not empty, in
// reverse priority order, each in its own transaction together with
// deleting its ownership row. Plan constraints this run does not own are
// never dropped: they are reported "not-owned" when they exist and "absent"
// when they do not; only a constraint actually dropped is "dropped". Safe
// to run again.
func Rollback(ctx context.Context, pool *pgxpool.Pool, rolloutID string, p plan.Plan, o Options) ([]Result, error) {
	if rolloutID == "" {
		return nil, errors.New("rollback: rollout id is required")
	}
	// rolloutID decides; o.RolloutID is not consulted.
	o.RolloutID = rolloutID
	if err := meta.EnsureSchema(ctx, pool); err != nil {
		return nil, err
	}
	rows, err := pool.Query(ctx, `SELECT table_schema, table_name, constraint_name, priority, created_at
		FROM `+meta.ConstraintsTable+` WHERE `+ownedBy(1)+`
		ORDER BY priority DESC, created_at DESC, table_schema, table_name, constraint_name`, rolloutID, o.RunID)
	if err != nil {
		return nil, fmt.Errorf("rollback: read ownership: %w", err)
	}
	var all []owned
	for rows.Next() {
		var w owned
		if err := rows.Scan(&w.fk.Table.Schema, &w.fk.Table.Name, &w.fk.Name, &w.priority, &w.created); err != nil {
			rows.Close()
			return nil, fmt.Errorf("rollback: read ownership: %w", err)
		}
		all = append(all, w)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rollback: read ownership: %w", err)
	}

	var out []Result
	todo := all
	if len(p.ForeignKeys) > 0 {
		todo = nil
		for _, w := range all {
			in, err := inPlan(ctx, pool, w.fk, p)
			if err != nil {
				return nil, err
			}
			if in {
				todo = append(todo, w)
			}
		}
		// Plan constraints this run does not own are reported, never dropped.
		for _, fk := range slices.Backward(ordered(p)) {
			if slices.ContainsFunc(todo, func(w owned) bool { return w.fk.Table == fk.Table && w.fk.Name == fk.Name }) {
				continue
			}
			st, err := catalog.Lookup(ctx, pool, fk)
			if err != nil {
				return out, fmt.Errorf("rollback %s: %w", fk.ID(), err)
			}
			a := ActionAbsent
			if st.Exists {
				a = ActionNotOwned
			}
			r := Result{FK: fk.ID(), Table: fk.Table.String(), Action: a}
			if owner := st.Owner(); st.Exists && owner.RolloutID == rolloutID {
				r.Note = fmt.Sprintf("created by run %s of this rollout, not by this run", owner.RunID)
			}
			out = append(out, r)
		}
	}
	for i, w := range todo {
		r, err := dropOwned(ctx, pool, w.fk, o, i, len(todo))
		out = append(out, r)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// inPlan: the ownership row is the plan FK itself, or the same constraint
// on one of its partitions (or on a table that no longer exists).
func inPlan(ctx context.Context, q catalog.Querier, w plan.ForeignKey, p plan.Plan) (bool, error) {
	for _, fk := range p.ForeignKeys {
		if fk.Name != w.Name {
			continue
		}
		if fk.Table == w.Table {
			return true, nil
		}
		var ok bool
		err := q.QueryRow(ctx, `SELECT to_regclass($1) IS NULL
			OR (to_regclass($2) IS NOT NULL AND to_regclass($1) IN (SELECT relid FROM pg_partition_tree(to_regclass($2))))`,
			w.Table.Sanitize(), fk.Table.Sanitize()).Scan(&ok)
		if err != nil {
			return false, fmt.Errorf("rollback: match %s to plan: %w", w.ID(), err)
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

func dropOwned(ctx context.Context, pool *pgxpool.Pool, fk plan.ForeignKey, o Options, done, total int) (r Result, err error) {
	r = Result{FK: fk.ID(), Table: fk.Table.String()}
	t := newTracker(o, "drop", fk, done, total)
	defer func() { t.finish(&r, err) }()
	targets, err := dropTargets(ctx, pool, fk)
	if err != nil {
		return r, fmt.Errorf("rollback %s: %w", fk.ID(), err)
	}
	err = t.run(ctx, pool, targets, 0, func(ctx context.Context, tx pgx.Tx) error {
		// Re-check inside the transaction: still this run's?
		owner, err := catalog.OwnerOf(ctx, tx, fk.Table, fk.Name)
		if err != nil {
			return err
		}
		if !owner.Owns(o.RolloutID, o.RunID) {
			r.Action = ActionNotOwned
			return nil
		}
		var exists, inherited, validated bool
		err = tx.QueryRow(ctx, `SELECT true, c.conparentid <> 0, c.convalidated FROM pg_catalog.pg_constraint c
			WHERE c.conrelid = to_regclass($1) AND c.conname = $2 AND c.contype = 'f'`, fk.Table.Sanitize(), fk.Name).Scan(&exists, &inherited, &validated)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("look up %s: %w", fk.ID(), err)
		}
		if inherited {
			return fmt.Errorf("%s is attached to a parent table's constraint that this rollout does not own; drop that first", fk.ID())
		}
		if exists && validated && o.KeepValidated {
			r.Action = ActionKeptValidated
			return nil
		}
		if exists {
			if _, err := tx.Exec(ctx, fk.DropSQL()); err != nil {
				return err
			}
			r.Action = ActionDropped
		} else {
			r.Action = ActionAbsent
		}
		_, err = tx.Exec(ctx, `DELETE FROM `+meta.ConstraintsTable+` WHERE table_schema = $1 AND table_name = $2 AND constraint_name = $3 AND `+ownedBy(4),
			fk.Table.Schema, fk.Table.Name, fk.Name, o.RolloutID, o.RunID)
		if err != nil {
			return fmt.Errorf("remove ownership of %s: %w", fk.ID(), err)
		}
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("rollback %s: %w", fk.ID(), err)
	}
	return r, nil
}

// addTargets are the locks ADD FOREIGN KEY takes: SHARE ROW EXCLUSIVE on
// the table (and, for a partitioned one, its leaves) and on the referenced
// table. Every writer of the table conflicts with it.
func addTargets(fk plan.ForeignKey, leaves ...plan.TableName) []dbx.LockTarget {
	out := []dbx.LockTarget{{Table: fk.Table.Sanitize(), Mode: dbx.ShareRowExclusive}, {Table: fk.RefTable.Sanitize(), Mode: dbx.ShareRowExclusive}}
	for _, l := range leaves {
		out = append(out, dbx.LockTarget{Table: l.Sanitize(), Mode: dbx.ShareRowExclusive})
	}
	return out
}

// dropTargets are the locks DROP CONSTRAINT of a foreign key takes: ACCESS
// EXCLUSIVE on the table and on the table it references (read from the
// catalog: the ownership row does not record it).
func dropTargets(ctx context.Context, q catalog.Querier, fk plan.ForeignKey) ([]dbx.LockTarget, error) {
	out := []dbx.LockTarget{{Table: fk.Table.Sanitize(), Mode: dbx.AccessExclusive}}
	var ref *string
	err := q.QueryRow(ctx, `SELECT c.confrelid::regclass::text FROM pg_catalog.pg_constraint c
		WHERE c.conrelid = to_regclass($1) AND c.conname = $2 AND c.contype = 'f'`, fk.Table.Sanitize(), fk.Name).Scan(&ref)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("look up the table %s references: %w", fk.ID(), err)
	}
	if ref != nil {
		out = append(out, dbx.LockTarget{Table: *ref, Mode: dbx.AccessExclusive})
	}
	return out, nil
}
