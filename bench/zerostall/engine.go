package main

import (
	"context"
	"fmt"
	"time"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/migrate"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/jackc/pgx/v5/pgxpool"
)

// engineApplyValidate is fkrollout's migration of one FK, through the
// engine itself: migrate.ApplyOne (ADD ... NOT VALID, ownership recorded)
// then migrate.ValidateOne, each statement in its own short transaction
// with SET LOCAL lock_timeout, retried with backoff on 55P03, after
// waiting (without queueing) for long conflicting transactions to end.
func engineApplyValidate(ctx context.Context, pool *pgxpool.Pool, fk plan.ForeignKey, p dbx.LockPolicy) (attempts int, waited time.Duration, err error) {
	o := migrate.Options{RolloutID: fmt.Sprintf("bench-%d", time.Now().UnixNano()), Lock: p}
	r, err := migrate.ApplyOne(ctx, pool, fk, o)
	attempts, waited = attempts+r.Attempts, waited+time.Duration(r.WaitedMS)*time.Millisecond
	if err != nil {
		return attempts, waited, fmt.Errorf("apply %s: %w", fk.Name, err)
	}
	if r.Action != migrate.ActionCreated {
		return attempts, waited, fmt.Errorf("apply %s: %s, want %s", fk.Name, r.Action, migrate.ActionCreated)
	}
	r, err = migrate.ValidateOne(ctx, pool, fk, o)
	attempts, waited = attempts+r.Attempts, waited+time.Duration(r.WaitedMS)*time.Millisecond
	if err != nil {
		return attempts, waited, fmt.Errorf("validate %s: %w", fk.Name, err)
	}
	return attempts, waited, nil
}
