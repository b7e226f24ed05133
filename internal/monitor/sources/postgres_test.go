package sources

import (
	"github.com/fkrollout/fkrollout/internal/monitor"

	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

const shopSchema = `
CREATE TABLE orders (id int PRIMARY KEY);
CREATE TABLE items (id serial PRIMARY KEY, order_id int NOT NULL,
  CONSTRAINT items_order_fk FOREIGN KEY (order_id) REFERENCES orders (id));
INSERT INTO orders SELECT g FROM generate_series(1, 100) g;`

// workload runs ok good inserts and bad inserts that fail with 23503 on
// its own connection, then waits until pg_stat_database shows them (the
// statistics are flushed asynchronously).
func workload(t *testing.T, db *pgtest.DB, ok, bad int) {
	t.Helper()
	ctx := context.Background()
	var c0, r0 int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()`).Scan(&c0, &r0))
	conn, err := pgx.Connect(ctx, db.DSN)
	require.NoError(t, err)
	for i := 0; i < ok; i++ {
		_, err := conn.Exec(ctx, `INSERT INTO items (order_id) VALUES ($1)`, 1+i%100)
		require.NoError(t, err)
	}
	for i := 0; i < bad; i++ {
		_, err := conn.Exec(ctx, `INSERT INTO items (order_id) VALUES ($1)`, 100000+i)
		require.Error(t, err)
	}
	_, err = conn.Exec(ctx, `SELECT pg_stat_force_next_flush()`)
	require.NoError(t, err)
	require.NoError(t, conn.Close(ctx))
	require.Eventually(t, func() bool {
		var c, r int64
		if err := db.Pool.QueryRow(ctx, `SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()`).Scan(&c, &r); err != nil {
			return false
		}
		return c-c0 >= int64(ok) && r-r0 >= int64(bad)
	}, 15*time.Second, 200*time.Millisecond, "statistics never showed the workload")
}

// Induce latency (a pg_sleep trigger on a tracked table) and errors (23503
// inserts) on a real database and watch the PostgreSQL source and the
// default rollback matrix decide to roll back.
func TestPGSourceDetectsLatencyAndErrors(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, shopSchema)
	ctx := context.Background()
	src := &PGSource{SourceName: "pg", DB: db.Pool, Tables: []plan.TableName{{Schema: "public", Name: "items"}},
		Probes: []monitor.Probe{{Name: "insert-item", SQL: `INSERT INTO items (order_id) VALUES (1)`}}}
	series := "@pg/" + db.Name

	cur, err := src.Collect(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, cur.Values, "priming measures nothing")

	workload(t, db, 40, 0)
	r1, err := src.Collect(ctx, cur.Cursor)
	require.NoError(t, err)
	require.Contains(t, r1.Values, monitor.MetricErrorRatePct+series, "missing: %v", r1.Missing)
	// With probes, a server without pg_stat_statements still measures
	// latency: nothing is missing, so the check is conclusive.
	assert.NotContains(t, r1.Missing, monitor.MetricLatencyMS+"@pg")
	assert.NotContains(t, r1.Missing, monitor.MetricThroughput+"@pg")
	assert.InDelta(t, 0, r1.Values[monitor.MetricErrorRatePct+series], 0.01, "the monitor's own probe rollbacks and commits are not the application's errors")
	baseLat := r1.Values[monitor.MetricLatencyMS+"@pg/probe:insert-item"]
	assert.Less(t, baseLat, 20.0)
	base := monitor.Baseline{CapturedAt: time.Now(), Values: r1.Values}

	db.Exec(t, `CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.03); RETURN NEW; END $$;
CREATE TRIGGER items_slow BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION slow();`)
	workload(t, db, 20, 10)
	r2, err := src.Collect(ctx, r1.Cursor)
	require.NoError(t, err)
	// 10 failed of 30, diluted by the test's own DDL and polling queries,
	// which are transactions of this database too.
	assertBetween(t, r2.Values[monitor.MetricErrorRatePct+series], 100.0*10/(30+25), 100.0*10/30)
	assert.Greater(t, r2.Values[monitor.MetricLatencyMS+"@pg/probe:insert-item"], baseLat+25, "the 30 ms trigger shows in the probe")

	ev := monitor.Evaluator{Rules: monitor.DefaultMatrix(monitor.Thresholds{Persist: 1})}
	smp := monitor.Sample{At: time.Now(), Values: r2.Values, Missing: r2.Missing}
	d, _ := ev.Evaluate(monitor.State{}, base, smp)
	assert.Equal(t, monitor.ActionRollback, d.Action, d.Reason)
	assert.Equal(t, monitor.RuleLatency, d.Rule, "latency is the first row of the matrix")
	assert.Greater(t, d.Figures[monitor.RuleErrorRate], 5.0, "the error rate breached as well")
	assert.Greater(t, d.Figures[monitor.RuleLatency], 20.0)

	// Errors alone (trigger gone) fire the error-rate row.
	db.Exec(t, `DROP TRIGGER items_slow ON items`)
	workload(t, db, 10, 10)
	r3, err := src.Collect(ctx, r2.Cursor)
	require.NoError(t, err)
	d, _ = ev.Evaluate(monitor.State{}, base, monitor.Sample{At: time.Now(), Values: r3.Values, Missing: r3.Missing})
	assert.Equal(t, monitor.ActionRollback, d.Action, d.Reason)
	assert.Equal(t, monitor.RuleErrorRate, d.Rule)
	assertBetween(t, d.Figures["sample:"+monitor.MetricErrorRatePct+series], 100.0*10/(20+25), 50)
}

// pg_stat_statements: when the server does not preload it, the source says
// so (inconclusive, with the fix) instead of failing; when it does, the
// tracked table's mean execution time is measured.
func TestPGSourceStatementStatistics(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, shopSchema)
	ctx := context.Background()
	src := &PGSource{SourceName: "pg", DB: db.Pool, Tables: []plan.TableName{{Schema: "public", Name: "items"}}}
	lat := monitor.MetricLatencyMS + "@pg"

	// Not installed in the database.
	c, err := src.Collect(ctx, nil)
	require.NoError(t, err)
	r, err := src.Collect(ctx, c.Cursor)
	require.NoError(t, err)
	assert.Contains(t, r.Missing[lat], "not installed")

	preloaded, err := PGStatStatementsPreloaded(ctx, db.Pool)
	require.NoError(t, err)
	db.Exec(t, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`)
	c, err = src.Collect(ctx, r.Cursor)
	require.NoError(t, err)
	workload(t, db, 30, 0)
	r, err = src.Collect(ctx, c.Cursor)
	require.NoError(t, err)
	if !preloaded {
		assert.Contains(t, r.Missing[lat], "shared_preload_libraries", "absent library is reported with the fix")
		assert.NotContains(t, r.Values, lat+"/public.items")
		// The rest of the source still works.
		assert.Contains(t, r.Values, monitor.MetricErrorRatePct+"@pg/"+db.Name)
		return
	}
	require.Contains(t, r.Values, lat+"/public.items", "missing: %v", r.Missing)
	assert.Greater(t, r.Values[monitor.MetricThroughput+"@pg/public.items"], 0.0)
}

func assertBetween(t *testing.T, v, lo, hi float64) {
	t.Helper()
	assert.GreaterOrEqual(t, v, lo)
	assert.LessOrEqual(t, v, hi+0.001)
}
