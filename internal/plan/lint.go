package plan

import (
	"errors"
	"fmt"
)

// Severity of a lint finding.
type Severity string

const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
	// SeverityInfo is a note for the reviewer, never a reason to stop.
	SeverityInfo Severity = "info"
)

// Lint rule ids, stable for tooling and tests.
const (
	RuleParseError        = "parse-error"
	RuleMissingNotValid   = "missing-not-valid"
	RuleMissingOnDelete   = "missing-on-delete"
	RuleSameTransaction   = "not-valid-and-validate-in-one-transaction"
	RuleMissingValidate   = "missing-validate"
	RuleValidateUnknown   = "validate-unknown-constraint"
	RulePriorityOrder     = "priority-order"
	RuleNonFKStatement    = "non-fk-statement"
	RuleDuplicateName     = "duplicate-name"
	RuleNameTooLong       = "name-too-long"
	RuleColumnCount       = "column-count-mismatch"
	RuleEmptyColumns      = "empty-columns"
	RuleInvalidPriority   = "invalid-priority"
	RuleSetNull           = "set-null-on-delete"
	RuleMatchPartial      = "match-partial"
	RuleMissingName       = "missing-name"
	RuleMissingTable      = "missing-table"
	RuleInvalidAction     = "invalid-action"
	RuleDeferredNotDefer  = "initially-deferred-not-deferrable"
	RuleDuplicateValidate = "duplicate-validate"
)

// Finding is one review remark about a plan or migration file.
type Finding struct {
	Severity Severity `json:"severity"`
	FK       string   `json:"fk,omitempty"`
	Line     int      `json:"line,omitempty"` // 0 when not from a file
	Rule     string   `json:"rule"`
	Message  string   `json:"message"`
}

func (f Finding) String() string {
	s := string(f.Severity)
	if f.Line > 0 {
		s = fmt.Sprintf("line %d: %s", f.Line, s)
	}
	s += " [" + f.Rule + "]"
	if f.FK != "" {
		s += " " + f.FK + ":"
	}
	return s + " " + f.Message
}

// Lint reviews a plan like the seeds' checklist (explicit ON DELETE,
// priority order, sane names and columns).
func Lint(p Plan) []Finding { return lintPlan(p, nil) }

// lintPlan checks the plan; lines[i], when given, is FK i's line in a file.
func lintPlan(p Plan, lines []int) []Finding {
	var out []Finding
	lineOf := func(i int) int {
		if i < len(lines) {
			return lines[i]
		}
		return 0
	}
	add := func(i int, sev Severity, rule, format string, args ...any) {
		out = append(out, Finding{Severity: sev, FK: p.ForeignKeys[i].ID(), Line: lineOf(i), Rule: rule, Message: fmt.Sprintf(format, args...)})
	}
	type key struct {
		t    TableName
		name string
	}
	seen := map[key]int{}
	byName := map[string]int{}
	worst := Priority(0)
	worstIdx := -1
	for i, fk := range p.ForeignKeys {
		if fk.Name == "" {
			add(i, SeverityError, RuleMissingName, "constraint name is empty")
		}
		if fk.Table.Name == "" || fk.RefTable.Name == "" {
			add(i, SeverityError, RuleMissingTable, "table and referenced table are required")
		}
		for _, id := range append([]string{fk.Name, fk.Table.Schema, fk.Table.Name, fk.RefTable.Schema, fk.RefTable.Name}, append(fk.Columns, fk.RefColumns...)...) {
			if len(id) > MaxIdentLen {
				add(i, SeverityError, RuleNameTooLong, "identifier %q is %d bytes; PostgreSQL truncates names to %d bytes", id, len(id), MaxIdentLen)
			}
		}
		if len(fk.Columns) == 0 || len(fk.RefColumns) == 0 {
			add(i, SeverityError, RuleEmptyColumns, "columns and referenced columns must both be listed")
		} else if len(fk.Columns) != len(fk.RefColumns) {
			add(i, SeverityError, RuleColumnCount, "%d columns reference %d columns of %s", len(fk.Columns), len(fk.RefColumns), fk.RefTable)
		}
		if !fk.Priority.Valid() {
			add(i, SeverityError, RuleInvalidPriority, "priority %d is not CRITICAL(1), HIGH(2), MEDIUM(3) or LOW(4)", int(fk.Priority))
		} else {
			if worstIdx >= 0 && fk.Priority < worst {
				add(i, SeverityWarning, RulePriorityOrder, "%s constraint comes after %s constraint %s; order critical → high → medium → low",
					fk.Priority, worst, p.ForeignKeys[worstIdx].ID())
			}
			if fk.Priority > worst {
				worst, worstIdx = fk.Priority, i
			}
		}
		if fk.OnDelete == "" {
			add(i, SeverityError, RuleMissingOnDelete, "ON DELETE is not explicit; choose RESTRICT, CASCADE, SET NULL, NO ACTION or SET DEFAULT")
		}
		for _, a := range []Action{fk.OnDelete, fk.OnUpdate} {
			if a != "" && mustAction(a) != a {
				add(i, SeverityError, RuleInvalidAction, "unknown referential action %q", a)
			}
		}
		if fk.OnDelete == ActionSetNull {
			add(i, SeverityInfo, RuleSetNull, "ON DELETE SET NULL: the referencing columns must be nullable (checked against the catalog before rollout)")
		}
		switch fk.Match {
		case "", MatchSimple, MatchFull:
		case MatchPartial:
			add(i, SeverityError, RuleMatchPartial, "MATCH PARTIAL is not implemented by PostgreSQL; use SIMPLE or FULL")
		default:
			add(i, SeverityError, RuleMatchPartial, "unknown MATCH type %q; use SIMPLE or FULL", fk.Match)
		}
		if fk.InitiallyDeferred && !fk.Deferrable {
			add(i, SeverityError, RuleDeferredNotDefer, "INITIALLY DEFERRED requires DEFERRABLE")
		}
		k := key{fk.Table, fk.Name}
		if j, ok := seen[k]; ok {
			add(i, SeverityError, RuleDuplicateName, "constraint %s on %s is already defined (foreign key #%d)", QuoteIfNeeded(fk.Name), fk.Table, j+1)
		} else if j, ok := byName[fk.Name]; ok && fk.Name != "" {
			add(i, SeverityWarning, RuleDuplicateName, "constraint name %s is also used on %s; unique names keep reports unambiguous", QuoteIfNeeded(fk.Name), p.ForeignKeys[j].Table)
		}
		if _, ok := seen[k]; !ok {
			seen[k] = i
		}
		if _, ok := byName[fk.Name]; !ok {
			byName[fk.Name] = i
		}
	}
	return out
}

