package sqlplan

import (
	"os"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	sqlassets "github.com/fkrollout/fkrollout/sql"
)

func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	return string(b)
}

func TestParseSQLSeeds(t *testing.T) {
	p, err := ParseSQL(sqlassets.Migration)
	require.NoError(t, err)
	require.Len(t, p.ForeignKeys, 16)

	want := []struct {
		name     string
		table    string
		col      string
		ref      string
		onDelete plan.Action
		prio     plan.Priority
	}{
		{"fk_workflow_instances_config_version", "workflow_instances", "config_version_id", "config_versions", plan.ActionRestrict, plan.PriorityCritical},
		{"fk_workflow_instances_workspace", "workflow_instances", "workspace_id", "workspaces", plan.ActionRestrict, plan.PriorityCritical},
		{"fk_workflow_stages_workflow_instance", "workflow_stages", "workflow_instance_id", "workflow_instances", plan.ActionCascade, plan.PriorityHigh},
		{"fk_atp_submissions_workflow_instance", "atp_submissions", "workflow_instance_id", "workflow_instances", plan.ActionRestrict, plan.PriorityHigh},
		{"fk_atp_submission_documents_submission", "atp_submission_documents", "submission_id", "atp_submissions", plan.ActionCascade, plan.PriorityHigh},
		{"fk_punchlists_workflow_instance", "punchlists", "workflow_instance_id", "workflow_instances", plan.ActionRestrict, plan.PriorityHigh},
		{"fk_punchlist_items_punchlist", "punchlist_items", "punchlist_id", "punchlists", plan.ActionCascade, plan.PriorityHigh},
		{"fk_atp_scope_master_workspace", "atp_scope_master", "workspace_id", "workspaces", plan.ActionRestrict, plan.PriorityMedium},
		{"fk_vendor_master_workspace", "vendor_master", "workspace_id", "workspaces", plan.ActionRestrict, plan.PriorityMedium},
		{"fk_approval_role_master_workspace", "approval_role_master", "workspace_id", "workspaces", plan.ActionRestrict, plan.PriorityMedium},
		{"fk_approval_policy_master_workspace", "approval_policy_master", "workspace_id", "workspaces", plan.ActionRestrict, plan.PriorityMedium},
		{"fk_approval_policy_stages_policy", "approval_policy_stages", "approval_policy_id", "approval_policy_master", plan.ActionCascade, plan.PriorityMedium},
		{"fk_cluster_master_workspace", "cluster_master", "workspace_id", "workspaces", plan.ActionRestrict, plan.PriorityMedium},
		{"fk_cluster_approver_master_cluster", "cluster_approver_master", "cluster_id", "cluster_master", plan.ActionCascade, plan.PriorityMedium},
		{"fk_approver_overrides_workflow_instance", "approver_overrides", "workflow_instance_id", "workflow_instances", plan.ActionCascade, plan.PriorityLow},
		{"fk_workflow_stage_actions_stage", "workflow_stage_actions", "stage_id", "workflow_stages", plan.ActionCascade, plan.PriorityLow},
	}
	for i, w := range want {
		fk := p.ForeignKeys[i]
		assert.Equal(t, w.name, fk.Name)
		assert.Equal(t, plan.TableName{Schema: "public", Name: w.table}, fk.Table)
		assert.Equal(t, []string{w.col}, fk.Columns)
		assert.Equal(t, plan.TableName{Schema: "public", Name: w.ref}, fk.RefTable)
		assert.Equal(t, []string{"id"}, fk.RefColumns)
		assert.Equal(t, w.onDelete, fk.OnDelete, w.name)
		assert.Equal(t, w.prio, fk.Priority, w.name)
		assert.Empty(t, fk.OnUpdate)
		assert.Empty(t, fk.Match)
	}
	assert.Equal(t, "Workflow instances must reference valid config version", p.ForeignKeys[0].Comment)
	assert.Equal(t, "Workflow stage actions belong to stage", p.ForeignKeys[15].Comment)
	// The hand-written demo migration passes the checklist.
	assert.Empty(t, LintSQL(sqlassets.Migration))
}

