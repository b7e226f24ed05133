package activities

// The production monitor's activities: baseline capture, the heartbeating
// watcher that samples and evaluates the decision matrix every interval,
// and the monthly FK health check.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/activity"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/engine/audit"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/engine/stats"
	"github.com/fkrollout/fkrollout/internal/monitor"
	"github.com/fkrollout/fkrollout/internal/monitor/sources"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/steps"
	"github.com/fkrollout/fkrollout/workflows/watch"
)

// MonitorActivities are the monitor's activities and their dependencies.
type MonitorActivities struct {
	// Config is the monitor section of the worker configuration.
	Config monitor.Config
	// Pool resolves a worker environment to its database.
	Pool func(ctx context.Context, env string) (*pgxpool.Pool, error)
	// StatsPool is what postgres sources read through: the environment's
	// monitor_dsn when configured (a read-only role). Nil: Pool.
	StatsPool func(ctx context.Context, env string) (*pgxpool.Pool, error)
	// Notifier receives inconclusive-check notices (best effort).
	Notifier notify.Notifier
	Log      *slog.Logger
	// HeartbeatEvery bounds the time between heartbeats while waiting
	// (default 20s).
	HeartbeatEvery time.Duration

	// Sources overrides source construction (tests script samples).
	Sources func(ctx context.Context, names []string, tables []plan.TableName) ([]monitor.Source, error)
	// Now and Sleep are the clock (defaults: real time); tests replace
	// them to run 24 hours of checks in milliseconds.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// NewMonitorActivities wires the monitor to the rollout activities'
// database pools and notifier. Each environment's configured smoke checks
// (config smoke_checks) also become an http source "smoke-<env>" of that
// environment, unless a source of that name is configured; checks that
// capture values or use captured ones (a create → query chain) are left out.
func NewMonitorActivities(base *Activities, cfg monitor.Config) *MonitorActivities {
	cfg.Sources = maps.Clone(cfg.Sources)
	if cfg.Sources == nil {
		cfg.Sources = map[string]monitor.SourceConfig{}
	}
	if base.Config != nil {
		for _, env := range base.Config.EnvironmentNames() {
			e := base.Config.Environments[env]
			name := "smoke-" + env
			if _, ok := cfg.Sources[name]; ok || len(e.SmokeChecks) == 0 {
				continue
			}
			sc := monitor.SourceConfig{Kind: monitor.KindHTTP, Environment: env}
			for _, c := range e.SmokeChecks {
				if c.UsesVariables() || len(c.Capture) > 0 {
					continue // part of a chain: meaningless on its own, every interval
				}
				sc.Checks = append(sc.Checks, monitor.HTTPCheck{Name: c.Name, Method: c.Method, URL: c.URL, Body: c.Body,
					Headers: c.Headers, ExpectStatus: c.ExpectStatus, Timeout: c.Timeout})
			}
			if len(sc.Checks) > 0 {
				cfg.Sources[name] = sc
			}
		}
	}
	return &MonitorActivities{Config: cfg, Pool: base.pool, StatsPool: base.monitorPool, Notifier: base.Notifier, Log: base.Log}
}

// Register registers the monitor activities under their names.
func (m *MonitorActivities) Register(r Registerer) {
	r.RegisterActivityWithOptions(m.MonitorCaptureBaseline, activity.RegisterOptions{Name: watch.ActMonitorCaptureBaseline})
	r.RegisterActivityWithOptions(m.MonitorWatch, activity.RegisterOptions{Name: watch.ActMonitorWatch})
	r.RegisterActivityWithOptions(m.HealthCheck, activity.RegisterOptions{Name: watch.ActHealthCheck})
}

// monitorPool is the pool the monitor's postgres sources read through: the
// environment's monitor_dsn when configured, else its main pool.
func (a *Activities) monitorPool(ctx context.Context, env string) (*pgxpool.Pool, error) {
	return a.dsnPool(ctx, env, "monitor_dsn", config.Environment.MonitorDSNOrMain)
}

func (m *MonitorActivities) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// log is the activity's logger (activityLogger), falling back to m.Log.
func (m *MonitorActivities) log(ctx context.Context) tlog.Logger {
	return activityLogger(ctx, m.Log)
}

func (m *MonitorActivities) sources(ctx context.Context, env string, names []string, tables []plan.TableName) ([]monitor.Source, error) {
	if len(names) == 0 && m.Sources == nil {
		names = m.Config.DefaultSources(env)
		if len(names) == 0 {
			return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf(
				"no monitor sources for environment %q: configure monitor.sources with environment: %s (or smoke_checks), or name sources in the rollout input", env, env),
				steps.ErrTypeConfig, nil)
		}
	}
	var (
		srcs []monitor.Source
		err  error
	)
	if m.Sources != nil {
		srcs, err = m.Sources(ctx, names, tables)
	} else {
		srcs, err = sources.Build(ctx, m.Config, names, sources.Deps{
			Tables: tables,
			Now:    m.Now,
			DB: func(ctx context.Context, env string) (sources.DB, error) {
				if m.StatsPool != nil {
					return m.StatsPool(ctx, env)
				}
				if m.Pool == nil {
					return nil, errors.New("no database pools configured")
				}
				return m.Pool(ctx, env)
			},
		})
	}
	if err != nil {
		var ae *temporal.ApplicationError
		if errors.As(err, &ae) {
			return nil, err
		}
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), steps.ErrTypeConfig, nil)
	}
	return srcs, nil
}

