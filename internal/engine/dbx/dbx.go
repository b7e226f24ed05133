// Package dbx owns how fkrollout talks to a busy database: every DDL runs in
// its own short transaction with SET LOCAL lock_timeout (so it also works
// behind a transaction-mode pooler), and lock_not_available (55P03) is
// retried with exponential backoff and jitter. RunDDL adds, for ALTER
// statements, a wait outside the lock queue while a long transaction holds
// a conflicting lock (Blockers), a session label naming the rollout, step
// and attempt, and the ending of a dead attempt's backend
// (TerminatePrevious). It also owns the session settings every statement
// runs under (Apply: lock_timeout, statement_timeout, application_name).
// No call site re-implements this.
package dbx

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// SQLSTATE codes fkrollout branches on.
const (
	CodeLockNotAvailable    = "55P03"
	CodeForeignKeyViolation = "23503"
	CodeQueryCanceled       = "57014"
	CodeDeadlockDetected    = "40P01"
	CodeSerializationFail   = "40001"
	CodeUndefinedObject     = "42704"
	CodeDuplicateObject     = "42710"
)

// LockPolicy bounds how long one statement may wait for its lock and how
// often it is retried.
type LockPolicy struct {
	// LockTimeout is SET LOCAL lock_timeout for each attempt.
	LockTimeout time.Duration `json:"lock_timeout"`
	// StatementTimeout is SET LOCAL statement_timeout (0 = server default).
	StatementTimeout time.Duration `json:"statement_timeout"`
	// Attempts is the total number of tries (>= 1).
	Attempts int `json:"attempts"`
	// BaseBackoff is the first wait; it doubles each retry up to MaxBackoff,
	// and each wait is jittered to [backoff/2, backoff).
	BaseBackoff time.Duration `json:"base_backoff"`
	MaxBackoff  time.Duration `json:"max_backoff"`
	// BlockerWait is how long, in all, one DDL statement (RunDDL) waits
	// without queueing for conflicting transactions to end before it asks
	// for its locks anyway; negative: it never waits.
	BlockerWait time.Duration `json:"blocker_wait"`
	// BlockerAge: a conflicting transaction open longer than this is a
	// blocker to wait out; a younger one (a short write) is not.
	BlockerAge time.Duration `json:"blocker_age"`
	// BlockerPoll is the first pause between two looks for blockers; it
	// doubles while they stay, up to a second.
	BlockerPoll time.Duration `json:"blocker_poll"`
	// ValidateStatementTimeout is statement_timeout for VALIDATE
	// CONSTRAINT, whose scan can take hours: 0 is NoTimeout (neither
	// StatementTimeout nor a role's default cuts it short).
	ValidateStatementTimeout time.Duration `json:"validate_statement_timeout"`
}

// NoTimeout as a statement timeout switches it off (statement_timeout = 0)
// whatever the server's or the role's default is.
const NoTimeout time.Duration = -1

// DefaultLockPolicy: 500 ms per attempt, 8 attempts, 100 ms..5 s backoff;
// up to 2 min of waiting for blockers (transactions open over 20 ms) per
// statement, looking every 25 ms..1 s.
func DefaultLockPolicy() LockPolicy {
	return LockPolicy{LockTimeout: 500 * time.Millisecond, Attempts: 8, BaseBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second,
		BlockerWait: 2 * time.Minute, BlockerAge: 20 * time.Millisecond, BlockerPoll: 25 * time.Millisecond}
}

// WithDefaults is p with DefaultLockPolicy's value for every field left
// zero (StatementTimeout stays 0: the server's default;
// ValidateStatementTimeout stays 0: none).
func (p LockPolicy) WithDefaults() LockPolicy { return p.normalised() }

func (p LockPolicy) normalised() LockPolicy {
	d := DefaultLockPolicy()
	if p.LockTimeout <= 0 {
		p.LockTimeout = d.LockTimeout
	}
	if p.Attempts <= 0 {
		p.Attempts = d.Attempts
	}
	if p.BaseBackoff <= 0 {
		p.BaseBackoff = d.BaseBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = d.MaxBackoff
	}
	if p.BlockerWait == 0 {
		p.BlockerWait = d.BlockerWait
	}
	if p.BlockerAge <= 0 {
		p.BlockerAge = d.BlockerAge
	}
	if p.BlockerPoll <= 0 {
		p.BlockerPoll = d.BlockerPoll
	}
	return p
}

// Beginner is satisfied by *pgxpool.Pool and *pgx.Conn.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// ErrLockRetriesExhausted wraps the last 55P03 when every attempt timed out.
var ErrLockRetriesExhausted = errors.New("lock not available after all retries")

// Attempt describes one try, passed to the optional observer.
type Attempt struct {
	N       int
	Err     error
	Elapsed time.Duration
}

// InLockedTx runs fn in a transaction with SET LOCAL lock_timeout (and
// statement_timeout when set), retrying the whole transaction on 55P03.
// fn must be safe to re-run (each attempt is a fresh transaction; a failed
// attempt is rolled back). observe, when non-nil, sees every attempt.
func InLockedTx(ctx context.Context, db Beginner, p LockPolicy, observe func(Attempt), fn func(ctx context.Context, tx pgx.Tx) error) error {
	p = p.normalised()
	return retryLocked(ctx, db, p, p.Settings(), observe, nil, fn)
}

// retryLocked is InLockedTx's loop with the settings given and, when
// before is set, a step run before each attempt (RunDDL's wait for
// blockers).
func retryLocked(ctx context.Context, db Beginner, p LockPolicy, s Settings, observe func(Attempt), before func(ctx context.Context, attempt int) error,
	fn func(ctx context.Context, tx pgx.Tx) error) error {
	backoff := p.BaseBackoff
	var last error
	for n := 1; n <= p.Attempts; n++ {
		if before != nil {
			if err := before(ctx, n); err != nil {
				return err
			}
		}
		start := time.Now()
		err := runOnce(ctx, db, s, fn)
		if observe != nil {
			observe(Attempt{N: n, Err: err, Elapsed: time.Since(start)})
		}
		if err == nil {
			return nil
		}
		if !IsCode(err, CodeLockNotAvailable) {
			return err
		}
		last = err
		if n == p.Attempts {
			break
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting to retry after lock timeout: %w", ctx.Err())
		case <-time.After(wait):
		}
		backoff = min(backoff*2, p.MaxBackoff)
	}
	return fmt.Errorf("%w (%d attempts of lock_timeout %s): %w", ErrLockRetriesExhausted, p.Attempts, p.LockTimeout, last)
}

func runOnce(ctx context.Context, db Beginner, s Settings, fn func(ctx context.Context, tx pgx.Tx) error) (err error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if err = Apply(ctx, tx, s, Transaction); err != nil {
		return err
	}
	if err = fn(ctx, tx); err != nil {
		return err
	}
	if err = tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// IsCode reports whether err carries the given SQLSTATE.
func IsCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// Code returns err's SQLSTATE, or "" when it is not a server error.
func Code(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// ReadOnly runs fn in a READ ONLY transaction with SET LOCAL
// statement_timeout (0 = server default). Used by audits and checks.
func ReadOnly(ctx context.Context, db Beginner, statementTimeout time.Duration, fn func(ctx context.Context, tx pgx.Tx) error) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SET TRANSACTION READ ONLY"); err != nil {
		return fmt.Errorf("set read only: %w", err)
	}
	if err := Apply(ctx, tx, Settings{StatementTimeout: statementTimeout}, Transaction); err != nil {
		return err
	}
	return fn(ctx, tx)
}