func TestParseSQLCases(t *testing.T) {
	tests := []struct {
		name    string
		sql     string
		want    []plan.ForeignKey
		wantErr string
	}{
		{
			name: "composite, quoted mixed-case non-public schema, all clauses",
			sql: `ALTER TABLE "Sales"."OrderLines" ADD CONSTRAINT "FK_Lines_Order"
  FOREIGN KEY ("tenantId", order_id) REFERENCES "Sales"."Orders" ("tenantId", id)
  MATCH FULL ON UPDATE CASCADE ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED NOT VALID;`,
			want: []plan.ForeignKey{{Name: "FK_Lines_Order", Table: plan.TableName{Schema: "Sales", Name: "OrderLines"}, Columns: []string{"tenantId", "order_id"},
				RefTable: plan.TableName{Schema: "Sales", Name: "Orders"}, RefColumns: []string{"tenantId", "id"}, OnDelete: plan.ActionSetNull, OnUpdate: plan.ActionCascade,
				Match: plan.MatchFull, Deferrable: true, InitiallyDeferred: true, Priority: plan.PriorityCritical}},
		},
		{
			name: "reserved words as quoted identifiers, unquoted folded",
			sql:  `ALTER TABLE App."user" ADD CONSTRAINT "select" FOREIGN KEY ("order") REFERENCES "table"("from") ON DELETE NO ACTION NOT VALID;`,
			want: []plan.ForeignKey{{Name: "select", Table: plan.TableName{Schema: "app", Name: "user"}, Columns: []string{"order"},
				RefTable: plan.TableName{Schema: "public", Name: "table"}, RefColumns: []string{"from"}, OnDelete: plan.ActionNoAction, Priority: plan.PriorityCritical}},
		},
		{
			name: "no ON DELETE stays empty; explicit NO ACTION is kept",
			sql: `ALTER TABLE a ADD CONSTRAINT a_b FOREIGN KEY (b_id) REFERENCES b(id) NOT VALID;
ALTER TABLE c ADD CONSTRAINT c_b FOREIGN KEY (b_id) REFERENCES b(id) MATCH SIMPLE ON DELETE NO ACTION NOT VALID;`,
			want: []plan.ForeignKey{
				{Name: "a_b", Table: plan.TableName{Schema: "public", Name: "a"}, Columns: []string{"b_id"}, RefTable: plan.TableName{Schema: "public", Name: "b"}, RefColumns: []string{"id"}, Priority: plan.PriorityCritical},
				{Name: "c_b", Table: plan.TableName{Schema: "public", Name: "c"}, Columns: []string{"b_id"}, RefTable: plan.TableName{Schema: "public", Name: "b"}, RefColumns: []string{"id"}, OnDelete: plan.ActionNoAction, Match: plan.MatchSimple, Priority: plan.PriorityCritical},
			},
		},
		{
			name: "headers set priority; before the first header is CRITICAL; comment block above",
			sql: `ALTER TABLE a ADD CONSTRAINT f1 FOREIGN KEY (x) REFERENCES b(id) ON DELETE CASCADE NOT VALID;
-- Priority 3: MEDIUM - whatever
-- first line
-- second line
ALTER TABLE a ADD CONSTRAINT f2 FOREIGN KEY (x) REFERENCES b(id) ON DELETE CASCADE NOT VALID; -- trailing, not a comment of f3

ALTER TABLE a ADD CONSTRAINT f3 FOREIGN KEY (x) REFERENCES b(id) ON DELETE CASCADE NOT VALID;
-- priority: low
ALTER TABLE a ADD CONSTRAINT f4 FOREIGN KEY (x) REFERENCES b(id) ON DELETE CASCADE, ADD CONSTRAINT f5 FOREIGN KEY (y) REFERENCES b(id) NOT VALID;`,
			want: []plan.ForeignKey{
				{Name: "f1", Table: plan.TableName{Schema: "public", Name: "a"}, Columns: []string{"x"}, RefTable: plan.TableName{Schema: "public", Name: "b"}, RefColumns: []string{"id"}, OnDelete: plan.ActionCascade, Priority: plan.PriorityCritical},
				{Name: "f2", Table: plan.TableName{Schema: "public", Name: "a"}, Columns: []string{"x"}, RefTable: plan.TableName{Schema: "public", Name: "b"}, RefColumns: []string{"id"}, OnDelete: plan.ActionCascade, Priority: plan.PriorityMedium, Comment: "first line\nsecond line"},
				{Name: "f3", Table: plan.TableName{Schema: "public", Name: "a"}, Columns: []string{"x"}, RefTable: plan.TableName{Schema: "public", Name: "b"}, RefColumns: []string{"id"}, OnDelete: plan.ActionCascade, Priority: plan.PriorityMedium},
				{Name: "f4", Table: plan.TableName{Schema: "public", Name: "a"}, Columns: []string{"x"}, RefTable: plan.TableName{Schema: "public", Name: "b"}, RefColumns: []string{"id"}, OnDelete: plan.ActionCascade, Priority: plan.PriorityLow},
				// ON DELETE of f4 must not leak into f5.
				{Name: "f5", Table: plan.TableName{Schema: "public", Name: "a"}, Columns: []string{"y"}, RefTable: plan.TableName{Schema: "public", Name: "b"}, RefColumns: []string{"id"}, Priority: plan.PriorityLow},
			},
		},
		{
			name: "ON DELETE of a later ADD COLUMN … REFERENCES does not count for the FK",
			sql:  `ALTER TABLE a ADD CONSTRAINT f FOREIGN KEY (x) REFERENCES b(id) NOT VALID, ADD COLUMN z int REFERENCES b(id) ON DELETE CASCADE;`,
			want: []plan.ForeignKey{{Name: "f", Table: plan.TableName{Schema: "public", Name: "a"}, Columns: []string{"x"}, RefTable: plan.TableName{Schema: "public", Name: "b"}, RefColumns: []string{"id"}, Priority: plan.PriorityCritical}},
		},
		{
			name: "no ref columns: left empty for the catalog to resolve",
			sql:  `ALTER TABLE a ADD CONSTRAINT f FOREIGN KEY (x) REFERENCES b ON DELETE CASCADE NOT VALID;`,
			want: []plan.ForeignKey{{Name: "f", Table: plan.TableName{Schema: "public", Name: "a"}, Columns: []string{"x"}, RefTable: plan.TableName{Schema: "public", Name: "b"}, OnDelete: plan.ActionCascade, Priority: plan.PriorityCritical}},
		},
		{
			name: "unnamed constraint gets PostgreSQL's default name",
			sql:  `ALTER TABLE a ADD FOREIGN KEY (x) REFERENCES b(id);`,
			want: []plan.ForeignKey{{Name: "a_x_fkey", Table: plan.TableName{Schema: "public", Name: "a"}, Columns: []string{"x"}, RefTable: plan.TableName{Schema: "public", Name: "b"}, RefColumns: []string{"id"}, Priority: plan.PriorityCritical}},
		},
		{name: "syntax error line counts characters, not bytes", sql: "-- ünïcödé ünïcödé ünïcödé ünïcödé\nSELECT 1;\nFOO BAR;", wantErr: "line 3"},
		{name: "syntax error has a line", sql: "SELECT 1;\nALTER TABLE a ADD CONSTRAINT;", wantErr: "line 2"},
		{name: "set null column list unsupported", sql: `ALTER TABLE a ADD CONSTRAINT f FOREIGN KEY (x, y) REFERENCES b(id, z) ON DELETE SET NULL (x) NOT VALID;`, wantErr: "column list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseSQL(tt.sql)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, p.ForeignKeys)
		})
	}
}

