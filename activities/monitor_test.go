package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/meta"
	"github.com/fkrollout/fkrollout/internal/engine/migrate"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/monitor"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	"github.com/fkrollout/fkrollout/workflows/steps"
	"github.com/fkrollout/fkrollout/workflows/watch"
)

type monitorRecordingNotifier struct {
	mu     sync.Mutex
	events []notify.Event
}

func (r *monitorRecordingNotifier) Notify(_ context.Context, ev notify.Event) (notify.Receipt, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	return notify.Receipt{}, nil
}

func monitorActivitiesFor(db *pgtest.DB, cfg monitor.Config) *MonitorActivities {
	return &MonitorActivities{Config: cfg, HeartbeatEvery: 200 * time.Millisecond, Notifier: &monitorRecordingNotifier{},
		Pool: func(_ context.Context, env string) (*pgxpool.Pool, error) {
			if env != "production" {
				return nil, monitorErrUnknownEnv(env)
			}
			return db.Pool, nil
		}}
}

type monitorErrUnknownEnv string

func (e monitorErrUnknownEnv) Error() string {
	return "environment " + string(e) + " is not configured"
}

// monitorTraffic writes to items on its own connection until stopped; a share of
// the writes violate the foreign key (the application's errors).
type monitorTraffic struct {
	bad  atomic.Int64 // per mille of writes that fail
	stop chan struct{}
	done chan struct{}
}

