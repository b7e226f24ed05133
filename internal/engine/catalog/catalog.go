// Package catalog checks a rollout plan against the live PostgreSQL catalog
// before anything changes: every problem a plan has is reported at once
// (so a release owner fixes the plan in one round), and the current state of
// each constraint is read structurally from pg_constraint, never by comparing
// SQL strings.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

// Querier is satisfied by *pgxpool.Pool, pgx.Tx and *pgx.Conn.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Rule ids, one per kind of problem.
const (
	RuleNameEmpty          = "name-empty"
	RuleNameTooLong        = "name-too-long"
	RuleDuplicateName      = "duplicate-name"
	RuleNoColumns          = "no-columns"
	RuleColumnCount        = "column-count"
	RuleDuplicateColumn    = "duplicate-column"
	RuleTableMissing       = "table-missing"
	RuleTableKind          = "table-kind"
	RuleRefTableMissing    = "ref-table-missing"
	RuleRefTableKind       = "ref-table-kind"
	RuleColumnMissing      = "column-missing"
	RuleRefColumnMissing   = "ref-column-missing"
	RuleRefNoPrimaryKey    = "ref-no-primary-key"
	RuleTypeMismatch       = "type-mismatch"
	RuleNoUniqueOnRef      = "no-unique-on-ref"
	RuleSetNullNotNull     = "set-null-not-null"
	RuleSetDefaultNoDef    = "set-default-no-default"
	RuleDefinitionConflict = "definition-conflict"
	RuleNameConflict       = "name-conflict"
	RuleMatchPartial       = "match-partial"
	RuleDeferred           = "initially-deferred-without-deferrable"
)

// MaxIdentifierBytes is NAMEDATALEN-1: PostgreSQL silently truncates longer
// names, which would make the constraint in the database differ from the plan.
const MaxIdentifierBytes = 63

// Problem is one thing wrong with the plan against this database.
type Problem struct {
	FK      string `json:"fk"`
	Rule    string `json:"rule"`
	Message string `json:"message"`
}

// ConstraintState is what the database has under a plan constraint's name.
type ConstraintState struct {
	Exists         bool   `json:"exists"`
	Validated      bool   `json:"validated"`
	SameDefinition bool   `json:"same_definition"`
	Definition     string `json:"definition,omitempty"` // pg_get_constraintdef
	OwnerRollout   string `json:"owner_rollout,omitempty"`
	// OwnerRun is the run of OwnerRollout that created the constraint; ""
	// for ownership recorded before runs were (see Owner.Owns).
	OwnerRun    string `json:"owner_run,omitempty"`
	Partitioned bool   `json:"partitioned"`
	// Kind is pg_constraint.contype when a constraint of another kind
	// (p, u, c, x) holds the name; "f" for a foreign key.
	Kind string `json:"kind,omitempty"`
	// Inherited is true when the constraint is attached to a parent's
	// (conparentid <> 0), so it cannot be dropped on its own.
	Inherited bool `json:"inherited,omitempty"`
	// Differences lists what differs when SameDefinition is false.
	Differences []string `json:"differences,omitempty"`
}

// Report is the result of Check.
type Report struct {
	Problems []Problem                  `json:"problems"`
	States   map[string]ConstraintState `json:"states"`
	// Resolved maps the ID of each foreign key written without referenced
	// columns to the primary key columns Check used for it. The rollout
	// needs them in the plan: call ResolveReferences.
	Resolved map[string][]string `json:"resolved,omitempty"`
}

// Err is nil when the plan has no problems, else one error listing them all.
func (r Report) Err() error {
	if len(r.Problems) == 0 {
		return nil
	}
	lines := make([]string, len(r.Problems))
	for i, p := range r.Problems {
		lines[i] = fmt.Sprintf("  - %s [%s]: %s", p.FK, p.Rule, p.Message)
	}
	return fmt.Errorf("plan has %d problem(s) against the database:\n%s", len(r.Problems), strings.Join(lines, "\n"))
}