// MonitorCaptureBaseline measures the chosen sources over the baseline
// period before the deploy: cumulative sources are primed, the period
// waited (heartbeating), and the deltas become the baseline.
func (m *MonitorActivities) MonitorCaptureBaseline(ctx context.Context, in watch.BaselineInput) (monitor.Baseline, error) {
	period, err := time.ParseDuration(in.Period)
	if err != nil || period <= 0 {
		return monitor.Baseline{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("baseline period %q is not a positive duration", in.Period), steps.ErrTypeConfig, nil)
	}
	srcs, err := m.sources(ctx, in.Environment, in.Sources, in.Tables)
	if err != nil {
		return monitor.Baseline{}, err
	}
	// A one-check watch over the period: the loop's clock, sleep and
	// heartbeat, with a matrix that never fires.
	start := m.now()
	w := monitor.Watch{Sources: srcs, Interval: period, Deadline: start.Add(period), Now: m.Now, Sleep: m.Sleep,
		BeatEvery: m.HeartbeatEvery, Beat: func(monitor.Progress) { activity.RecordHeartbeat(ctx, "measuring the baseline") }}
	var sample monitor.Sample
	w.OnCheck = func(s monitor.Sample, _ monitor.Decision) { sample = s }
	if _, err := w.Run(ctx, monitor.Progress{LastCheck: start}); err != nil {
		return monitor.Baseline{}, err
	}
	b := monitor.ToBaseline(sample, period)
	m.log(ctx).Info("monitor baseline captured", "rollout_id", in.RolloutID, "environment", in.Environment, "series", len(b.Values), "missing", len(b.Missing))
	return b, nil
}

