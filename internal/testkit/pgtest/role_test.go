package pgtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// The role NewRole hands out is what production gets from sql/role.sql:
// not a superuser, yet able to change the fixtures' tables (as a member of
// their owner) and to create fkrollout's schema; both roles are gone after
// the test.
func TestNewRoleIsAnOrdinaryMemberOfTheTableOwner(t *testing.T) {
	ctx := context.Background()
	var name, owner string
	t.Run("role", func(t *testing.T) {
		db := pgtest.New(t)
		db.Exec(t, `CREATE SCHEMA app; CREATE TABLE app.parent (id int PRIMARY KEY); CREATE TABLE app.child (id serial PRIMARY KEY, parent_id int);
			INSERT INTO app.parent VALUES (1); INSERT INTO app.child (parent_id) VALUES (1)`)
		r := pgtest.NewRole(t, db)
		name, owner = r.Name, r.Owner

		var super, createRole, createDB bool
		if err := r.Pool.QueryRow(ctx, `SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user`).Scan(&super, &createRole, &createDB); err != nil {
			t.Fatal(err)
		}
		if super || createRole || createDB {
			t.Fatalf("role attributes: super=%v createrole=%v createdb=%v", super, createRole, createDB)
		}
		for _, stmt := range []string{
			`ALTER TABLE app.child ADD CONSTRAINT fk_child_parent FOREIGN KEY (parent_id) REFERENCES app.parent (id) NOT VALID`,
			`ALTER TABLE app.child VALIDATE CONSTRAINT fk_child_parent`,
			`INSERT INTO app.child (parent_id) VALUES (1)`,
			`CREATE SCHEMA fkrollout`,
			`CREATE TABLE fkrollout.t (id int)`,
			`SELECT count(*) FROM pg_stat_statements_info`,
		} {
			if _, err := r.Pool.Exec(ctx, stmt); err != nil {
				if pe, ok := err.(*pgconn.PgError); ok && pe.Code == "42P01" {
					continue // pg_stat_statements not installed on this server
				}
				t.Errorf("%s: %v", stmt, err)
			}
		}
		for _, stmt := range []string{`CREATE ROLE x`, `CREATE DATABASE x`, `SET ROLE postgres`, `ALTER SYSTEM SET work_mem = '1MB'`} {
			if _, err := r.Pool.Exec(ctx, stmt); err == nil {
				t.Errorf("%s succeeded as %s", stmt, r.Name)
			}
		}
		if r.DSN == db.DSN {
			t.Fatal("RoleDSN must not be the admin DSN")
		}
	})
	admin := pgtest.New(t)
	if n := admin.Count(t, `SELECT count(*) FROM pg_roles WHERE rolname IN ($1, $2)`, name, owner); n != 0 {
		t.Fatalf("%d of the test's roles survive it", n)
	}
}
