package discover

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
)

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// readOnly runs fn in a READ ONLY transaction with SET LOCAL
// statement_timeout and lock_timeout: discovery never writes, and never
// waits long behind a lock or runs long on a busy database.
func (r *runner) readOnly(ctx context.Context, fn func(ctx context.Context, q querier) error) error {
	tx, err := r.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead})
	if err != nil {
		return fmt.Errorf("begin read-only transaction: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SELECT set_config('statement_timeout', $1, true), set_config('lock_timeout', $2, true)`,
		millis(r.opts.StatementTimeout), millis(r.opts.LockTimeout)); err != nil {
		return fmt.Errorf("set timeouts: %w", err)
	}
	return fn(ctx, tx)
}

func millis(d time.Duration) string { return strconv.FormatInt(max(d.Milliseconds(), 1), 10) }

// each runs fn for 0..n-1, at most Concurrency at once, reporting
// progress for phase. The first hard error (not a warning) stops it.
func (r *runner) each(ctx context.Context, phase string, n int, fn func(ctx context.Context, i int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.opts.Concurrency)
	done := 0
	for i := range n {
		g.Go(func() error {
			if err := fn(gctx, i); err != nil {
				return err
			}
			r.mu.Lock()
			done++
			d := done
			r.mu.Unlock()
			r.progress(phase, d, n, "")
			return nil
		})
	}
	return g.Wait()
}