// MonitorWatch samples every interval, evaluates the matrix and returns as
// soon as a decision is not "continue" or the deadline passes. Its
// heartbeat carries the evaluator state and the source cursors, so a
// retried attempt (worker crash) resumes the counters instead of starting
// over. Inconclusive checks below the limit are notified from here (best
// effort) so they add no events to the workflow history.
func (m *MonitorActivities) MonitorWatch(ctx context.Context, in watch.WatchInput) (watch.WatchResult, error) {
	interval, err := time.ParseDuration(in.Interval)
	if err != nil || interval <= 0 {
		return watch.WatchResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("monitor interval %q is not a positive duration", in.Interval), steps.ErrTypeConfig, nil)
	}
	if err := monitor.ValidateRules(in.Evaluator.Rules); err != nil {
		return watch.WatchResult{}, temporal.NewNonRetryableApplicationError(err.Error(), steps.ErrTypeConfig, nil)
	}
	srcs, err := m.sources(ctx, in.Environment, in.Sources, in.Tables)
	if err != nil {
		return watch.WatchResult{}, err
	}
	prog := monitor.Progress{State: in.State}
	if in.Progress != nil {
		prog = *in.Progress
		prog.State = in.State
	}
	var reportEvery time.Duration
	if in.ReportEvery != "" {
		if reportEvery, err = time.ParseDuration(in.ReportEvery); err != nil || reportEvery < 0 {
			return watch.WatchResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("monitor report_every %q is not a duration", in.ReportEvery), steps.ErrTypeConfig, nil)
		}
	}
	if activity.HasHeartbeatDetails(ctx) {
		var saved monitor.Progress
		if err := activity.GetHeartbeatDetails(ctx, &saved); err == nil {
			prog = saved
			m.log(ctx).Info("monitor watch resumed from heartbeat", "rollout_id", in.RolloutID, "checks", prog.State.Checks)
		}
	}
	w := monitor.Watch{Sources: srcs, Evaluator: in.Evaluator, Baseline: in.Baseline, Interval: interval, Deadline: in.Deadline,
		Now: m.Now, Sleep: m.Sleep, BeatEvery: m.HeartbeatEvery, ReportEvery: reportEvery, ReportOnChange: in.ReportOnChange,
		Beat: func(p monitor.Progress) { activity.RecordHeartbeat(ctx, p) },
		OnCheck: func(s monitor.Sample, d monitor.Decision) {
			m.log(ctx).Info("monitor check", "rollout_id", in.RolloutID, "environment", in.Environment,
				"check", d.At, "action", string(d.Action), "reason", d.Reason)
			if d.Action == monitor.ActionContinue && d.Inconclusive {
				m.notify(ctx, in, "monitor check inconclusive: "+d.Reason)
			}
		}}
	return w.Run(ctx, prog)
}

func (m *MonitorActivities) notify(ctx context.Context, in watch.WatchInput, text string) {
	if m.Notifier == nil {
		return
	}
	ev := notify.Event{RolloutID: in.RolloutID, Kind: notify.KindPhase, Environment: in.Environment, Phase: "monitor", Text: text, Time: m.now()}
	if _, err := m.Notifier.Notify(ctx, ev); err != nil {
		m.log(ctx).Warn("monitor notification not delivered", "rollout_id", in.RolloutID, "error", err)
	}
}

// HealthCheck audits every foreign key of one environment, NOT VALID ones
// included: a catalog snapshot (stats.Take), then an orphan count per key
// (audit.AuditOne, read-only with a statement timeout).
// A key whose count fails (timeout) is reported, not fatal.
func (m *MonitorActivities) HealthCheck(ctx context.Context, in watch.HealthEnvInput) (watch.HealthReport, error) {
	var timeout time.Duration
	if in.StatementTimeout != "" {
		d, err := time.ParseDuration(in.StatementTimeout)
		if err != nil || d < 0 {
			return watch.HealthReport{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("statement_timeout %q is not a duration", in.StatementTimeout), steps.ErrTypeConfig, nil)
		}
		timeout = d
	}
	if m.Pool == nil {
		return watch.HealthReport{}, temporal.NewNonRetryableApplicationError("no database pools configured", steps.ErrTypeConfig, nil)
	}
	pool, err := m.Pool(ctx, in.Environment)
	if err != nil {
		return watch.HealthReport{}, err
	}
	snap, err := stats.Take(ctx, pool, in.Schemas)
	if err != nil {
		return watch.HealthReport{}, fmt.Errorf("health check %s: %w", in.Environment, err)
	}
	fks, err := sources.ListForeignKeys(ctx, pool, in.Schemas)
	if err != nil {
		return watch.HealthReport{}, fmt.Errorf("health check %s: %w", in.Environment, err)
	}
	rep := watch.HealthReport{Environment: in.Environment, TakenAt: snap.TakenAt, ForeignKeys: len(fks), NotValid: snap.NotValid}
	for i, cf := range fks {
		activity.RecordHeartbeat(ctx, fmt.Sprintf("%d/%d %s", i, len(fks), cf.FK.ID()))
		h := monitor.HealthFK{Constraint: cf.FK.Name, Table: cf.FK.Table.String(), References: cf.FK.RefTable.String(), Columns: cf.FK.Columns, Validated: cf.Validated}
		res, err := audit.AuditOne(ctx, pool, cf.FK, audit.Options{SampleLimit: -1, StatementTimeout: timeout})
		h.DurationMS, h.Orphans = res.DurationMS, res.Orphans
		n := res.Orphans
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return watch.HealthReport{}, ctx.Err()
			}
			h.Error = err.Error()
			rep.Failed = append(rep.Failed, cf.FK.ID()+": "+err.Error())
		case n > 0:
			rep.WithOrphans = append(rep.WithOrphans, fmt.Sprintf("%s (%d)", cf.FK.ID(), n))
		}
		if cf.Validated {
			rep.Validated++
		}
		rep.FKs = append(rep.FKs, h)
	}
	rep.Healthy = len(rep.NotValid) == 0 && len(rep.WithOrphans) == 0 && len(rep.Failed) == 0
	if !in.ReviewSince.IsZero() {
		var db string
		if err := pool.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
			return watch.HealthReport{}, fmt.Errorf("health check %s: %w", in.Environment, err)
		}
		v := m.reviewViolations(in.Environment, db, in.ReviewSince)
		rep.Violations = &v
	}
	return rep, nil
}