func monitorStartTraffic(t *testing.T, db *pgtest.DB) *monitorTraffic {
	tr := &monitorTraffic{stop: make(chan struct{}), done: make(chan struct{})}
	conn, err := pgx.Connect(context.Background(), db.DSN)
	require.NoError(t, err)
	go func() {
		defer close(tr.done)
		defer conn.Close(context.Background())
		for i := 0; ; i++ {
			select {
			case <-tr.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			order := 1 + i%50
			if int64(i%1000) < tr.bad.Load() {
				order = 100000 + i
			}
			_, _ = conn.Exec(context.Background(), `INSERT INTO items (order_id) VALUES ($1)`, order)
		}
	}()
	t.Cleanup(func() { close(tr.stop); <-tr.done })
	return tr
}

const monitorShopDDL = `
CREATE TABLE orders (id int PRIMARY KEY);
CREATE TABLE items (id serial PRIMARY KEY, order_id int NOT NULL);
CREATE TABLE notes (id serial PRIMARY KEY, order_id int,
  CONSTRAINT notes_order_fk FOREIGN KEY (order_id) REFERENCES orders (id));
INSERT INTO orders SELECT g FROM generate_series(1, 50) g;`

var monitorItemsFK = plan.ForeignKey{Name: "fk_items_order", Table: plan.TableName{Schema: "public", Name: "items"}, Columns: []string{"order_id"},
	RefTable: plan.TableName{Schema: "public", Name: "orders"}, RefColumns: []string{"id"}, OnDelete: plan.ActionRestrict, Priority: plan.PriorityCritical}

// The production story end to end below the workflow: the rollout's
// constraint goes in, the application starts failing with 23503, the
// watcher (real PostgreSQL source, default rollback matrix) decides rollback, and the
// rollback drops exactly the rollout's constraint.
func TestMonitorWatchDecidesRollbackAndRollbackDropsOnlyTheRollout(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, monitorShopDDL)
	ctx := context.Background()
	require.NoError(t, meta.EnsureSchema(ctx, db.Pool))
	p := plan.Plan{Name: "shop", ForeignKeys: []plan.ForeignKey{monitorItemsFK}}
	opts := migrate.Options{RolloutID: "r-prod-1", Lock: dbx.DefaultLockPolicy()}
	_, err := migrate.Apply(ctx, db.Pool, p, opts)
	require.NoError(t, err)

	cfg := monitor.Config{Sources: map[string]monitor.SourceConfig{"prod-db": {Kind: monitor.KindPostgres, Environment: "production"}}}
	require.NoError(t, cfg.Validate())
	m := monitorActivitiesFor(db, cfg)
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	m.Register(env)

	tr := monitorStartTraffic(t, db)
	tables := monitor.PlanTables(p)
	v, err := env.ExecuteActivity(watch.ActMonitorCaptureBaseline, watch.BaselineInput{
		RolloutID: "r-prod-1", Environment: "production", Sources: []string{"prod-db"}, Tables: tables, Period: "2s"})
	require.NoError(t, err)
	var base monitor.Baseline
	require.NoError(t, v.Get(&base))
	errSeries := monitor.MetricErrorRatePct + "@prod-db/" + db.Name
	require.Contains(t, base.Values, errSeries, "missing: %v", base.Missing)
	assert.Less(t, base.Values[errSeries], 1.0)
	assert.Contains(t, base.Missing[monitor.MetricLatencyMS+"@prod-db"]+base.Missing[monitor.MetricLatencyMS+"@prod-db/public.items"], "pg_stat_statements",
		"without the extension latency is reported missing with the reason")

	tr.bad.Store(300) // 30 % of the application's writes now fail with 23503
	start := time.Now()
	v, err = env.ExecuteActivity(watch.ActMonitorWatch, watch.WatchInput{
		RolloutID: "r-prod-1", Environment: "production", Sources: []string{"prod-db"}, Tables: tables,
		Interval: "1s", Deadline: time.Now().Add(45 * time.Second), Baseline: base,
		Evaluator: monitor.Evaluator{Rules: monitor.DefaultMatrix(monitor.Thresholds{Persist: 2}), InconclusiveLimit: 1000},
	})
	require.NoError(t, err)
	var res watch.WatchResult
	require.NoError(t, v.Get(&res))
	require.Equal(t, monitor.ActionRollback, res.Decision.Action, res.Decision.Reason)
	assert.Equal(t, monitor.RuleErrorRate, res.Decision.Rule)
	assert.Greater(t, res.Decision.Figures[monitor.RuleErrorRate], 5.0)
	assert.Less(t, time.Since(start), 30*time.Second)
	assert.GreaterOrEqual(t, res.State.Checks, 2, "persistence: at least two checks")
	// Latency had no data on every check (no pg_stat_statements in this
	// database): each inconclusive check was notified, and the measured
	// error-rate breach still decided.
	rec := m.Notifier.(*monitorRecordingNotifier)
	rec.mu.Lock()
	require.NotEmpty(t, rec.events)
	assert.Equal(t, "r-prod-1", rec.events[0].RolloutID)
	assert.Contains(t, rec.events[0].Text, "monitor check inconclusive")
	assert.Contains(t, rec.events[0].Text, "pg_stat_statements")
	rec.mu.Unlock()

	// The parent's reaction: roll back this rollout's constraints.
	_, err = migrate.Rollback(ctx, db.Pool, "r-prod-1", p, opts)
	require.NoError(t, err)
	assert.Zero(t, db.Count(t, `SELECT count(*) FROM pg_constraint WHERE conname = 'fk_items_order'`), "the rollout's constraint is gone")
	assert.Equal(t, int64(1), db.Count(t, `SELECT count(*) FROM pg_constraint WHERE conname = 'notes_order_fk'`), "a constraint the rollout did not create stays")
}

