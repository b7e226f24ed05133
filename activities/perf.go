package activities

// The perf phase's activities: PerfRun runs the workload on an
// environment's database and returns the latency report; PerfExplain
// checks each foreign key's referential lookup and the workload's
// statements with EXPLAIN (ANALYZE, BUFFERS) and, only when asked, builds
// the recommended indexes.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/perf"
	"github.com/fkrollout/fkrollout/internal/perf/explain"
	"github.com/fkrollout/fkrollout/internal/perf/loadgen"
	"github.com/fkrollout/fkrollout/internal/perf/loadgen/runner"
	"github.com/fkrollout/fkrollout/internal/policy"
	sqlassets "github.com/fkrollout/fkrollout/sql"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

// PerfProgress is PerfRun's heartbeat detail.
type PerfProgress struct {
	Label     string  `json:"label"`
	Phase     string  `json:"phase"` // "warm-up" or "measuring"
	ElapsedS  float64 `json:"elapsed_s"`
	PlannedS  float64 `json:"planned_s,omitempty"`
	Operation string  `json:"operation,omitempty"`
}

// perfAllowed refuses, in the activity itself, what ResolvePolicy refuses
// at the start of a rollout, so that a history recorded before the policy
// existed, or anything else that schedules the activity, cannot get past it
// either. Inline SQL is never run: whoever can start a workflow could write
// it. The workload writes rows, so it runs only where
// policy.environments.<env>.perf is true. Development mode
// (trust_client_identity) keeps the old behaviour for an environment
// without a policy entry.
func (a *Activities) perfAllowed(env, inline string) error {
	if strings.TrimSpace(inline) != "" {
		return temporal.NewNonRetryableApplicationError("perf: inline SQL is not accepted; name a workload from the worker configuration (perf.workloads)", steps.ErrTypeConfig, nil)
	}
	var pol policy.Config
	if a.Config != nil {
		pol = a.Config.Policy
	}
	ep, ok := pol.Environments[env]
	switch {
	case ok && ep.Perf:
		return nil
	case !ok && pol.TrustClientIdentity:
		return nil
	case !ok:
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("perf: environment %q has no policy on this worker (policy.environments.%s): the perf phase writes rows and runs only where perf: true", env, env), steps.ErrTypeConfig, nil)
	}
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf("perf: environment %q may not run the perf phase: its workload writes rows (set policy.environments.%s.perf: true to allow it)", env, env), steps.ErrTypeConfig, nil)
}

// perfWorkload resolves the workload by name: a configured one, or the
// built-in demo. Inline YAML never reaches here (perfAllowed). A workload
// that does not parse or validate is a PlanError; an unknown name a
// ConfigError (neither helps to retry).
func (a *Activities) perfWorkload(name string) (loadgen.Workload, string, error) {
	if name == "" {
		name = rollout.PerfDefaultWorkload
	}
	var text string
	var err error
	switch {
	case a.Config != nil && a.perfConfigured(name):
		text, err = a.Config.ReadPerfWorkload(name)
	case name == rollout.PerfDefaultWorkload:
		text = sqlassets.Workload
	default:
		if a.Config == nil {
			err = fmt.Errorf("perf workload %q is not configured on this worker", name)
		} else {
			_, err = a.Config.ReadPerfWorkload(name)
		}
	}
	if err != nil {
		return loadgen.Workload{}, name, temporal.NewNonRetryableApplicationError(a.redact(err.Error()), steps.ErrTypeConfig, nil)
	}
	w, err := loadgen.ParseWorkload([]byte(text))
	if err != nil {
		return loadgen.Workload{}, name, temporal.NewNonRetryableApplicationError(fmt.Sprintf("perf workload %s: %v", name, err), steps.ErrTypePlan, nil)
	}
	return w, name, nil
}

func (a *Activities) perfConfigured(name string) bool {
	_, ok := a.Config.PerfWorkloadFile(name)
	return ok
}

