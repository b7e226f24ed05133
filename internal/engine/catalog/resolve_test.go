package catalog_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/catalog"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/engine/sqlplan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

const refSchema = `
CREATE TABLE customers (id int PRIMARY KEY, email text UNIQUE);
CREATE TABLE pairs (a int, b int, PRIMARY KEY (b, a));
CREATE TABLE covered (id int, extra int, PRIMARY KEY (id) INCLUDE (extra));
CREATE TABLE nopk (id int UNIQUE);
CREATE SCHEMA "Sales";
CREATE TABLE "Sales"."Customer" ("Id" int PRIMARY KEY);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int, pa int, pb int, covered_id int, nopk_id int, sales_id int, txt text);
`

// implicit is a foreign key written "REFERENCES ref" without columns.
func implicit(name string, cols []string, ref plan.TableName) plan.ForeignKey {
	return plan.ForeignKey{Name: name, Table: tn("public", "orders"), Columns: cols, RefTable: ref, Priority: plan.PriorityHigh}
}

func TestResolveReferences(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, refSchema)
	tests := []struct {
		name    string
		fk      plan.ForeignKey
		want    []string
		wantErr []string
	}{
		{"single-column key", implicit("f_cust", []string{"customer_id"}, tn("public", "customers")), []string{"id"}, nil},
		{"composite key in key order, not column order", implicit("f_pair", []string{"pb", "pa"}, tn("public", "pairs")), []string{"b", "a"}, nil},
		{"INCLUDE columns are not key columns", implicit("f_cov", []string{"covered_id"}, tn("public", "covered")), []string{"id"}, nil},
		{"case-exact schema and names", implicit("f_sales", []string{"sales_id"}, tn("Sales", "Customer")), []string{"Id"}, nil},
		{"explicit columns untouched", fk("f_email", "orders", []string{"txt"}, "customers", []string{"email"}), []string{"email"}, nil},
		{"no primary key", implicit("f_nopk", []string{"nopk_id"}, tn("public", "nopk")), nil,
			[]string{"public.orders.f_nopk", "public.nopk has no primary key"}},
		{"missing table", implicit("f_ghost", []string{"customer_id"}, tn("public", "ghost")), nil,
			[]string{"public.orders.f_ghost", "referenced table public.ghost does not exist"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := plan.Plan{ForeignKeys: []plan.ForeignKey{tt.fk}}
			err := catalog.ResolveReferences(context.Background(), db.Pool, &p)
			if tt.wantErr != nil {
				require.Error(t, err)
				for _, w := range tt.wantErr {
					assert.Contains(t, err.Error(), w)
				}
				assert.Empty(t, p.ForeignKeys[0].RefColumns)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, p.ForeignKeys[0].RefColumns)
		})
	}

	// Every failure is named at once; resolvable keys are filled anyway.
	p := plan.Plan{ForeignKeys: []plan.ForeignKey{
		implicit("f_nopk", []string{"nopk_id"}, tn("public", "nopk")),
		implicit("f_cust", []string{"customer_id"}, tn("public", "customers")),
		implicit("f_ghost", []string{"customer_id"}, tn("public", "ghost")),
	}}
	err := catalog.ResolveReferences(context.Background(), db.Pool, &p)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "f_nopk")
	assert.Contains(t, err.Error(), "f_ghost")
	assert.Equal(t, []string{"id"}, p.ForeignKeys[1].RefColumns)
}

