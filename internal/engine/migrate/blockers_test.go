package migrate_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/migrate"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// blocker is a transaction on its own connection (application_name
// "test-blocker") that ran sql and stays open until end is called.
type blocker struct {
	pid  int
	once sync.Once
	end  func()
}

func openBlocker(t *testing.T, db *pgtest.DB, sql string) *blocker {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(db.DSN)
	require.NoError(t, err)
	cfg.RuntimeParams["application_name"] = "test-blocker"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, sql)
	require.NoError(t, err)
	b := &blocker{}
	require.NoError(t, conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&b.pid))
	b.end = func() { b.once.Do(func() { _ = tx.Commit(ctx); _ = conn.Close(ctx) }) }
	t.Cleanup(b.end)
	// Older than the default lock.blocker_age (20 ms): a long transaction,
	// not a short write that is about to end.
	time.Sleep(50 * time.Millisecond)
	return b
}

// probe runs sql on a fresh connection under a 100 ms lock_timeout: it
// fails with 55P03 if it has to queue (behind a waiting ALTER).
func probe(t *testing.T, db *pgtest.DB, sql string) error {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db.DSN)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "SET lock_timeout = '100ms'; "+sql)
	return err
}

// waitingRequests counts relation lock requests waiting in the queue.
func waitingRequests(t *testing.T, db *pgtest.DB) int64 {
	// pg_locks is the whole server's: only this test's database counts.
	return db.Count(t, `SELECT count(*) FROM pg_locks WHERE locktype = 'relation' AND NOT granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
}

const blockerSchema = `CREATE TABLE parent (id int PRIMARY KEY); CREATE TABLE child (id int, parent_id int, note text);
	INSERT INTO parent VALUES (1), (2); INSERT INTO child VALUES (1, 1, 'a');`

// While a long transaction holds a lock conflicting with ours, the ALTER
// is not queued (no waiting lock request; the application's statement
// that would queue behind it runs at once), the wait is reported with who
// blocks, and the step completes once the blocker commits.
func TestDDLWaitsOutABlockerWithoutQueueing(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, db *pgtest.DB, o migrate.Options)
		blocker string // the long transaction
		app     string // an application statement the queued ALTER would hold up ("" when none would queue)
		run     func(ctx context.Context, db *pgtest.DB, o migrate.Options) (migrate.Result, error)
		want    string
	}{
		{
			name:    "ADD NOT VALID behind a long write",
			blocker: `INSERT INTO child VALUES (2, 2, 'long write')`,
			app:     `INSERT INTO child VALUES (3, 1, 'writer')`,
			run: func(ctx context.Context, db *pgtest.DB, o migrate.Options) (migrate.Result, error) {
				return migrate.ApplyOne(ctx, db.Pool, lockFK, o)
			},
			want: migrate.ActionCreated,
		},
		{
			name: "VALIDATE behind a SHARE UPDATE EXCLUSIVE holder",
			prepare: func(t *testing.T, db *pgtest.DB, o migrate.Options) {
				_, err := migrate.ApplyOne(context.Background(), db.Pool, lockFK, o)
				require.NoError(t, err)
			},
			blocker: `LOCK TABLE child IN SHARE UPDATE EXCLUSIVE MODE`,
			run: func(ctx context.Context, db *pgtest.DB, o migrate.Options) (migrate.Result, error) {
				return migrate.ValidateOne(ctx, db.Pool, lockFK, o)
			},
			want: migrate.ActionValidated,
		},
		{
			name: "rollback's DROP behind a long read of the referenced table",
			prepare: func(t *testing.T, db *pgtest.DB, o migrate.Options) {
				_, err := migrate.ApplyOne(context.Background(), db.Pool, lockFK, o)
				require.NoError(t, err)
			},
			blocker: `SELECT count(*) FROM parent`,
			app:     `SELECT count(*) FROM parent`,
			run: func(ctx context.Context, db *pgtest.DB, o migrate.Options) (migrate.Result, error) {
				res, err := migrate.Rollback(ctx, db.Pool, o.RolloutID, plan.Plan{}, o)
				if len(res) != 1 {
					return migrate.Result{}, fmt.Errorf("rollback: %d results, %w", len(res), err)
				}
				return res[0], err
			},
			want: migrate.ActionDropped,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := pgtest.New(t)
			db.Exec(t, blockerSchema)
			waits := make(chan migrate.Event, 100)
			o := migrate.Options{RolloutID: "r1", RunID: "run-1", Attempt: 1, Lock: dbx.LockPolicy{LockTimeout: 200 * time.Millisecond, Attempts: 3}}
			if tt.prepare != nil {
				tt.prepare(t, db, o)
			}
			o.Progress = func(e migrate.Event) {
				if e.Waiting != nil {
					select {
					case waits <- e:
					default:
					}
				}
			}
			b := openBlocker(t, db, tt.blocker)
			type outcome struct {
				r   migrate.Result
				err error
			}
			done := make(chan outcome, 1)
			go func() {
				r, err := tt.run(context.Background(), db, o)
				done <- outcome{r, err}
			}()
			var ev migrate.Event
			select {
			case ev = <-waits:
			case out := <-done:
				t.Fatalf("the step ended without waiting for the blocker: %+v %v", out.r, out.err)
			case <-time.After(30 * time.Second):
				t.Fatal("no waiting event")
			}
			require.NotEmpty(t, ev.Waiting.Blockers)
			assert.Equal(t, b.pid, ev.Waiting.Blockers[0].PID)
			assert.Equal(t, "test-blocker", ev.Waiting.Blockers[0].ApplicationName)
			assert.Contains(t, ev.Message, fmt.Sprintf("pid %d", b.pid))
			for range 3 {
				assert.Zero(t, waitingRequests(t, db), "no ALTER waits in the lock queue")
				if tt.app != "" {
					assert.NoError(t, probe(t, db, tt.app), "the application's statement is not held up")
				}
				time.Sleep(100 * time.Millisecond)
			}
			select {
			case out := <-done:
				t.Fatalf("the step ended while the blocker was open: %+v %v", out.r, out.err)
			default:
			}
			b.end()
			out := <-done
			require.NoError(t, out.err)
			assert.Equal(t, tt.want, out.r.Action)
			assert.Equal(t, 1, out.r.Attempts, "no lock attempt failed: it went ahead once the blocker had ended")
			assert.Positive(t, out.r.WaitedMS)
			assert.Contains(t, out.r.WaitedFor, fmt.Sprintf("pid %d", b.pid))
		})
	}
}

// openActiveBlocker runs a write and a long statement in one implicit
// transaction: state "active", holding ROW EXCLUSIVE on child.
func openActiveBlocker(t *testing.T, db *pgtest.DB) *blocker {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cfg, err := pgx.ParseConfig(db.DSN)
	require.NoError(t, err)
	cfg.RuntimeParams["application_name"] = "test-blocker"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	b := &blocker{}
	require.NoError(t, conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&b.pid))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = conn.Exec(ctx, `INSERT INTO child VALUES (2, 2, 'busy'); SELECT pg_sleep(3600)`)
	}()
	require.Eventually(t, func() bool {
		return db.Count(t, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
			WHERE l.pid = $1 AND a.state = 'active' AND l.relation = 'child'::regclass AND l.mode = 'RowExclusiveLock'`, b.pid) == 1
	}, 10*time.Second, 10*time.Millisecond)
	b.end = func() { b.once.Do(func() { cancel(); <-done; _ = conn.Close(context.Background()) }) }
	t.Cleanup(b.end)
	return b
}