// reviewViolations reads the server logs of the environment's postgres
// sources (log_path) for FK violations since the time given. Without one
// the review is not done, and says how to make it possible: PostgreSQL
// counts no errors per SQLSTATE anywhere else (pg_stat_database has none).
func (m *MonitorActivities) reviewViolations(env, db string, since time.Time) monitor.ViolationReview {
	v := monitor.ViolationReview{Since: since, ByConstraint: map[string]int{}}
	var notes []string
	for _, name := range m.Config.DefaultSources(env) {
		sc := m.Config.Sources[name]
		if sc.Kind != monitor.KindPostgres || sc.LogPath == "" {
			continue
		}
		got, err := (&sources.LogTail{Path: sc.LogPath, Format: sc.LogFormat}).Review(since, db)
		if err != nil {
			notes = append(notes, name+": "+err.Error())
			continue
		}
		v.Reviewed = true
		v.Sources = append(v.Sources, name)
		v.Total += got.Total
		for k, n := range got.ByConstraint {
			v.ByConstraint[k] += n
		}
		if !got.Oldest.IsZero() && got.Oldest.After(since) && (v.Oldest.IsZero() || got.Oldest.After(v.Oldest)) {
			v.Oldest = got.Oldest
		}
	}
	if !v.Oldest.IsZero() {
		notes = append(notes, fmt.Sprintf("the log starts %s, after the start of the period: older violations are not counted", v.Oldest.UTC().Format(time.RFC3339)))
	}
	if !v.Reviewed && len(notes) == 0 {
		notes = append(notes, fmt.Sprintf("no postgres monitor source of %s has a log_path (the server's csvlog or jsonlog); PostgreSQL keeps no per-SQLSTATE error count anywhere else", env))
	}
	v.Note = strings.Join(notes, "; ")
	return v
}

// requiredRuleProblems names every rule this worker requires
// (monitor.require_rules) that the rollout's watch could not evaluate:
// its chosen sources measure nothing the rule reads. ResolvePolicy refuses
// the start with them, before anything changes.
func (m *MonitorActivities) requiredRuleProblems(in rollout.Input, env string) []string {
	if len(m.Config.RequireRules) == 0 {
		return nil
	}
	rules := in.Monitor.Rules
	if len(rules) == 0 {
		rules = monitor.DefaultMatrix(rollout.MonitorThresholds(in.Thresholds, watch.Config{Persist: in.Monitor.Persist, SmokePersist: in.Monitor.SmokePersist}))
	}
	return m.Config.RequiredUncovered(env, in.Monitor.Sources, rules)
}
