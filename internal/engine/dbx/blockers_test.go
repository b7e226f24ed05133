package dbx_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// openTx opens a transaction on its own connection, named app, that runs
// sql and stays open until the test ends.
func openTx(t *testing.T, db *pgtest.DB, app, sql string) (pid int) {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(db.DSN)
	require.NoError(t, err)
	cfg.RuntimeParams["application_name"] = app
	conn, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, sql)
	require.NoError(t, err)
	require.NoError(t, conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid))
	t.Cleanup(func() { _ = tx.Rollback(ctx); _ = conn.Close(ctx) })
	return pid
}

// Blockers lists exactly the transactions whose locks conflict with the
// mode asked for, with who they are and how old, and nothing of their
// queries.
func TestBlockersListConflictingTransactions(t *testing.T) {
	tests := []struct {
		name     string
		holder   string
		want     dbx.LockMode
		blocking bool
		mode     string
	}{
		{"a write blocks ADD FOREIGN KEY", "INSERT INTO child VALUES (1, 'secret literal')", dbx.ShareRowExclusive, true, "RowExclusiveLock"},
		{"a write does not block VALIDATE", "INSERT INTO child VALUES (1, 'secret literal')", dbx.ShareUpdateExclusive, false, ""},
		{"a read does not block ADD FOREIGN KEY", "SELECT * FROM child WHERE note = 'secret literal'", dbx.ShareRowExclusive, false, ""},
		{"a read blocks DROP CONSTRAINT", "SELECT * FROM child WHERE note = 'secret literal'", dbx.AccessExclusive, true, "AccessShareLock"},
		{"a vacuum-like lock blocks VALIDATE", "LOCK TABLE child IN SHARE UPDATE EXCLUSIVE MODE", dbx.ShareUpdateExclusive, true, "ShareUpdateExclusiveLock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := pgtest.New(t)
			db.Exec(t, `CREATE TABLE child (id int, note text)`)
			pid := openTx(t, db, "billing-batch", tt.holder)
			time.Sleep(20 * time.Millisecond)
			bs, err := dbx.Blockers(context.Background(), db.Pool, []dbx.LockTarget{{Table: `"public"."child"`, Mode: tt.want}})
			require.NoError(t, err)
			if !tt.blocking {
				assert.Empty(t, bs)
				return
			}
			require.Len(t, bs, 1)
			b := bs[0]
			assert.Equal(t, pid, b.PID)
			assert.Equal(t, "billing-batch", b.ApplicationName)
			assert.Equal(t, "idle in transaction", b.State)
			assert.Equal(t, tt.mode, b.Mode)
			assert.Equal(t, "child", b.Table)
			assert.True(t, b.Granted)
			assert.Greater(t, b.XactAge, 10*time.Millisecond)
			line := b.String()
			assert.Contains(t, line, "billing-batch")
			assert.Contains(t, line, tt.mode+" on child")
			assert.NotContains(t, line, "secret literal")
		})
	}
}

// A retry ends the backend of a previous attempt of the same statement,
// and nobody else's: not another rollout's, not another step's, not its
// own label's.
func TestTerminatePreviousEndsOnlyTheSameStatement(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, `CREATE TABLE child (id int)`)
	ctx := context.Background()
	lab := func(rollout, step string, attempt int) dbx.Label {
		return dbx.Label{Rollout: rollout, Identity: []string{"run-1", step, "public.child.fk"}, Step: step, Attempt: attempt}
	}
	retry := lab("r1", "validate", 3)
	sessions := map[string]struct {
		label    dbx.Label
		wantGone bool
	}{
		"attempt 1 of the same step": {lab("r1", "validate", 1), true},
		"attempt 2 of the same step": {lab("r1", "validate", 2), true},
		"another rollout":            {lab("r2", "validate", 1), false},
		"another step":               {lab("r1", "apply", 1), false},
		"the retry's own label":      {retry, false},
	}
	pids := map[string]int{}
	for name, s := range sessions {
		pids[name] = openTx(t, db, s.label.ApplicationName(), "SELECT 1")
	}
	ended, err := dbx.TerminatePrevious(ctx, db.Pool, retry)
	require.NoError(t, err)
	var want []int
	for name, s := range sessions {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, pids[name]).Scan(&n))
		if s.wantGone {
			want = append(want, pids[name])
			assert.Zero(t, n, "%s: ended", name)
		} else {
			assert.Equal(t, 1, n, "%s: untouched", name)
		}
	}
	assert.ElementsMatch(t, want, ended)
}

// The label fits application_name (63 bytes, printable ASCII) and names the
// step, attempt and rollout.
func TestLabelApplicationName(t *testing.T) {
	tests := []struct {
		name string
		l    dbx.Label
		want string
	}{
		{"short", dbx.Label{Rollout: "r-42", Identity: []string{"run", "validate", "fk"}, Step: "validate", Attempt: 2}, " validate a2 r-42"},
		{"long rollout is cut", dbx.Label{Rollout: strings.Repeat("x", 100), Identity: []string{"run"}, Step: "apply", Attempt: 1}, " apply a1 xxxx"},
		{"non-ASCII is replaced", dbx.Label{Rollout: "déploiement", Step: "drop"}, " drop a0 d?ploiement"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.l.ApplicationName()
			assert.LessOrEqual(t, len(got), 63)
			assert.True(t, strings.HasPrefix(got, "fkr "), got)
			assert.Contains(t, got, tt.want)
		})
	}
	a := dbx.Label{Rollout: "r", Identity: []string{"run", "validate", "fk"}, Step: "validate", Attempt: 1}
	b := a
	b.Attempt = 2
	c := a
	c.Identity = []string{"run", "validate", "other"}
	assert.Equal(t, a.ApplicationName()[:17], b.ApplicationName()[:17], "attempts of one statement share the key")
	assert.NotEqual(t, a.ApplicationName()[:17], c.ApplicationName()[:17], "another constraint has another key")
}