// Rules returns the distinct rule ids in the report (handy for callers and tests).
func (r Report) Rules() []string {
	var out []string
	for _, p := range r.Problems {
		if !slices.Contains(out, p.Rule) {
			out = append(out, p.Rule)
		}
	}
	return out
}

type relation struct {
	oid     uint32
	relkind string
}

type column struct {
	num      int16
	typ      uint32 // base type (domains resolved)
	typName  string // format_type of the declared type
	baseName string
	notNull  bool
	hasDef   bool
}

func lookupRelation(ctx context.Context, q Querier, t plan.TableName) (relation, bool, error) {
	var r relation
	err := q.QueryRow(ctx, `SELECT c.oid, c.relkind::text FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2`, t.Schema, t.Name).Scan(&r.oid, &r.relkind)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("look up table %s: %w", t, err)
	}
	return r, true, nil
}

// lookupColumns returns the named columns that exist, with their base types.
func lookupColumns(ctx context.Context, q Querier, rel uint32, names []string) (map[string]column, error) {
	rows, err := q.Query(ctx, `
		WITH RECURSIVE base(attname, attnum, typ, attnotnull, atthasdef, declared) AS (
			SELECT a.attname::text, a.attnum, a.atttypid, a.attnotnull, a.atthasdef, format_type(a.atttypid, a.atttypmod)
			FROM pg_catalog.pg_attribute a
			WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attname = ANY($2::text[])
		  UNION ALL
			SELECT b.attname, b.attnum, t.typbasetype, b.attnotnull, b.atthasdef, b.declared
			FROM base b JOIN pg_catalog.pg_type t ON t.oid = b.typ
			WHERE t.typtype = 'd'
		)
		SELECT b.attname, b.attnum, b.typ, format_type(b.typ, NULL), b.declared, b.attnotnull, b.atthasdef
		FROM base b JOIN pg_catalog.pg_type t ON t.oid = b.typ
		WHERE t.typtype <> 'd'`, rel, names)
	if err != nil {
		return nil, fmt.Errorf("look up columns: %w", err)
	}
	defer rows.Close()
	out := map[string]column{}
	for rows.Next() {
		var name string
		var c column
		if err := rows.Scan(&name, &c.num, &c.typ, &c.baseName, &c.typName, &c.notNull, &c.hasDef); err != nil {
			return nil, fmt.Errorf("look up columns: %w", err)
		}
		out[name] = c
	}
	return out, rows.Err()
}

