package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/pflag"

	"github.com/fkrollout/fkrollout/internal/engine/catalog"
	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/engine/sqlplan"
)

// DSNEnv is read when --dsn is not given, so the DSN stays out of shell
// history and process listings. It is never printed.
const DSNEnv = "FKROLLOUT_DSN"

// AdminDSNEnv is read by demo-db when --admin-dsn is not given.
const AdminDSNEnv = "FKROLLOUT_ADMIN_DSN"

// engineFlags are the database and plan flags the engine commands share;
// each command picks the ones it takes (withPlan, withDB, ...).
type engineFlags struct {
	fs          *pflag.FlagSet
	planPath    string
	dsn         string
	json        bool
	rolloutID   string
	needRollout bool
	lockTimeout time.Duration
	attempts    int
	// strict lints with the rules that the rollout makes safe as errors.
	strict bool
}

func newEngineFlags(fs *pflag.FlagSet) *engineFlags {
	f := &engineFlags{fs: fs}
	fs.BoolVar(&f.json, "json", false, "print the result as one JSON document")
	return f
}

func (f *engineFlags) withPlan() *engineFlags {
	f.fs.StringVar(&f.planPath, "plan", "", "plan file: migration .sql or .yaml/.json, type by extension (required)")
	f.fs.BoolVar(&f.strict, "strict", false, "lint strictly: missing NOT VALID, ON DELETE, names and referenced columns are errors")
	return f
}

func (f *engineFlags) withDB() *engineFlags {
	f.fs.StringVar(&f.dsn, "dsn", "", "database DSN (default $"+DSNEnv+")")
	return f
}

func (f *engineFlags) withLock() *engineFlags {
	d := dbx.DefaultLockPolicy()
	f.fs.DurationVar(&f.lockTimeout, "lock-timeout", d.LockTimeout, "lock_timeout of each DDL attempt")
	f.fs.IntVar(&f.attempts, "attempts", d.Attempts, "tries per statement when the lock times out")
	return f
}

func (f *engineFlags) withRollout() *engineFlags {
	f.fs.StringVar(&f.rolloutID, "rollout-id", "", "rollout id recorded as the constraints' owner (required)")
	f.needRollout = true
	return f
}

// check refuses missing required flags and out-of-range values, as usage
// errors, before anything connects.
func (f *engineFlags) check() error {
	if f.fs.Lookup("plan") != nil && f.planPath == "" {
		return usageError{"--plan is required"}
	}
	if f.needRollout && strings.TrimSpace(f.rolloutID) == "" {
		return usageError{"--rollout-id is required"}
	}
	if f.fs.Lookup("attempts") != nil {
		if f.attempts < 1 {
			return usageError{fmt.Sprintf("--attempts must be at least 1, got %d", f.attempts)}
		}
		if f.lockTimeout <= 0 {
			return usageError{fmt.Sprintf("--lock-timeout must be positive, got %s", f.lockTimeout)}
		}
	}
	return nil
}

func (f *engineFlags) lockPolicy() dbx.LockPolicy {
	p := dbx.DefaultLockPolicy()
	p.LockTimeout, p.Attempts = f.lockTimeout, f.attempts
	return p
}

// open checks the flags, loads the plan and connects: the start of every
// command that reads a plan and a database. The caller closes the pool.
func (f *engineFlags) open(ctx context.Context) (plan.Plan, *pgxpool.Pool, error) {
	if err := f.check(); err != nil {
		return plan.Plan{}, nil, err
	}
	p, err := sqlplan.Load(f.planPath)
	if err != nil {
		return plan.Plan{}, nil, err
	}
	pool, err := f.connect(ctx)
	if err != nil {
		return plan.Plan{}, nil, err
	}
	// REFERENCES t without columns means t's primary key.
	if err := catalog.ResolveReferences(ctx, pool, &p); err != nil {
		pool.Close()
		return plan.Plan{}, nil, err
	}
	return p, pool, nil
}

// dsnValue is --dsn, else $FKROLLOUT_DSN.
func (f *engineFlags) dsnValue() string {
	if f.dsn != "" {
		return f.dsn
	}
	return os.Getenv(DSNEnv)
}

// connect opens a pool from --dsn or $FKROLLOUT_DSN. Errors never contain
// the DSN itself.
func (f *engineFlags) connect(ctx context.Context) (*pgxpool.Pool, error) {
	dsn := f.dsnValue()
	if dsn == "" {
		return nil, usageError{"no database: pass --dsn or set " + DSNEnv}
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, usageError{"the database DSN does not parse (check --dsn / " + DSNEnv + ")"}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to database %s: %w", cfg.ConnConfig.Database, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database %s on %s: %w", cfg.ConnConfig.Database, cfg.ConnConfig.Host, err)
	}
	return pool, nil
}
