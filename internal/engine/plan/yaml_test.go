package plan

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseTableName(t *testing.T) {
	tests := []struct {
		in      string
		want    TableName
		wantErr bool
	}{
		{"orders", TableName{"", "orders"}, false},
		{"Public.Orders", TableName{"public", "orders"}, false},
		{`"My Schema"."Odd.Table"`, TableName{"My Schema", "Odd.Table"}, false},
		{`"a""b".c`, TableName{`a"b`, "c"}, false},
		{` s . "T" `, TableName{"s", "T"}, false},
		{"a.b.c", TableName{}, true},
		{`"unterminated`, TableName{}, true},
		{`""`, TableName{}, true},
		{"a.", TableName{}, true},
		{"bad-name", TableName{}, true},
		{`"x"y`, TableName{}, true},
		{"1abc", TableName{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTableName(tt.in)
			if tt.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestTableNameJSONRoundTrip(t *testing.T) {
	for _, tn := range []TableName{{"public", "orders"}, {"My Schema", "Odd.Table"}, {`a"b`, "select"}, {"", "x"}, {"s", ""}, {}, {"UP", "Ünï"}} {
		b, err := json.Marshal(tn)
		require.NoError(t, err)
		var back TableName
		require.NoError(t, json.Unmarshal(b, &back), string(b))
		assert.Equal(t, tn, back, string(b))
	}
	b, _ := json.Marshal(TableName{"Sales", "orders"})
	assert.Equal(t, `"\"Sales\".orders"`, string(b))
	var tn TableName
	require.NoError(t, json.Unmarshal([]byte(`{"schema":"Sales","name":"Orders"}`), &tn))
	assert.Equal(t, TableName{"Sales", "Orders"}, tn, "object form is literal")
	assert.Error(t, json.Unmarshal([]byte(`{"schema":"s","nme":"x"}`), &tn))
}

func TestParseYAML(t *testing.T) {
	const doc = `
name: add_master_tables_fks
foreign_keys:
  - name: fk_workflow_instances_config_version
    table: public.workflow_instances
    columns: [config_version_id]
    references: config_versions
    ref_columns: [id]
    on_delete: RESTRICT
    on_update: no_action
    match: full
    deferrable: true
    initially_deferred: true
    priority: 2
    comment: Workflow instances must reference valid config version
  - name: '"Odd"'
    table: {schema: My Schema, name: Odd.Table}
    columns: ['"tenantId"', Order_ID]
    references: '"My Schema"."Parent"'
    ref_columns: ['"tenantId"', id]
    on_delete: set null
    priority: low
  - name: no_priority
    table: a
    columns: [x]
    references: b
    ref_columns: [id]
`
	p, err := ParseYAML([]byte(doc))
	require.NoError(t, err)
	require.Len(t, p.ForeignKeys, 3)
	assert.Equal(t, "add_master_tables_fks", p.Name)
	assert.Equal(t, ForeignKey{Name: "fk_workflow_instances_config_version", Table: TableName{"public", "workflow_instances"},
		Columns: []string{"config_version_id"}, RefTable: TableName{"public", "config_versions"}, RefColumns: []string{"id"},
		OnDelete: ActionRestrict, OnUpdate: ActionNoAction, Match: MatchFull, Deferrable: true, InitiallyDeferred: true,
		Priority: PriorityHigh, Comment: "Workflow instances must reference valid config version"}, p.ForeignKeys[0])
	assert.Equal(t, ForeignKey{Name: "Odd", Table: TableName{"My Schema", "Odd.Table"}, Columns: []string{"tenantId", "order_id"},
		RefTable: TableName{"My Schema", "Parent"}, RefColumns: []string{"tenantId", "id"}, OnDelete: ActionSetNull, Priority: PriorityLow}, p.ForeignKeys[1])
	assert.Equal(t, PriorityCritical, p.ForeignKeys[2].Priority)
	assert.Equal(t, TableName{"public", "a"}, p.ForeignKeys[2].Table)

	// JSON is YAML.
	pj, err := ParseYAML([]byte(`{"name":"j","foreign_keys":[{"name":"f","table":"s.t","columns":["x"],"references":"u","ref_columns":["id"],"on_delete":"CASCADE","priority":"MEDIUM"}]}`))
	require.NoError(t, err)
	assert.Equal(t, TableName{"s", "t"}, pj.ForeignKeys[0].Table)
	assert.Equal(t, PriorityMedium, pj.ForeignKeys[0].Priority)
}

func TestParseYAMLErrors(t *testing.T) {
	base := "foreign_keys:\n  - name: f\n    table: t\n    columns: [x]\n    references: u\n    ref_columns: [id]\n"
	tests := []struct {
		name, doc, want string
	}{
		{"unknown field", base + "    on_delet: CASCADE\n", "on_delet"},
		{"unknown top field", "nmae: x\n" + base, "nmae"},
		{"unknown table field", "foreign_keys:\n  - name: f\n    table: {schema: s, nam: t}\n    columns: [x]\n    references: u\n    ref_columns: [id]\n", "nam"},
		{"bad priority", base + "    priority: URGENT\n", "priority"},
		{"bad action", base + "    on_delete: EXPLODE\n", "EXPLODE"},
		{"bad match", base + "    match: PARTIALLY\n", "PARTIALLY"},
		{"no columns", "foreign_keys:\n  - name: f\n    table: t\n    references: u\n    ref_columns: [id]\n", "columns are required"},
		{"no name", "foreign_keys:\n  - table: t\n    columns: [x]\n    references: u\n    ref_columns: [id]\n", "name is required"},
		{"no table", "foreign_keys:\n  - name: f\n    columns: [x]\n    references: u\n    ref_columns: [id]\n", "table is required"},
		{"bad table", "foreign_keys:\n  - name: f\n    table: a.b.c\n    columns: [x]\n    references: u\n    ref_columns: [id]\n", "a.b.c"},
		{"empty", "", "empty"},
		{"no fks", "name: x\n", "foreign_keys is empty"},
		{"two docs", base + "---\n" + base, "more than one"},
		{"not yaml", "{[", "parse plan"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseYAML([]byte(tt.doc))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func TestPlanExpectations(t *testing.T) {
	base := "foreign_keys:\n  - {name: fk_a, table: a, columns: [b_id], references: b}\n"
	tests := []struct {
		name, yaml string
		want       string // rendered targets, or the error
		err        bool
	}{
		{"counts in every form", "expect:\n  foreign_keys: 45+\n  check_constraints: 21\n  tables: {min: 10, max: 20}\n  orphans: {max: 0}\n  types_aligned: true\n  queries: [q1, q2]\n" + base,
			"fk=≥ 45 check== 21 tables=10–20 orphans=≤ 0 types=true queries=[q1 q2]", false},
		{"empty section states nothing", "expect: {}\n" + base, "none", false},
		{"not a count", "expect: {tables: many}\n" + base, `"many" is not a count`, true},
		{"negative", "expect: {orphans: -1}\n" + base, "expect: orphans: -1 is negative", true},
		{"min above max", "expect: {tables: {min: 5, max: 3}}\n" + base, "tables: min 5 is above max 3", true},
		{"eq with a range", "expect: {tables: {eq: 5, max: 3}}\n" + base, "eq and min/max contradict", true},
		{"query named twice", "expect: {queries: [a, a]}\n" + base, `queries[1]: "a" is named twice`, true},
		{"unknown key", "expect: {fks: 3}\n" + base, "field fks not found", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseYAML([]byte(tc.yaml))
			if tc.err {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want one containing %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := "none"
			if e := p.Expect; e != nil {
				got = fmt.Sprintf("fk=%s check=%s tables=%s orphans=%s types=%v queries=%v", e.ForeignKeys, e.CheckConstraints, e.Tables, e.Orphans, *e.TypesAligned, e.Queries)
			}
			if got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
			// The plan file and JSON (as Temporal carries it) round-trip.
			out, err := EncodeYAML(p)
			if err != nil {
				t.Fatal(err)
			}
			again, err := ParseYAML(out)
			if err != nil {
				t.Fatalf("re-parse %s: %v", out, err)
			}
			j1, _ := json.Marshal(p)
			j2, _ := json.Marshal(again)
			var fromJSON Plan
			if err := json.Unmarshal(j1, &fromJSON); err != nil {
				t.Fatal(err)
			}
			j3, _ := json.Marshal(fromJSON)
			if string(j1) != string(j2) || string(j1) != string(j3) {
				t.Fatalf("round trip changed the plan:\n%s\n%s\n%s", j1, j2, j3)
			}
		})
	}
	if c := AtLeast(45); !c.Holds(45) || c.Holds(44) || !Exactly(0).Holds(0) || Exactly(0).Holds(1) {
		t.Fatal("Holds is wrong")
	}
}
