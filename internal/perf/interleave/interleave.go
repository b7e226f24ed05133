// Package interleave measures the run-time cost of foreign keys on a live
// database: the workload runs in short slices alternating without and with
// the constraints (A B B A …) in one session on the same data, so the drift
// of the workload's own writes weighs on both sides alike. A NOT VALID
// foreign key fires the same checks on every insert, update and parent
// delete as a validated one, and adding or dropping it only changes the
// catalogue: the "with" slices add the plan's missing keys NOT VALID under
// a temporary name, the "without" slices drop them, each under the lock
// policy's lock_timeout. The database is left as found, on error and on
// cancellation too. Keys that already exist stay on both sides.
package interleave

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fkrollout/fkrollout/internal/engine/catalog"
	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/perf"
	"github.com/fkrollout/fkrollout/internal/perf/loadgen"
	"github.com/fkrollout/fkrollout/internal/perf/loadgen/runner"
)

// Options size one round of slices.
type Options struct {
	// Workers: concurrent clients, each on its own connection (default 4).
	Workers int
	// Warmup runs the workload unmeasured once, before the first slice.
	Warmup time.Duration
	// Slice is how long each slice is measured (default 2s), or Iterations
	// how many operations it runs (wins when set).
	Slice      time.Duration
	Iterations int
	// Settle runs the workload unmeasured after each switch of side: the
	// first statements after an ADD or DROP rebuild their plans and, with
	// the keys, prepare the referential checks in every session, a one-off
	// cost the steady state does not pay. Default a quarter of a slice (at
	// most 1s; 250ms for slices of an iteration count); negative: none.
	Settle time.Duration
	// Pairs of slices in this round (default 6: A B B A needs an even
	// number to balance a linear drift exactly).
	Pairs int
	// FirstSlice is the index of the round's first slice: a later round
	// continues the A B B A pattern of the earlier ones.
	FirstSlice int
	// Seed of the operation mix and parameter draws.
	Seed uint64
	// Lock bounds every ADD and DROP (lock_timeout, retries of 55P03).
	Lock dbx.LockPolicy
	// Progress, when set, is told about every slice before it starts.
	Progress func(Progress)
}

// Progress is reported before each slice.
type Progress struct {
	Slice   int  `json:"slice"`
	Of      int  `json:"of"`
	WithFKs bool `json:"with_fks"`
}

// Result is one round.
type Result struct {
	Slices []perf.Slice `json:"slices"`
	// Toggled are the keys added NOT VALID for the with-FKs slices and
	// dropped for the others; Present the keys that already existed (on
	// both sides, so their cost is in the baseline too); Skipped the keys
	// that could not be added for the measurement, with the reason.
	Toggled []string `json:"toggled,omitempty"`
	Present []string `json:"present,omitempty"`
	Skipped []string `json:"skipped,omitempty"`
}

func (o Options) normalised() Options {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Slice <= 0 && o.Iterations <= 0 {
		o.Slice = 2 * time.Second
	}
	if o.Pairs <= 0 {
		o.Pairs = 6
	}
	switch {
	case o.Settle < 0:
		o.Settle = 0
	case o.Settle > 0:
	case o.Iterations > 0 || o.Slice <= 0:
		o.Settle = 250 * time.Millisecond
	default:
		o.Settle = min(o.Slice/4, time.Second)
	}
	o.Lock = o.Lock.WithDefaults()
	return o
}

// TempName is the name a key carries while it is measured: never the
// plan's own name, so that nothing of a measurement can pass for a
// constraint the rollout applied (and a leftover is recognisable).
func TempName(fk plan.ForeignKey) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(fk.ID()))
	return fmt.Sprintf("fkrollout_perf_%016x", h.Sum64())
}

