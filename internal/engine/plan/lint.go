package plan

import (
	"errors"
	"fmt"
	"strings"
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

// Lint reviews a plan with its own lint options only (LintPlan with no
// caller options).
func Lint(p Plan) []Finding { return LintPlan(p, LintOptions{}) }

// LintPlan reviews a plan that has no source text any more (one passed
// around as JSON): the same checks as Source.Lint minus the statement
// facts. The plan's own options (p.Lint) apply within the caller's opts.
func LintPlan(p Plan, opts LintOptions) []Finding { return (&Source{Plan: p}).Lint(opts) }

// Lint reviews a parsed plan or migration: the plan's checks for every
// format, and for SQL the statement checks (NOT VALID, VALIDATE,
// transactions, statements fkrollout does not run). Severities are the
// rules' defaults as changed by opts (the caller's) and Plan.Lint (the
// plan's), see effectiveSeverity; findings turned off are dropped.
func (s *Source) Lint(opts LintOptions) []Finding {
	fs := lintPlan(s.Plan, s.fkLines())
	fs = append(fs, s.lintLongIdents()...)
	fs = append(fs, s.lintStatements()...)
	return applyOptions(fs, opts, s.Plan.Lint)
}

// Validate returns every error-severity finding of Lint, joined, or nil:
// the go/no-go answer for callers that do not show warnings.
func Validate(p Plan) error { return FindingsError(p.Name, Lint(p)) }

// FindingsError joins the error-severity findings into one error naming the
// plan, or returns nil when there are none.
func FindingsError(planName string, fs []Finding) error {
	var errs []error
	for _, f := range fs {
		if f.Severity == SeverityError {
			errs = append(errs, errors.New(f.String()))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("plan %q: %w", planName, errors.Join(errs...))
}

// fkLines is each foreign key's line in the file (none for plan files).
func (s *Source) fkLines() []int {
	if len(s.Statements) == 0 {
		return nil
	}
	lines := make([]int, len(s.Plan.ForeignKeys))
	for _, st := range s.Statements {
		if st.Kind == StmtAddForeignKey && st.FK >= 0 && st.FK < len(lines) {
			lines[st.FK] = st.Line
		}
	}
	return lines
}

// planLinter collects findings about the foreign keys of a plan.
type planLinter struct {
	p     Plan
	lines []int
	out   []Finding
}

func (l *planLinter) add(i int, sev Severity, rule, format string, args ...any) {
	line := 0
	if i < len(l.lines) {
		line = l.lines[i]
	}
	l.out = append(l.out, Finding{Severity: sev, FK: l.p.ForeignKeys[i].ID(), Line: line, Rule: rule, Message: fmt.Sprintf(format, args...)})
}

// lintPlan checks the plan with the rules' default severities; lines[i],
// when given, is FK i's line in a file.
func lintPlan(p Plan, lines []int) []Finding {
	l := &planLinter{p: p, lines: lines}
	for i := range p.ForeignKeys {
		l.lintFK(i)
	}
	l.lintOrder()
	l.lintNames()
	return l.out
}

func (l *planLinter) lintFK(i int) {
	fk := l.p.ForeignKeys[i]
	if fk.Name == "" {
		l.add(i, SeverityError, RuleEmptyName, "constraint name is empty")
	}
	if fk.Table.Name == "" || fk.RefTable.Name == "" {
		l.add(i, SeverityError, RuleMissingTable, "table and referenced table are required")
	}
	for _, id := range fk.identifiers() {
		if len(id) > MaxIdentLen {
			l.add(i, SeverityError, RuleNameTooLong, "identifier %q is %d bytes; PostgreSQL truncates names to %d bytes", id, len(id), MaxIdentLen)
		}
	}
	switch {
	case len(fk.Columns) == 0:
		l.add(i, SeverityError, RuleEmptyColumns, "the foreign key lists no columns")
	case len(fk.RefColumns) == 0:
		l.add(i, SeverityInfo, RuleImplicitRefCols, "REFERENCES %s has no column list: it means the primary key of %s, resolved from the catalog at check time", fk.RefTable, fk.RefTable)
	case len(fk.Columns) != len(fk.RefColumns):
		l.add(i, SeverityError, RuleColumnCount, "%d columns reference %d columns of %s", len(fk.Columns), len(fk.RefColumns), fk.RefTable)
	}
	if !fk.Priority.Valid() {
		l.add(i, SeverityError, RuleInvalidPriority, "priority %d is not CRITICAL(1), HIGH(2), MEDIUM(3) or LOW(4)", int(fk.Priority))
	}
	if fk.OnDelete == "" {
		l.add(i, SeverityInfo, RuleMissingOnDelete, "no ON DELETE: NO ACTION applies, as in PostgreSQL (a referenced row cannot be deleted while rows reference it)")
	}
	for _, a := range []Action{fk.OnDelete, fk.OnUpdate} {
		if a != "" && mustAction(a) != a {
			l.add(i, SeverityError, RuleInvalidAction, "unknown referential action %q", a)
		}
	}
	if fk.OnDelete == ActionSetNull {
		l.add(i, SeverityInfo, RuleSetNull, "ON DELETE SET NULL: the referencing columns must be nullable (checked against the catalog before rollout)")
	}
	switch fk.Match {
	case "", MatchSimple, MatchFull:
	case MatchPartial:
		l.add(i, SeverityError, RuleMatchPartial, "MATCH PARTIAL is not implemented by PostgreSQL; use SIMPLE or FULL")
	default:
		l.add(i, SeverityError, RuleMatchPartial, "unknown MATCH type %q; use SIMPLE or FULL", fk.Match)
	}
	if fk.InitiallyDeferred && !fk.Deferrable {
		l.add(i, SeverityError, RuleDeferredNotDefer, "INITIALLY DEFERRED requires DEFERRABLE")
	}
}

// identifiers lists every name of fk that PostgreSQL stores as a name.
func (fk ForeignKey) identifiers() []string {
	ids := []string{fk.Name, fk.Table.Schema, fk.Table.Name, fk.RefTable.Schema, fk.RefTable.Name}
	ids = append(ids, fk.Columns...)
	return append(ids, fk.RefColumns...)
}

// lintOrder warns when a foreign key follows one of lower priority.
func (l *planLinter) lintOrder() {
	worst, worstIdx := Priority(0), -1
	for i, fk := range l.p.ForeignKeys {
		if !fk.Priority.Valid() {
			continue
		}
		if worstIdx >= 0 && fk.Priority < worst {
			l.add(i, SeverityWarning, RulePriorityOrder, "%s constraint comes after %s constraint %s; order critical → high → medium → low",
				fk.Priority, worst, l.p.ForeignKeys[worstIdx].ID())
		}
		if fk.Priority > worst {
			worst, worstIdx = fk.Priority, i
		}
	}
}

// lintNames finds names used twice: on one table PostgreSQL refuses the
// second; on two tables reports become ambiguous.
func (l *planLinter) lintNames() {
	type key struct {
		t    TableName
		name string
	}
	seen := map[key]int{}
	byName := map[string]int{}
	for i, fk := range l.p.ForeignKeys {
		k := key{fk.Table, fk.Name}
		if j, ok := seen[k]; ok {
			l.add(i, SeverityError, RuleDuplicateName, "constraint %s on %s is already defined (foreign key #%d)", QuoteIfNeeded(fk.Name), fk.Table, j+1)
		} else if j, ok := byName[fk.Name]; ok && fk.Name != "" {
			l.add(i, SeverityWarning, RuleReusedName, "constraint name %s is also used on %s; unique names keep reports unambiguous", QuoteIfNeeded(fk.Name), l.p.ForeignKeys[j].Table)
		}
		if _, ok := seen[k]; !ok {
			seen[k] = i
		}
		if _, ok := byName[fk.Name]; !ok {
			byName[fk.Name] = i
		}
	}
}

// mustAction returns the canonical spelling, or "" when unknown.
func mustAction(a Action) Action {
	v, err := ParseAction(string(a))
	if err != nil {
		return ""
	}
	return v
}

// lintLongIdents refuses long identifiers of the file that the plan's
// foreign keys do not already show (those are reported per foreign key).
func (s *Source) lintLongIdents() []Finding {
	inPlan := map[string]bool{}
	for _, fk := range s.Plan.ForeignKeys {
		for _, id := range fk.identifiers() {
			inPlan[id] = true
		}
	}
	var out []Finding
	for _, li := range s.LongIdentifiers {
		if inPlan[li.Ident] {
			continue
		}
		inPlan[li.Ident] = true
		out = append(out, Finding{Severity: SeverityError, Line: li.Line, Rule: RuleNameTooLong,
			Message: fmt.Sprintf("identifier %q is %d bytes; PostgreSQL truncates names to %d bytes", li.Ident, len(li.Ident), MaxIdentLen)})
	}
	return out
}

type stmtKey struct {
	t    TableName
	name string
}

// lintStatements is the SQL checklist. fkrollout runs none of the file's
// statements: it adds every taken foreign key NOT VALID and validates it in
// a separate step, so most remarks here are informational.
func (s *Source) lintStatements() []Finding {
	var out []Finding
	add := func(st Statement, sev Severity, rule, format string, args ...any) {
		out = append(out, Finding{Severity: sev, FK: s.stmtFK(st), Line: st.Line, Rule: rule, Message: fmt.Sprintf(format, args...)})
	}
	added := map[stmtKey]Statement{}
	validated := map[stmtKey]bool{}
	for i, st := range s.Statements {
		k := stmtKey{st.Table, st.Constraint}
		switch st.Kind {
		case StmtAddForeignKey:
			if st.DefaultName {
				add(st, SeverityInfo, RuleMissingName, "unnamed constraint: fkrollout names it %s, the name PostgreSQL gives it", QuoteIfNeeded(st.Constraint))
			}
			if !st.NotValid && !st.InCreateTable {
				add(st, SeverityInfo, RuleMissingNotValid, "no NOT VALID: fkrollout adds the constraint NOT VALID (short lock, no scan) and validates it separately")
			}
			if _, dup := added[k]; !dup {
				added[k] = st
			}
		case StmtValidate:
			a, ok := added[k]
			switch {
			case !ok:
				add(st, SeverityWarning, RuleValidateUnknown, "VALIDATE CONSTRAINT %s on %s, but no such constraint is added earlier in this file; fkrollout does not run it",
					QuoteIfNeeded(st.Constraint), st.Table)
			case validated[k]:
				add(st, SeverityWarning, RuleDuplicateValidate, "constraint is validated twice")
			case a.Tx != 0 && a.Tx == st.Tx:
				add(st, SeverityInfo, RuleSameTransaction, "added (line %d) and validated in the same transaction; fkrollout does not run the file's transactions: it adds NOT VALID and validates in separate steps", a.Line)
			}
			validated[k] = true
		case StmtCreateTable:
			out = append(out, s.lintCreateTable(i))
		case StmtAddColumnRefs:
			add(st, SeverityWarning, RuleAddColumnRefs, "%s is not taken: the column does not exist until the migration runs, and fkrollout adds no columns; add the column first, then ALTER TABLE … ADD CONSTRAINT … FOREIGN KEY", st.Detail)
		case StmtOther:
			add(st, SeverityInfo, RuleNonFKStatement, "%s adds no foreign key; fkrollout does not run it", st.Detail)
		}
	}
	for _, st := range s.Statements {
		if st.Kind == StmtAddForeignKey && !st.InCreateTable && !validated[stmtKey{st.Table, st.Constraint}] {
			add(st, SeverityInfo, RuleMissingValidate, "no VALIDATE CONSTRAINT later in the file; fkrollout validates the constraint itself")
		}
	}
	return out
}

// lintCreateTable: the CREATE TABLE at Statements[i] is not run; the
// foreign keys taken from it (the statements right after it) or added to
// its table later in the file need the table to exist.
func (s *Source) lintCreateTable(i int) Finding {
	st := s.Statements[i]
	f := Finding{Severity: SeverityInfo, Line: st.Line, Rule: RuleCreateTable}
	var taken []string
	for _, o := range s.Statements[i+1:] {
		if len(taken) == st.TakenFKs || !o.InCreateTable {
			break
		}
		taken = append(taken, QuoteIfNeeded(o.Constraint))
	}
	onTable := 0
	for _, o := range s.Statements {
		if o.Kind == StmtAddForeignKey && o.Table == st.Table {
			onTable++
		}
	}
	switch {
	case st.TakenFKs > 0:
		f.Message = fmt.Sprintf("%s is not run: fkrollout takes %d foreign key(s) from it (%s); the table must already exist (the catalog check refuses otherwise)",
			st.Detail, st.TakenFKs, strings.Join(taken, ", "))
	case onTable > 0:
		f.Message = fmt.Sprintf("%s is not run: the %d foreign key(s) this file adds to %s need the table to exist already (the catalog check refuses otherwise)",
			st.Detail, onTable, st.Table)
	default:
		f.Rule = RuleNonFKStatement
		f.Message = st.Detail + " adds no foreign key; fkrollout does not run it"
	}
	return f
}

// stmtFK is the finding label of a statement's constraint, "" for none.
func (s *Source) stmtFK(st Statement) string {
	if st.FK >= 0 && st.FK < len(s.Plan.ForeignKeys) {
		return s.Plan.ForeignKeys[st.FK].ID()
	}
	if st.Constraint == "" {
		return ""
	}
	return st.Table.String() + "." + QuoteIfNeeded(st.Constraint)
}
