package audit

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/fkrollout/fkrollout/internal/engine/meta"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

// errRescued: an orphan locked for the batch had a parent by the time it
// was deleted; the batch is rolled back and redone without it.
var errRescued = errors.New("an orphan row got a parent during the batch")

// foundRow is a row the batch removes or changes, with how it was reached.
type foundRow struct {
	rid
	depth int
	via   *string // constraint of the row's table it was reached through; nil for the orphans
}

// closure is what one batch removes: rows to delete per table (breadth
// first, each row once) and rows to null per SET NULL edge.
type closure struct {
	del   map[uint32][]foundRow
	rels  map[uint32]relation
	seen  map[string]bool // rid keys of every row to delete, the orphans included
	nulls map[int][]foundRow
}

// deleteBatch deletes the locked orphans and, for delete_with_dependents,
// every row depending on them; for plain delete, a dependent found here
// (one that appeared after the pre-check) fails the batch.
// It returns the quarantine rows written per table and the orphans deleted.
func (b *batchRun) deleteBatch(ctx context.Context, tx pgx.Tx, orphans []rid) (captured, int64, error) {
	g, err := loadGraph(ctx, tx)
	if err != nil {
		return nil, 0, err
	}
	cl, err := b.walk(ctx, tx, g, orphans)
	if err != nil {
		return nil, 0, err
	}
	cp := captured{}
	for _, ei := range sortedInts(cl.nulls) {
		if err := b.nullDependents(ctx, tx, g.edges[ei], cl.nulls[ei], cp); err != nil {
			return nil, 0, err
		}
	}
	if err := b.deleteAll(ctx, tx, orphans, cl, cp); err != nil {
		return nil, 0, err
	}
	return cp, int64(len(orphans)), nil
}

// walk finds, level by level, the rows referencing rows already found,
// locking each level FOR UPDATE before looking for the next: a row that
// references a locked row cannot be inserted meanwhile (its FK check needs
// a KEY SHARE lock on the parent), so the closure is complete when the walk
// ends. Rows already found are not followed again, so cycles end.
func (b *batchRun) walk(ctx context.Context, tx pgx.Tx, g *graph, orphans []rid) (*closure, error) {
	cl := &closure{del: map[uint32][]foundRow{}, rels: map[uint32]relation{}, seen: map[string]bool{}, nulls: map[int][]foundRow{}}
	for _, r := range orphans {
		cl.seen[r.key()] = true
	}
	nulled := map[string]bool{}
	withDeps := b.mode == ModeDeleteWithDependents
	frontier := map[uint32][]rid{b.root.oid: orphans}
	for d := 1; len(frontier) > 0; d++ {
		next := map[uint32][]rid{}
		for _, p := range sortedOIDs(frontier) {
			for _, ei := range g.into[p] {
				e := g.edges[ei]
				if !e.child.canRead {
					return nil, fmt.Errorf("%w: cannot tell which rows of %s reference removed rows through %s: no SELECT privilege on it", ErrNotPossible, e.child.name, e.name)
				}
				found, err := referencing(ctx, tx, e, frontier[p], withDeps && e.child.canLock)
				if err != nil {
					return nil, fmt.Errorf("rows of %s referencing %s through %s: %w", e.child.name, e.parent.name, e.name, err)
				}
				if len(found) == 0 {
					continue
				}
				if err := b.allowed(e, d, len(found)); err != nil {
					return nil, err
				}
				via := e.name
				for _, r := range found {
					switch {
					case e.effect() == effectDelete && !cl.seen[r.key()]:
						cl.seen[r.key()] = true
						cl.rels[e.child.oid] = e.child
						cl.del[e.child.oid] = append(cl.del[e.child.oid], foundRow{r, d, &via})
						next[e.child.oid] = append(next[e.child.oid], r)
					case e.effect() == effectSetNull && !nulled[strconv.Itoa(ei)+"/"+r.key()]:
						nulled[strconv.Itoa(ei)+"/"+r.key()] = true
						cl.nulls[ei] = append(cl.nulls[ei], foundRow{r, d, &via})
					}
				}
			}
		}
		frontier = next
	}
	// A row both nulled and deleted is only deleted.
	for ei, rows := range cl.nulls {
		kept := rows[:0]
		for _, r := range rows {
			if !cl.seen[r.key()] {
				kept = append(kept, r)
			}
		}
		cl.nulls[ei] = kept
	}
	return cl, nil
}

