package activities

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/demo"
	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/engine/sqlplan"
	"github.com/fkrollout/fkrollout/internal/monitor"
	"github.com/fkrollout/fkrollout/internal/monitor/sources"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	sqlassets "github.com/fkrollout/fkrollout/sql"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

func currentUser(t *testing.T, p *pgxpool.Pool) string {
	t.Helper()
	var u string
	require.NoError(t, p.QueryRow(context.Background(), `SELECT current_user`).Scan(&u))
	return u
}

// Without perf_dsn / monitor_dsn both phases share the environment's pool;
// with them each gets a pool of its own, connected as its role.
func TestOptionalDSNsSelectTheirPools(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	main := pgtest.NewRole(t, db)
	perfRole := pgtest.NewScriptRole(t, db, sqlassets.PerfRole, map[string]string{"schema": "public"})
	monRole := pgtest.NewScriptRole(t, db, sqlassets.MonitorRole, nil)
	a := mustNew(t, cfgWith(map[string]config.Environment{
		"plain":    {DSN: main.DSN},
		"separate": {DSN: main.DSN, PerfDSN: perfRole.DSN, MonitorDSN: monRole.DSN},
	}), nil, nil)
	defer a.Close()

	plainMain, err := a.pool(ctx, "plain")
	require.NoError(t, err)
	for _, get := range []func(context.Context, string) (*pgxpool.Pool, error){a.perfPool, a.monitorPool} {
		p, err := get(ctx, "plain")
		require.NoError(t, err)
		assert.Same(t, plainMain, p, "no optional DSN: the main pool")
	}

	p, err := a.perfPool(ctx, "separate")
	require.NoError(t, err)
	assert.Equal(t, perfRole.Name, currentUser(t, p))
	again, err := a.perfPool(ctx, "separate")
	require.NoError(t, err)
	assert.Same(t, p, again)
	assert.Equal(t, int32(4), p.Config().MaxConns)
	p, err = a.monitorPool(ctx, "separate")
	require.NoError(t, err)
	assert.Equal(t, monRole.Name, currentUser(t, p))
	p, err = a.pool(ctx, "separate")
	require.NoError(t, err)
	assert.Equal(t, main.Name, currentUser(t, p), "everything else keeps the main DSN")

	_, err = a.perfPool(ctx, "qa")
	require.Error(t, err)
	typ, nonRetryable := appErrType(t, err)
	assert.Equal(t, steps.ErrTypeConfig, typ)
	assert.True(t, nonRetryable)
}

