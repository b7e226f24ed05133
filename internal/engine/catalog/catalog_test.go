package catalog_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/catalog"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

func tn(s, n string) plan.TableName { return plan.TableName{Schema: s, Name: n} }

func fk(name, table string, cols []string, ref string, refCols []string) plan.ForeignKey {
	return plan.ForeignKey{Name: name, Table: tn("public", table), Columns: cols, RefTable: tn("public", ref), RefColumns: refCols, Priority: plan.PriorityHigh}
}

const schema = `
CREATE TABLE parent (id int PRIMARY KEY, code text UNIQUE, a int, b int, c int, d int, t text, big bigint);
CREATE UNIQUE INDEX parent_ab ON parent (b, a);
CREATE UNIQUE INDEX parent_c_partial ON parent (c) WHERE c > 0;
CREATE UNIQUE INDEX parent_d_expr ON parent ((d + 1));
CREATE DOMAIN pid AS int;
CREATE TABLE child (id int PRIMARY KEY, parent_id int, pid_dom pid, parent_code text, a int, b int, c int,
  txt text, big bigint NOT NULL, nn int NOT NULL, CONSTRAINT child_chk CHECK (id > 0));
CREATE INDEX child_idx ON child (parent_id);
CREATE VIEW child_v AS SELECT * FROM child;
ALTER TABLE child ADD CONSTRAINT existing_fk FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE NOT VALID;
`

func TestCheckGoodPlan(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, schema)
	p := plan.Plan{ForeignKeys: []plan.ForeignKey{
		fk("ok_pk", "child", []string{"parent_id"}, "parent", []string{"id"}),
		fk("ok_domain", "child", []string{"pid_dom"}, "parent", []string{"id"}), // domain over int4 aligns with int4
		fk("ok_unique", "child", []string{"parent_code"}, "parent", []string{"code"}),
		fk("ok_index_any_order", "child", []string{"a", "b"}, "parent", []string{"a", "b"}),
		func() plan.ForeignKey {
			f := fk("existing_fk", "child", []string{"parent_id"}, "parent", []string{"id"})
			f.OnDelete = plan.ActionCascade
			return f
		}(),
	}}
	r, err := catalog.Check(context.Background(), db.Pool, p)
	require.NoError(t, err)
	assert.Empty(t, r.Problems)
	assert.NoError(t, r.Err())
	st := r.States["existing_fk"]
	assert.True(t, st.Exists)
	assert.True(t, st.SameDefinition)
	assert.False(t, st.Validated)
	assert.Contains(t, st.Definition, "ON DELETE CASCADE")
	assert.False(t, r.States["ok_pk"].Exists)
}

func TestCheckReportsEveryProblemAtOnce(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, schema)
	long := strings.Repeat("x", 64)
	setNull := fk("set_null_nn", "child", []string{"nn"}, "parent", []string{"id"})
	setNull.OnDelete = plan.ActionSetNull
	setDef := fk("set_default_nodef", "child", []string{"a"}, "parent", []string{"id"})
	setDef.OnDelete = plan.ActionSetDefault
	p := plan.Plan{ForeignKeys: []plan.ForeignKey{
		fk("f_missing_table", "nope", []string{"x"}, "parent", []string{"id"}),
		fk("f_missing_ref", "child", []string{"parent_id"}, "nope_parent", []string{"id"}),
		fk("f_missing_col", "child", []string{"ghost"}, "parent", []string{"id"}),
		fk("f_missing_refcol", "child", []string{"parent_id"}, "parent", []string{"ghost"}),
		fk("f_no_unique", "child", []string{"a"}, "parent", []string{"a"}),
		fk("f_partial_unique", "child", []string{"c"}, "parent", []string{"c"}),
		fk("f_expr_unique", "child", []string{"a"}, "parent", []string{"d"}),
		fk("f_type", "child", []string{"txt"}, "parent", []string{"id"}),
		fk("f_type_int8", "child", []string{"big"}, "parent", []string{"id"}),
		fk(long, "child", []string{"parent_id"}, "parent", []string{"id"}),
		fk("dup", "child", []string{"parent_id"}, "parent", []string{"id"}),
		fk("dup", "child", []string{"a"}, "parent", []string{"id"}),
		fk("existing_fk", "child", []string{"parent_id"}, "parent", []string{"id"}), // exists with CASCADE
		fk("child_chk", "child", []string{"parent_id"}, "parent", []string{"id"}),
		fk("child_idx", "child", []string{"parent_id"}, "parent", []string{"id"}),
		fk("f_count", "child", []string{"a", "b"}, "parent", []string{"id"}),
		{Name: "f_view", Table: tn("public", "child_v"), Columns: []string{"parent_id"}, RefTable: tn("public", "parent"), RefColumns: []string{"id"}},
		setNull, setDef,
	}}
	r, err := catalog.Check(context.Background(), db.Pool, p)
	require.NoError(t, err)
	byRule := map[string][]string{}
	for _, pr := range r.Problems {
		byRule[pr.Rule] = append(byRule[pr.Rule], pr.FK+": "+pr.Message)
	}
	for _, tc := range []struct{ rule, fk, contains string }{
		{catalog.RuleTableMissing, "f_missing_table", "public.nope"},
		{catalog.RuleRefTableMissing, "f_missing_ref", "public.nope_parent"},
		{catalog.RuleColumnMissing, "f_missing_col", "public.child.ghost"},
		{catalog.RuleRefColumnMissing, "f_missing_refcol", "public.parent.ghost"},
		{catalog.RuleNoUniqueOnRef, "f_no_unique", "public.parent"},
		{catalog.RuleNoUniqueOnRef, "f_partial_unique", "(c)"},
		{catalog.RuleNoUniqueOnRef, "f_expr_unique", "(d)"},
		{catalog.RuleTypeMismatch, "f_type", "text"},
		{catalog.RuleTypeMismatch, "f_type_int8", "bigint"},
		{catalog.RuleNameTooLong, long, "64 bytes"},
		{catalog.RuleDuplicateName, "dup", "more than once"},
		{catalog.RuleDefinitionConflict, "existing_fk", "CASCADE"},
		{catalog.RuleNameConflict, "child_chk", "CHECK"},
		{catalog.RuleNameConflict, "child_idx", "index"},
		{catalog.RuleColumnCount, "f_count", "2 column(s)"},
		{catalog.RuleTableKind, "f_view", "view"},
		{catalog.RuleSetNullNotNull, "set_null_nn", "NOT NULL"},
		{catalog.RuleSetDefaultNoDef, "set_default_nodef", "no default"},
	} {
		found := false
		for _, m := range byRule[tc.rule] {
			if strings.Contains(m, tc.fk) && strings.Contains(m, tc.contains) {
				found = true
			}
		}
		assert.True(t, found, "rule %s for %s containing %q; got %v", tc.rule, tc.fk, tc.contains, byRule[tc.rule])
	}
	// The type message names both types.
	assert.Contains(t, strings.Join(byRule[catalog.RuleTypeMismatch], "\n"), "integer")
	err = r.Err()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "f_missing_table")
	assert.Contains(t, err.Error(), "set_default_nodef")
	assert.False(t, r.States["existing_fk"].SameDefinition)
	assert.NotEmpty(t, r.States["existing_fk"].Differences)
}

