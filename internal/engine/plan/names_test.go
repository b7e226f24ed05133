package plan

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// nameCases are table/column names around every edge of makeObjectName:
// truncation of the longer part, ties, the column list cut-off at
// NAMEDATALEN, and multibyte characters cut in the middle.
var nameCases = []struct {
	name  string
	table string
	cols  []string
}{
	{"short", "orders", []string{"customer_id"}},
	{"multi-column", "order_lines", []string{"tenant_id", "order_id", "line_no"}},
	{"long table", strings.Repeat("t", 63), []string{"customer_id"}},
	{"long column", "orders", []string{strings.Repeat("c", 63)}},
	{"both long", strings.Repeat("t", 63), []string{strings.Repeat("c", 63)}},
	{"tie", strings.Repeat("t", 40), []string{strings.Repeat("c", 40)}},
	{"tie off by one", strings.Repeat("t", 41), []string{strings.Repeat("c", 40)}},
	{"many columns past NAMEDATALEN", "t", []string{strings.Repeat("a", 30), strings.Repeat("b", 30), strings.Repeat("c", 30), "d", "e"}},
	{"two 63-byte columns", "tab", []string{strings.Repeat("x", 63), strings.Repeat("y", 63), "z"}},
	{"mixed case and spaces", "Order Lines", []string{"Tenant Id", "orderId"}},
	{"non-ASCII table clipped mid-character", strings.Repeat("é", 31), []string{strings.Repeat("o", 40)}},
	{"non-ASCII column clipped mid-character", "t", []string{strings.Repeat("ö", 31)}},
	{"non-ASCII both, odd bytes", "x" + strings.Repeat("ü", 31), []string{"y" + strings.Repeat("日", 20)}},
	{"non-ASCII columns list", "t", []string{strings.Repeat("日", 21), strings.Repeat("本", 21), "z"}},
}

func TestDefaultForeignKeyNameShape(t *testing.T) {
	for _, tc := range nameCases {
		t.Run(tc.name, func(t *testing.T) {
			n := DefaultForeignKeyName(tc.table, tc.cols)
			assert.LessOrEqual(t, len(n), MaxIdentLen)
			assert.True(t, strings.HasSuffix(n, "_fkey"), n)
			assert.True(t, utf8Valid(n), "clipped on a character boundary: %q", n)
		})
	}
	assert.Equal(t, "orders_customer_id_fkey", DefaultForeignKeyName("orders", []string{"customer_id"}))
	assert.Equal(t, "order_lines_tenant_id_order_id_fkey", DefaultForeignKeyName("order_lines", []string{"tenant_id", "order_id"}))
	// 57 bytes for both names: the longer (table) gives way first.
	assert.Equal(t, strings.Repeat("t", 46)+"_customer_id_fkey", DefaultForeignKeyName(strings.Repeat("t", 63), []string{"customer_id"}))
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// TestDefaultForeignKeyNameMatchesPostgres adds each case's foreign key
// unnamed to a real PostgreSQL and compares the name it chose.
func TestDefaultForeignKeyNameMatchesPostgres(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	for i, tc := range nameCases {
		t.Run(tc.name, func(t *testing.T) {
			// One schema per case: PostgreSQL picks names unique per schema.
			schema := fmt.Sprintf("s%d", i)
			child := pgx.Identifier{schema, tc.table}.Sanitize()
			ref := pgx.Identifier{schema, "r"}.Sanitize()
			var defs, refDefs []string
			for j, c := range tc.cols {
				defs = append(defs, pgx.Identifier{c}.Sanitize()+" int")
				refDefs = append(refDefs, fmt.Sprintf("k%d int", j))
			}
			db.Exec(t, fmt.Sprintf("CREATE SCHEMA %s; CREATE TABLE %s (%s, PRIMARY KEY (%s)); CREATE TABLE %s (%s); ALTER TABLE %s ADD FOREIGN KEY (%s) REFERENCES %s;",
				schema, ref, strings.Join(refDefs, ", "), strings.Join(pkCols(len(tc.cols)), ", "),
				child, strings.Join(defs, ", "), child, quoteList(tc.cols), ref))
			var got string
			require.NoError(t, db.Pool.QueryRow(ctx, `SELECT conname::text FROM pg_constraint WHERE contype = 'f' AND connamespace = $1::regnamespace`, schema).Scan(&got))
			assert.Equal(t, got, DefaultForeignKeyName(tc.table, tc.cols))
		})
	}
}

func pkCols(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("k%d", i)
	}
	return out
}
