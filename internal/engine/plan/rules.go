package plan

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Severity of a lint finding, or of a rule in LintOptions.
type Severity string

const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
	// SeverityInfo is a note for the reviewer, never a reason to stop.
	SeverityInfo Severity = "info"
	// SeverityOff is only an override: findings of the rule are dropped.
	SeverityOff Severity = "off"
)

// rank orders severities from off (0) to error (3); 0 for unknown values.
func (s Severity) rank() int {
	switch s {
	case SeverityInfo:
		return 1
	case SeverityWarning:
		return 2
	case SeverityError:
		return 3
	}
	return 0
}

func (s Severity) valid() bool { return s == SeverityOff || s.rank() > 0 }

// stricter returns the more severe of a and b.
func stricter(a, b Severity) Severity {
	if b.rank() > a.rank() {
		return b
	}
	return a
}

// ParseSeverity reads "error", "warning", "info" or "off" (any case).
func ParseSeverity(s string) (Severity, error) {
	v := Severity(strings.ToLower(strings.TrimSpace(s)))
	if !v.valid() {
		return "", fmt.Errorf("unknown severity %q (want error, warning, info or off)", s)
	}
	return v, nil
}

// Lint rule ids, stable for tooling and tests.
const (
	RuleParseError        = "parse-error"
	RuleLintOptions       = "lint-options"
	RuleNameTooLong       = "name-too-long"
	RuleEmptyName         = "empty-name"
	RuleMissingTable      = "missing-table"
	RuleEmptyColumns      = "empty-columns"
	RuleColumnCount       = "column-count-mismatch"
	RuleInvalidPriority   = "invalid-priority"
	RuleInvalidAction     = "invalid-action"
	RuleMatchPartial      = "match-partial"
	RuleDeferredNotDefer  = "initially-deferred-not-deferrable"
	RuleDuplicateName     = "duplicate-name"
	RuleReusedName        = "reused-name"
	RulePriorityOrder     = "priority-order"
	RuleValidateUnknown   = "validate-unknown-constraint"
	RuleDuplicateValidate = "duplicate-validate"
	RuleAddColumnRefs     = "add-column-references"
	RuleMissingNotValid   = "missing-not-valid"
	RuleMissingOnDelete   = "missing-on-delete"
	RuleMissingName       = "missing-name"
	RuleImplicitRefCols   = "implicit-ref-columns"
	RuleMissingValidate   = "missing-validate"
	RuleSameTransaction   = "not-valid-and-validate-in-one-transaction"
	RuleNonFKStatement    = "non-fk-statement"
	RuleCreateTable       = "create-table"
	RuleSetNull           = "set-null-on-delete"
)

// Rule describes one lint rule: its default severity and what it checks.
type Rule struct {
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	// Strict: LintOptions.Strict raises the rule to error (the checklist
	// fkrollout enforced before it made these cases safe itself).
	Strict bool `json:"strict,omitempty"`
	// Fixed rules cannot be overridden: they guard against something
	// PostgreSQL would do silently or against an unreadable input.
	Fixed       bool   `json:"fixed,omitempty"`
	Description string `json:"description"`
}

