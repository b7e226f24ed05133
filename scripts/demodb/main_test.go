package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	sqlassets "github.com/fkrollout/fkrollout/sql"
)

// The demo's prerequisite check names what is wrong before anything is
// created: no server, a DSN that does not parse, a role that may not
// create databases.
func TestCheckServer(t *testing.T) {
	ctx := context.Background()
	major, err := checkServer(ctx, pgtest.AdminDSN())
	require.NoError(t, err)
	assert.GreaterOrEqual(t, major, 13)

	db := pgtest.New(t)
	role := "fkr_demo_check_" + db.Name
	db.Exec(t, fmt.Sprintf(`CREATE ROLE %q LOGIN`, role))
	t.Cleanup(func() { db.Exec(t, fmt.Sprintf(`DROP ROLE IF EXISTS %q`, role)) })
	u, err := url.Parse(pgtest.AdminDSN())
	require.NoError(t, err)
	u.User = url.User(role)

	for _, tc := range []struct{ name, dsn, want string }{
		{"no server", "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable", `cannot connect to PostgreSQL at 127.0.0.1:1 as "postgres"`},
		{"bad dsn", "postgres://%zz", "admin DSN (FKROLLOUT_TEST_PG) does not parse"},
		{"no createdb", u.String(), fmt.Sprintf("PostgreSQL user %q may not create databases", role)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := checkServer(ctx, tc.dsn)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

// With -owner and -user the demo's tables belong to an ordinary owner role
// and the printed worker DSNs connect as the worker's role; once
// sql/role.sql has run, that role can do the rollout's DDL but is no
// superuser. The admin DSNs printed alongside are for running role.sql.
func TestRunWithOwnerAndWorkerRole(t *testing.T) {
	ctx := context.Background()
	suffix := strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_"))[:8] + fmt.Sprint(time.Now().UnixNano()%1e9)
	prefix, owner, user, password := "fkr_t_"+suffix, "fkr_t_owner_"+suffix, "fkr_t_worker_"+suffix, "pw"+suffix
	admin, err := pgx.Connect(ctx, pgtest.AdminDSN())
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx := context.Background()
		for _, env := range []string{"staging", "production"} {
			_, _ = admin.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{prefix + "_" + env}.Sanitize()+` WITH (FORCE)`)
		}
		for _, r := range []string{user, owner} {
			_, _ = admin.Exec(ctx, `DROP ROLE IF EXISTS `+pgx.Identifier{r}.Sanitize())
		}
		admin.Close(ctx)
	})

	var out bytes.Buffer
	require.NoError(t, run(ctx, &out, options{admin: pgtest.AdminDSN(), prefix: prefix, orphans: 1, owner: owner, user: user, password: password}))
	vars := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok, line)
		vars[k] = strings.Trim(v, "'")
	}
	require.Len(t, vars, 4)
	for _, env := range []string{"STAGING", "PRODUCTION"} {
		db := prefix + "_" + strings.ToLower(env)
		adminDSN, workerDSN := vars["FKROLLOUT_DEMO_ADMIN_DSN_"+env], vars["FKROLLOUT_DSN_"+env]
		u, err := url.Parse(workerDSN)
		require.NoError(t, err)
		assert.Equal(t, user, u.User.Username())
		assert.Equal(t, "/"+db, u.Path)

		conn, err := pgx.Connect(ctx, adminDSN)
		require.NoError(t, err)
		var notOwned int
		require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relowner <> $1::regrole`, owner).Scan(&notOwned))
		assert.Zero(t, notOwned, "every demo table belongs to %s", owner)
		script, err := sqlassets.RoleSQL(user, owner, db)
		require.NoError(t, err)
		_, err = conn.Exec(ctx, script)
		require.NoError(t, err)
		_, err = conn.Exec(ctx, `ALTER ROLE `+pgx.Identifier{user}.Sanitize()+` PASSWORD '`+password+`'`)
		require.NoError(t, err)
		conn.Close(ctx)

		w, err := pgx.Connect(ctx, workerDSN)
		require.NoError(t, err)
		var super bool
		require.NoError(t, w.QueryRow(ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&super))
		assert.False(t, super)
		_, err = w.Exec(ctx, `CREATE INDEX CONCURRENTLY IF NOT EXISTS demo_role_idx ON workflow_stages (workflow_instance_id)`)
		assert.NoError(t, err, "index builds need the owner's CREATE on public")
		_, err = w.Exec(ctx, `CREATE SCHEMA fkrollout`)
		assert.NoError(t, err)
		w.Close(ctx)
		_, err = admin.Exec(ctx, `REVOKE ALL ON DATABASE `+pgx.Identifier{db}.Sanitize()+` FROM `+pgx.Identifier{user}.Sanitize())
		require.NoError(t, err)
	}
	_, err = admin.Exec(ctx, `DROP DATABASE `+pgx.Identifier{prefix + "_staging"}.Sanitize()+` WITH (FORCE)`)
	require.NoError(t, err)

	err = run(ctx, io.Discard, options{admin: pgtest.AdminDSN(), prefix: prefix, owner: "postgres"})
	assert.ErrorContains(t, err, "is a superuser")
}

func TestDSNAs(t *testing.T) {
	got, err := dsnAs("postgres://postgres:adminpw@127.0.0.1:5432/fkr_demo_staging?sslmode=disable&password=x", "fkrollout_demo", "pw")
	require.NoError(t, err)
	assert.Equal(t, "postgres://fkrollout_demo:pw@127.0.0.1:5432/fkr_demo_staging?sslmode=disable", got)
	got, err = dsnAs("host=/tmp user=postgres password='a b' dbname='fkr_demo_staging'", "w", "")
	require.NoError(t, err)
	assert.Equal(t, "host=/tmp dbname='fkr_demo_staging' user='w'", got)
}
