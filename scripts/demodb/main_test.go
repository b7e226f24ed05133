package main

import (
	"context"
	"fmt"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/pgtest"
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