// allowed refuses rows found through e at depth d that this batch may not
// remove or change.
func (b *batchRun) allowed(e edge, d, n int) error {
	switch {
	case b.mode != ModeDeleteWithDependents:
		return fmt.Errorf("%w: %d row(s) of %s reference orphan rows of this batch through %s (ON DELETE %s); nothing changed (choose delete_with_dependents)",
			ErrDependents, n, e.child.name, e.name, e.onDelete)
	case d > MaxDependencyDepth:
		return fmt.Errorf("%w: rows of %s are %d references away from the orphans (limit %d)", ErrTooDeep, e.child.name, d, MaxDependencyDepth)
	case e.effect() == effectSetDefault:
		return fmt.Errorf("%w: %d row(s) of %s reference orphan rows through %s, ON DELETE SET DEFAULT, which delete_with_dependents does not support",
			ErrNotPossible, n, e.child.name, e.name)
	case !e.child.canLock || (e.effect() == effectDelete && !e.child.canDelete):
		return fmt.Errorf("%w: %d row(s) of %s reference removed rows through %s, and this role may not lock and %s them",
			ErrNotPossible, n, e.child.name, e.name, map[effect]string{effectDelete: "delete", effectSetNull: "update"}[e.effect()])
	}
	return nil
}

// referencing returns the rows of e's child that reference the given rows
// of its parent, locked FOR UPDATE when lock is set.
func referencing(ctx context.Context, tx pgx.Tx, e edge, parents []rid, lock bool) ([]rid, error) {
	sql := "SELECT x.tableoid::oid, x.ctid::text FROM " + e.parent.from() + " p JOIN " + e.child.from() + " x ON " +
		e.joinCondition("x", func(c string) string { return "p." + quote(c) }) + " WHERE " + ridFilter("p", 1)
	if lock {
		sql += " FOR UPDATE OF x"
	}
	tids, keys := ridArgs(parents)
	rows, err := tx.Query(ctx, sql, tids, keys)
	if err != nil {
		return nil, err
	}
	var out []rid
	var r rid
	_, err = pgx.ForEachRow(rows, []any{&r.rel, &r.tid}, func() error {
		out = append(out, r)
		return nil
	})
	return out, err
}

// nullDependents copies the rows of one SET NULL edge to quarantine and
// sets the edge's columns to NULL, as the constraint's action would.
func (b *batchRun) nullDependents(ctx context.Context, tx pgx.Tx, e edge, rows []foundRow, cp captured) error {
	if len(rows) == 0 {
		return nil
	}
	sets := make([]string, len(e.setCols))
	for i, c := range e.setCols {
		sets[i] = quote(c) + " = NULL"
	}
	tids, keys := ridArgs(ridsOf(rows))
	sql := `WITH old AS (SELECT c.tableoid::oid::text || ':' || c.ctid::text AS k, to_jsonb(c) AS row_data FROM ` + e.child.from() + ` c WHERE ` + ridFilter("c", 1) + `),
q AS (INSERT INTO ` + meta.QuarantineTable + ` (rollout_id, run_id, constraint_name, table_schema, table_name, action, row_data, fk_columns, depth, via_constraint)
      SELECT $3, NULLIF($4::text, ''), $5, $6, $7, 'set_null', old.row_data, $8::text[], m.depth, $9
      FROM old JOIN unnest($2::text[], $10::int[]) m(k, depth) ON m.k = old.k RETURNING 1),
u AS (UPDATE ` + e.child.from() + ` c SET ` + strings.Join(sets, ", ") + ` WHERE ` + ridFilter("c", 1) + ` RETURNING 1)
SELECT (SELECT count(*) FROM q), (SELECT count(*) FROM u)`
	var quarantined, updated int64
	err := tx.QueryRow(ctx, sql, tids, keys, b.rolloutID, b.runID, b.fk.Name, e.child.name.Schema, e.child.name.Name, e.setCols, e.name, depthsOf(rows)).
		Scan(&quarantined, &updated)
	if err != nil {
		return fmt.Errorf("quarantine and null %s rows of %s: %w", e.name, e.child.name, err)
	}
	if quarantined != int64(len(rows)) || updated != quarantined {
		return fmt.Errorf("%s rows of %s: %d locked, %d quarantined, %d nulled; batch rolled back", e.name, e.child.name, len(rows), quarantined, updated)
	}
	cp.add(e.child, 0, updated)
	return nil
}

// deleteGroup is the rows of one table one CTE of deleteAll removes.
type deleteGroup struct {
	rel     relation
	from    string
	rows    []foundRow
	orphans bool // re-check the orphan predicate (a parent may have appeared)
}

