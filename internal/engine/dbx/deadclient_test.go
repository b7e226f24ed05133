package dbx_test

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// Every locked transaction checks that its client is alive, so a worker
// killed mid-statement does not leave its backend scanning on and holding
// its lock (the next attempt would wait on a statement nobody reads).
func TestLockedTransactionsCheckForADeadClient(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	assert.Equal(t, dbx.DeadClientCheck, dbx.DefaultLockPolicy().Settings().ClientCheckInterval)
	err := dbx.InLockedTx(ctx, db.Pool, dbx.DefaultLockPolicy(), nil, func(ctx context.Context, tx pgx.Tx) error {
		var interval string
		require.NoError(t, tx.QueryRow(ctx, `SELECT current_setting('client_connection_check_interval')`).Scan(&interval))
		assert.Equal(t, "5s", interval)
		return nil
	})
	require.NoError(t, err)
}

// What the check buys, on this server: a client process killed with
// SIGKILL mid-scan leaves its backend running without the setting, and
// takes it down within the interval with it.
func TestKilledClientBackendStopsOnlyWithTheCheck(t *testing.T) {
	psql, err := exec.LookPath("psql")
	require.NoError(t, err, "psql (PostgreSQL's client, which .ci/run installs) runs the killed client")
	db := pgtest.New(t)
	ctx := context.Background()
	scan := "SELECT count(*) FROM generate_series(1, 3000000000)"
	for _, c := range []struct {
		name      string
		set       string
		wantAlive bool
	}{
		{"without the check", "", true},
		{"with the check", "SET LOCAL client_connection_check_interval = '500ms';", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(psql, db.DSN, "-c", "BEGIN; "+c.set+" "+scan+"; COMMIT;")
			require.NoError(t, cmd.Start())
			var pid int
			require.Eventually(t, func() bool {
				return db.Pool.QueryRow(ctx, `SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%generate_series(1, 3000000000)%' AND pid <> pg_backend_pid()`).Scan(&pid) == nil
			}, 10*time.Second, 50*time.Millisecond, "the scan is running")
			require.NoError(t, cmd.Process.Kill())
			_ = cmd.Wait()
			t.Cleanup(func() { _, _ = db.Pool.Exec(context.Background(), `SELECT pg_terminate_backend($1)`, pid) })
			gone := func() bool {
				var n int
				require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&n))
				return n == 0
			}
			if c.wantAlive {
				assert.Never(t, gone, 2*time.Second, 100*time.Millisecond, "without the check the backend scans on for its dead client")
				return
			}
			assert.Eventually(t, gone, 5*time.Second, 100*time.Millisecond, "with the check the backend stops within the interval")
		})
	}
}