func TestCheckImplicitReferences(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, refSchema)
	db.Exec(t, `ALTER TABLE orders ADD CONSTRAINT f_existing FOREIGN KEY (customer_id) REFERENCES customers NOT VALID`)
	p := plan.Plan{ForeignKeys: []plan.ForeignKey{
		implicit("f_cust", []string{"customer_id"}, tn("public", "customers")),
		implicit("f_pair", []string{"pb", "pa"}, tn("public", "pairs")),
		implicit("f_nopk", []string{"nopk_id"}, tn("public", "nopk")),
		implicit("f_count", []string{"customer_id"}, tn("public", "pairs")),
		implicit("f_type", []string{"txt"}, tn("public", "customers")),
		implicit("f_existing", []string{"customer_id"}, tn("public", "customers")),
	}}
	r, err := catalog.Check(context.Background(), db.Pool, p)
	require.NoError(t, err)
	got := map[string]string{}
	for _, pr := range r.Problems {
		got[pr.FK] += pr.Rule + ": " + pr.Message + "\n"
	}
	assert.NotContains(t, got, "public.orders.f_cust")
	assert.NotContains(t, got, "public.orders.f_pair")
	assert.Contains(t, got["public.orders.f_nopk"], catalog.RuleRefNoPrimaryKey+": REFERENCES public.nopk has no column list")
	assert.Contains(t, got["public.orders.f_count"], catalog.RuleColumnCount+": 1 column(s)")
	assert.Contains(t, got["public.orders.f_count"], "(b, a)")
	assert.Contains(t, got["public.orders.f_type"], catalog.RuleTypeMismatch)
	assert.NotContains(t, got, "public.orders.f_existing", "the implicit plan key matches the constraint on the primary key")
	assert.True(t, r.States["f_existing"].SameDefinition, "%+v", r.States["f_existing"])
	assert.Equal(t, []string{"b", "a"}, r.Resolved["public.orders.f_pair"])
	assert.Empty(t, p.ForeignKeys[0].RefColumns, "Check does not change the caller's plan")

	// Lookup alone (used by the rollout) reads an unresolved key the same way.
	st, err := catalog.Lookup(context.Background(), db.Pool, p.ForeignKeys[5])
	require.NoError(t, err)
	assert.True(t, st.SameDefinition, "%v", st.Differences)
}

func TestCheckLongIdentifiers(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, refSchema)
	long := strings.Repeat("c", 64)
	p := plan.Plan{ForeignKeys: []plan.ForeignKey{
		fk("f_long_col", "orders", []string{long}, "customers", []string{"id"}),
		fk("f_long_ref", "orders", []string{"customer_id"}, "customers", []string{long}),
		{Name: "f_long_table", Table: tn("public", long), Columns: []string{"x"}, RefTable: tn("public", "customers"), RefColumns: []string{"id"}},
	}}
	r, err := catalog.Check(context.Background(), db.Pool, p)
	require.NoError(t, err)
	n := 0
	for _, pr := range r.Problems {
		if pr.Rule == catalog.RuleNameTooLong {
			n++
			assert.Contains(t, pr.Message, long)
		}
	}
	assert.Equal(t, 3, n, "%v", r.Problems)
}

// TestImplicitReferencesEndToEnd: a pg_dump/Rails style migration parses,
// resolves against the catalog, and rolls out to the constraint PostgreSQL
// itself would have created.
func TestImplicitReferencesEndToEnd(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, refSchema)
	src, err := sqlplan.Parse(`ALTER TABLE ONLY public.orders ADD FOREIGN KEY (pb, pa) REFERENCES pairs;
CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers ON DELETE CASCADE);`, plan.FormatSQL)
	require.NoError(t, err)
	p := src.Plan
	require.Len(t, p.ForeignKeys, 2)
	assert.Equal(t, []string{"orders_pb_pa_fkey", "orders_customer_id_fkey"}, []string{p.ForeignKeys[0].Name, p.ForeignKeys[1].Name})

	r, err := catalog.Check(context.Background(), db.Pool, p)
	require.NoError(t, err)
	require.NoError(t, r.Err())
	require.NoError(t, catalog.ResolveReferences(context.Background(), db.Pool, &p))
	assert.Equal(t, []string{"b", "a"}, p.ForeignKeys[0].RefColumns)
	assert.Equal(t, []string{"id"}, p.ForeignKeys[1].RefColumns)
	for _, f := range p.ForeignKeys {
		db.Exec(t, f.AddSQL(true))
		db.Exec(t, f.ValidateSQL())
		st, err := catalog.Lookup(context.Background(), db.Pool, f)
		require.NoError(t, err)
		assert.True(t, st.Exists && st.Validated && st.SameDefinition, "%s: %+v", f.Name, st)
	}
}