// The perf phase through a perf_dsn role that can only read and write rows:
// the runs and EXPLAINs work, the indexes the rollout asks for are built
// through the main DSN (the perf role could not).
func TestPerfPhaseThroughPerfDSN(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	require.NoError(t, demo.Setup(ctx, db.Pool))
	_, err := demo.Seed(ctx, db.Pool, demo.Options{Workspaces: 1, WorkflowsPerWorkspace: 20, Seed: 3})
	require.NoError(t, err)
	p, err := sqlplan.ParseSQL(sqlassets.Migration)
	require.NoError(t, err)
	for _, fk := range p.ForeignKeys {
		db.Exec(t, fk.AddSQL(true))
		db.Exec(t, fk.ValidateSQL())
	}
	main := pgtest.NewRole(t, db)
	perfRole := pgtest.NewScriptRole(t, db, sqlassets.PerfRole, map[string]string{"schema": "public"})
	_, err = perfRole.Pool.Exec(ctx, `CREATE INDEX perf_may_not ON workflow_stages (workflow_instance_id)`)
	require.Equal(t, "42501", dbx.Code(err), "the perf role has no DDL")

	env, _ := newEnv(t, perfCfg(map[string]config.Environment{"staging": {DSN: main.DSN, PerfDSN: perfRole.DSN}}, "staging"))
	v, err := env.ExecuteActivity(rollout.ActPerfRun, rollout.PerfRunInput{Environment: "staging", RolloutID: "r-perf",
		Label: "baseline", Workload: "demo", Workers: 2, Iterations: 40})
	require.NoError(t, err)
	var rep struct {
		Total struct {
			Count  int64 `json:"count"`
			Errors int64 `json:"errors"`
		} `json:"total"`
	}
	require.NoError(t, v.Get(&rep))
	assert.Equal(t, int64(40), rep.Total.Count)
	assert.Zero(t, rep.Total.Errors)

	v, err = env.ExecuteActivity(rollout.ActPerfExplain, rollout.PerfExplainInput{Environment: "staging", RolloutID: "r-perf",
		FKs: p.ForeignKeys, Workload: "demo", CreateIndexes: true})
	require.NoError(t, err)
	var ex rollout.PerfExplainResult
	require.NoError(t, v.Get(&ex))
	assert.NotEmpty(t, ex.IndexesBuilt)
	for _, q := range ex.Queries {
		assert.Empty(t, q.Error, q.Operation)
	}
	var owner string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT c.relowner::regrole::text FROM pg_class c WHERE c.relname = $1`, ex.IndexesBuilt[0]).Scan(&owner))
	assert.Equal(t, main.Owner, owner, "built through the main role, so owned by the tables' owner")
}

// The monitor's postgres sources read through monitor_dsn: a role with
// CONNECT and pg_read_all_stats only collects the statistics.
func TestMonitorPostgresSourceUsesMonitorDSN(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	db.Exec(t, `CREATE TABLE orders (id int PRIMARY KEY)`)
	main := pgtest.NewRole(t, db)
	monRole := pgtest.NewScriptRole(t, db, sqlassets.MonitorRole, nil)
	base := mustNew(t, cfgWith(map[string]config.Environment{"production": {DSN: main.DSN, MonitorDSN: monRole.DSN}}), nil, nil)
	defer base.Close()
	m := NewMonitorActivities(base, monitor.Config{Sources: map[string]monitor.SourceConfig{
		"pg": {Kind: monitor.KindPostgres, Environment: "production"},
	}})
	srcs, err := m.sources(ctx, "production", []string{"pg"}, []plan.TableName{{Schema: "public", Name: "orders"}})
	require.NoError(t, err)
	require.Len(t, srcs, 1)
	pg, ok := srcs[0].(*sources.PGSource)
	require.True(t, ok)
	want, err := base.monitorPool(ctx, "production")
	require.NoError(t, err)
	assert.Same(t, want, pg.DB)
	_, err = pg.Collect(ctx, nil)
	assert.NoError(t, err, "CONNECT and pg_read_all_stats are enough to collect")
}

// A DSN's own pool_max_conns wins over the default of 4, in the main pool
// and in an optional DSN's pool alike.
func TestPoolHonoursTheDSNsPoolSize(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	role := pgtest.NewRole(t, db)
	perfRole := pgtest.NewScriptRole(t, db, sqlassets.PerfRole, map[string]string{"schema": "public"})
	a := mustNew(t, cfgWith(map[string]config.Environment{
		"default": {DSN: role.DSN},
		"sized":   {DSN: withParam(role.DSN, "pool_max_conns=9"), PerfDSN: withParam(perfRole.DSN, "pool_max_conns=2")},
	}), nil, nil)
	defer a.Close()
	for _, tc := range []struct {
		name string
		get  func(context.Context, string) (*pgxpool.Pool, error)
		env  string
		want int32
	}{
		{"main pool, no setting", a.pool, "default", config.DefaultPoolMaxConns},
		{"main pool, pool_max_conns=9", a.pool, "sized", 9},
		{"perf pool, pool_max_conns=2", a.perfPool, "sized", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := tc.get(ctx, tc.env)
			require.NoError(t, err)
			assert.Equal(t, tc.want, p.Config().MaxConns)
		})
	}
}

// withParam adds a query parameter to a postgres:// DSN.
func withParam(dsn, kv string) string {
	if strings.Contains(dsn, "?") {
		return dsn + "&" + kv
	}
	return dsn + "?" + kv
}
