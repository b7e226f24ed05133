package discover

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
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
	if err := dbx.Apply(ctx, tx, dbx.Settings{StatementTimeout: r.opts.StatementTimeout, LockTimeout: r.opts.LockTimeout}, dbx.Transaction); err != nil {
		return err
	}
	return fn(ctx, tx)
}

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