// A blocker that never ends: the wait is bounded (lock.blocker_wait), then
// the statement tries under lock_timeout as before and ends in the
// retries' error (which the workflow turns into its gate), naming the
// blocker. A running transaction younger than lock.blocker_age is not
// waited for; one idle in transaction is, however young.
func TestNeverEndingBlockerEndsInTheLockRetries(t *testing.T) {
	tests := []struct {
		name       string
		policy     dbx.LockPolicy
		idle       bool
		wantWaited bool
	}{
		{"waited out, then retried", dbx.LockPolicy{LockTimeout: 100 * time.Millisecond, Attempts: 2, BaseBackoff: 20 * time.Millisecond, BlockerWait: 400 * time.Millisecond}, true, true},
		{"running and too young to wait for", dbx.LockPolicy{LockTimeout: 100 * time.Millisecond, Attempts: 2, BaseBackoff: 20 * time.Millisecond, BlockerAge: time.Hour}, false, false},
		{"idle in transaction, however young", dbx.LockPolicy{LockTimeout: 100 * time.Millisecond, Attempts: 2, BaseBackoff: 20 * time.Millisecond, BlockerAge: time.Hour, BlockerWait: 400 * time.Millisecond}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := pgtest.New(t)
			db.Exec(t, blockerSchema)
			var b *blocker
			if tt.idle {
				b = openBlocker(t, db, `INSERT INTO child VALUES (2, 2, 'never ends')`)
			} else {
				b = openActiveBlocker(t, db)
			}
			var mu sync.Mutex
			waited := 0
			o := migrate.Options{RolloutID: "r1", Lock: tt.policy, Progress: func(e migrate.Event) {
				if e.Waiting != nil {
					mu.Lock()
					waited++
					mu.Unlock()
				}
			}}
			r, err := migrate.ApplyOne(context.Background(), db.Pool, lockFK, o)
			require.ErrorIs(t, err, dbx.ErrLockRetriesExhausted)
			assert.Equal(t, 2, r.Attempts)
			exists, _ := conState(t, db, lockFK.Table, lockFK.Name)
			assert.False(t, exists)
			mu.Lock()
			defer mu.Unlock()
			if !tt.wantWaited {
				assert.Zero(t, waited)
				assert.Zero(t, r.WaitedMS)
				return
			}
			assert.Positive(t, waited)
			assert.GreaterOrEqual(t, r.WaitedMS, int64(400))
			assert.Contains(t, err.Error(), fmt.Sprintf(`last seen blocking: pid %d (application_name "test-blocker"`, b.pid))
		})
	}
}