// hasUniqueOn reports whether the referenced columns are exactly the key of
// a unique index PostgreSQL accepts for a foreign key (transformFkeyCheckAttrs):
// unique, immediate (not deferrable), no predicate, no expressions, the same
// set of key columns. PRIMARY KEY and UNIQUE constraints have such an index.
func hasUniqueOn(ctx context.Context, q Querier, rel uint32, attnums []int16) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT EXISTS (
		SELECT 1 FROM pg_catalog.pg_index i
		WHERE i.indrelid = $1 AND i.indisunique AND i.indimmediate
		  AND i.indpred IS NULL AND i.indexprs IS NULL
		  AND i.indnkeyatts = cardinality($2::int2[])
		  AND (SELECT array_agg(k ORDER BY k) FROM unnest((i.indkey::int2[])[0:i.indnkeyatts-1]) k)
		    = (SELECT array_agg(k ORDER BY k) FROM unnest($2::int2[]) k))`, rel, attnums).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("look up unique indexes: %w", err)
	}
	return ok, nil
}

// primaryKeyColumns returns the key columns of rel's primary key in key
// order (what PostgreSQL uses for REFERENCES without a column list), or nil
// when it has none.
func primaryKeyColumns(ctx context.Context, q Querier, rel uint32, t plan.TableName) ([]string, error) {
	var cols []string
	err := q.QueryRow(ctx, `SELECT coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord)
			FROM unnest(c.conkey) WITH ORDINALITY k(n, ord)
			JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n), '{}')
		FROM pg_catalog.pg_constraint c WHERE c.conrelid = $1 AND c.contype = 'p'`, rel).Scan(&cols)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up primary key of %s: %w", t, err)
	}
	return cols, nil
}

// ResolveReferences fills the empty RefColumns of every foreign key in p
// (REFERENCES written without a column list) with the primary key columns of
// the referenced table, in key order, as PostgreSQL would. Keys that cannot
// be resolved (referenced table missing or without a primary key) are all
// named in one error; those that can are filled in regardless.
func ResolveReferences(ctx context.Context, q Querier, p *plan.Plan) error {
	var errs []error
	for i := range p.ForeignKeys {
		fk := &p.ForeignKeys[i]
		if len(fk.RefColumns) > 0 {
			continue
		}
		rel, ok, err := lookupRelation(ctx, q, fk.RefTable)
		if err != nil {
			return fmt.Errorf("resolve referenced columns of %s: %w", fk.ID(), err)
		}
		if !ok {
			errs = append(errs, fmt.Errorf("foreign key %s: referenced table %s does not exist, so its primary key cannot stand in for the missing column list", fk.ID(), fk.RefTable))
			continue
		}
		pk, err := primaryKeyColumns(ctx, q, rel.oid, fk.RefTable)
		if err != nil {
			return fmt.Errorf("resolve referenced columns of %s: %w", fk.ID(), err)
		}
		if len(pk) == 0 {
			errs = append(errs, fmt.Errorf("foreign key %s: REFERENCES %s has no column list, but %s has no primary key; list the referenced columns", fk.ID(), fk.RefTable, fk.RefTable))
			continue
		}
		fk.RefColumns = pk
	}
	if len(errs) > 0 {
		return fmt.Errorf("resolve referenced columns: %w", errors.Join(errs...))
	}
	return nil
}

// Check validates the plan against the catalog and returns every problem at
// once. The error is only for database failures.
func Check(ctx context.Context, q Querier, p plan.Plan) (Report, error) {
	r := Report{Problems: []Problem{}, States: map[string]ConstraintState{}}
	add := func(fk plan.ForeignKey, rule, format string, args ...any) {
		r.Problems = append(r.Problems, Problem{FK: fk.ID(), Rule: rule, Message: fmt.Sprintf(format, args...)})
	}
	seen := map[string]int{}
	for _, fk := range p.ForeignKeys {
		key := fk.Table.Schema + "\x00" + fk.Table.Name + "\x00" + fk.Name
		seen[key]++
		if seen[key] == 2 {
			add(fk, RuleDuplicateName, "constraint name %q is used more than once for table %s in the plan", fk.Name, fk.Table)
		}
	}
	for _, fk := range p.ForeignKeys {
		if err := checkOne(ctx, q, fk, &r, add); err != nil {
			return r, err
		}
	}
	return r, nil
}

// checkDefinition reports what is wrong with fk whatever the database.
func checkDefinition(fk plan.ForeignKey, add func(plan.ForeignKey, string, string, ...any)) {
	if fk.Name == "" {
		add(fk, RuleNameEmpty, "constraint on %s has no name", fk.Table)
	} else if len(fk.Name) > MaxIdentifierBytes {
		add(fk, RuleNameTooLong, "constraint name %q is %d bytes; PostgreSQL would silently truncate it to %d", fk.Name, len(fk.Name), MaxIdentifierBytes)
	}
	// A truncated table or column name would make PostgreSQL act on another
	// object than the plan names.
	others := append([]string{fk.Table.Schema, fk.Table.Name, fk.RefTable.Schema, fk.RefTable.Name}, fk.Columns...)
	for _, id := range append(others, fk.RefColumns...) {
		if len(id) > MaxIdentifierBytes {
			add(fk, RuleNameTooLong, "identifier %q is %d bytes; PostgreSQL would silently truncate it to %d", id, len(id), MaxIdentifierBytes)
		}
	}
	if len(fk.Columns) == 0 {
		add(fk, RuleNoColumns, "foreign key on %s must list its columns", fk.Table)
	}
	for _, pair := range []struct {
		t    plan.TableName
		cols []string
	}{{fk.Table, fk.Columns}, {fk.RefTable, fk.RefColumns}} {
		if d := firstDuplicate(pair.cols); d != "" {
			add(fk, RuleDuplicateColumn, "column %q is listed twice for %s", d, pair.t)
		}
	}
	if fk.Match != "" && fk.Match != plan.MatchSimple && fk.Match != plan.MatchFull {
		add(fk, RuleMatchPartial, "MATCH %s is not supported by PostgreSQL (use SIMPLE or FULL)", fk.Match)
	}
	if fk.InitiallyDeferred && !fk.Deferrable {
		add(fk, RuleDeferred, "INITIALLY DEFERRED requires DEFERRABLE")
	}
}

// checkColumnCount runs once the referenced columns are known.
func checkColumnCount(fk plan.ForeignKey, add func(plan.ForeignKey, string, string, ...any)) {
	if len(fk.Columns) > 0 && len(fk.RefColumns) > 0 && len(fk.Columns) != len(fk.RefColumns) {
		add(fk, RuleColumnCount, "%d column(s) on %s (%s) but %d referenced column(s) on %s (%s)",
			len(fk.Columns), fk.Table, strings.Join(fk.Columns, ", "), len(fk.RefColumns), fk.RefTable, strings.Join(fk.RefColumns, ", "))
	}
}

func checkOne(ctx context.Context, q Querier, fk plan.ForeignKey, r *Report, add func(plan.ForeignKey, string, string, ...any)) error {
	checkDefinition(fk, add)

	child, childOK, err := lookupRelation(ctx, q, fk.Table)
	if err != nil {
		return err
	}
	if !childOK {
		add(fk, RuleTableMissing, "table %s does not exist (names are schema-qualified and case-exact)", fk.Table)
	} else if child.relkind != "r" && child.relkind != "p" {
		add(fk, RuleTableKind, "%s is a %s, not a table; foreign keys can only be added to tables", fk.Table, kindName(child.relkind))
		childOK = false
	}
	if childOK && child.relkind == "p" {
		// PostgreSQL cannot put a foreign key on a foreign-table partition.
		rows, err := q.Query(ctx, `SELECT pt.relid::regclass::text FROM pg_partition_tree($1::oid::regclass) pt
			JOIN pg_catalog.pg_class c ON c.oid = pt.relid WHERE c.relkind = 'f'`, child.oid)
		if err != nil {
			return fmt.Errorf("list partitions of %s: %w", fk.Table, err)
		}
		foreign, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("list partitions of %s: %w", fk.Table, err)
		}
		for _, f := range foreign {
			add(fk, RuleTableKind, "partition %s of %s is a foreign table; foreign keys cannot be added to it", f, fk.Table)
		}
	}
	parent, parentOK, err := lookupRelation(ctx, q, fk.RefTable)
	if err != nil {
		return err
	}
	if !parentOK {
		add(fk, RuleRefTableMissing, "referenced table %s does not exist (names are schema-qualified and case-exact)", fk.RefTable)
	} else if parent.relkind != "r" && parent.relkind != "p" {
		add(fk, RuleRefTableKind, "referenced %s is a %s, not a table", fk.RefTable, kindName(parent.relkind))
		parentOK = false
	}
	if parentOK && len(fk.RefColumns) == 0 {
		// REFERENCES without a column list: the primary key, as PostgreSQL
		// reads it. fk is a copy; the caller's plan is not changed.
		pk, err := primaryKeyColumns(ctx, q, parent.oid, fk.RefTable)
		if err != nil {
			return err
		}
		if len(pk) == 0 {
			add(fk, RuleRefNoPrimaryKey, "REFERENCES %s has no column list, which means its primary key, but %s has none; list the referenced columns", fk.RefTable, fk.RefTable)
			parentOK = false
		} else {
			if r.Resolved == nil {
				r.Resolved = map[string][]string{}
			}
			r.Resolved[fk.ID()] = pk
			fk.RefColumns = pk
		}
	}
	checkColumnCount(fk, add)

	var childCols, parentCols map[string]column
	if childOK {
		if childCols, err = lookupColumns(ctx, q, child.oid, fk.Columns); err != nil {
			return err
		}
		for _, c := range fk.Columns {
			if _, ok := childCols[c]; !ok {
				add(fk, RuleColumnMissing, "column %s.%s does not exist", fk.Table, plan.QuoteIfNeeded(c))
			}
		}
	}
	if parentOK {
		if parentCols, err = lookupColumns(ctx, q, parent.oid, fk.RefColumns); err != nil {
			return err
		}
		allThere := len(fk.RefColumns) > 0
		var nums []int16
		for _, c := range fk.RefColumns {
			col, ok := parentCols[c]
			if !ok {
				add(fk, RuleRefColumnMissing, "referenced column %s.%s does not exist", fk.RefTable, plan.QuoteIfNeeded(c))
				allThere = false
				continue
			}
			nums = append(nums, col.num)
		}
		if allThere && firstDuplicate(fk.RefColumns) == "" {
			ok, err := hasUniqueOn(ctx, q, parent.oid, nums)
			if err != nil {
				return err
			}
			if !ok {
				add(fk, RuleNoUniqueOnRef, "referenced column(s) %s (%s) carry no PRIMARY KEY, UNIQUE constraint or non-partial, non-deferrable unique index",
					fk.RefTable, strings.Join(fk.RefColumns, ", "))
			}
		}
	}
	if childOK && parentOK && len(fk.Columns) == len(fk.RefColumns) {
		for i, c := range fk.Columns {
			cc, ok1 := childCols[c]
			pc, ok2 := parentCols[fk.RefColumns[i]]
			if ok1 && ok2 && cc.typ != pc.typ {
				add(fk, RuleTypeMismatch, "type mismatch: %s.%s is %s but %s.%s is %s",
					fk.Table, plan.QuoteIfNeeded(c), describeType(cc), fk.RefTable, plan.QuoteIfNeeded(fk.RefColumns[i]), describeType(pc))
			}
		}
	}
	if childOK {
		for _, c := range fk.Columns {
			col, ok := childCols[c]
			if !ok {
				continue
			}
			if fk.EffectiveOnDelete() == plan.ActionSetNull || fk.EffectiveOnUpdate() == plan.ActionSetNull {
				if col.notNull {
					add(fk, RuleSetNullNotNull, "ON ... SET NULL but %s.%s is NOT NULL: deleting a referenced row would fail", fk.Table, plan.QuoteIfNeeded(c))
				}
			}
			if fk.EffectiveOnDelete() == plan.ActionSetDefault || fk.EffectiveOnUpdate() == plan.ActionSetDefault {
				if !col.hasDef {
					add(fk, RuleSetDefaultNoDef, "ON ... SET DEFAULT but %s.%s has no default (it would be set to NULL)", fk.Table, plan.QuoteIfNeeded(c))
				}
			}
		}
	}
	if !childOK || fk.Name == "" {
		return nil
	}
	st, err := lookupIn(ctx, q, fk, child)
	if err != nil {
		return err
	}
	r.States[fk.Name] = st
	switch {
	case st.Exists && st.Kind != "f":
		add(fk, RuleNameConflict, "%s already has a %s constraint named %q", fk.Table, kindName("c"+st.Kind), fk.Name)
	case st.Exists && !st.SameDefinition:
		add(fk, RuleDefinitionConflict, "%s already has constraint %q with a different definition: database has %q, plan wants %q (%s)",
			fk.Table, fk.Name, st.Definition, planDefinition(fk), strings.Join(st.Differences, "; "))
	}
	var idx bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
		WHERE i.indrelid = $1 AND c.relname = $2)`, child.oid, fk.Name).Scan(&idx); err != nil {
		return fmt.Errorf("look up indexes of %s: %w", fk.Table, err)
	}
	if idx && !(st.Exists && st.Kind != "f") {
		add(fk, RuleNameConflict, "%s already has an index named %q; give the foreign key its own name", fk.Table, fk.Name)
	}
	return nil
}