// mustAction returns the canonical spelling, or "" when unknown.
func mustAction(a Action) Action {
	v, err := ParseAction(string(a))
	if err != nil {
		return ""
	}
	return v
}

// LintSQL reviews a migration file: everything Lint checks, plus the SQL
// checklist (NOT VALID on every addition, a later VALIDATE for each, not in
// the same transaction, nothing but FK statements).
func LintSQL(sql string) []Finding {
	src, err := ParseSQLDetailed(sql)
	if err != nil {
		return []Finding{{Severity: SeverityError, Rule: RuleParseError, Message: err.Error()}}
	}
	return src.Lint()
}

// Lint reviews a parsed migration file (see LintSQL).
func (s *Source) Lint() []Finding {
	lines := make([]int, len(s.Plan.ForeignKeys))
	for _, st := range s.Statements {
		if st.Kind == StmtAddForeignKey {
			lines[st.FK] = st.Line
		}
	}
	out := lintPlan(s.Plan, lines)
	for _, li := range s.LongIdentifiers {
		out = append(out, Finding{Severity: SeverityError, Line: li.Line, Rule: RuleNameTooLong,
			Message: fmt.Sprintf("identifier %q is %d bytes; PostgreSQL truncates names to %d bytes", li.Ident, len(li.Ident), MaxIdentLen)})
	}
	type key struct {
		t    TableName
		name string
	}
	added := map[key]Statement{}
	validated := map[key]bool{}
	for _, st := range s.Statements {
		k := key{st.Table, st.Constraint}
		id := TableName.String(st.Table) + "." + QuoteIfNeeded(st.Constraint)
		switch st.Kind {
		case StmtAddForeignKey:
			if !st.NotValid {
				out = append(out, Finding{SeverityError, id, st.Line, RuleMissingNotValid,
					"ADD CONSTRAINT without NOT VALID scans the whole table under lock; add NOT VALID and VALIDATE later"})
			}
			if _, dup := added[k]; !dup {
				added[k] = st
			}
		case StmtValidate:
			a, ok := added[k]
			switch {
			case !ok:
				out = append(out, Finding{SeverityError, id, st.Line, RuleValidateUnknown,
					fmt.Sprintf("VALIDATE CONSTRAINT %s on %s, but no such constraint is added earlier in this file", QuoteIfNeeded(st.Constraint), st.Table)})
			case validated[k]:
				out = append(out, Finding{SeverityWarning, id, st.Line, RuleDuplicateValidate, "constraint is validated twice"})
			case a.Tx != 0 && a.Tx == st.Tx:
				out = append(out, Finding{SeverityError, id, st.Line, RuleSameTransaction,
					fmt.Sprintf("added NOT VALID (line %d) and validated in the same transaction: the lock is held for the whole validation scan; COMMIT in between", a.Line)})
			}
			validated[k] = true
		case StmtOther:
			out = append(out, Finding{Severity: SeverityWarning, Line: st.Line, Rule: RuleNonFKStatement,
				Message: fmt.Sprintf("%s is not a foreign key addition or validation; fkrollout will not run it (move it to its own migration)", st.Detail)})
		}
	}
	for _, st := range s.Statements {
		if st.Kind == StmtAddForeignKey && !validated[key{st.Table, st.Constraint}] {
			out = append(out, Finding{SeverityWarning, TableName.String(st.Table) + "." + QuoteIfNeeded(st.Constraint), st.Line, RuleMissingValidate,
				"no VALIDATE CONSTRAINT for this constraint later in the file"})
		}
	}
	return out
}

// Validate returns every error-severity finding of Lint, joined, or nil:
// the go/no-go answer for callers that do not show warnings.
func Validate(p Plan) error {
	var errs []error
	for _, f := range Lint(p) {
		if f.Severity == SeverityError {
			errs = append(errs, errors.New(f.String()))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("plan %q: %w", p.Name, errors.Join(errs...))
}
