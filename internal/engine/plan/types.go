// Package plan holds the rollout plan: the foreign keys to add, in priority
// order, parsed from a YAML/JSON plan file or from the team's migration SQL,
// linted against the review checklist (NOT VALID first, explicit ON DELETE,
// ...), and rendered back to SQL.
//
// This file is the shared vocabulary of every other package: keep it free of
// database access.
package plan

import (
	"fmt"
	"strings"
)

// Priority orders the rollout, as in the "-- Priority N: NAME" headers of
// the team's migration files.
// Lower numbers go first.
type Priority int

const (
	PriorityCritical Priority = 1
	PriorityHigh     Priority = 2
	PriorityMedium   Priority = 3
	PriorityLow      Priority = 4
)

var priorityNames = map[Priority]string{
	PriorityCritical: "CRITICAL",
	PriorityHigh:     "HIGH",
	PriorityMedium:   "MEDIUM",
	PriorityLow:      "LOW",
}

func (p Priority) String() string {
	if n, ok := priorityNames[p]; ok {
		return n
	}
	return fmt.Sprintf("PRIORITY_%d", int(p))
}

// Valid reports whether p is one of the four named priorities.
func (p Priority) Valid() bool { _, ok := priorityNames[p]; return ok }

// MarshalText renders the priority by name ("CRITICAL").
func (p Priority) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText accepts a name (case-insensitive) or a number 1..4.
func (p *Priority) UnmarshalText(b []byte) error {
	s := strings.ToUpper(strings.TrimSpace(string(b)))
	for k, v := range priorityNames {
		if v == s {
			*p = k
			return nil
		}
	}
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err == nil && Priority(n).Valid() {
		*p = Priority(n)
		return nil
	}
	return fmt.Errorf("unknown priority %q (want CRITICAL, HIGH, MEDIUM, LOW or 1-4)", string(b))
}

// Action is a referential action for ON DELETE / ON UPDATE.
type Action string

const (
	ActionNoAction   Action = "NO ACTION"
	ActionRestrict   Action = "RESTRICT"
	ActionCascade    Action = "CASCADE"
	ActionSetNull    Action = "SET NULL"
	ActionSetDefault Action = "SET DEFAULT"
)

// ParseAction normalises "set_null", "Set Null", "SET NULL" and friends.
func ParseAction(s string) (Action, error) {
	norm := strings.ToUpper(strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '_' || r == '-' }), " "))
	switch a := Action(norm); a {
	case ActionNoAction, ActionRestrict, ActionCascade, ActionSetNull, ActionSetDefault:
		return a, nil
	case "":
		return "", nil
	}
	return "", fmt.Errorf("unknown referential action %q (want NO ACTION, RESTRICT, CASCADE, SET NULL or SET DEFAULT)", s)
}

// MatchType is the FK's MATCH clause. PostgreSQL does not implement PARTIAL.
type MatchType string

const (
	MatchSimple MatchType = "SIMPLE"
	MatchFull   MatchType = "FULL"
)

// TableName is a schema-qualified table name. Both parts are stored
// unquoted, exactly as they are in the catalog (case preserved).
type TableName struct {
	Schema string `json:"schema" yaml:"schema"`
	Name   string `json:"name" yaml:"name"`
}

// Sanitize returns the fully quoted name, safe to place in SQL.
func (t TableName) Sanitize() string { return QuoteIdent(t.Schema, t.Name) }

// String is for humans and messages: schema.name, quoting only where needed.
func (t TableName) String() string { return QuoteIfNeeded(t.Schema) + "." + QuoteIfNeeded(t.Name) }

// ForeignKey is one constraint the rollout adds.
type ForeignKey struct {
	Name     string    `json:"name" yaml:"name"`
	Table    TableName `json:"table" yaml:"table"`
	Columns  []string  `json:"columns" yaml:"columns"`
	RefTable TableName `json:"references" yaml:"references"`
	// RefColumns empty means the primary key of RefTable (REFERENCES
	// without a column list); catalog.ResolveReferences fills it in.
	RefColumns        []string  `json:"ref_columns" yaml:"ref_columns"`
	OnDelete          Action    `json:"on_delete,omitempty" yaml:"on_delete,omitempty"`
	OnUpdate          Action    `json:"on_update,omitempty" yaml:"on_update,omitempty"`
	Match             MatchType `json:"match,omitempty" yaml:"match,omitempty"`
	Deferrable        bool      `json:"deferrable,omitempty" yaml:"deferrable,omitempty"`
	InitiallyDeferred bool      `json:"initially_deferred,omitempty" yaml:"initially_deferred,omitempty"`
	Priority          Priority  `json:"priority" yaml:"priority"`
	// Comment is the human description (the "-- Workflow stages belong to
	// workflow instance" line above the statement in a migration file).
	Comment string `json:"comment,omitempty" yaml:"comment,omitempty"`
}

// EffectiveOnDelete returns the action PostgreSQL applies (NO ACTION when unset).
func (fk ForeignKey) EffectiveOnDelete() Action {
	if fk.OnDelete == "" {
		return ActionNoAction
	}
	return fk.OnDelete
}

// EffectiveOnUpdate returns the action PostgreSQL applies (NO ACTION when unset).
func (fk ForeignKey) EffectiveOnUpdate() Action {
	if fk.OnUpdate == "" {
		return ActionNoAction
	}
	return fk.OnUpdate
}