func describeType(c column) string {
	if c.typName != c.baseName {
		return fmt.Sprintf("%s (domain over %s)", c.typName, c.baseName)
	}
	return c.typName
}

func firstDuplicate(cols []string) string {
	seen := map[string]bool{}
	for _, c := range cols {
		if seen[c] {
			return c
		}
		seen[c] = true
	}
	return ""
}

func kindName(k string) string {
	switch k {
	case "v":
		return "view"
	case "m":
		return "materialized view"
	case "f":
		return "foreign table"
	case "S":
		return "sequence"
	case "i", "I":
		return "index"
	case "c":
		return "composite type"
	case "t":
		return "TOAST table"
	case "cp":
		return "PRIMARY KEY"
	case "cu":
		return "UNIQUE"
	case "cc":
		return "CHECK"
	case "cx":
		return "EXCLUDE"
	case "ct":
		return "constraint trigger"
	}
	return "relation of kind " + k
}

// Lookup reads the state of fk's constraint (by name, on fk.Table).
// A missing table yields a zero state, not an error.
func Lookup(ctx context.Context, q Querier, fk plan.ForeignKey) (ConstraintState, error) {
	rel, ok, err := lookupRelation(ctx, q, fk.Table)
	if err != nil || !ok {
		return ConstraintState{}, err
	}
	return lookupIn(ctx, q, fk, rel)
}

