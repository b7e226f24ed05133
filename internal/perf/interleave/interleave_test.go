package interleave_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/perf"
	"github.com/fkrollout/fkrollout/internal/perf/interleave"
	"github.com/fkrollout/fkrollout/internal/perf/loadgen"
	"github.com/fkrollout/fkrollout/internal/testkit/perftest"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

var fks = []plan.ForeignKey{perftest.FKIndexed, perftest.FKUnindexed}

// short keeps a comparison to about two seconds: four pairs of 250 ms.
var short = interleave.Options{Workers: 2, Warmup: 200 * time.Millisecond, Slice: 250 * time.Millisecond, Pairs: 4, Seed: 1}

func fixture(t *testing.T) (*pgtest.DB, loadgen.Workload) {
	t.Helper()
	db := pgtest.New(t)
	db.Exec(t, perftest.Schema)
	w, err := loadgen.ParseWorkload([]byte(perftest.Workload))
	require.NoError(t, err)
	return db, w
}

// measureConstraints lists the measurement's own constraints still present.
func measureConstraints(t *testing.T, db *pgtest.DB) int64 {
	return db.Count(t, `SELECT count(*) FROM pg_constraint WHERE conname LIKE 'fkrollout\_perf\_%'`)
}

// A/A: the plan's keys already exist, so both sides are the same database;
// ten full comparisons at the default limits must raise no warning and no
// rollback. (The false-alarm rate at tighter limits is a benchmark:
// docs/PERFORMANCE.md.)
func TestNoChangeRaisesNoAlarmInTenComparisons(t *testing.T) {
	db, w := fixture(t)
	for _, fk := range fks {
		db.Exec(t, fk.AddSQL(true))
	}
	th := perf.Thresholds{}
	verdicts := map[string]int{}
	for i := range 10 {
		o := short
		o.Seed = uint64(i + 1)
		res, err := interleave.Run(context.Background(), db.Pool, db.Pool, w, fks, o)
		require.NoError(t, err)
		assert.Empty(t, res.Toggled)
		assert.Len(t, res.Present, 2)
		require.Len(t, res.Slices, 8)
		c := perf.CompareInterleaved(res.Slices, th, perf.Interval{Seed: uint64(i)})
		verdicts[c.Verdict]++
		t.Logf("A/A %d: %s — %s", i+1, c.Verdict, c.Reason)
	}
	assert.Zero(t, verdicts[perf.Warn]+verdicts[perf.Rollback], "verdicts %v", verdicts)
	assert.Equal(t, int64(2), db.Count(t, `SELECT count(*) FROM pg_constraint WHERE contype = 'f'`), "the existing keys stay")
}

// A trigger that sleeps 50 ms on every insert into workflow_instances, but
// only while the measurement's key on that table exists (the B side): the
// comparison must see it.
func TestAnInjectedSlowdownIsDetected(t *testing.T) {
	db, w := fixture(t)
	db.Exec(t, `CREATE FUNCTION slow_with_fk() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = TG_RELID AND conname LIKE 'fkrollout\_perf\_%') THEN
				PERFORM pg_sleep(0.05);
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER slow BEFORE INSERT ON workflow_instances FOR EACH ROW EXECUTE FUNCTION slow_with_fk();`)
	res, err := interleave.Run(context.Background(), db.Pool, db.Pool, w, fks, short)
	require.NoError(t, err)
	assert.Len(t, res.Toggled, 2)
	c := perf.CompareInterleaved(res.Slices, perf.Thresholds{}, perf.Interval{Seed: 1})
	t.Log(c.Markdown())
	assert.Contains(t, []string{perf.Warn, perf.Rollback}, c.Verdict, c.Reason)
	for _, r := range c.Rows {
		if r.Operation == "create_workflow" {
			assert.Contains(t, []string{perf.RowWarning, perf.RowRollback}, r.Verdict)
			assert.Greater(t, r.LowMS, 10.0)
		}
	}
	assert.Zero(t, measureConstraints(t, db), "left as found")
	assert.Zero(t, db.Count(t, `SELECT count(*) FROM pg_constraint WHERE contype = 'f'`))
}