// EffectiveMatch returns the MATCH type PostgreSQL applies (SIMPLE when unset).
func (fk ForeignKey) EffectiveMatch() MatchType {
	if fk.Match == "" {
		return MatchSimple
	}
	return fk.Match
}

// Constraint body as accepted by ALTER TABLE ... ADD CONSTRAINT name <body>,
// every identifier quoted.
func (fk ForeignKey) constraintBody() string {
	var b strings.Builder
	b.WriteString("FOREIGN KEY (")
	b.WriteString(quoteList(fk.Columns))
	b.WriteString(") REFERENCES ")
	b.WriteString(fk.RefTable.Sanitize())
	// No referenced columns means the primary key, which is what PostgreSQL
	// reads from REFERENCES without a list ("()" would not parse).
	if len(fk.RefColumns) > 0 {
		b.WriteString(" (")
		b.WriteString(quoteList(fk.RefColumns))
		b.WriteString(")")
	}
	if fk.EffectiveMatch() == MatchFull {
		b.WriteString(" MATCH FULL")
	}
	b.WriteString(" ON DELETE ")
	b.WriteString(string(fk.EffectiveOnDelete()))
	b.WriteString(" ON UPDATE ")
	b.WriteString(string(fk.EffectiveOnUpdate()))
	if fk.Deferrable {
		b.WriteString(" DEFERRABLE")
		if fk.InitiallyDeferred {
			b.WriteString(" INITIALLY DEFERRED")
		}
	}
	return b.String()
}

// AddSQL is ALTER TABLE ... ADD CONSTRAINT ... NOT VALID (or validating in
// one step when notValid is false, which only the naive benchmark uses).
func (fk ForeignKey) AddSQL(notValid bool) string {
	s := "ALTER TABLE " + fk.Table.Sanitize() + " ADD CONSTRAINT " + QuoteIdent(fk.Name) + " " + fk.constraintBody()
	if notValid {
		s += " NOT VALID"
	}
	return s
}

// ValidateSQL is ALTER TABLE ... VALIDATE CONSTRAINT ...
func (fk ForeignKey) ValidateSQL() string {
	return "ALTER TABLE " + fk.Table.Sanitize() + " VALIDATE CONSTRAINT " + QuoteIdent(fk.Name)
}

// DropSQL is ALTER TABLE ... DROP CONSTRAINT IF EXISTS ...
func (fk ForeignKey) DropSQL() string {
	return "ALTER TABLE " + fk.Table.Sanitize() + " DROP CONSTRAINT IF EXISTS " + QuoteIdent(fk.Name)
}

// ID is a stable human key: schema.table.constraint.
func (fk ForeignKey) ID() string { return fk.Table.String() + "." + QuoteIfNeeded(fk.Name) }

func quoteList(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = QuoteIdent(c)
	}
	return strings.Join(q, ", ")
}

// Plan is a named, ordered list of foreign keys.
type Plan struct {
	Name        string       `json:"name" yaml:"name"`
	ForeignKeys []ForeignKey `json:"foreign_keys" yaml:"foreign_keys"`
	// Lint holds the plan's own lint options (a plan file's lint: section or
	// a migration's "-- fkrollout:lint" directives); nil when none. They
	// travel with the plan so every later lint applies them.
	Lint *LintOptions `json:"lint,omitempty" yaml:"lint,omitempty"`
	// Expect are the figures the plan expects after the rollout (a plan
	// file's expect: section); nil when it states none.
	Expect *Expectations `json:"expect,omitempty" yaml:"expect,omitempty"`
}

// QuoteIdent quotes each part as a PostgreSQL identifier and joins them with
// dots, the way pgx.Identifier.Sanitize does (NUL bytes dropped, quotes
// doubled); kept here so the plan types link no database driver.
func QuoteIdent(parts ...string) string {
	q := make([]string, len(parts))
	for i, p := range parts {
		p = strings.ReplaceAll(p, "\x00", "")
		q[i] = `"` + strings.ReplaceAll(p, `"`, `""`) + `"`
	}
	return strings.Join(q, ".")
}

// QuoteIfNeeded leaves a plain lower-case identifier bare and double-quotes
// anything else (upper case, spaces, quotes, reserved words).
func QuoteIfNeeded(s string) string {
	if isPlainIdent(s) && !reservedWords[s] {
		return s
	}
	return QuoteIdent(s)
}

func isPlainIdent(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r == '_':
		case (r >= '0' && r <= '9') || r == '$':
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// reservedWords are PostgreSQL's fully reserved key words (and those reserved
// as names of tables/columns); a bare one would not parse as an identifier.
var reservedWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`all analyse analyze and any array as asc asymmetric authorization binary both
case cast check collate collation column concurrently constraint create cross current_catalog current_date
current_role current_schema current_time current_timestamp current_user default deferrable desc distinct do
else end except false fetch for foreign freeze from full grant group having ilike in initially inner intersect
into is isnull join lateral leading left like limit localtime localtimestamp natural not notnull null offset on
only or order outer overlaps placing primary references returning right select session_user similar some
symmetric system_user table tablesample then to trailing true union unique user using variadic verbose when
where window with`) {
		m[w] = true
	}
	return m
}()

// UniqueTables is ts without repeats, in first-seen order.
func UniqueTables(ts []TableName) []TableName {
	seen := map[TableName]bool{}
	var out []TableName
	for _, t := range ts {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}