func TestMonitorWatchUnknownSourceIsAConfigError(t *testing.T) {
	db := pgtest.New(t)
	m := monitorActivitiesFor(db, monitor.Config{})
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	m.Register(env)
	_, err := env.ExecuteActivity(watch.ActMonitorWatch, watch.WatchInput{Sources: []string{"prom"}, Interval: "1s",
		Deadline: time.Now().Add(time.Minute), Evaluator: monitor.Evaluator{Rules: monitor.DefaultMatrix(monitor.Thresholds{})}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `monitor source "prom" is not configured`)
	assert.Contains(t, err.Error(), steps.ErrTypeConfig)
}

// A retried watcher resumes from its heartbeat: the counters and cursors
// of the previous attempt, not a fresh start.
func TestMonitorWatchResumesFromHeartbeatDetails(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	slow := func(n int) monitor.Reading {
		return monitor.Reading{Values: map[string]float64{"latency_ms@s/t": 50, "error_rate_pct@s/db": 0}}
	}
	clock := time.Date(2026, 1, 10, 2, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	m := &MonitorActivities{
		Sources: func(context.Context, []string, []plan.TableName) ([]monitor.Source, error) {
			return []monitor.Source{monitorFuncSource(slow)}, nil
		},
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock },
		Sleep: func(_ context.Context, d time.Duration) error {
			mu.Lock()
			defer mu.Unlock()
			clock = clock.Add(d)
			return nil
		},
	}
	m.Register(env)
	saved := monitor.Progress{State: monitor.State{Checks: 7, Streaks: map[string]int{monitor.RuleLatency: 2}}, LastCheck: clock,
		Cursors: monitor.Cursors{"s": []byte(`{}`)}}
	env.SetHeartbeatDetails(saved)
	v, err := env.ExecuteActivity(watch.ActMonitorWatch, watch.WatchInput{Sources: []string{"s"}, Interval: "5m",
		Deadline: clock.Add(time.Hour), Baseline: monitor.Baseline{Values: map[string]float64{"latency_ms@s/t": 10, "error_rate_pct@s/db": 0}},
		Evaluator: monitor.Evaluator{Rules: monitor.DefaultMatrix(monitor.Thresholds{})}})
	require.NoError(t, err)
	var res watch.WatchResult
	require.NoError(t, v.Get(&res))
	assert.Equal(t, monitor.ActionRollback, res.Decision.Action)
	assert.Equal(t, 8, res.State.Checks, "one more slow check completes the streak of three")
}

type monitorFuncSource func(n int) monitor.Reading

func (monitorFuncSource) Name() string { return "s" }
func (monitorFuncSource) Provides() []string {
	return []string{monitor.MetricLatencyMS, monitor.MetricErrorRatePct}
}
func (f monitorFuncSource) Collect(context.Context, json.RawMessage) (monitor.Reading, error) {
	return f(0), nil
}

func TestHealthCheckFindsOrphansAndNotValid(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, monitorShopDDL+`
INSERT INTO items (order_id) VALUES (1), (2), (777), (778);
ALTER TABLE items ADD CONSTRAINT fk_items_order FOREIGN KEY (order_id) REFERENCES orders (id) NOT VALID;
INSERT INTO notes (order_id) VALUES (1), (NULL);`)
	m := monitorActivitiesFor(db, monitor.Config{})
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	m.Register(env)
	v, err := env.ExecuteActivity(watch.ActHealthCheck, watch.HealthEnvInput{Environment: "production", StatementTimeout: "30s"})
	require.NoError(t, err)
	var rep watch.HealthReport
	require.NoError(t, v.Get(&rep))
	assert.False(t, rep.Healthy)
	assert.Equal(t, 2, rep.ForeignKeys)
	assert.Equal(t, 1, rep.Validated)
	assert.Equal(t, []string{"public.items.fk_items_order"}, rep.NotValid)
	assert.Equal(t, []string{"public.items.fk_items_order (2)"}, rep.WithOrphans)
	require.Len(t, rep.FKs, 2)
	for _, f := range rep.FKs {
		switch f.Constraint {
		case "fk_items_order":
			assert.False(t, f.Validated)
			assert.Equal(t, int64(2), f.Orphans)
		case "notes_order_fk":
			assert.True(t, f.Validated)
			assert.Zero(t, f.Orphans, "a NULL reference is not an orphan")
		}
	}

	db.Exec(t, `DELETE FROM items WHERE order_id > 50; ALTER TABLE items VALIDATE CONSTRAINT fk_items_order`)
	v, err = env.ExecuteActivity(watch.ActHealthCheck, watch.HealthEnvInput{Environment: "production"})
	require.NoError(t, err)
	require.NoError(t, v.Get(&rep))
	assert.True(t, rep.Healthy, "%+v", rep)

	_, err = env.ExecuteActivity(watch.ActHealthCheck, watch.HealthEnvInput{Environment: "staging"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "staging")
}

// With no sources named, a rollout is watched with every source of its
// environment, including the environment's configured smoke checks; an
// environment with none is a configuration error (the workflow turns it
// into an inconclusive gate), never a silent pass.
func TestMonitorDefaultSourcesIncludeConfiguredSmokeChecks(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable) // the deploy broke the application
	}))
	defer app.Close()
	cfg := &config.Config{Environments: map[string]config.Environment{
		"production": {DSN: "postgres://app@127.0.0.1:1/none", SmokeChecks: []config.SmokeCheck{{Name: "health", URL: app.URL + "/health", ExpectStatus: 200}}},
	}}
	rec := &monitorRecordingNotifier{}
	m := NewMonitorActivities(mustNew(t, cfg, rec, nil), monitor.Config{Sources: map[string]monitor.SourceConfig{
		"app": {Kind: monitor.KindPrometheus, URL: "http://127.0.0.1:1", Queries: map[string]string{"error_rate_pct": "vector(0)"}, Environment: "staging"},
	}})
	assert.Equal(t, []string{"smoke-production"}, m.Config.DefaultSources("production"))
	assert.Equal(t, []string{"app"}, m.Config.DefaultSources("staging"))
	m.HeartbeatEvery = 100 * time.Millisecond

	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	m.Register(env)
	v, err := env.ExecuteActivity(watch.ActMonitorWatch, watch.WatchInput{RolloutID: "r1", Environment: "production",
		Interval: "300ms", Deadline: time.Now().Add(20 * time.Second),
		Evaluator: monitor.Evaluator{Rules: monitor.DefaultMatrix(monitor.Thresholds{})}})
	require.NoError(t, err)
	var res watch.WatchResult
	require.NoError(t, v.Get(&res))
	assert.Equal(t, monitor.ActionRollback, res.Decision.Action, res.Decision.Reason)
	assert.Equal(t, monitor.RuleSmokeFailing, res.Decision.Rule)
	assert.Equal(t, 2, res.State.Checks, "smoke failures roll back on the second failing check")

	_, err = env.ExecuteActivity(watch.ActMonitorWatch, watch.WatchInput{Environment: "qa", Interval: "1s",
		Deadline: time.Now().Add(time.Minute), Evaluator: monitor.Evaluator{Rules: monitor.DefaultMatrix(monitor.Thresholds{})}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `no monitor sources for environment "qa"`)
}