var actionCodes = map[string]plan.Action{"a": plan.ActionNoAction, "r": plan.ActionRestrict, "c": plan.ActionCascade, "n": plan.ActionSetNull, "d": plan.ActionSetDefault}
var matchCodes = map[string]plan.MatchType{"s": plan.MatchSimple, "f": plan.MatchFull, "p": "PARTIAL"}

func lookupIn(ctx context.Context, q Querier, fk plan.ForeignKey, rel relation) (ConstraintState, error) {
	st := ConstraintState{Partitioned: rel.relkind == "p"}
	var (
		kind, def, refSchema, refName, del, upd, match string
		cols, refCols                                  []string
		deferrable, deferred, hasDelSetCols            bool
	)
	err := q.QueryRow(ctx, `SELECT c.contype::text, c.convalidated, pg_get_constraintdef(c.oid), c.conparentid <> 0,
			coalesce(rn.nspname, ''), coalesce(rc.relname, ''),
			c.confdeltype::text, c.confupdtype::text, c.confmatchtype::text, c.condeferrable, c.condeferred,
			coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(c.conkey) WITH ORDINALITY k(n, ord)
				JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n), '{}'),
			coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(c.confkey) WITH ORDINALITY k(n, ord)
				JOIN pg_catalog.pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n), '{}'),
			c.confdelsetcols IS NOT NULL
		FROM pg_catalog.pg_constraint c
		LEFT JOIN pg_catalog.pg_class rc ON rc.oid = c.confrelid
		LEFT JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
		WHERE c.conrelid = $1 AND c.conname = $2`, rel.oid, fk.Name).Scan(
		&kind, &st.Validated, &def, &st.Inherited, &refSchema, &refName, &del, &upd, &match, &deferrable, &deferred, &cols, &refCols, &hasDelSetCols)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("look up constraint %s on %s: %w", fk.Name, fk.Table, err)
	}
	st.Exists, st.Kind, st.Definition = true, kind, def
	if kind == "f" && len(fk.RefColumns) == 0 {
		// An unresolved plan key means the referenced primary key.
		if fk.RefColumns, err = resolvedRefColumns(ctx, q, fk); err != nil {
			return st, err
		}
	}
	if kind != "f" {
		st.Differences = []string{"not a foreign key"}
	} else {
		var d []string
		diff := func(what string, have, want any) {
			if fmt.Sprint(have) != fmt.Sprint(want) {
				d = append(d, fmt.Sprintf("%s: database %v, plan %v", what, have, want))
			}
		}
		diff("columns", cols, fk.Columns)
		diff("referenced table", plan.TableName{Schema: refSchema, Name: refName}, fk.RefTable)
		diff("referenced columns", refCols, fk.RefColumns)
		diff("on delete", actionCodes[del], fk.EffectiveOnDelete())
		diff("on update", actionCodes[upd], fk.EffectiveOnUpdate())
		diff("match", matchCodes[match], fk.EffectiveMatch())
		diff("deferrable", deferrable, fk.Deferrable)
		diff("initially deferred", deferred, fk.InitiallyDeferred)
		if hasDelSetCols {
			d = append(d, "database has ON DELETE SET NULL/DEFAULT (column list)")
		}
		st.Differences = d
		st.SameDefinition = len(d) == 0
	}
	owner, err := OwnerOf(ctx, q, fk.Table, fk.Name)
	if err != nil {
		return st, err
	}
	st.OwnerRollout, st.OwnerRun = owner.RolloutID, owner.RunID
	return st, nil
}