func perfOptions(in rollout.PerfRunInput) (loadgen.RunOptions, error) {
	o := loadgen.RunOptions{Workers: in.Workers, Iterations: in.Iterations}
	for _, d := range []struct {
		name, v string
		dst     *time.Duration
	}{{"duration", in.Duration, &o.Duration}, {"warmup", in.Warmup, &o.Warmup}} {
		if d.v == "" {
			continue
		}
		v, err := time.ParseDuration(d.v)
		if err != nil || v < 0 {
			return o, temporal.NewNonRetryableApplicationError(fmt.Sprintf("perf %s %q is not a duration", d.name, d.v), steps.ErrTypePlan, nil)
		}
		*d.dst = v
	}
	if o.Duration <= 0 && o.Iterations <= 0 {
		return o, temporal.NewNonRetryableApplicationError("perf: set a duration or an iteration count", steps.ErrTypePlan, nil)
	}
	return o, nil
}

// PerfRun runs the workload once on the environment and returns the
// per-operation latency report. It heartbeats the elapsed time; a cancelled
// activity stops the run (its queries are cancelled on the server).
// A retry runs the whole measurement again: a half-measured run is not
// resumable, and the workload's own writes only add rows to staging.
func (a *Activities) PerfRun(ctx context.Context, in rollout.PerfRunInput) (loadgen.Report, error) {
	if err := a.perfAllowed(in.Environment, in.WorkloadYAML); err != nil {
		return loadgen.Report{}, err
	}
	w, label, err := a.perfWorkload(in.Workload)
	if err != nil {
		return loadgen.Report{}, err
	}
	o, err := perfOptions(in)
	if err != nil {
		return loadgen.Report{}, err
	}
	pool, err := a.perfPool(ctx, in.Environment)
	if err != nil {
		return loadgen.Report{}, err
	}
	planned := o.Warmup + o.Duration
	start := time.Now()
	progress := func() PerfProgress {
		el := time.Since(start)
		p := PerfProgress{Label: in.Label + " " + label, Phase: "measuring", ElapsedS: el.Seconds(), PlannedS: planned.Seconds()}
		if el < o.Warmup {
			p.Phase = "warm-up"
		}
		if o.Iterations > 0 {
			p.PlannedS = 0
		}
		return p
	}
	hb := a.startHeartbeat(ctx, progress())
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				hb.set(progress())
			}
		}
	}()
	rep, err := runner.Run(ctx, pool, w, o)
	close(stop)
	hb.end()
	if err != nil {
		return loadgen.Report{}, a.perfErr(fmt.Errorf("perf %s run of %s on %s: %w", in.Label, label, in.Environment, err))
	}
	activityLogger(ctx, a.Log).Info("perf run", "environment", in.Environment, "label", in.Label, "workload", label,
		"operations", rep.Total.Count, "errors", rep.Total.Errors, "throughput", rep.Total.Throughput)
	return rep, nil
}

