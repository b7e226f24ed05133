package dbx

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Label names one long statement's session in pg_stat_activity
// (application_name) so that operators see whose it is, and so that a
// retry can find a previous attempt's backend that is still running after
// its worker died.
type Label struct {
	// Rollout is the rollout id (shown, truncated to fit).
	Rollout string
	// Identity is everything that makes two statements "the same
	// activity": the rollout's run, the step and the constraint. Only
	// backends whose label carries the same identity are ever terminated.
	Identity []string
	// Step is the activity's short name: apply, validate, drop.
	Step string
	// Attempt is the activity attempt (0 outside a workflow).
	Attempt int
}

// maxApplicationName is NAMEDATALEN - 1: PostgreSQL truncates longer names.
const maxApplicationName = 63

// labelTag starts every label, so a label is recognisable in pg_stat_activity.
const labelTag = "fkr "

// key is the short hash of the label's rollout and identity.
func (l Label) key() string {
	h := sha256.New()
	for _, s := range append([]string{l.Rollout}, l.Identity...) {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// prefix is what every attempt of the same statement's label starts with.
func (l Label) prefix() string { return labelTag + l.key() + " " }

// ApplicationName is the label as application_name: "fkr <key> <step>
// a<attempt> <rollout>", at most 63 bytes of printable ASCII.
func (l Label) ApplicationName() string {
	s := fmt.Sprintf("%s%s a%d %s", l.prefix(), l.Step, l.Attempt, l.Rollout)
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
	if len(s) > maxApplicationName {
		s = s[:maxApplicationName]
	}
	return s
}

func (l Label) zero() bool { return l.Rollout == "" && len(l.Identity) == 0 }

// terminateTimeout bounds the wait for a terminated backend to exit (it
// rolls its transaction back first, which is quick for a scan).
const terminateTimeout = 30 * time.Second

// TerminatePrevious ends the backends, in this database, still running a
// statement labelled for the same rollout and identity as l under another
// label (an earlier attempt whose worker died, or hangs, mid-statement),
// and waits for them to exit. Nobody else's backend is touched. It
// returns the pids it ended.
func TerminatePrevious(ctx context.Context, db Querier, l Label) ([]int, error) {
	if l.zero() {
		return nil, nil
	}
	rows, err := db.Query(ctx, `SELECT pid, pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()
		  AND starts_with(application_name, $1) AND application_name <> $2`, l.prefix(), l.ApplicationName())
	if err != nil {
		return nil, fmt.Errorf("end a previous attempt's statement: %w", err)
	}
	pids, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (int, error) {
		var pid int
		var signalled bool
		err := r.Scan(&pid, &signalled)
		return pid, err
	})
	if err != nil {
		return nil, fmt.Errorf("end a previous attempt's statement: %w", err)
	}
	if len(pids) == 0 {
		return nil, nil
	}
	deadline := time.Now().Add(terminateTimeout)
	for {
		var left []int
		rows, err := db.Query(ctx, `SELECT pid FROM pg_catalog.pg_stat_activity WHERE pid = ANY($1)`, pids)
		if err == nil {
			left, err = pgx.CollectRows(rows, pgx.RowTo[int])
		}
		if err != nil {
			return pids, fmt.Errorf("wait for the previous attempt's backend to exit: %w", err)
		}
		if len(left) == 0 {
			return pids, nil
		}
		if time.Now().After(deadline) {
			return pids, fmt.Errorf("the previous attempt's backend (pid %v) is still there %s after pg_terminate_backend", left, terminateTimeout)
		}
		select {
		case <-ctx.Done():
			return pids, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// DB is what RunDDL needs: transactions and queries (*pgxpool.Pool).
type DB interface {
	Beginner
	Querier
}

// DDL describes one DDL statement for RunDDL.
type DDL struct {
	// Targets are the tables the statement locks and the modes it takes:
	// before each attempt RunDDL waits, without queueing, until no long
	// transaction holds or awaits a conflicting lock (LockPolicy.BlockerWait).
	Targets []LockTarget
	// Label, when set, is the statement's application_name, and a
	// previous attempt's backend under the same label identity is
	// terminated first.
	Label Label
	// StatementTimeout, when not zero, replaces the lock policy's
	// statement_timeout for this statement (NoTimeout: none at all).
	StatementTimeout time.Duration
	// Observe sees every attempt's end; Waiting every look that found
	// blockers; Running every attempt's start (after any wait).
	Observe func(Attempt)
	Waiting func(Wait)
	Running func(attempt int)
}

// Report is what RunDDL did besides the statement.
type Report struct {
	// Waited is the time spent waiting for blockers without queueing.
	Waited time.Duration
	// Blockers are the last blockers waited for (empty when none).
	Blockers []Blocker
	// Terminated are the previous attempts' backends ended first.
	Terminated []int
}

// RunDDL runs fn like InLockedTx, and before that: ends a previous
// attempt's backend of the same label (TerminatePrevious); then, before
// each attempt, waits without taking any lock while a long transaction
// holds or awaits a lock conflicting with d.Targets. A statement waiting in
// the lock queue makes every later conflicting request (every writer, for
// ADD FOREIGN KEY) queue behind it, so waiting outside the queue keeps
// writers unaffected; the check and the attempt race, and that race stays
// bounded by lock_timeout.
func RunDDL(ctx context.Context, db DB, p LockPolicy, d DDL, fn func(ctx context.Context, tx pgx.Tx) error) (Report, error) {
	p = p.normalised()
	var rep Report
	var err error
	if rep.Terminated, err = TerminatePrevious(ctx, db, d.Label); err != nil {
		return rep, err
	}
	s := p.Settings()
	if d.StatementTimeout != 0 {
		s.StatementTimeout = d.StatementTimeout
	}
	if !d.Label.zero() {
		s.ApplicationName = d.Label.ApplicationName()
	}
	c := &clearance{db: db, targets: d.Targets, p: p, waiting: d.Waiting}
	before := func(ctx context.Context, n int) error {
		if err := c.wait(ctx); err != nil {
			return err
		}
		if d.Running != nil {
			d.Running(n)
		}
		return nil
	}
	err = retryLocked(ctx, db, p, s, d.Observe, before, fn)
	rep.Waited, rep.Blockers = c.waited, c.last
	// Name the blocker the last look found (not one that ended earlier).
	if err != nil && errors.Is(err, ErrLockRetriesExhausted) && len(c.current) > 0 {
		err = fmt.Errorf("%w; last seen blocking: %s", err, c.current[0])
	}
	return rep, err
}