func TestParseSQLBOM(t *testing.T) {
	p, err := ParseSQL("\uFEFF" + sqlassets.Migration)
	require.NoError(t, err)
	assert.Len(t, p.ForeignKeys, 16)
}

func TestParseSQLStatementFacts(t *testing.T) {
	sql := `BEGIN;
ALTER TABLE a ADD CONSTRAINT f1 FOREIGN KEY (x) REFERENCES b(id) NOT VALID;
ALTER TABLE a VALIDATE CONSTRAINT f1;
COMMIT;
CREATE INDEX ON a (x);
ALTER TABLE a ADD CONSTRAINT f2 FOREIGN KEY (x) REFERENCES b(id) ON DELETE RESTRICT;
`
	src, err := ParseSQLDetailed(sql)
	require.NoError(t, err)
	require.Len(t, src.Statements, 6)
	kinds := []plan.StatementKind{plan.StmtBegin, plan.StmtAddForeignKey, plan.StmtValidate, plan.StmtCommit, plan.StmtOther, plan.StmtAddForeignKey}
	for i, st := range src.Statements {
		assert.Equal(t, kinds[i], st.Kind)
		assert.Equal(t, i+1, st.Line)
	}
	assert.Equal(t, 1, src.Statements[1].Tx)
	assert.Equal(t, 1, src.Statements[2].Tx)
	assert.Equal(t, 0, src.Statements[5].Tx)
	assert.True(t, src.Statements[1].NotValid)
	assert.False(t, src.Statements[1].ExplicitOnDelete)
	assert.False(t, src.Statements[5].NotValid)
	assert.True(t, src.Statements[5].ExplicitOnDelete)
	assert.Equal(t, "CREATE INDEX", src.Statements[4].Detail)
	assert.False(t, src.HasPriorityHeaders)
}

// hostileNames are identifiers that break naive SQL building.
var hostileNames = []string{
	`a"; DROP TABLE x; --`, `Mixed Case`, `semi;colon`, `dot.ted`, `quote"quote`, `select`, `ünïcode`, `back\slash`, `$dollar`, `1digit`, "new\nline",
}

func TestHostileIdentifiersRoundTrip(t *testing.T) {
	for _, n := range hostileNames {
		t.Run(n, func(t *testing.T) {
			fk := plan.ForeignKey{Name: n, Table: plan.TableName{Schema: n, Name: n}, Columns: []string{n, "b"}, RefTable: plan.TableName{Schema: "public", Name: n},
				RefColumns: []string{"id", n}, OnDelete: plan.ActionCascade, Priority: plan.PriorityHigh, Comment: "hostile " + strings.ReplaceAll(n, "\n", " ")}
			for _, notValid := range []bool{true, false} {
				res, err := pg_query.Parse(fk.AddSQL(notValid))
				require.NoError(t, err)
				assert.Len(t, res.Stmts, 1, "AddSQL must be exactly one statement")
				got, err := ParseSQL(fk.AddSQL(notValid))
				require.NoError(t, err)
				require.Len(t, got.ForeignKeys, 1)
				g := got.ForeignKeys[0]
				assert.Equal(t, fk.Name, g.Name)
				assert.Equal(t, fk.Table, g.Table)
				assert.Equal(t, fk.Columns, g.Columns)
				assert.Equal(t, fk.RefTable, g.RefTable)
				assert.Equal(t, fk.RefColumns, g.RefColumns)
			}
			for _, s := range []string{fk.ValidateSQL(), fk.DropSQL()} {
				res, err := pg_query.Parse(s)
				require.NoError(t, err)
				assert.Len(t, res.Stmts, 1)
			}
			src, err := ParseSQLDetailed(fk.AddSQL(true) + ";\n" + fk.ValidateSQL() + ";")
			require.NoError(t, err)
			require.Len(t, src.Statements, 2)
			assert.Equal(t, fk.Name, src.Statements[1].Constraint)
			assert.Equal(t, fk.Table, src.Statements[1].Table)

			// Generated migration and YAML both come back identical.
			p := plan.Plan{Name: "hostile", ForeignKeys: []plan.ForeignKey{fk}}
			_, content := plan.Generate(p, "hostile", fixedNow)
			back, err := ParseSQL(string(content))
			require.NoError(t, err, string(content))
			assert.Equal(t, p.ForeignKeys, back.ForeignKeys)
			y, err := plan.EncodeYAML(p)
			require.NoError(t, err)
			back, err = plan.ParseYAML(y)
			require.NoError(t, err, string(y))
			assert.Equal(t, p, back)
		})
	}
}
