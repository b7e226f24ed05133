package meta_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/meta"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// roles creates cluster-wide roles for one test: owner (NOLOGIN) and worker
// (LOGIN, not a superuser). They are dropped after the test's database is
// (cleanups run last-registered first, so call this before pgtest.New).
func roles(t *testing.T) (owner, worker string) {
	t.Helper()
	ctx := context.Background()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	owner, worker = "fkr_owner_"+hex.EncodeToString(b), "fkr_worker_"+hex.EncodeToString(b)
	admin := func() *pgx.Conn {
		c, err := pgx.Connect(ctx, pgtest.AdminDSN())
		require.NoError(t, err)
		return c
	}
	t.Cleanup(func() {
		c := admin()
		defer c.Close(ctx)
		for _, r := range []string{worker, owner} {
			_, err := c.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{r}.Sanitize())
			assert.NoError(t, err)
		}
	})
	c := admin()
	defer c.Close(ctx)
	_, err := c.Exec(ctx, "CREATE ROLE "+pgx.Identifier{owner}.Sanitize()+" NOLOGIN")
	require.NoError(t, err)
	_, err = c.Exec(ctx, "CREATE ROLE "+pgx.Identifier{worker}.Sanitize()+" LOGIN NOSUPERUSER")
	require.NoError(t, err)
	return owner, worker
}

// connectAs opens a connection to the test database as role.
func connectAs(t *testing.T, db *pgtest.DB, role string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(db.DSN)
	require.NoError(t, err)
	cfg.User = role
	c, err := pgx.ConnectConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func TestEnsureSchemaAddsRunColumns(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	for range 2 { // idempotent
		require.NoError(t, meta.EnsureSchema(ctx, db.Pool))
	}
	assert.Equal(t, int64(2), db.Count(t, `SELECT count(*) FROM information_schema.columns
		WHERE table_schema = 'fkrollout' AND table_name IN ('constraints', 'quarantine') AND column_name = 'run_id' AND is_nullable = 'YES'`))
}

// A quarantine written before delete_with_dependents gets depth (0: its
// rows are orphans) and via_constraint (NULL) without losing a row.
func TestEnsureSchemaAddsDependencyColumns(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	db.Exec(t, `CREATE SCHEMA fkrollout;
CREATE TABLE fkrollout.quarantine (
    id bigserial PRIMARY KEY, rollout_id text NOT NULL, constraint_name text NOT NULL,
    table_schema text NOT NULL, table_name text NOT NULL,
    action text NOT NULL CHECK (action IN ('delete', 'set_null')), row_data jsonb NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now());
INSERT INTO fkrollout.quarantine (rollout_id, constraint_name, table_schema, table_name, action, row_data)
VALUES ('r', 'fk', 'public', 't', 'delete', '{"id": 1}');`)
	for range 2 { // idempotent
		require.NoError(t, meta.EnsureSchema(ctx, db.Pool))
	}
	assert.Equal(t, int64(1), db.Count(t, `SELECT count(*) FROM fkrollout.quarantine WHERE depth = 0 AND via_constraint IS NULL AND run_id IS NULL`))
	db.Exec(t, `INSERT INTO fkrollout.quarantine (rollout_id, constraint_name, table_schema, table_name, action, row_data, depth, via_constraint)
VALUES ('r', 'fk', 'public', 'line', 'delete', '{"id": 2}', 2, 'line_fk')`)
	assert.Equal(t, int64(2), db.Count(t, `SELECT sum(depth) FROM fkrollout.quarantine`))
}

// Someone else's fkrollout schema or tables could be used to rewrite
// ownership (a rollback would then drop a constraint fkrollout never
// created) or the quarantine: EnsureSchema refuses them unless the worker's
// role is a member of the owner.
func TestEnsureSchemaRefusesForeignOwner(t *testing.T) {
	cases := []struct {
		name string
		// setup runs as the admin; %[1]s is the owner role, %[2]s the worker.
		setup   []string
		asAdmin bool   // connect as the (superuser) admin instead of the worker
		refused string // "" = accepted; else what the error names
	}{
		{
			name:    "schema owned by another role",
			setup:   []string{`ALTER SCHEMA fkrollout OWNER TO %[1]s`},
			refused: "schema fkrollout is owned by role %[1]s, which this worker's role %[2]s is not a member of",
		},
		{
			name:    "table owned by another role",
			setup:   []string{`ALTER SCHEMA fkrollout OWNER TO %[2]s`, `ALTER TABLE fkrollout.constraints OWNER TO %[2]s`, `ALTER TABLE fkrollout.quarantine OWNER TO %[1]s`},
			refused: "table fkrollout.quarantine is owned by role %[1]s, which this worker's role %[2]s is not a member of",
		},
		{
			name:  "worker is a member of the owner",
			setup: []string{`ALTER SCHEMA fkrollout OWNER TO %[1]s`, `ALTER TABLE fkrollout.constraints OWNER TO %[1]s`, `ALTER TABLE fkrollout.quarantine OWNER TO %[1]s`, `GRANT %[1]s TO %[2]s`},
		},
		{
			name:    "superuser is a member of every role",
			setup:   []string{`ALTER SCHEMA fkrollout OWNER TO %[1]s`},
			asAdmin: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			owner, worker := roles(t)
			db := pgtest.New(t)
			ctx := context.Background()
			require.NoError(t, meta.EnsureSchema(ctx, db.Pool))
			for _, s := range tc.setup {
				db.Exec(t, fmt.Sprintf(s, owner, worker))
			}
			var err error
			if tc.asAdmin {
				err = meta.EnsureSchema(ctx, db.Pool)
			} else {
				err = meta.EnsureSchema(ctx, connectAs(t, db, worker))
			}
			if tc.refused == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, meta.ErrForeignOwner)
			assert.Contains(t, err.Error(), fmt.Sprintf(tc.refused, owner, worker))
			assert.Contains(t, err.Error(), "drop it or change its owner")
		})
	}
}

// A schema another role created before fkrollout ever ran is refused on
// first use, before anything is written into it.
func TestEnsureSchemaRefusesPreCreatedSchema(t *testing.T) {
	owner, worker := roles(t)
	db := pgtest.New(t)
	db.Exec(t, fmt.Sprintf(`CREATE SCHEMA fkrollout AUTHORIZATION %[1]s; GRANT USAGE, CREATE ON SCHEMA fkrollout TO %[2]s`, owner, worker))
	err := meta.EnsureSchema(context.Background(), connectAs(t, db, worker))
	require.ErrorIs(t, err, meta.ErrForeignOwner)
	assert.Contains(t, err.Error(), "owned by role "+owner)
	assert.Zero(t, db.Count(t, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'fkrollout'`))
}
