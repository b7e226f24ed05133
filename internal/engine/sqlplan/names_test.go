package sqlplan

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// TestParsedNamesMatchPostgres runs migrations with unnamed keys (column
// and table constraints of CREATE TABLE, ALTER TABLE, clashes that make
// PostgreSQL pick _fkey1) and compares every name with the parsed plan.
func TestParsedNamesMatchPostgres(t *testing.T) {
	long := strings.Repeat("l", 60)
	tests := []struct{ name, sql string }{
		{"create table", `CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers, shop_id int REFERENCES shops (id),
			a int, b int, FOREIGN KEY (a, b) REFERENCES pairs)`},
		{"alter table, several commands", `CREATE TABLE lines (order_id int, customer_id int);
			ALTER TABLE lines ADD FOREIGN KEY (order_id) REFERENCES customers, ADD FOREIGN KEY (customer_id) REFERENCES customers (id)`},
		{"same columns twice", `CREATE TABLE x (c int); ALTER TABLE x ADD FOREIGN KEY (c) REFERENCES customers; ALTER TABLE x ADD FOREIGN KEY (c) REFERENCES shops`},
		{"clash across tables", `CREATE TABLE a_b (c int); CREATE TABLE a (b_c int);
			ALTER TABLE a_b ADD FOREIGN KEY (c) REFERENCES customers; ALTER TABLE a ADD FOREIGN KEY (b_c) REFERENCES customers`},
		{"clash after truncation", `CREATE TABLE ` + long + `x (` + long + `y int, ` + long + `z int);
			ALTER TABLE ` + long + `x ADD FOREIGN KEY (` + long + `y) REFERENCES customers, ADD FOREIGN KEY (` + long + `z) REFERENCES customers`},
		{"quoted, non-ASCII, schema", `CREATE SCHEMA "Ventes"; CREATE TABLE "Ventes"."Commandes clients" ("Numéro client" int REFERENCES customers)`},
	}
	db := pgtest.New(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A fresh public schema per case (one database keeps it fast).
			db.Exec(t, `DROP SCHEMA IF EXISTS public, "Ventes" CASCADE; CREATE SCHEMA public;`)
			db.Exec(t, `CREATE TABLE customers (id int PRIMARY KEY); CREATE TABLE shops (id int PRIMARY KEY);
				CREATE TABLE pairs (x int, y int, PRIMARY KEY (x, y))`)
			db.Exec(t, tt.sql)
			rows, err := db.Pool.Query(context.Background(), `SELECT n.nspname::text, r.relname::text, c.conname::text FROM pg_constraint c
				JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace WHERE c.contype = 'f'`)
			require.NoError(t, err)
			var inDB []string
			for rows.Next() {
				var s, r, n string
				require.NoError(t, rows.Scan(&s, &r, &n))
				inDB = append(inDB, plan.TableName{Schema: s, Name: r}.String()+"."+plan.QuoteIfNeeded(n))
			}
			require.NoError(t, rows.Err())
			p, err := ParseSQL(tt.sql)
			require.NoError(t, err)
			var parsed []string
			for _, fk := range p.ForeignKeys {
				parsed = append(parsed, fk.ID())
			}
			assert.ElementsMatch(t, inDB, parsed)
		})
	}
}