func TestCheckCaseExactAndPartitions(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, `CREATE SCHEMA "Sales Data";
		CREATE TABLE "Sales Data"."Customer" ("Id" int PRIMARY KEY);
		CREATE TABLE "Sales Data"."Order" (id int, "customerId" int) PARTITION BY RANGE (id);
		CREATE TABLE "Sales Data"."Order_1" PARTITION OF "Sales Data"."Order" FOR VALUES FROM (0) TO (100);
		CREATE TABLE rp (id int PRIMARY KEY) PARTITION BY RANGE (id);
		CREATE TABLE rp1 PARTITION OF rp FOR VALUES FROM (0) TO (100);`)
	good := plan.ForeignKey{Name: "fk_order_customer", Table: tn("Sales Data", "Order"), Columns: []string{"customerId"},
		RefTable: tn("Sales Data", "Customer"), RefColumns: []string{"Id"}}
	toPartitioned := plan.ForeignKey{Name: "fk_to_rp", Table: tn("Sales Data", "Order"), Columns: []string{"customerId"},
		RefTable: tn("public", "rp"), RefColumns: []string{"id"}}
	wrongCase := plan.ForeignKey{Name: "fk_wrong_case", Table: tn("sales data", "order"), Columns: []string{"customerid"},
		RefTable: tn("Sales Data", "Customer"), RefColumns: []string{"id"}}
	r, err := catalog.Check(context.Background(), db.Pool, plan.Plan{ForeignKeys: []plan.ForeignKey{good, toPartitioned, wrongCase}})
	require.NoError(t, err)
	assert.Equal(t, []string{catalog.RuleTableMissing, catalog.RuleRefColumnMissing}, r.Rules())
	assert.True(t, r.States["fk_order_customer"].Partitioned)
	for _, pr := range r.Problems {
		assert.Equal(t, wrongCase.ID(), pr.FK)
	}
}

func TestCheckForeignTables(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, `CREATE FOREIGN DATA WRAPPER dummy; CREATE SERVER s FOREIGN DATA WRAPPER dummy;
		CREATE TABLE parent (id int PRIMARY KEY);
		CREATE FOREIGN TABLE ft (id int, parent_id int) SERVER s;
		CREATE TABLE ev (id int, parent_id int) PARTITION BY RANGE (id);
		CREATE TABLE ev_1 PARTITION OF ev FOR VALUES FROM (0) TO (100);
		CREATE FOREIGN TABLE ev_remote PARTITION OF ev FOR VALUES FROM (100) TO (200) SERVER s;`)
	p := plan.Plan{ForeignKeys: []plan.ForeignKey{
		fk("fk_ft", "ft", []string{"parent_id"}, "parent", []string{"id"}),
		fk("fk_ev", "ev", []string{"parent_id"}, "parent", []string{"id"}),
	}}
	r, err := catalog.Check(context.Background(), db.Pool, p)
	require.NoError(t, err)
	require.Len(t, r.Problems, 2)
	assert.Equal(t, catalog.RuleTableKind, r.Problems[0].Rule)
	assert.Contains(t, r.Problems[0].Message, "public.ft is a foreign table")
	assert.Equal(t, catalog.RuleTableKind, r.Problems[1].Rule)
	assert.Contains(t, r.Problems[1].Message, "partition ev_remote")
}