// Run measures one round: o.Pairs pairs of slices. ddl runs the ADD and
// DROP statements (the table owner's rights); load runs the workload.
func Run(ctx context.Context, ddl, load *pgxpool.Pool, w loadgen.Workload, fks []plan.ForeignKey, o Options) (res Result, err error) {
	o = o.normalised()
	var toggled []plan.ForeignKey
	for _, fk := range fks {
		have, why, err := existing(ctx, ddl, fk)
		if err != nil {
			return res, err
		}
		switch {
		case have != "":
			res.Present = append(res.Present, fk.ID()+" (as "+have+")")
		case why != "":
			res.Skipped = append(res.Skipped, fk.ID()+": "+why)
		default:
			t := fk
			t.Name = TempName(fk)
			toggled = append(toggled, t)
			res.Toggled = append(res.Toggled, fk.ID())
		}
	}
	// A measurement killed before its cleanup left its keys behind: drop
	// them first, then always on the way out.
	if err := drop(ctx, ddl, toggled, o.Lock); err != nil {
		return res, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if derr := drop(cctx, ddl, toggled, o.Lock); derr != nil {
			err = errors.Join(err, fmt.Errorf("the measurement's NOT VALID constraints (fkrollout_perf_…) may still be on the database; the next measurement drops them: %w", derr))
		}
	}()

	s, err := runner.Open(ctx, load, w, loadgen.RunOptions{Workers: o.Workers, Duration: max(o.Slice, time.Millisecond), Iterations: o.Iterations, Seed: o.Seed})
	if err != nil {
		return res, err
	}
	defer s.Close(context.WithoutCancel(ctx))
	with := false
	if o.Warmup > 0 {
		if _, err := s.Measure(ctx, 0, o.Warmup, 0); err != nil {
			return res, fmt.Errorf("warm-up: %w", err)
		}
	}
	n := 2 * o.Pairs
	for i := o.FirstSlice; i < o.FirstSlice+n; i++ {
		side := perf.SliceOrder(i)
		if o.Progress != nil {
			o.Progress(Progress{Slice: i - o.FirstSlice + 1, Of: n, WithFKs: side})
		}
		if side != with && len(toggled) > 0 {
			if side {
				err = add(ctx, ddl, toggled, o.Lock)
			} else {
				err = drop(ctx, ddl, toggled, o.Lock)
			}
			if err != nil {
				return res, err
			}
			if o.Settle > 0 {
				if _, err := s.Measure(ctx, 0, o.Settle, 0); err != nil {
					return res, fmt.Errorf("settle: %w", err)
				}
			}
		}
		with = side
		rep, err := s.Measure(ctx, 0, o.Slice, o.Iterations)
		if err != nil {
			return res, fmt.Errorf("slice %d: %w", i+1, err)
		}
		res.Slices = append(res.Slices, perf.Slice{Index: i, WithFKs: side, Report: rep})
	}
	return res, nil
}

// existing names the foreign key that already enforces fk (same table,
// columns and referenced table, under any name), or says why fk cannot be
// added for the measurement.
func existing(ctx context.Context, q catalog.Querier, fk plan.ForeignKey) (name, why string, err error) {
	st, err := catalog.Lookup(ctx, q, fk)
	if err != nil {
		return "", "", err
	}
	if st.Exists && st.Kind == "f" {
		return fk.Name, "", nil
	}
	err = q.QueryRow(ctx, `SELECT c.conname FROM pg_catalog.pg_constraint c
		WHERE c.contype = 'f' AND c.conrelid = to_regclass($1) AND c.confrelid = to_regclass($2)
		  AND c.conname NOT LIKE 'fkrollout\_perf\_%'
		  AND (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(c.conkey) WITH ORDINALITY k(n, ord)
		       JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n) = $3::text[]
		LIMIT 1`, fk.Table.Sanitize(), fk.RefTable.Sanitize(), fk.Columns).Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) {
		err = nil
	}
	if err != nil {
		return "", "", fmt.Errorf("look up foreign keys of %s: %w", fk.Table, err)
	}
	if name == "" && st.Partitioned {
		// PostgreSQL refuses NOT VALID on a partitioned table.
		return "", "partitioned table: a NOT VALID key cannot be added for the measurement", nil
	}
	return name, "", nil
}

// ddlTimeout bounds one key's ADD or DROP with all its lock retries.
const ddlTimeout = time.Minute

// add adds the keys NOT VALID. Each statement runs to its end even when ctx
// is cancelled (it is bounded by the lock policy): a COMMIT cut off on the
// client can still land on the server after the cleanup's DROP, and leave
// a key behind. ctx is checked between keys.
func add(ctx context.Context, db *pgxpool.Pool, fks []plan.ForeignKey, lock dbx.LockPolicy) error {
	for _, fk := range fks {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("add the keys for the measurement: %w", err)
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ddlTimeout)
		err := dbx.InLockedTx(dctx, db, lock, nil, func(ctx context.Context, tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, fk.DropSQL()); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, fk.AddSQL(true))
			return err
		})
		cancel()
		if err != nil {
			return fmt.Errorf("add %s NOT VALID for the measurement: %w", fk.ID(), err)
		}
	}
	return nil
}

// drop drops the keys (IF EXISTS), each to its end as in add.
func drop(ctx context.Context, db *pgxpool.Pool, fks []plan.ForeignKey, lock dbx.LockPolicy) error {
	var errs []error
	for _, fk := range fks {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ddlTimeout)
		err := dbx.InLockedTx(dctx, db, lock, nil, func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, fk.DropSQL())
			return err
		})
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("drop %s: %w", fk.ID(), err))
		}
	}
	return errors.Join(errs...)
}
