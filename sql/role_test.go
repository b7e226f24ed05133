package sqlassets_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	sqlassets "github.com/fkrollout/fkrollout/sql"
)

func TestRenderQuotesLikePsql(t *testing.T) {
	got, err := sqlassets.Render(`SET x = :'v'; GRANT :"r" TO :"r"; SELECT ':nothing', x::text;`, map[string]string{"v": `it's a \ path`, "r": `Odd "name"`})
	require.NoError(t, err)
	assert.Equal(t, `SET x = E'it''s a \\ path'; GRANT "Odd ""name""" TO "Odd ""name"""; SELECT ':nothing', x::text;`, got)
	_, err = sqlassets.Render(`SELECT :'a', :"b"`, map[string]string{"a": "x"})
	assert.ErrorContains(t, err, "variables not set: b")
	_, err = sqlassets.RoleSQL("r", "o", "d")
	require.NoError(t, err, "role.sql uses only role, table_owner and database")
}

// roleState is what role.sql decides about a role: its attributes, the
// roles it is a member of, its privileges on the database.
func roleState(t *testing.T, db *pgtest.DB, role string) string {
	t.Helper()
	var s string
	require.NoError(t, db.Pool.QueryRow(context.Background(), `
SELECT format('login=%s super=%s createrole=%s createdb=%s replication=%s bypassrls=%s inherit=%s member_of=%s connect=%s create=%s',
  r.rolcanlogin, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication, r.rolbypassrls, r.rolinherit,
  (SELECT string_agg(g.rolname, ',' ORDER BY g.rolname) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid),
  has_database_privilege(r.oid, current_database(), 'CONNECT'), has_database_privilege(r.oid, current_database(), 'CREATE'))
FROM pg_roles r WHERE r.rolname = $1`, role).Scan(&s))
	return s
}

// role.sql through psql (as an admin runs it) and through RoleSQL (as the
// tests run it) grants the same, converges on a re-run, takes back a
// superuser flag and a pre-existing fkrollout schema, and refuses a
// superuser table owner.
func TestRoleScript(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	r := pgtest.NewRole(t, db)
	want := "login=t super=f createrole=f createdb=f replication=f bypassrls=f inherit=t member_of=" +
		strings.Join(sortedPair(r.Owner, "pg_read_all_stats"), ",") + " connect=t create=t"
	assert.Equal(t, want, roleState(t, db, r.Name))

	// An earlier superuser run left the schema and a superuser role behind.
	db.Exec(t, `CREATE SCHEMA fkrollout; CREATE TABLE fkrollout.quarantine (id bigserial PRIMARY KEY)`)
	db.Exec(t, `ALTER ROLE `+quoteIdent(r.Name)+` SUPERUSER CREATEROLE`)
	script, err := sqlassets.RoleSQL(r.Name, r.Owner, db.Name)
	require.NoError(t, err)
	db.Exec(t, script)
	assert.Equal(t, want, roleState(t, db, r.Name))
	_, err = r.Pool.Exec(ctx, `INSERT INTO fkrollout.quarantine DEFAULT VALUES`)
	assert.NoError(t, err, "the schema an earlier run created is the role's now")

	if psql, err := exec.LookPath("psql"); err == nil {
		cmd := exec.CommandContext(ctx, psql, db.DSN, "-X", "-q", "-v", "ON_ERROR_STOP=1",
			"-v", "role="+r.Name, "-v", "table_owner="+r.Owner, "-v", "database="+db.Name, "-f", "role.sql")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "psql -f role.sql:\n%s", out)
		assert.Equal(t, want, roleState(t, db, r.Name))
	} else {
		t.Log("psql not installed: role.sql checked through RoleSQL only")
	}

	var admin string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT current_user`).Scan(&admin))
	script, err = sqlassets.RoleSQL(r.Name, admin, db.Name)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, script)
	assert.ErrorContains(t, err, "is a superuser", "membership in a superuser owner would be superuser by SET ROLE")
}

func sortedPair(a, b string) []string {
	if a < b {
		return []string{a, b}
	}
	return []string{b, a}
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
