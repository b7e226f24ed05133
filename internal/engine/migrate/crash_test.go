package migrate_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/migrate"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// The crash tests run the first attempt of VALIDATE in a separate worker
// process: this test binary, started with crashWorkerEnv set to the
// database's DSN, runs it instead of the tests.
const crashWorkerEnv = "FKROLLOUT_TEST_CRASH_WORKER_DSN"

func TestMain(m *testing.M) {
	if dsn := os.Getenv(crashWorkerEnv); dsn != "" {
		os.Exit(crashWorker(dsn))
	}
	os.Exit(m.Run())
}

const (
	crashRollout = "crash-rollout"
	crashRun     = "run-1"
)

// crashWorker is attempt 1 of the validation activity; the test kills it.
func crashWorker(dsn string) int {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer pool.Close()
	_, err = migrate.ValidateOne(ctx, pool, slowFK, migrate.Options{RolloutID: crashRollout, RunID: crashRun, Attempt: 1, Lock: dbx.DefaultLockPolicy()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

var slowFK = plan.ForeignKey{Name: "fk_slow_child_parent", Table: plan.TableName{Schema: "public", Name: "slow_child"}, Columns: []string{"parent_id"},
	RefTable: plan.TableName{Schema: "public", Name: "slow_parent"}, RefColumns: []string{"id"}} // on pgtest.SlowScanSchema

// crashRuns is how many kills the test makes (FKROLLOUT_TEST_CRASH_RUNS,
// default 2; the 20-run figure in the docs is FKROLLOUT_TEST_CRASH_RUNS=20).
func crashRuns(t *testing.T) int {
	if v := os.Getenv("FKROLLOUT_TEST_CRASH_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "FKROLLOUT_TEST_CRASH_RUNS")
		return n
	}
	return 2
}

// A worker dies in the middle of VALIDATE's scan, its backend scanning on
// and holding SHARE UPDATE EXCLUSIVE: killed outright (SIGKILL), or hung
// with its connection open (SIGSTOP: a frozen process or a partitioned
// host, which client_connection_check_interval cannot see). The retry
// (attempt 2) ends that backend first, then validates at once: no 55P03,
// no gate. Runs alternate between the two deaths.
func TestRetryEndsTheBackendOfAWorkerKilledMidValidate(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, pgtest.SlowScanSchema)
	ctx := context.Background()
	o := migrate.Options{RolloutID: crashRollout, RunID: crashRun, Attempt: 1, Lock: dbx.DefaultLockPolicy()}
	runs := crashRuns(t)
	passed := 0
	for i := range runs {
		death := []syscall.Signal{syscall.SIGKILL, syscall.SIGSTOP}[i%2]
		ok := t.Run(fmt.Sprintf("run%02d-%s", i+1, map[syscall.Signal]string{syscall.SIGKILL: "SIGKILL", syscall.SIGSTOP: "SIGSTOP"}[death]), func(t *testing.T) {
			_, err := db.Pool.Exec(ctx, `ALTER TABLE slow_child DROP CONSTRAINT IF EXISTS `+slowFK.Name+`; DELETE FROM fkrollout.constraints`)
			if err != nil && dbx.Code(err) != "42P01" {
				require.NoError(t, err)
			}
			_, err = migrate.ApplyOne(ctx, db.Pool, slowFK, o)
			require.NoError(t, err)

			worker := exec.Command(os.Args[0], "-test.run=^$")
			worker.Env = append(os.Environ(), crashWorkerEnv+"="+db.DSN)
			require.NoError(t, worker.Start())
			t.Cleanup(func() {
				_ = worker.Process.Signal(syscall.SIGKILL)
				_ = worker.Wait()
			})

			// Mid-scan: the worker's labelled backend holds its lock and runs
			// VALIDATE, not waiting for a lock.
			var pid int
			require.Eventually(t, func() bool {
				return db.Pool.QueryRow(ctx, `SELECT a.pid FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
					WHERE a.application_name LIKE 'fkr % validate a1 `+crashRollout+`' AND a.state = 'active'
					  AND a.query ILIKE '%VALIDATE CONSTRAINT%' AND a.wait_event_type IS DISTINCT FROM 'Lock'
					  AND l.locktype = 'relation' AND l.relation = 'slow_child'::regclass AND l.mode = 'ShareUpdateExclusiveLock' AND l.granted`).Scan(&pid) == nil
			}, 30*time.Second, 20*time.Millisecond, "VALIDATE's scan never started")
			time.Sleep(time.Duration(200+100*(i%5)) * time.Millisecond)
			require.NoError(t, worker.Process.Signal(death))
			alive := db.Count(t, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND query ILIKE '%VALIDATE CONSTRAINT%' AND state = 'active'`, pid)
			if death == syscall.SIGSTOP {
				require.Equal(t, int64(1), alive, "a hung worker's backend scans on")
			}

			retry := o
			retry.Attempt = 2
			r, err := migrate.ValidateOne(ctx, db.Pool, slowFK, retry)
			require.NoError(t, err)
			t.Logf("killed backend %d mid-scan; the retry ended %v, waited %d ms, validated in %d ms", pid, r.Terminated, r.WaitedMS, r.DurationMS)
			assert.Equal(t, migrate.ActionValidated, r.Action)
			assert.Equal(t, 1, r.Attempts, "the retry got its lock at the first attempt")
			if alive == 1 && death == syscall.SIGSTOP {
				assert.Equal(t, []int{pid}, r.Terminated, "the retry ended the previous attempt's backend")
			}
			assert.Zero(t, db.Count(t, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, pid), "the previous backend is gone")
			_, validated := conState(t, db, slowFK.Table, slowFK.Name)
			assert.True(t, validated)
		})
		if ok {
			passed++
		}
	}
	t.Logf("%d of %d runs passed", passed, runs)
}

// Ending a previous attempt never touches another rollout's statement on
// the same constraint: the retry waits it out (bounded) instead.
func TestRetryNeverEndsAnotherRolloutsStatement(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, pgtest.SlowScanSchema)
	ctx := context.Background()
	other := migrate.Options{RolloutID: "other-rollout", RunID: crashRun, Attempt: 1, Lock: dbx.DefaultLockPolicy()}
	_, err := migrate.ApplyOne(ctx, db.Pool, slowFK, other)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := migrate.ValidateOne(ctx, db.Pool, slowFK, other)
		done <- err
	}()
	var pid int
	require.Eventually(t, func() bool {
		return db.Pool.QueryRow(ctx, `SELECT a.pid FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
			WHERE a.application_name LIKE 'fkr % validate a1 other-rollout' AND a.state = 'active'
			  AND l.relation = 'slow_child'::regclass AND l.mode = 'ShareUpdateExclusiveLock' AND l.granted`).Scan(&pid) == nil
	}, 30*time.Second, 20*time.Millisecond, "the other rollout's VALIDATE holds its lock")
	// Older than lock.blocker_age: a statement that has been running, not
	// one that may be a short write about to end.
	time.Sleep(100 * time.Millisecond)

	mine := migrate.Options{RolloutID: crashRollout, RunID: crashRun, Attempt: 2,
		Lock: dbx.LockPolicy{LockTimeout: 50 * time.Millisecond, Attempts: 1, BlockerWait: 200 * time.Millisecond}}
	r, err := migrate.ValidateOne(ctx, db.Pool, slowFK, mine)
	require.ErrorIs(t, err, dbx.ErrLockRetriesExhausted)
	assert.Empty(t, r.Terminated)
	assert.Contains(t, r.WaitedFor, fmt.Sprintf("pid %d", pid))
	assert.Equal(t, int64(1), db.Count(t, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, pid), "the other rollout's VALIDATE runs on")
	require.NoError(t, <-done)
}

// VALIDATE runs under its own statement timeout
// (lock.validate_statement_timeout), not lock.statement_timeout, which is
// sized for the short statements: none by default, so a scan that takes
// longer than lock.statement_timeout still completes.
func TestValidateHasItsOwnStatementTimeout(t *testing.T) {
	tests := []struct {
		name     string
		lock     dbx.LockPolicy
		wantCode string
	}{
		{"lock.statement_timeout does not cut the scan short", dbx.LockPolicy{StatementTimeout: 500 * time.Millisecond}, ""},
		{"lock.validate_statement_timeout does", dbx.LockPolicy{StatementTimeout: time.Hour, ValidateStatementTimeout: 500 * time.Millisecond}, dbx.CodeQueryCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := pgtest.New(t)
			db.Exec(t, pgtest.SlowScanSchema)
			ctx := context.Background()
			o := migrate.Options{RolloutID: "r1", Lock: tt.lock}
			_, err := migrate.ApplyOne(ctx, db.Pool, slowFK, o)
			require.NoError(t, err)
			r, err := migrate.ValidateOne(ctx, db.Pool, slowFK, o)
			_, validated := conState(t, db, slowFK.Table, slowFK.Name)
			if tt.wantCode == "" {
				require.NoError(t, err)
				assert.Equal(t, migrate.ActionValidated, r.Action)
				assert.Greater(t, r.DurationMS, int64(500), "the scan outlasted lock.statement_timeout")
				assert.True(t, validated)
				return
			}
			assert.Equal(t, tt.wantCode, dbx.Code(err), "%v", err)
			assert.False(t, validated)
		})
	}
}
