package dbx_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// show reads the three settings as the server has them.
func show(t *testing.T, ctx context.Context, q interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}) (lock, stmt, app string) {
	t.Helper()
	require.NoError(t, q.QueryRow(ctx, `SELECT current_setting('lock_timeout'), current_setting('statement_timeout'), current_setting('application_name')`).Scan(&lock, &stmt, &app))
	return lock, stmt, app
}

func TestApplyTransactionScope(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	conn, err := db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	lock0, stmt0, app0 := show(t, ctx, conn)

	tests := []struct {
		name               string
		s                  dbx.Settings
		wantLock, wantStmt string
		wantApp            string
		keepLock, keepStmt bool
		keepApp            bool
	}{
		{name: "all three", s: dbx.Settings{LockTimeout: 1500 * time.Millisecond, StatementTimeout: 2 * time.Minute, ApplicationName: `fkrollout's \ test`},
			wantLock: "1500ms", wantStmt: "2min", wantApp: `fkrollout's \ test`},
		{name: "lock only leaves the others", s: dbx.Settings{LockTimeout: 250 * time.Millisecond},
			wantLock: "250ms", keepStmt: true, keepApp: true},
		{name: "under a millisecond is 1 ms, never 0 (off)", s: dbx.Settings{LockTimeout: time.Microsecond, StatementTimeout: time.Microsecond},
			wantLock: "1ms", wantStmt: "1ms", keepApp: true},
		{name: "zero sets nothing", s: dbx.Settings{}, keepLock: true, keepStmt: true, keepApp: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tx, err := conn.Begin(ctx)
			require.NoError(t, err)
			require.NoError(t, dbx.Apply(ctx, tx, tt.s, dbx.Transaction))
			lock, stmt, app := show(t, ctx, tx)
			if tt.keepLock {
				tt.wantLock = lock0
			}
			if tt.keepStmt {
				tt.wantStmt = stmt0
			}
			if tt.keepApp {
				tt.wantApp = app0
			}
			assert.Equal(t, tt.wantLock, lock)
			assert.Equal(t, tt.wantStmt, stmt)
			assert.Equal(t, tt.wantApp, app)
			require.NoError(t, tx.Rollback(ctx))

			// SET LOCAL: nothing outlives the transaction.
			lock, stmt, app = show(t, ctx, conn)
			assert.Equal(t, []string{lock0, stmt0, app0}, []string{lock, stmt, app})
		})
	}
}

func TestApplySessionScopeAndReset(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	conn, err := db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	lock0, stmt0, _ := show(t, ctx, conn)

	s := dbx.Settings{LockTimeout: 3 * time.Second, StatementTimeout: 90 * time.Second}
	require.NoError(t, dbx.Apply(ctx, conn, s, dbx.Session))
	lock, stmt, _ := show(t, ctx, conn)
	assert.Equal(t, "3s", lock)
	assert.Equal(t, "90s", stmt)

	require.NoError(t, dbx.Reset(ctx, conn, s))
	lock, stmt, _ = show(t, ctx, conn)
	assert.Equal(t, lock0, lock)
	assert.Equal(t, stmt0, stmt)
}

// TestApplyTimeoutsTakeEffect: the settings are not only shown, they bound
// what the transaction waits for and how long it runs.
func TestApplyTimeoutsTakeEffect(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	db.Exec(t, `CREATE TABLE t (id int)`)

	holder, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = holder.Rollback(ctx) }()
	_, err = holder.Exec(ctx, `LOCK TABLE t IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)

	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	require.NoError(t, dbx.Apply(ctx, tx, dbx.Settings{LockTimeout: 100 * time.Millisecond}, dbx.Transaction))
	start := time.Now()
	_, err = tx.Exec(ctx, `SELECT * FROM t`)
	assert.True(t, dbx.IsCode(err, dbx.CodeLockNotAvailable), "want 55P03, got %v", err)
	assert.Less(t, time.Since(start), 5*time.Second)

	tx2, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx2.Rollback(ctx) }()
	require.NoError(t, dbx.Apply(ctx, tx2, dbx.Settings{StatementTimeout: 100 * time.Millisecond}, dbx.Transaction))
	_, err = tx2.Exec(ctx, `SELECT pg_sleep(5)`)
	assert.True(t, dbx.IsCode(err, dbx.CodeQueryCanceled), "want 57014, got %v", err)
}

func TestStartupParamsNameTheConnection(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(db.DSN)
	require.NoError(t, err)
	dbx.StartupParams(&cfg.ConnConfig.Config, dbx.Settings{ApplicationName: "fkrollout-startup", LockTimeout: 700 * time.Millisecond})
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer pool.Close()
	lock, _, app := show(t, ctx, pool)
	assert.Equal(t, "700ms", lock)
	assert.Equal(t, "fkrollout-startup", app)
}

// TestInLockedTxRunsUnderThePolicy: the policy's timeouts are what the
// transaction gets.
func TestInLockedTxRunsUnderThePolicy(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	p := dbx.LockPolicy{LockTimeout: 1234 * time.Millisecond, StatementTimeout: 42 * time.Second, Attempts: 1}
	var lock, stmt string
	err := dbx.InLockedTx(ctx, db.Pool, p, nil, func(ctx context.Context, tx pgx.Tx) error {
		lock, stmt, _ = show(t, ctx, tx)
		return errors.New("roll back")
	})
	require.EqualError(t, err, "roll back")
	assert.Equal(t, "1234ms", lock)
	assert.Equal(t, "42s", stmt)
}

// Settings come before the transaction's first query: SET TRANSACTION must
// still be allowed after them (a SELECT would have taken the snapshot).
func TestApplyLeavesTheSnapshotUntaken(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	require.NoError(t, dbx.Apply(ctx, tx, dbx.Settings{LockTimeout: time.Second, StatementTimeout: time.Minute, ApplicationName: "x"}, dbx.Transaction))
	_, err = tx.Exec(ctx, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
	require.NoError(t, err)
	var iso string
	require.NoError(t, tx.QueryRow(ctx, "SHOW transaction_isolation").Scan(&iso))
	assert.Equal(t, "repeatable read", iso)
}