// resolvedRefColumns is the primary key of fk.RefTable, nil when the table
// or its primary key is missing.
func resolvedRefColumns(ctx context.Context, q Querier, fk plan.ForeignKey) ([]string, error) {
	rel, ok, err := lookupRelation(ctx, q, fk.RefTable)
	if err != nil || !ok {
		return nil, err
	}
	return primaryKeyColumns(ctx, q, rel.oid, fk.RefTable)
}

// Owner returns who fkrollout.constraints records as the constraint's creator.
func (s ConstraintState) Owner() Owner { return Owner{RolloutID: s.OwnerRollout, RunID: s.OwnerRun} }

// Owner is an ownership row of fkrollout.constraints: the rollout and the
// run of it that created the constraint. The zero Owner means none.
type Owner struct {
	RolloutID string `json:"rollout_id,omitempty"`
	// RunID is "" for rows written before ownership was bound to runs.
	RunID string `json:"run_id,omitempty"`
}

// Owns reports whether the constraint belongs to run runID of rollout
// rolloutID. A workflow id can be reused once its run has closed, so the
// rollout id alone does not identify who created a constraint: a new run
// must never own (and so never roll back) what an earlier run created.
//
// Two cases match by rollout id alone:
//   - a row without a run id, written before runs were recorded: a rollout
//     in flight during the upgrade keeps its constraints and can still roll
//     them back;
//   - runID == "": a caller that names no run (an operator's manual
//     rollback by rollout id) acts on every run of that rollout.
func (o Owner) Owns(rolloutID, runID string) bool {
	if rolloutID == "" || o.RolloutID != rolloutID {
		return false
	}
	return o.RunID == "" || runID == "" || o.RunID == runID
}

