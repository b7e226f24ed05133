package plan

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func goodFK(name string, p Priority) ForeignKey {
	return ForeignKey{Name: name, Table: TableName{"public", "child_" + name}, Columns: []string{"parent_id"},
		RefTable: TableName{"public", "parent"}, RefColumns: []string{"id"}, OnDelete: ActionRestrict, Priority: p}
}

func rules(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Rule)
	}
	return out
}

func TestLintPlanRules(t *testing.T) {
	long := strings.Repeat("x", 64)
	tests := []struct {
		name   string
		mutate func(p *Plan)
		rule   string
		sev    Severity
	}{
		{"missing on delete is NO ACTION", func(p *Plan) { p.ForeignKeys[0].OnDelete = "" }, RuleMissingOnDelete, SeverityInfo},
		{"priority order", func(p *Plan) { p.ForeignKeys[0].Priority = PriorityLow }, RulePriorityOrder, SeverityWarning},
		{"duplicate name same table", func(p *Plan) { p.ForeignKeys[1] = p.ForeignKeys[0]; p.ForeignKeys[1].Priority = PriorityHigh }, RuleDuplicateName, SeverityError},
		{"same name other table", func(p *Plan) { p.ForeignKeys[1].Name = p.ForeignKeys[0].Name }, RuleReusedName, SeverityWarning},
		{"long name", func(p *Plan) { p.ForeignKeys[0].Name = long }, RuleNameTooLong, SeverityError},
		{"long column", func(p *Plan) { p.ForeignKeys[0].Columns = []string{long} }, RuleNameTooLong, SeverityError},
		{"column count", func(p *Plan) { p.ForeignKeys[0].Columns = []string{"a", "b"} }, RuleColumnCount, SeverityError},
		{"empty columns", func(p *Plan) { p.ForeignKeys[0].Columns = nil }, RuleEmptyColumns, SeverityError},
		{"implicit ref columns", func(p *Plan) { p.ForeignKeys[0].RefColumns = nil }, RuleImplicitRefCols, SeverityInfo},
		{"long ref table", func(p *Plan) { p.ForeignKeys[0].RefTable.Name = long }, RuleNameTooLong, SeverityError},
		{"invalid priority", func(p *Plan) { p.ForeignKeys[1].Priority = 9 }, RuleInvalidPriority, SeverityError},
		{"set null", func(p *Plan) { p.ForeignKeys[0].OnDelete = ActionSetNull }, RuleSetNull, SeverityInfo},
		{"match partial", func(p *Plan) { p.ForeignKeys[0].Match = MatchPartial }, RuleMatchPartial, SeverityError},
		{"empty name", func(p *Plan) { p.ForeignKeys[0].Name = "" }, RuleEmptyName, SeverityError},
		{"missing table", func(p *Plan) { p.ForeignKeys[0].RefTable = TableName{} }, RuleMissingTable, SeverityError},
		{"invalid action", func(p *Plan) { p.ForeignKeys[0].OnUpdate = "set_null" }, RuleInvalidAction, SeverityError},
		{"initially deferred", func(p *Plan) { p.ForeignKeys[0].InitiallyDeferred = true }, RuleDeferredNotDefer, SeverityError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Plan{Name: "t", ForeignKeys: []ForeignKey{goodFK("a", PriorityCritical), goodFK("b", PriorityHigh)}}
			tt.mutate(&p)
			fs := Lint(p)
			require.Contains(t, rules(fs), tt.rule)
			for _, f := range fs {
				if f.Rule == tt.rule {
					assert.Equal(t, tt.sev, f.Severity)
					assert.NotEmpty(t, f.Message)
					assert.Contains(t, f.String(), tt.rule)
				}
			}
			if tt.sev == SeverityError {
				assert.ErrorContains(t, Validate(p), tt.rule)
			} else {
				assert.NoError(t, Validate(p))
			}
		})
	}
}

func TestSorted(t *testing.T) {
	p := Plan{ForeignKeys: []ForeignKey{goodFK("l1", PriorityLow), goodFK("c1", PriorityCritical), goodFK("l2", PriorityLow), goodFK("h1", PriorityHigh), goodFK("c2", PriorityCritical)}}
	var names []string
	for _, fk := range p.Sorted() {
		names = append(names, fk.Name)
	}
	assert.Equal(t, []string{"c1", "c2", "h1", "l1", "l2"}, names)
	assert.Equal(t, "l1", p.ForeignKeys[0].Name, "Sorted must not reorder the receiver")
}