var ruleTable = []Rule{
	{ID: RuleParseError, Severity: SeverityError, Fixed: true, Description: "the text does not parse as PostgreSQL SQL or as a plan file, or holds no foreign key"},
	{ID: RuleLintOptions, Severity: SeverityError, Fixed: true, Description: "lint options name an unknown rule or severity, or override a fixed rule"},
	{ID: RuleNameTooLong, Severity: SeverityError, Fixed: true, Description: "an identifier is over 63 bytes; PostgreSQL would silently truncate it"},
	{ID: RuleEmptyName, Severity: SeverityError, Description: "a foreign key of the plan has no constraint name"},
	{ID: RuleMissingTable, Severity: SeverityError, Description: "the table or the referenced table is not named"},
	{ID: RuleEmptyColumns, Severity: SeverityError, Description: "the foreign key lists no columns"},
	{ID: RuleColumnCount, Severity: SeverityError, Description: "the number of columns differs from the number of referenced columns"},
	{ID: RuleInvalidPriority, Severity: SeverityError, Description: "the priority is not CRITICAL, HIGH, MEDIUM or LOW"},
	{ID: RuleInvalidAction, Severity: SeverityError, Description: "ON DELETE / ON UPDATE is not a referential action"},
	{ID: RuleMatchPartial, Severity: SeverityError, Description: "MATCH PARTIAL (or an unknown MATCH type); PostgreSQL implements only SIMPLE and FULL"},
	{ID: RuleDeferredNotDefer, Severity: SeverityError, Description: "INITIALLY DEFERRED without DEFERRABLE"},
	{ID: RuleDuplicateName, Severity: SeverityError, Description: "two foreign keys of the plan have the same name on the same table"},
	{ID: RuleReusedName, Severity: SeverityWarning, Description: "the same constraint name is used on two tables; reports become ambiguous"},
	{ID: RulePriorityOrder, Severity: SeverityWarning, Description: "a foreign key comes after one of lower priority in the file"},
	{ID: RuleValidateUnknown, Severity: SeverityWarning, Description: "VALIDATE CONSTRAINT names no constraint added earlier in the file (fkrollout does not run it)"},
	{ID: RuleDuplicateValidate, Severity: SeverityWarning, Description: "a constraint is validated twice"},
	{ID: RuleAddColumnRefs, Severity: SeverityWarning, Description: "ALTER TABLE ADD COLUMN … REFERENCES: not taken, the column does not exist before the migration runs"},
	{ID: RuleMissingNotValid, Severity: SeverityInfo, Strict: true, Description: "the addition has no NOT VALID; fkrollout adds NOT VALID and validates separately"},
	{ID: RuleMissingOnDelete, Severity: SeverityInfo, Strict: true, Description: "no ON DELETE; NO ACTION applies, as in PostgreSQL"},
	{ID: RuleMissingName, Severity: SeverityInfo, Strict: true, Description: "unnamed constraint; fkrollout gives it PostgreSQL's default name <table>_<columns>_fkey"},
	{ID: RuleImplicitRefCols, Severity: SeverityInfo, Strict: true, Description: "REFERENCES without a column list; resolved to the referenced table's primary key at check time"},
	{ID: RuleMissingValidate, Severity: SeverityInfo, Description: "no VALIDATE CONSTRAINT in the file; fkrollout validates every constraint itself"},
	{ID: RuleSameTransaction, Severity: SeverityInfo, Description: "added and validated in one transaction; fkrollout does not run the file's transactions"},
	{ID: RuleNonFKStatement, Severity: SeverityInfo, Description: "a statement that adds no foreign key; fkrollout does not run it"},
	{ID: RuleCreateTable, Severity: SeverityInfo, Description: "CREATE TABLE is not run; its foreign keys are taken and the table must already exist"},
	{ID: RuleSetNull, Severity: SeverityInfo, Description: "ON DELETE SET NULL: the referencing columns must be nullable (checked against the catalog)"},
}

var rulesByID = func() map[string]Rule {
	m := make(map[string]Rule, len(ruleTable))
	for _, r := range ruleTable {
		m[r.ID] = r
	}
	return m
}()

// Rules returns every lint rule with its default severity, errors first,
// for docs and `lint --rules`.
func Rules() []Rule { return append([]Rule(nil), ruleTable...) }

// LintOptions overrides rule severities. The zero value keeps the defaults.
type LintOptions struct {
	// Strict raises the rules marked Strict to error.
	Strict bool `json:"strict,omitempty" yaml:"strict,omitempty"`
	// Severity maps a rule id to error, warning, info or off. It wins over
	// Strict for the rules it names.
	Severity map[string]Severity `json:"rules,omitempty" yaml:"rules,omitempty"`
}

// IsZero reports whether the options change nothing.
func (o LintOptions) IsZero() bool { return !o.Strict && len(o.Severity) == 0 }

// Validate reports unknown rule ids, unknown severities and overrides of
// fixed rules, naming each.
func (o LintOptions) Validate() error {
	ids := make([]string, 0, len(o.Severity))
	for id := range o.Severity {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var errs []error
	for _, id := range ids {
		r, ok := rulesByID[id]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("unknown lint rule %q (see plan.Rules / fkrollout lint --rules)", id))
		case r.Fixed:
			errs = append(errs, fmt.Errorf("lint rule %q cannot be overridden", id))
		}
		if sev := o.Severity[id]; !sev.valid() {
			errs = append(errs, fmt.Errorf("lint rule %q: unknown severity %q (want error, warning, info or off)", id, sev))
		}
	}
	return errors.Join(errs...)
}

