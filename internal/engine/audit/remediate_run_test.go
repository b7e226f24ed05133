package audit

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// Quarantine rows record the run that removed them; restore by rollout id
// still takes every run's rows, and RestoreRun only the given run's (plus
// rows written before runs were recorded).
func TestQuarantineRecordsRun(t *testing.T) {
	for _, mode := range []Mode{ModeDelete, ModeSetNull} {
		t.Run(string(mode), func(t *testing.T) {
			ctx := context.Background()
			db := pgtest.New(t)
			db.Exec(t, `CREATE TABLE parent (id int PRIMARY KEY); INSERT INTO parent VALUES (1);
				CREATE TABLE child (id int PRIMARY KEY, pid int);
				INSERT INTO child SELECT g, CASE WHEN g % 2 = 0 THEN 1 ELSE 100 + g END FROM generate_series(1, 10) g;`)
			fk := plan.ForeignKey{Name: "child_fk", Table: tn("public", "child"), Columns: []string{"pid"}, RefTable: tn("public", "parent"), RefColumns: []string{"id"}}
			snapshot := func() []string {
				var out []string
				require.NoError(t, db.Pool.QueryRow(ctx, `SELECT array_agg(to_jsonb(c)::text ORDER BY id) FROM child c`).Scan(&out))
				return out
			}
			before := snapshot()
			remediate := func(run string) {
				res, err := Remediate(ctx, db.Pool, fk, mode, "r-1", RemediateOptions{BatchSize: 2, RunID: run})
				require.NoError(t, err)
				require.Equal(t, int64(5), res.Quarantined)
			}

			remediate("run-a")
			assert.Equal(t, int64(5), db.Count(t, `SELECT count(*) FROM fkrollout.quarantine WHERE rollout_id = 'r-1' AND run_id = 'run-a'`))
			n, err := RestoreRun(ctx, db.Pool, dbx.DefaultLockPolicy(), "r-1", "run-b", fk.Name)
			require.NoError(t, err)
			assert.Zero(t, n, "another run's quarantine is left alone")
			assert.Equal(t, int64(5), db.Count(t, `SELECT count(*) FROM fkrollout.quarantine`))
			n, err = Restore(ctx, db.Pool, dbx.DefaultLockPolicy(), "r-1", fk.Name)
			require.NoError(t, err)
			assert.Equal(t, int64(5), n, "restore by rollout id takes every run's rows")
			assert.Equal(t, before, snapshot())

			remediate("run-b")
			n, err = RestoreRun(ctx, db.Pool, dbx.DefaultLockPolicy(), "r-1", "run-b", fk.Name)
			require.NoError(t, err)
			assert.Equal(t, int64(5), n)
			assert.Equal(t, before, snapshot())

			// Rows quarantined before runs were recorded match any run.
			remediate("")
			assert.Equal(t, int64(5), db.Count(t, `SELECT count(*) FROM fkrollout.quarantine WHERE run_id IS NULL`))
			n, err = RestoreRun(ctx, db.Pool, dbx.DefaultLockPolicy(), "r-1", "run-c", fk.Name)
			require.NoError(t, err)
			assert.Equal(t, int64(5), n)
			assert.Equal(t, before, snapshot())
			assert.Zero(t, db.Count(t, `SELECT count(*) FROM fkrollout.quarantine`))
		})
	}
}
