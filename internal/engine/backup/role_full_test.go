package backup

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// Every rollout now dumps its last environment whole: the worker's role
// (sql/role.sql: a member of the table owner, no superuser) can take that
// full dump.
func TestFullBackupAsTheWorkerRole(t *testing.T) {
	ctx := context.Background()
	src := pgtest.New(t)
	src.Exec(t, fixture)
	dsn := pgtest.RoleDSN(t, src)
	pool, err := pgxpool.New(ctx, dsn)
	require.NoError(t, err)
	defer pool.Close()
	res, err := Run(ctx, pool, Options{DSN: dsn, Dir: filepath.Join(t.TempDir(), "b"), Label: "production", Full: true})
	require.NoError(t, err)
	kinds := map[string]bool{}
	for _, a := range res.Artifacts {
		kinds[a.Kind] = true
		require.NoError(t, Verify(ctx, a, ""), a.Kind)
	}
	require.True(t, kinds[KindData], "the full data dump")
}
