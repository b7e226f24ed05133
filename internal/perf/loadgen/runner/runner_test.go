package runner_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/perf/loadgen"
	"github.com/fkrollout/fkrollout/internal/perf/loadgen/runner"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

const schema = `
CREATE TABLE parent (id bigint PRIMARY KEY, code text NOT NULL);
INSERT INTO parent SELECT g, 'P' || g FROM generate_series(1, 50) g;
CREATE TABLE child (id bigserial PRIMARY KEY, parent_id bigint NOT NULL, code text, note text CHECK (note <> 'bad'));`

const workloadYAML = `
params:
  parent_id: SELECT id FROM parent
operations:
  - name: insert_child
    weight: 3
    params:
      - names: [parent_id, code]
        select: SELECT id, code FROM parent
    statements:
      - INSERT INTO child (parent_id, code) VALUES (:parent_id, :code)
  - name: bulk_insert
    units: 10
    statements:
      - INSERT INTO child (parent_id, code) SELECT :parent_id, 'bulk' FROM generate_series(1, 10)
      - UPDATE parent SET code = code WHERE id = :parent_id
  - name: query
    sql: SELECT count(*) FROM child WHERE parent_id = :parent_id`

func TestRunIterations(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, schema)
	w, err := loadgen.ParseWorkload([]byte(workloadYAML))
	require.NoError(t, err)

	rep, err := runner.Run(context.Background(), db.Pool, w, loadgen.RunOptions{Workers: 4, Iterations: 400, Warmup: 100 * time.Millisecond})
	require.NoError(t, err)

	// Every measured iteration is counted once, across workers.
	assert.EqualValues(t, 400, rep.Total.Count)
	var sum int64
	for _, o := range rep.Ops {
		sum += o.Count
		assert.Zero(t, o.Errors, o.FirstError)
		assert.Positive(t, o.Count, o.Operation)
		assert.Positive(t, o.Throughput, o.Operation)
		assert.LessOrEqual(t, o.P50MS, o.P95MS)
		assert.LessOrEqual(t, o.P95MS, o.P99MS)
		assert.LessOrEqual(t, o.P99MS, o.MaxMS)
		assert.Positive(t, o.AvgMS)
	}
	assert.EqualValues(t, 400, sum)
	ins, _ := rep.Op("insert_child")
	bulk, _ := rep.Op("bulk_insert")
	assert.Equal(t, 10, bulk.Units)
	// Weight 3 of 5: the mix follows the weights (loosely: 400 draws).
	assert.InDelta(t, 240, ins.Count, 60)

	// The correlated code always matches its parent id, and the warm-up
	// executed more rows than the measured count alone accounts for.
	assert.Zero(t, db.Count(t, `SELECT count(*) FROM child c JOIN parent p ON p.id = c.parent_id WHERE c.code <> p.code AND c.code <> 'bulk'`))
	rows := db.Count(t, `SELECT count(*) FROM child`)
	assert.GreaterOrEqual(t, rows, ins.Count+10*bulk.Count)
}

func TestRunDurationAndErrors(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, schema)
	w, err := loadgen.ParseWorkload([]byte(`
operations:
  - name: good
    statements: ["INSERT INTO child (parent_id) VALUES (1)"]
  - name: bad
    statements:
      - INSERT INTO child (parent_id) VALUES (2)
      - INSERT INTO child (parent_id, note) VALUES (2, 'bad')`))
	require.NoError(t, err)

	start := time.Now()
	rep, err := runner.Run(context.Background(), db.Pool, w, loadgen.RunOptions{Workers: 2, Duration: 300 * time.Millisecond})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)

	good, _ := rep.Op("good")
	bad, _ := rep.Op("bad")
	assert.Zero(t, good.Errors)
	require.Positive(t, bad.Count)
	assert.Equal(t, bad.Count, bad.Errors)
	assert.InDelta(t, 1.0, bad.ErrorRate, 1e-9)
	assert.Contains(t, bad.FirstError, "check constraint")
	// The failing operation is one transaction: its first insert rolled back.
	assert.Zero(t, db.Count(t, `SELECT count(*) FROM child WHERE parent_id = 2`))
	assert.EqualValues(t, good.Count, db.Count(t, `SELECT count(*) FROM child WHERE parent_id = 1`))
}

func TestRunRejectsEmptySource(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, schema)
	w, err := loadgen.ParseWorkload([]byte(`
operations:
  - name: a
    params: {x: "SELECT id FROM parent WHERE false"}
    statements: ["SELECT :x"]`))
	require.NoError(t, err)
	_, err = runner.Run(context.Background(), db.Pool, w, loadgen.RunOptions{Iterations: 1})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "returned no rows")
	_, err = runner.Run(context.Background(), db.Pool, w, loadgen.RunOptions{})
	assert.ErrorContains(t, err, "duration or an iteration count")
}

// TestRunCancelled: cancelling the run's context cancels the statements in
// flight on the server instead of waiting for them.
func TestRunCancelled(t *testing.T) {
	db := pgtest.New(t)
	w, err := loadgen.ParseWorkload([]byte(`
operations:
  - {name: slow, statements: ["SELECT pg_sleep(30)"]}`))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = runner.Run(ctx, db.Pool, w, loadgen.RunOptions{Workers: 2, Duration: time.Minute})
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	// Closing the sessions alone would leave the backends sleeping.
	assert.Zero(t, db.Count(t, `SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active' AND datname = current_database()`))
}
