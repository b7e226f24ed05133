package pgtest

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	sqlassets "github.com/fkrollout/fkrollout/sql"
)

// Role is a non-superuser login role for one test database, set up the way
// production is (sql/role.sql): a member of Owner, the role that owns the
// database's schemas and tables.
type Role struct {
	// Name is the login role, Owner the table owner it is a member of.
	Name, Owner string
	// DSN connects to the test database as Name (with a password, so it
	// also works on servers that do not trust local connections).
	DSN string
	// Pool is connected with DSN; closed when the test ends.
	Pool *pgxpool.Pool
}

// RoleDSN returns a DSN that connects to db as a fresh non-superuser role
// (see NewRole). db.DSN stays the admin's, for fixtures and assertions.
func RoleDSN(t testing.TB, db *DB) string {
	t.Helper()
	return NewRole(t, db).DSN
}

// NewRole creates an owner role and a login role, hands every table, view,
// sequence and non-public schema that exists in db now to the owner (so
// create the fixtures first: later ones stay the admin's), then grants the
// login role what sql/role.sql grants. Both roles are dropped when the test
// ends, before the database.
func NewRole(t testing.TB, db *DB) *Role {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	suffix := randHex(6)
	r := &Role{Name: "fkr_role_" + suffix, Owner: "fkr_owner_" + suffix}

	// Registered first so that a failure below still drops what exists;
	// runs before New's cleanup drops the database (cleanups are LIFO).
	t.Cleanup(func() { r.drop(t, db) })

	if _, err := db.Pool.Exec(ctx, "CREATE ROLE "+ident(r.Owner)+" NOLOGIN"); err != nil {
		t.Fatalf("pgtest: create owner role: %v", err)
	}
	if _, err := db.Pool.Exec(ctx, handOver(r.Owner)); err != nil {
		t.Fatalf("pgtest: hand the test tables to %s: %v", r.Owner, err)
	}
	script, err := sqlassets.RoleSQL(r.Name, r.Owner, db.Name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if _, err := db.Pool.Exec(ctx, script); err != nil {
		t.Fatalf("pgtest: sql/role.sql: %v", err)
	}
	r.login(ctx, t, db)
	return r
}

// NewScriptRole creates a login role with script, one of the optional role
// scripts (sqlassets.PerfRole, sqlassets.MonitorRole), run by the admin on
// db with the variables role (a fresh name), database (db's) and vars. The
// role is dropped when the test ends.
func NewScriptRole(t testing.TB, db *DB, script string, vars map[string]string) *Role {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := &Role{Name: "fkr_role_" + randHex(6)}
	t.Cleanup(func() { r.drop(t, db) })
	all := map[string]string{"role": r.Name, "database": db.Name}
	for k, v := range vars {
		all[k] = v
	}
	sql, err := sqlassets.Render(script, all)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if _, err := db.Pool.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: role script: %v", err)
	}
	r.login(ctx, t, db)
	return r
}

// login gives r a random password (so it also works on servers that do not
// trust local connections), its DSN and a pool.
func (r *Role) login(ctx context.Context, t testing.TB, db *DB) {
	t.Helper()
	password := randHex(16)
	// The password is random hex: nothing to escape.
	if _, err := db.Pool.Exec(ctx, "ALTER ROLE "+ident(r.Name)+" PASSWORD '"+password+"'"); err != nil {
		t.Fatalf("pgtest: set the role's password: %v", err)
	}
	r.DSN = withUser(t, db.DSN, r.Name, password)
	pool, err := pgxpool.New(ctx, r.DSN)
	if err != nil {
		t.Fatalf("pgtest: connect as %s: %v", r.Name, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		t.Fatalf("pgtest: connect as %s: %v", r.Name, err)
	}
	r.Pool = pool
	t.Cleanup(pool.Close)
}

// handOver gives every user schema (public, which belongs to the database
// owner, excepted; fkrollout is sql/role.sql's business) and every table,
// view and sequence in user schemas to owner (a name of letters, digits
// and underscores), and CREATE on public, as an owner that created its
// tables there has (CREATE INDEX checks it). Sequences owned by a column
// follow their table; partitions are handed over one by one.
func handOver(owner string) string {
	return `
DO $$
DECLARE
    owner text := '` + owner + `';
    s name;
    c regclass;
BEGIN
    FOR s IN SELECT nspname FROM pg_namespace
             WHERE nspname NOT IN ('public', 'information_schema', 'fkrollout')
               AND nspname NOT LIKE 'pg\_%'
    LOOP
        EXECUTE format('ALTER SCHEMA %I OWNER TO %I', s, owner);
    END LOOP;
    EXECUTE format('GRANT USAGE, CREATE ON SCHEMA public TO %I', owner);
    FOR c IN SELECT k.oid::regclass FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace
             WHERE n.nspname NOT IN ('information_schema', 'fkrollout') AND n.nspname NOT LIKE 'pg\_%'
               AND k.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
               AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = k.oid
                               AND d.deptype IN ('a', 'i') AND k.relkind = 'S')
    LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO %I', c, owner);
    END LOOP;
END
$$`
}

// drop removes both roles: whatever they own in db goes back to the admin,
// their grants are revoked, their sessions ended.
func (r *Role) drop(t testing.TB, db *DB) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if r.Pool != nil {
		r.Pool.Close()
	}
	admin, err := pgx.Connect(ctx, db.DSN)
	if err != nil {
		t.Errorf("pgtest: reconnect to drop roles %s, %s: %v", r.Name, r.Owner, err)
		return
	}
	defer admin.Close(context.Background())
	var exist []string
	if err := admin.QueryRow(ctx, `SELECT coalesce(array_agg(rolname::text), '{}') FROM pg_roles WHERE rolname = ANY($1)`, []string{r.Name, r.Owner}).Scan(&exist); err != nil {
		t.Errorf("pgtest: look up roles to drop: %v", err)
		return
	}
	if len(exist) == 0 {
		return
	}
	quoted := make([]string, len(exist))
	for i, n := range exist {
		quoted[i] = ident(n)
	}
	list := strings.Join(quoted, ", ")
	for _, stmt := range []string{
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ANY('{" + strings.Join(exist, ",") + "}')",
		"REASSIGN OWNED BY " + list + " TO CURRENT_USER",
		"DROP OWNED BY " + list,
		"DROP ROLE " + list,
	} {
		if _, err := admin.Exec(ctx, stmt); err != nil {
			t.Errorf("pgtest: drop roles %s: %s: %v", list, abbreviate(stmt), err)
			return
		}
	}
}

// withUser returns dsn (a URL, as New builds it) with another user and password.
func withUser(t testing.TB, dsn, user, password string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("pgtest: parse test DSN: %v", err)
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }
