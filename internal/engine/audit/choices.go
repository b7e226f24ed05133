package audit

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

// tableFacts is what the current role may do to one table.
type tableFacts struct {
	rel       relation
	canSelect bool
	canDelete bool
	canLock   bool // SELECT ... FOR UPDATE needs UPDATE on some column
	rls       bool // row-level security applies: the role may not see every row
	hasPK     bool
	notNull   map[string]bool
	canUpdate map[string]bool
}

// loadFacts reads privileges, row security, primary key and columns of
// every table involved.
func loadFacts(ctx context.Context, q querier, w *impactWalk, fk plan.ForeignKey) (map[uint32]*tableFacts, error) {
	out := map[uint32]*tableFacts{}
	for _, r := range w.involved() {
		f := &tableFacts{rel: r, notNull: map[string]bool{}, canUpdate: map[string]bool{}}
		err := q.QueryRow(ctx, `SELECT has_table_privilege($1::oid, 'SELECT'), has_table_privilege($1::oid, 'DELETE'),
			has_any_column_privilege($1::oid, 'UPDATE'), row_security_active($1::oid::regclass),
			EXISTS (SELECT 1 FROM pg_catalog.pg_index WHERE indrelid = $1::oid AND indisprimary)`, r.oid).
			Scan(&f.canSelect, &f.canDelete, &f.canLock, &f.rls, &f.hasPK)
		if err != nil {
			return nil, fmt.Errorf("privileges on %s: %w", r.name, err)
		}
		rows, err := q.Query(ctx, `SELECT attname::text, attnotnull, has_column_privilege($1::oid, attnum, 'UPDATE')
			FROM pg_catalog.pg_attribute WHERE attrelid = $1::oid AND attnum > 0 AND NOT attisdropped`, r.oid)
		if err != nil {
			return nil, fmt.Errorf("columns of %s: %w", r.name, err)
		}
		var col string
		var nn, upd bool
		if _, err := pgx.ForEachRow(rows, []any{&col, &nn, &upd}, func() error {
			f.notNull[col], f.canUpdate[col] = nn, upd
			return nil
		}); err != nil {
			return nil, fmt.Errorf("columns of %s: %w", r.name, err)
		}
		out[r.oid] = f
	}
	return out, nil
}

func choices(rep *ImpactReport, w *impactWalk, f map[uint32]*tableFacts, fk plan.ForeignKey) []Choice {
	unknown := unreadable(w)
	return []Choice{deleteChoice(rep, f[w.root.oid], unknown), dependentsChoice(rep, w, f, unknown), setNullChoice(rep, w, f[w.root.oid], fk)}
}

// unreadable explains the edges whose rows could not be counted.
func unreadable(w *impactWalk) []string {
	var out []string
	for _, ei := range sortedInts(w.unreadable) {
		e := w.g.edges[ei]
		out = append(out, fmt.Sprintf("cannot tell which rows of %s reference removed rows through %s: no SELECT privilege on it", e.child.name, e.name))
	}
	return dedupe(out)
}

func choice(mode Mode, rows int64, reasons []string) Choice {
	return Choice{Mode: mode, Rows: rows, Possible: len(reasons) == 0, Reason: strings.Join(reasons, "; ")}
}

// deleteChoice: a plain DELETE is possible only when no other row is
// removed, changed or in the way.
func deleteChoice(rep *ImpactReport, root *tableFacts, unknown []string) Choice {
	reasons := append([]string(nil), unknown...)
	if len(rep.Dependents) > 0 {
		reasons = append(reasons, "deleting the orphans would remove, change or be blocked by other rows: "+
			describeDependents(rep.Dependents)+" (choose delete_with_dependents to quarantine them too)")
	}
	reasons = append(reasons, deletePrivileges(root)...)
	return choice(ModeDelete, rep.Orphans, reasons)
}

