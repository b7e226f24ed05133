package plan

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// findingsOf returns the findings of rule.
func findingsOf(fs []Finding, rule string) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Rule == rule {
			out = append(out, f)
		}
	}
	return out
}

func errorsIn(fs []Finding) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Severity == SeverityError {
			out = append(out, f)
		}
	}
	return out
}

func TestFormatForPath(t *testing.T) {
	tests := []struct {
		path string
		want Format
		err  string
	}{
		{"a/migration.sql", FormatSQL, ""},
		{"PLAN.SQL", FormatSQL, ""},
		{"p.yaml", FormatYAML, ""},
		{"p.yml", FormatYAML, ""},
		{"p.json", FormatJSON, ""},
		{"p.txt", "", `".txt"`},
		{"plan", "", `""`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := FormatForPath(tt.path)
			if tt.err != "" {
				assert.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestRulesTable(t *testing.T) {
	all := Rules()
	ids := map[string]bool{}
	for i, r := range all {
		assert.False(t, ids[r.ID], "duplicate %s", r.ID)
		ids[r.ID] = true
		assert.True(t, r.Severity.valid() && r.Severity != SeverityOff, r.ID)
		assert.NotEmpty(t, r.Description, r.ID)
		if i > 0 {
			assert.GreaterOrEqual(t, all[i-1].Severity.rank(), r.Severity.rank(), "errors first: %s", r.ID)
		}
		if r.Strict {
			assert.Equal(t, SeverityInfo, r.Severity, "strict rules are informational by default: %s", r.ID)
		}
	}
	var strict []string
	for _, r := range all {
		if r.Strict {
			strict = append(strict, r.ID)
		}
	}
	assert.ElementsMatch(t, []string{RuleMissingNotValid, RuleMissingOnDelete, RuleMissingName, RuleImplicitRefCols}, strict)
	all[0].ID = "changed"
	assert.Equal(t, RuleParseError, Rules()[0].ID, "Rules returns a copy")
}

func TestEffectiveSeverity(t *testing.T) {
	set := func(rule string, s Severity) LintOptions { return LintOptions{Severity: map[string]Severity{rule: s}} }
	tests := []struct {
		name   string
		rule   string
		native Severity
		caller LintOptions
		plan   LintOptions
		want   Severity
	}{
		{"default", RuleMissingOnDelete, SeverityInfo, LintOptions{}, LintOptions{}, SeverityInfo},
		{"caller strict", RuleMissingOnDelete, SeverityInfo, LintOptions{Strict: true}, LintOptions{}, SeverityError},
		{"plan strict", RuleMissingOnDelete, SeverityInfo, LintOptions{}, LintOptions{Strict: true}, SeverityError},
		{"strict leaves other rules", RuleMissingValidate, SeverityInfo, LintOptions{Strict: true}, LintOptions{}, SeverityInfo},
		{"explicit rule beats strict", RuleMissingOnDelete, SeverityInfo, LintOptions{Strict: true, Severity: map[string]Severity{RuleMissingOnDelete: SeverityWarning}}, LintOptions{}, SeverityWarning},
		{"plan tightens", RuleMissingValidate, SeverityInfo, LintOptions{}, set(RuleMissingValidate, SeverityError), SeverityError},
		{"plan loosens what the caller left alone", RulePriorityOrder, SeverityWarning, LintOptions{}, set(RulePriorityOrder, SeverityOff), SeverityOff},
		{"plan cannot loosen the caller's error", RuleMissingOnDelete, SeverityInfo, set(RuleMissingOnDelete, SeverityError), set(RuleMissingOnDelete, SeverityInfo), SeverityError},
		{"plan cannot loosen caller's strict", RuleMissingName, SeverityInfo, LintOptions{Strict: true}, set(RuleMissingName, SeverityOff), SeverityError},
		{"plan cannot loosen the caller's warning", RuleNonFKStatement, SeverityInfo, set(RuleNonFKStatement, SeverityWarning), set(RuleNonFKStatement, SeverityOff), SeverityWarning},
		{"plan tightens over caller", RuleNonFKStatement, SeverityInfo, set(RuleNonFKStatement, SeverityWarning), set(RuleNonFKStatement, SeverityError), SeverityError},
		{"caller loosens", RuleNonFKStatement, SeverityInfo, set(RuleNonFKStatement, SeverityOff), LintOptions{}, SeverityOff},
		{"plan cannot lower an error", RuleColumnCount, SeverityError, LintOptions{}, set(RuleColumnCount, SeverityWarning), SeverityError},
		{"caller can lower an error", RuleColumnCount, SeverityError, set(RuleColumnCount, SeverityWarning), LintOptions{}, SeverityWarning},
		{"fixed rule ignores everyone", RuleNameTooLong, SeverityError, set(RuleNameTooLong, SeverityOff), set(RuleNameTooLong, SeverityOff), SeverityError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, effectiveSeverity(tt.rule, tt.native, tt.caller, tt.plan))
		})
	}
}

func TestLintOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts LintOptions
		want []string
	}{
		{"ok", LintOptions{Strict: true, Severity: map[string]Severity{RuleMissingOnDelete: SeverityOff}}, nil},
		{"unknown rule", LintOptions{Severity: map[string]Severity{"missing-on-delet": SeverityError}}, []string{`unknown lint rule "missing-on-delet"`}},
		{"unknown severity", LintOptions{Severity: map[string]Severity{RuleMissingOnDelete: "fatal"}}, []string{`unknown severity "fatal"`, RuleMissingOnDelete}},
		{"fixed", LintOptions{Severity: map[string]Severity{RuleParseError: SeverityOff}}, []string{`"parse-error" cannot be overridden`}},
		{"all named", LintOptions{Severity: map[string]Severity{"a": SeverityError, "b": "x"}}, []string{`"a"`, `"b"`, `"x"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if tt.want == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
	// Invalid options reach Lint only from a hand-built or JSON plan:
	// reported, not ignored silently.
	p := Plan{Name: "x", ForeignKeys: []ForeignKey{goodFK("a", PriorityCritical)}, Lint: &LintOptions{Severity: map[string]Severity{"nope": SeverityOff}}}
	fs := findingsOf(Lint(p), RuleLintOptions)
	require.Len(t, fs, 1)
	assert.Contains(t, fs[0].Message, `plan's lint options: unknown lint rule "nope"`)
	fs = findingsOf(LintPlan(Plan{ForeignKeys: p.ForeignKeys}, LintOptions{Severity: map[string]Severity{RuleMissingName: "loud"}}), RuleLintOptions)
	require.Len(t, fs, 1)
	assert.Contains(t, fs[0].Message, "caller's lint options")
}

func TestYAMLLintSection(t *testing.T) {
	const fks = "foreign_keys:\n  - name: f\n    table: t\n    columns: [x]\n    references: u\n"
	p, err := ParseYAML([]byte("lint:\n  strict: true\n  rules: {missing-validate: ERROR, priority-order: off}\n" + fks))
	require.NoError(t, err)
	want := &LintOptions{Strict: true, Severity: map[string]Severity{RuleMissingValidate: SeverityError, RulePriorityOrder: SeverityOff}}
	assert.Equal(t, want, p.Lint)
	assert.Nil(t, p.ForeignKeys[0].RefColumns, "ref_columns may be omitted: the primary key")
	assert.ElementsMatch(t, []string{RuleMissingOnDelete, RuleImplicitRefCols}, rules(errorsIn(Lint(p))))

	y, err := EncodeYAML(p)
	require.NoError(t, err)
	assert.Contains(t, string(y), "lint:\n")
	back, err := ParseYAML(y)
	require.NoError(t, err, string(y))
	assert.Equal(t, p, back)
	assert.Equal(t, p, jsonRoundTrip(t, p))

	for _, tc := range []struct{ doc, want string }{
		{"lint:\n  rules: {missing-on-delet: error}\n" + fks, `unknown lint rule "missing-on-delet"`},
		{"lint:\n  rules: {missing-on-delete: loud}\n" + fks, `unknown severity "loud"`},
		{"lint:\n  stict: true\n" + fks, "stict"},
		{"lint:\n  rules: {name-too-long: off}\n" + fks, "cannot be overridden"},
	} {
		_, err := ParseYAML([]byte(tc.doc))
		assert.ErrorContains(t, err, tc.want, tc.doc)
	}
}

func jsonRoundTrip(t *testing.T, p Plan) Plan {
	t.Helper()
	var back Plan
	require.NoError(t, json.Unmarshal([]byte(mustJSON(t, p)), &back))
	return back
}