// OwnerOf returns the rollout and run recorded in fkrollout.constraints for
// the constraint, or the zero Owner when none (or the bookkeeping schema does
// not exist yet). Compare with Owner.Owns, never by rollout id alone.
func OwnerOf(ctx context.Context, q Querier, t plan.TableName, name string) (Owner, error) {
	// The run_id column may not exist yet either (a database whose
	// bookkeeping predates it and that no run has touched since): every row
	// is then a row without a run.
	var present, hasRun bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('fkrollout.constraints') IS NOT NULL,
		EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass('fkrollout.constraints') AND attname = 'run_id' AND NOT attisdropped)`).
		Scan(&present, &hasRun); err != nil {
		return Owner{}, fmt.Errorf("look up fkrollout.constraints: %w", err)
	}
	if !present {
		return Owner{}, nil
	}
	run := "''"
	if hasRun {
		run = "coalesce(run_id, '')"
	}
	var o Owner
	err := q.QueryRow(ctx, `SELECT rollout_id, `+run+` FROM fkrollout.constraints WHERE table_schema = $1 AND table_name = $2 AND constraint_name = $3`,
		t.Schema, t.Name, name).Scan(&o.RolloutID, &o.RunID)
	if errors.Is(err, pgx.ErrNoRows) {
		return Owner{}, nil
	}
	if err != nil {
		return Owner{}, fmt.Errorf("look up owner of %s on %s: %w", name, t, err)
	}
	return o, nil
}

// planDefinition renders fk the way pg_get_constraintdef would, for messages.
func planDefinition(fk plan.ForeignKey) string {
	s := fk.AddSQL(false)
	if i := strings.Index(s, "FOREIGN KEY"); i >= 0 {
		return s[i:]
	}
	return s
}

// PlanDefinition is the constraint body the plan asks for (for messages and
// the ownership row).
func PlanDefinition(fk plan.ForeignKey) string { return planDefinition(fk) }