// The keys really are present in the B slices only: a trigger counts the
// inserts that saw one.
func TestSlicesAlternateTheConstraints(t *testing.T) {
	db, w := fixture(t)
	db.Exec(t, `CREATE TABLE seen (with_fk boolean);
		CREATE FUNCTION note_fk() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO seen VALUES (EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = TG_RELID AND conname LIKE 'fkrollout\_perf\_%'));
			RETURN NEW;
		END $$;
		CREATE TRIGGER note BEFORE INSERT ON workflow_instances FOR EACH ROW EXECUTE FUNCTION note_fk();`)
	o := short
	o.Pairs, o.Warmup, o.Iterations = 2, 0, 40
	res, err := interleave.Run(context.Background(), db.Pool, db.Pool, w, fks, o)
	require.NoError(t, err)
	var sides string
	for _, s := range res.Slices {
		sides += map[bool]string{false: "A", true: "B"}[s.WithFKs]
	}
	assert.Equal(t, "ABBA", sides)
	assert.Positive(t, db.Count(t, `SELECT count(*) FROM seen WHERE with_fk`))
	assert.Positive(t, db.Count(t, `SELECT count(*) FROM seen WHERE NOT with_fk`))
	assert.Zero(t, measureConstraints(t, db))
}

func TestTheDatabaseIsLeftAsFound(t *testing.T) {
	cases := []struct {
		name string
		// prepare returns the context the measurement runs under.
		prepare func(t *testing.T, db *pgtest.DB) (context.Context, interleave.Options)
		wantErr string
	}{
		{"cancelled during a with-FKs slice", func(t *testing.T, db *pgtest.DB) (context.Context, interleave.Options) {
			ctx, cancel := context.WithCancel(context.Background())
			o := short
			o.Progress = func(p interleave.Progress) {
				if p.WithFKs {
					time.AfterFunc(100*time.Millisecond, cancel)
				}
			}
			t.Cleanup(cancel)
			return ctx, o
		}, "interrupted"},
		{"a leftover of a killed measurement is dropped first", func(t *testing.T, db *pgtest.DB) (context.Context, interleave.Options) {
			left := perftest.FKIndexed
			left.Name = interleave.TempName(perftest.FKIndexed)
			db.Exec(t, left.AddSQL(true))
			o := short
			o.Pairs = 1
			return context.Background(), o
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db, w := fixture(t)
			ctx, o := c.prepare(t, db)
			_, err := interleave.Run(ctx, db.Pool, db.Pool, w, fks, o)
			if c.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), c.wantErr)
			} else {
				require.NoError(t, err)
			}
			assert.Zero(t, measureConstraints(t, db))
		})
	}
}

// A lock held by someone else makes the ADD give up after the lock
// policy's attempts instead of queueing behind it; nothing stays behind.
func TestALockedTableIsNotWaitedOn(t *testing.T) {
	db, w := fixture(t)
	ctx := context.Background()
	blocker, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = blocker.Rollback(ctx) }()
	_, err = blocker.Exec(ctx, `LOCK TABLE workspaces IN SHARE MODE`)
	require.NoError(t, err)
	o := short
	o.Pairs = 1
	o.Lock = dbx.LockPolicy{LockTimeout: 50 * time.Millisecond, Attempts: 2, BaseBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	_, err = interleave.Run(ctx, db.Pool, db.Pool, w, fks, o)
	require.Error(t, err)
	assert.True(t, errors.Is(err, dbx.ErrLockRetriesExhausted), fmt.Sprint(err))
	require.NoError(t, blocker.Rollback(ctx))
	assert.Zero(t, measureConstraints(t, db))
}