// PerfExplain runs the EXPLAIN checks and, when asked, builds the
// recommended indexes with CREATE INDEX CONCURRENTLY (then checks again, so
// the result shows the plans the with-FKs run will use).
func (a *Activities) PerfExplain(ctx context.Context, in rollout.PerfExplainInput) (rollout.PerfExplainResult, error) {
	var out rollout.PerfExplainResult
	if err := a.perfAllowed(in.Environment, in.WorkloadYAML); err != nil {
		return out, err
	}
	w, label, err := a.perfWorkload(in.Workload)
	if err != nil {
		return out, err
	}
	pool, err := a.perfPool(ctx, in.Environment)
	if err != nil {
		return out, err
	}
	hb := a.startHeartbeat(ctx, Progress{Total: len(in.FKs), Note: "EXPLAIN of the referential checks"})
	defer hb.end()
	opts := explain.Options{LockTimeout: a.Lock.LockTimeout}
	checks, err := explain.FKsWith(ctx, pool, in.FKs, opts)
	if err != nil {
		return out, a.perfErr(fmt.Errorf("explain on %s: %w", in.Environment, err))
	}
	for _, c := range perf.NeedIndex(checks) {
		out.Recommended = append(out.Recommended, c.Recommendation)
	}
	if in.CreateIndexes && len(out.Recommended) > 0 {
		hb.set(Progress{Total: len(out.Recommended), Note: "CREATE INDEX CONCURRENTLY (requested by the rollout)"})
		// DDL: through the environment's main DSN (table owner's rights),
		// never the perf role, which only writes rows.
		ddl, err := a.pool(ctx, in.Environment)
		if err != nil {
			return out, err
		}
		// Idempotent under retry: stats.CreateIndex uses IF NOT EXISTS and
		// a re-run's EXPLAIN no longer recommends a built index.
		built, err := explain.CreateRecommendedIndexes(ctx, ddl, checks, a.Lock.LockTimeout)
		out.IndexesBuilt = built
		if err != nil {
			return out, a.perfErr(fmt.Errorf("create recommended indexes on %s: %w", in.Environment, err))
		}
		hb.set(Progress{Total: len(in.FKs), Note: "EXPLAIN again with the new indexes"})
		if checks, err = explain.FKsWith(ctx, pool, in.FKs, opts); err != nil {
			return out, a.perfErr(fmt.Errorf("explain on %s: %w", in.Environment, err))
		}
	}
	out.FKChecks = checks
	hb.set(Progress{Note: "EXPLAIN of the workload " + label})
	samples, err := runner.Sample(ctx, pool, w)
	if err != nil {
		return out, a.perfErr(fmt.Errorf("sample workload %s on %s: %w", label, in.Environment, err))
	}
	if out.Queries, err = explain.Workload(ctx, pool, samples, opts); err != nil {
		return out, a.perfErr(fmt.Errorf("explain workload %s on %s: %w", label, in.Environment, err))
	}
	activity.GetLogger(ctx).Info("perf explain", "environment", in.Environment, "checks", len(out.FKChecks),
		"recommended", len(out.Recommended), "built", len(out.IndexesBuilt))
	return out, nil
}

// perfErr classifies: SQL the workload got wrong (syntax, undefined table
// or column, wrong type: SQLSTATE classes 42 and 22) is a non-retryable
// PlanError; anything else (connection, lock timeout) is retried. Secrets
// are removed either way.
func (a *Activities) perfErr(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "42") || strings.HasPrefix(pe.Code, "22")) {
		return temporal.NewNonRetryableApplicationError(a.redact(err.Error()), steps.ErrTypePlan, nil)
	}
	return a.clean(err)
}

// perfPool is the pool the perf phase's workload and EXPLAINs run through:
// the environment's perf_dsn when configured, else its main pool.
func (a *Activities) perfPool(ctx context.Context, env string) (*pgxpool.Pool, error) {
	return a.dsnPool(ctx, env, "perf_dsn", config.Environment.PerfDSNOrMain)
}

// dsnPool returns the pool of one of an environment's optional DSNs
// (perf_dsn, monitor_dsn; pick returns it or the main DSN), kept apart from
// the main pool and closed with it. The same DSN as the main one shares the
// main pool.
func (a *Activities) dsnPool(ctx context.Context, env, field string, pick func(config.Environment) string) (*pgxpool.Pool, error) {
	e, err := a.Config.Environment(env)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), steps.ErrTypeConfig, nil)
	}
	dsn := pick(e)
	if dsn == e.DSN {
		return a.pool(ctx, env)
	}
	key := field + "\x00" + env
	a.mu.Lock()
	defer a.mu.Unlock()
	if p, ok := a.pools[key]; ok {
		return p, nil
	}
	// As the main pool (activities.go): few connections, given back soon.
	cfg, err := config.PoolConfig(dsn, "fkrollout-worker-"+strings.TrimSuffix(field, "_dsn"))
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("environment %q: %s does not parse", env, field), steps.ErrTypeConfig, nil)
	}
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, a.clean(fmt.Errorf("connect to %s (%s): %w", env, field, err))
	}
	a.pools[key] = p
	return p, nil
}