// deleteAll copies and deletes the orphans and every dependent to delete
// in one statement: PostgreSQL checks RESTRICT/NO ACTION keys and runs
// CASCADE actions at the end of the statement, when every row of the
// closure is gone, so rows referencing each other (cycles, self-references)
// go together and the RI actions find nothing left to do.
func (b *batchRun) deleteAll(ctx context.Context, tx pgx.Tx, orphans []rid, cl *closure, cp captured) error {
	level0 := make([]foundRow, len(orphans))
	for i, r := range orphans {
		level0[i] = foundRow{rid: r}
	}
	groups := []deleteGroup{{rel: b.root, from: b.fk.Table.Sanitize(), rows: level0, orphans: true}}
	for _, t := range sortedOIDs(cl.del) {
		groups = append(groups, deleteGroup{rel: cl.rels[t], from: cl.rels[t].from(), rows: cl.del[t]})
	}
	args := []any{b.rolloutID, b.runID, b.fk.Name}
	ctes := make([]string, 0, 2*len(groups))
	var dCounts, qCounts []string
	for i, g := range groups {
		n := len(args) + 1
		tids, keys := ridArgs(ridsOf(g.rows))
		args = append(args, tids, keys, g.rel.name.Schema, g.rel.name.Name, depthsOf(g.rows), viasOf(g.rows))
		where := ridFilter("c", n)
		if g.orphans {
			where += " AND " + b.pred
		}
		ctes = append(ctes,
			fmt.Sprintf("d%d AS (DELETE FROM %s c WHERE %s RETURNING c.tableoid::oid::text || ':' || c.ctid::text AS k, to_jsonb(c) AS row_data)", i, g.from, where),
			fmt.Sprintf(`q%[1]d AS (INSERT INTO %[2]s (rollout_id, run_id, constraint_name, table_schema, table_name, action, row_data, depth, via_constraint)
      SELECT $1, NULLIF($2::text, ''), $3, $%[3]d, $%[4]d, 'delete', d.row_data, m.depth, m.via
      FROM d%[1]d d JOIN unnest($%[5]d::text[], $%[6]d::int[], $%[7]d::text[]) m(k, depth, via) ON m.k = d.k RETURNING 1)`,
				i, meta.QuarantineTable, n+2, n+3, n+1, n+4, n+5))
		dCounts = append(dCounts, fmt.Sprintf("(SELECT count(*) FROM d%d)", i))
		qCounts = append(qCounts, fmt.Sprintf("(SELECT count(*) FROM q%d)", i))
	}
	sql := "WITH " + strings.Join(ctes, ",\n") + "\nSELECT ARRAY[" + strings.Join(dCounts, ", ") + "]::bigint[], ARRAY[" + strings.Join(qCounts, ", ") + "]::bigint[]"
	var deleted, quarantined []int64
	if err := tx.QueryRow(ctx, sql, args...).Scan(&deleted, &quarantined); err != nil {
		return fmt.Errorf("quarantine and delete batch: %w", err)
	}
	for i, g := range groups {
		switch {
		case g.orphans && deleted[i] < int64(len(g.rows)):
			return errRescued
		case deleted[i] != int64(len(g.rows)) || quarantined[i] != deleted[i]:
			return fmt.Errorf("%s: %d rows locked, %d deleted, %d quarantined; batch rolled back", g.rel.name, len(g.rows), deleted[i], quarantined[i])
		}
		cp.add(g.rel, quarantined[i], 0)
	}
	return nil
}

func ridsOf(rows []foundRow) []rid {
	out := make([]rid, len(rows))
	for i, r := range rows {
		out[i] = r.rid
	}
	return out
}

func depthsOf(rows []foundRow) []int32 {
	out := make([]int32, len(rows))
	for i, r := range rows {
		out[i] = int32(r.depth)
	}
	return out
}

func viasOf(rows []foundRow) []*string {
	out := make([]*string, len(rows))
	for i, r := range rows {
		out[i] = r.via
	}
	return out
}

func sortedInts[V any](m map[int]V) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

// captured counts the quarantine rows a batch wrote per table.
type captured map[uint32]*capture

type capture struct {
	name             plan.TableName
	deleted, updated int64
}

func (c captured) add(r relation, deleted, updated int64) {
	if c[r.oid] == nil {
		c[r.oid] = &capture{name: r.name}
	}
	c[r.oid].deleted += deleted
	c[r.oid].updated += updated
}

func (c captured) total() int64 {
	var n int64
	for _, x := range c {
		n += x.deleted + x.updated
	}
	return n
}