// level is the severity these options give rule, if they set one.
func (o LintOptions) level(rule string) (Severity, bool) {
	if s, ok := o.Severity[rule]; ok {
		return s, true
	}
	if o.Strict && rulesByID[rule].Strict {
		return SeverityError, true
	}
	return "", false
}

// effectiveSeverity applies the caller's and the plan's options to a finding
// of rule whose severity from the rule itself is native.
//
// The plan (its lint: section or the file's directives) decides what the
// caller left alone, but it never goes below the caller: where both set a
// rule, the stricter wins. A plan also cannot lower a finding that is an
// error by nature; only the caller (the operator's configuration) can.
func effectiveSeverity(rule string, native Severity, caller, plan LintOptions) Severity {
	if rulesByID[rule].Fixed {
		return native
	}
	eff := native
	c, callerSet := caller.level(rule)
	if callerSet {
		eff = c
	}
	if p, ok := plan.level(rule); ok {
		eff = p
	}
	switch {
	case callerSet:
		eff = stricter(eff, c)
	case native == SeverityError:
		eff = stricter(eff, SeverityError)
	}
	return eff
}

// applyOptions rewrites the findings' severities and drops those turned
// off. Invalid options are reported as a lint-options error and ignored.
func applyOptions(fs []Finding, caller LintOptions, planOpts *LintOptions) []Finding {
	var p LintOptions
	if planOpts != nil {
		p = *planOpts
	}
	var out []Finding
	if err := caller.Validate(); err != nil {
		out = append(out, Finding{Severity: SeverityError, Rule: RuleLintOptions, Message: "caller's lint options: " + oneLine(err)})
		caller = LintOptions{}
	}
	if err := p.Validate(); err != nil {
		out = append(out, Finding{Severity: SeverityError, Rule: RuleLintOptions, Message: "plan's lint options: " + oneLine(err)})
		p = LintOptions{}
	}
	for _, f := range fs {
		f.Severity = effectiveSeverity(f.Rule, f.Severity, caller, p)
		if f.Severity != SeverityOff {
			out = append(out, f)
		}
	}
	return out
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// directivePrefix starts a lint directive comment in a migration file.
const directivePrefix = "fkrollout:lint"

// ParseDirective reads the text of one "--" comment. ok is false when the
// comment is not a directive. Items are "strict" or "rule=severity",
// separated by spaces or commas.
func ParseDirective(text string, into *LintOptions) (ok bool, err error) {
	rest, found := strings.CutPrefix(text, directivePrefix)
	if !found || (rest != "" && rest[0] != ' ' && rest[0] != '\t' && rest[0] != ',') {
		return false, nil
	}
	items := strings.FieldsFunc(rest, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' })
	if len(items) == 0 {
		return true, fmt.Errorf("%s: nothing to set (write strict or rule=severity)", directivePrefix)
	}
	for _, it := range items {
		if it == "strict" {
			into.Strict = true
			continue
		}
		id, sev, eq := strings.Cut(it, "=")
		if !eq {
			return true, fmt.Errorf("%s: %q is neither strict nor rule=severity", directivePrefix, it)
		}
		s, err := ParseSeverity(sev)
		if err != nil {
			return true, fmt.Errorf("%s: rule %s: %w", directivePrefix, id, err)
		}
		if into.Severity == nil {
			into.Severity = map[string]Severity{}
		}
		into.Severity[id] = s
	}
	// Unknown or fixed rules are named now, with the directive's line.
	if err := (LintOptions{Severity: into.Severity}).Validate(); err != nil {
		return true, fmt.Errorf("%s: %w", directivePrefix, err)
	}
	return true, nil
}

// directiveText renders o as directive lines (for Generate).
func directiveText(o *LintOptions) string {
	if o == nil || o.IsZero() {
		return ""
	}
	var items []string
	if o.Strict {
		items = append(items, "strict")
	}
	ids := make([]string, 0, len(o.Severity))
	for id := range o.Severity {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		items = append(items, id+"="+string(o.Severity[id]))
	}
	return "-- " + directivePrefix + " " + strings.Join(items, " ") + "\n"
}
