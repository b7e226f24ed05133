package sqlplan

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

func goodFK(name string, p plan.Priority) plan.ForeignKey {
	return plan.ForeignKey{Name: name, Table: plan.TableName{Schema: "public", Name: "child_" + name}, Columns: []string{"parent_id"},
		RefTable: plan.TableName{Schema: "public", Name: "parent"}, RefColumns: []string{"id"}, OnDelete: plan.ActionRestrict, Priority: p}
}

func rules(fs []plan.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Rule)
	}
	return out
}

func TestLintCleanPlan(t *testing.T) {
	p := plan.Plan{Name: "ok", ForeignKeys: []plan.ForeignKey{goodFK("a", plan.PriorityCritical), goodFK("b", plan.PriorityHigh), goodFK("c", plan.PriorityHigh), goodFK("d", plan.PriorityLow)}}
	assert.Empty(t, plan.Lint(p))
	assert.NoError(t, plan.Validate(p))
	_, sql := plan.Generate(p, "ok", fixedNow)
	assert.Empty(t, LintSQL(string(sql)), string(sql))
}

func TestLintSQLRules(t *testing.T) {
	const add = "ALTER TABLE a ADD CONSTRAINT f FOREIGN KEY (x) REFERENCES b(id) ON DELETE CASCADE NOT VALID;\n"
	const val = "ALTER TABLE a VALIDATE CONSTRAINT f;\n"
	tests := []struct {
		name string
		sql  string
		rule string
		line int
	}{
		{"missing not valid", "ALTER TABLE a ADD CONSTRAINT f FOREIGN KEY (x) REFERENCES b(id) ON DELETE CASCADE;\n" + val, plan.RuleMissingNotValid, 1},
		{"missing on delete", "ALTER TABLE a ADD CONSTRAINT f FOREIGN KEY (x) REFERENCES b(id) NOT VALID;\n" + val, plan.RuleMissingOnDelete, 1},
		{"same transaction", "BEGIN;\n" + add + val + "COMMIT;\n", plan.RuleSameTransaction, 3},
		{"missing validate", add, plan.RuleMissingValidate, 1},
		{"validate unknown", add + val + "ALTER TABLE a VALIDATE CONSTRAINT g;\n", plan.RuleValidateUnknown, 3},
		{"validate on other table", add + val + "ALTER TABLE z VALIDATE CONSTRAINT f;\n", plan.RuleValidateUnknown, 3},
		{"validate before add", val + add, plan.RuleValidateUnknown, 1},
		{"priority order", "-- Priority 4: LOW\n" + add + "-- Priority 1: CRITICAL\n" + strings.ReplaceAll(add, " f ", " g ") + val + "ALTER TABLE a VALIDATE CONSTRAINT g;\n", plan.RulePriorityOrder, 4},
		{"non fk statement", add + "CREATE INDEX i ON a (x);\n" + val, plan.RuleNonFKStatement, 2},
		{"drop", add + val + "DROP TABLE old;\n", plan.RuleNonFKStatement, 3},
		{"duplicate", add + add + val, plan.RuleDuplicateName, 2},
		{"long identifier", "ALTER TABLE a ADD CONSTRAINT " + strings.Repeat("n", 70) + " FOREIGN KEY (x) REFERENCES b(id) ON DELETE CASCADE NOT VALID;", plan.RuleNameTooLong, 1},
		{"column count", "ALTER TABLE a ADD CONSTRAINT f FOREIGN KEY (x, y) REFERENCES b(id) ON DELETE CASCADE NOT VALID;\n" + val, plan.RuleColumnCount, 1},
		{"set null", "ALTER TABLE a ADD CONSTRAINT f FOREIGN KEY (x) REFERENCES b(id) ON DELETE SET NULL NOT VALID;\n" + val, plan.RuleSetNull, 1},
		{"match partial", "ALTER TABLE a ADD CONSTRAINT f FOREIGN KEY (x) REFERENCES b(id) MATCH PARTIAL ON DELETE CASCADE NOT VALID;\n" + val, plan.RuleParseError, 0}, // the parser itself says "MATCH PARTIAL not yet implemented"
		{"parse error", "ALTER TABLE a ADD CONSTRAINT;", plan.RuleParseError, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := LintSQL(tt.sql)
			require.Contains(t, rules(fs), tt.rule, "%v", fs)
			for _, f := range fs {
				if f.Rule == tt.rule {
					assert.Equal(t, tt.line, f.Line, f.String())
				}
			}
		})
	}
	// Separate transactions are fine.
	assert.Empty(t, LintSQL("BEGIN;\n"+add+"COMMIT;\nBEGIN;\n"+val+"COMMIT;\n"))
}