// On a real database: every rule reports its source each check, a rule no
// source measures (FK violations without a server log) is inconclusive,
// and a watcher resumed from its checkpoint keeps its cursors.
func TestMonitorWatchReportsEveryRuleAndResumesFromCheckpoint(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, monitorShopDDL)
	cfg := monitor.Config{Sources: map[string]monitor.SourceConfig{"prod-db": {Kind: monitor.KindPostgres, Environment: "production"}}}
	require.NoError(t, cfg.Validate())
	m := monitorActivitiesFor(db, cfg)
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	m.Register(env)
	monitorStartTraffic(t, db)
	errSeries := monitor.MetricErrorRatePct + "@prod-db/" + db.Name
	base := monitor.Baseline{Values: map[string]float64{errSeries: 0}}
	in := watch.WatchInput{RolloutID: "r1", Environment: "production", Sources: []string{"prod-db"},
		Interval: "2s", Deadline: time.Now().Add(time.Minute), Baseline: base, ReportOnChange: true, ReportEvery: "1h",
		Evaluator: monitor.Evaluator{Rules: monitor.DefaultMatrix(monitor.Thresholds{}), InconclusiveLimit: 1000}}

	v, err := env.ExecuteActivity(watch.ActMonitorWatch, in)
	require.NoError(t, err)
	var first watch.WatchResult
	require.NoError(t, v.Get(&first))
	require.True(t, first.Checkpoint, "the first check reports every rule")
	require.NotNil(t, first.Progress)
	assert.Equal(t, 1, first.State.Checks)
	rules := map[string]monitor.RuleStatus{}
	for _, r := range first.Decision.Rules {
		rules[r.Rule] = r
	}
	require.Len(t, rules, 5)
	fk := rules[monitor.RuleFKViolations]
	assert.Equal(t, monitor.RuleInconclusive, fk.State)
	assert.Empty(t, fk.Sources)
	assert.Equal(t, "no configured source measures fk_violations", fk.Reason)
	er := rules[monitor.RuleErrorRate]
	assert.Equal(t, []string{"prod-db"}, er.Sources)
	assert.Equal(t, errSeries, er.Series)
	assert.Equal(t, monitor.RuleOK, er.State, er.Reason)
	lat := rules[monitor.RuleLatency]
	assert.Equal(t, []string{"prod-db"}, lat.Sources, "the source that failed to measure it")
	assert.Equal(t, monitor.RuleInconclusive, lat.State)
	assert.Contains(t, lat.Reason, "pg_stat_statements")

	// Resumed from the checkpoint: the cursor carries on, no new priming
	// (a primed check would have no error rate for the interval).
	in.Progress, in.State, in.ReportEvery = first.Progress, first.State, "2s"
	v, err = env.ExecuteActivity(watch.ActMonitorWatch, in)
	require.NoError(t, err)
	var second watch.WatchResult
	require.NoError(t, v.Get(&second))
	require.True(t, second.Checkpoint)
	assert.Greater(t, second.State.Checks, 1, "the counters went on")
	var rate *monitor.RuleStatus
	for i := range second.Decision.Rules {
		if second.Decision.Rules[i].Rule == monitor.RuleErrorRate {
			rate = &second.Decision.Rules[i]
		}
	}
	require.NotNil(t, rate)
	assert.Equal(t, monitor.RuleOK, rate.State, "the resumed check measured the interval since the checkpoint: %s", rate.Reason)
}