// dependentsChoice: delete_with_dependents needs dependents, the right to
// remove or change each of them, and no SET DEFAULT among them.
func dependentsChoice(rep *ImpactReport, w *impactWalk, f map[uint32]*tableFacts, unknown []string) Choice {
	reasons := append([]string(nil), unknown...)
	if len(rep.Dependents) == 0 && len(unknown) == 0 {
		reasons = append(reasons, "nothing references the orphan rows (choose delete)")
	}
	var rows int64
	for _, t := range w.tableChanges(ModeDelete) {
		rows += t.Deleted + t.Updated
	}
	for _, t := range w.tablesInClosure() {
		reasons = append(reasons, deletePrivileges(f[t])...)
	}
	var setDefault []Dependent
	for _, d := range rep.Dependents {
		if d.Effect == string(effectSetDefault) {
			setDefault = append(setDefault, d)
		}
	}
	if len(setDefault) > 0 {
		reasons = append(reasons, "ON DELETE SET DEFAULT dependents are not supported (the default may itself be an orphan, and a restore could not tell it from a later change): "+
			describeDependents(setDefault))
	}
	for _, ei := range w.setEdges() {
		if e := w.g.edges[ei]; e.effect() == effectSetNull {
			reasons = append(reasons, nullable(f[e.child.oid], e.setCols, w.g, "SET NULL dependents through "+e.name)...)
		}
	}
	return choice(ModeDeleteWithDependents, rows, dedupe(reasons))
}

// setNullChoice: nulling the FK columns of the orphans.
func setNullChoice(rep *ImpactReport, w *impactWalk, root *tableFacts, fk plan.ForeignKey) Choice {
	return choice(ModeSetNull, rep.Orphans, nullable(root, fk.Columns, w.g, "set_null"))
}

// nullable lists why cols of table f cannot be set to NULL and restored.
func nullable(f *tableFacts, cols []string, g *graph, what string) []string {
	t := f.rel.name
	var reasons, notNull, denied []string
	for _, c := range cols {
		if f.notNull[c] {
			notNull = append(notNull, c)
		}
		if !f.canUpdate[c] {
			denied = append(denied, c)
		}
	}
	if len(notNull) > 0 {
		reasons = append(reasons, fmt.Sprintf("%s: column(s) %s of %s are NOT NULL", what, strings.Join(notNull, ", "), t))
	}
	if !f.hasPK {
		reasons = append(reasons, fmt.Sprintf("%s: %s has no primary key to find its rows by when restoring", what, t))
	}
	if refs := referencedBy(g, f.rel.oid, cols); len(refs) > 0 {
		reasons = append(reasons, fmt.Sprintf("%s: column(s) of %s are referenced by %s (their ON UPDATE action would apply)", what, t, strings.Join(refs, ", ")))
	}
	if len(denied) > 0 {
		reasons = append(reasons, fmt.Sprintf("%s: no UPDATE privilege on column(s) %s of %s", what, strings.Join(denied, ", "), t))
	}
	if !f.canSelect {
		reasons = append(reasons, fmt.Sprintf("%s: no SELECT privilege on %s (rows are copied to quarantine)", what, t))
	}
	if f.rls {
		reasons = append(reasons, fmt.Sprintf("%s: row-level security applies to %s for this role, which may not see every row", what, t))
	}
	return reasons
}

// deletePrivileges lists why the role cannot lock, copy and delete rows of f.
func deletePrivileges(f *tableFacts) []string {
	t := f.rel.name
	var missing []string
	if !f.canSelect {
		missing = append(missing, "SELECT")
	}
	if !f.canDelete {
		missing = append(missing, "DELETE")
	}
	if !f.canLock {
		missing = append(missing, "UPDATE (to lock rows FOR UPDATE)")
	}
	var reasons []string
	if len(missing) > 0 {
		reasons = append(reasons, fmt.Sprintf("no %s privilege on %s", strings.Join(missing, ", "), t))
	}
	if f.rls {
		reasons = append(reasons, fmt.Sprintf("row-level security applies to %s for this role, which may not see every row", t))
	}
	return reasons
}

// referencedBy names the FK constraints referencing any of cols of table t.
func referencedBy(g *graph, t uint32, cols []string) []string {
	set := map[string]bool{}
	for _, c := range cols {
		set[c] = true
	}
	var out []string
	for _, ei := range g.into[t] {
		e := g.edges[ei]
		for _, c := range e.refCols {
			if set[c] {
				out = append(out, e.name+" of "+e.child.name.String())
				break
			}
		}
	}
	return out
}

// describeDependents: "public.invoice_line via invoice_line_fk (NO ACTION,
// blocks): 12 rows at depth 1, ...".
func describeDependents(ds []Dependent) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		how := d.OnDelete
		if d.Blocks {
			how += ", blocks"
		}
		if !d.Validated {
			how += ", NOT VALID"
		}
		parts[i] = fmt.Sprintf("%s via %s (%s): %d row(s) at depth %d", d.Table, d.Constraint, how, d.Rows, d.Depth)
	}
	return strings.Join(parts, ", ")
}

func dedupe(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