// The monthly health check reviews the constraint violations of the period
// in the server log: the messages are the real server's (its 23503 errors
// on this database), written as csvlog lines; an entry before the period
// or of another database is not counted, and without a log the review
// says it was not done.
func TestHealthCheckReviewsConstraintViolations(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, monitorShopDDL)
	ctx := context.Background()
	now := time.Now().UTC()
	var lines strings.Builder
	csvLine := func(at time.Time, dbName, msg string) {
		fmt.Fprintf(&lines, "%s,\"app\",\"%s\",1234,\"127.0.0.1:5555\",65a1.4d2,3,\"INSERT\",%s,3/7,0,ERROR,23503,\"%s\",,,,,,\"INSERT\",,,\"app\",\"client backend\",,0\n",
			at.Format("2006-01-02 15:04:05.000 MST"), dbName, at.Format("2006-01-02 15:04:05 MST"), strings.ReplaceAll(msg, `"`, `""`))
	}
	for i := 0; i < 3; i++ {
		_, err := db.Pool.Exec(ctx, `INSERT INTO notes (order_id) VALUES ($1)`, 1000+i)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		require.Equal(t, "23503", pgErr.Code)
		csvLine(now.Add(-time.Duration(i)*24*time.Hour), db.Name, pgErr.Message)
		if i == 0 {
			csvLine(now.Add(-40*24*time.Hour), db.Name, pgErr.Message) // before the period
			csvLine(now, "another_db", pgErr.Message)                  // not this database
		}
	}
	logPath := filepath.Join(t.TempDir(), "postgresql-2026-12.csv")
	require.NoError(t, os.WriteFile(logPath, []byte(lines.String()), 0o644))

	run := func(cfg monitor.Config) watch.HealthReport {
		m := monitorActivitiesFor(db, cfg)
		var ts testsuite.WorkflowTestSuite
		env := ts.NewTestActivityEnvironment()
		m.Register(env)
		v, err := env.ExecuteActivity(watch.ActHealthCheck, watch.HealthEnvInput{Environment: "production", ReviewSince: now.Add(-watch.DefaultReviewPeriod)})
		require.NoError(t, err)
		var rep watch.HealthReport
		require.NoError(t, v.Get(&rep))
		return rep
	}
	rep := run(monitor.Config{Sources: map[string]monitor.SourceConfig{
		"prod-db": {Kind: monitor.KindPostgres, Environment: "production", LogPath: filepath.Join(filepath.Dir(logPath), "postgresql-*.csv")}}})
	require.NotNil(t, rep.Violations)
	v := *rep.Violations
	assert.True(t, v.Reviewed)
	assert.Equal(t, []string{"prod-db"}, v.Sources)
	assert.Equal(t, 3, v.Total, "three in the period, in this database")
	assert.Equal(t, map[string]int{"notes_order_fk": 3}, v.ByConstraint)
	assert.Empty(t, v.Note, "the log covers the whole period")
	assert.True(t, rep.Healthy, "violations refused by a constraint are reported, not a defect of the keys")
	assert.Contains(t, watch.ViolationText(v), "(prod-db): 3 (notes_order_fk 3)")

	rep = run(monitor.Config{Sources: map[string]monitor.SourceConfig{"prod-db": {Kind: monitor.KindPostgres, Environment: "production"}}})
	require.NotNil(t, rep.Violations)
	assert.False(t, rep.Violations.Reviewed)
	assert.Contains(t, watch.ViolationText(*rep.Violations), "FK violations not reviewed: no postgres monitor source of production has a log_path")
}
