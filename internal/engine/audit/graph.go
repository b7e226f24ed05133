package audit

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

// MaxDependencyDepth bounds the walk over the foreign-key graph: rows more
// than this many references away from an orphan are not followed, and a
// walk that would need to go further fails with ErrTooDeep rather than
// running unbounded on a deep (or data-cyclic) hierarchy.
const MaxDependencyDepth = 16

// relation is a table of the FK graph. Partitioned tables are addressed
// whole (their partitions' rows carry the partition's tableoid); any other
// table with ONLY, as PostgreSQL's own RI queries do, so legacy inheritance
// children are never touched.
type relation struct {
	oid         uint32
	name        plan.TableName
	partitioned bool
	// The current role's privileges: reading to find rows, locking (FOR
	// UPDATE needs UPDATE on some column) and deleting them.
	canRead, canLock, canDelete bool
}

func (r relation) from() string {
	if r.partitioned {
		return r.name.Sanitize()
	}
	return "ONLY " + r.name.Sanitize()
}

// effect is what deleting a referenced row does to a referencing row.
type effect string

const (
	effectDelete     effect = "delete"      // RESTRICT/NO ACTION (would block) or CASCADE: the row goes too
	effectSetNull    effect = "set_null"    // ON DELETE SET NULL
	effectSetDefault effect = "set_default" // ON DELETE SET DEFAULT
)

// edge is one existing FK constraint (validated or NOT VALID): child rows
// reference parent rows through cols = refCols.
type edge struct {
	name      string
	child     relation
	parent    relation
	cols      []string // referencing columns, in key order
	refCols   []string // referenced columns, in key order
	onDelete  plan.Action
	setCols   []string // columns SET NULL / SET DEFAULT change (PostgreSQL 15 column lists)
	validated bool
}

func (e edge) effect() effect {
	switch e.onDelete {
	case plan.ActionSetNull:
		return effectSetNull
	case plan.ActionSetDefault:
		return effectSetDefault
	}
	return effectDelete
}

// blocks reports whether a plain DELETE of the parent fails while a
// referencing row exists.
func (e edge) blocks() bool {
	return e.onDelete == plan.ActionNoAction || e.onDelete == plan.ActionRestrict
}

// joinCondition is the join condition "child row x references parent row p", with the
// parent's columns rendered by parentCol (real columns or CTE aliases).
// Equality never holds for a NULL, which is exactly MATCH SIMPLE/FULL's
// "references nothing" for a partially or wholly NULL key.
func (e edge) joinCondition(x string, parentCol func(string) string) string {
	eq := make([]string, len(e.cols))
	for i, c := range e.cols {
		eq[i] = x + "." + quote(c) + " = " + parentCol(e.refCols[i])
	}
	return strings.Join(eq, " AND ")
}

// graph is every FK constraint of the database, indexed by referenced table.
type graph struct {
	edges []edge
	into  map[uint32][]int // parent oid -> indexes into edges
}

var deleteActions = map[string]plan.Action{
	"a": plan.ActionNoAction, "r": plan.ActionRestrict, "c": plan.ActionCascade,
	"n": plan.ActionSetNull, "d": plan.ActionSetDefault,
}

// graphSQL reads top-level FK constraints only (conparentid = 0): the
// per-partition clones PostgreSQL adds would count the same rows twice.
const graphSQL = `
SELECT c.conname::text,
       c.conrelid::oid, cn.nspname::text, cr.relname::text, cr.relkind = 'p',
       c.confrelid::oid, fn.nspname::text, fr.relname::text, fr.relkind = 'p',
       ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o),
       ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o),
       c.confdeltype::text,
       ARRAY(SELECT a.attname::text FROM unnest(coalesce(c.confdelsetcols, '{}')) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o),
       c.convalidated,
       has_table_privilege(c.conrelid, 'SELECT'), has_any_column_privilege(c.conrelid, 'UPDATE'), has_table_privilege(c.conrelid, 'DELETE')
FROM pg_catalog.pg_constraint c
JOIN pg_catalog.pg_class cr ON cr.oid = c.conrelid
JOIN pg_catalog.pg_namespace cn ON cn.oid = cr.relnamespace
JOIN pg_catalog.pg_class fr ON fr.oid = c.confrelid
JOIN pg_catalog.pg_namespace fn ON fn.oid = fr.relnamespace
WHERE c.contype = 'f' AND c.conparentid = 0
ORDER BY cn.nspname, cr.relname, c.conname`

// loadGraph reads the FK graph in the caller's snapshot.
func loadGraph(ctx context.Context, q querier) (*graph, error) {
	rows, err := q.Query(ctx, graphSQL)
	if err != nil {
		return nil, fmt.Errorf("read foreign keys: %w", err)
	}
	g := &graph{into: map[uint32][]int{}}
	var e edge
	var delType string
	_, err = pgx.ForEachRow(rows, []any{&e.name,
		&e.child.oid, &e.child.name.Schema, &e.child.name.Name, &e.child.partitioned,
		&e.parent.oid, &e.parent.name.Schema, &e.parent.name.Name, &e.parent.partitioned,
		&e.cols, &e.refCols, &delType, &e.setCols, &e.validated,
		&e.child.canRead, &e.child.canLock, &e.child.canDelete}, func() error {
		a, ok := deleteActions[delType]
		if !ok {
			return fmt.Errorf("constraint %s: unknown ON DELETE action %q", e.name, delType)
		}
		ne := e
		ne.onDelete = a
		if len(ne.setCols) == 0 {
			ne.setCols = ne.cols
		}
		g.into[ne.parent.oid] = append(g.into[ne.parent.oid], len(g.edges))
		g.edges = append(g.edges, ne)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read foreign keys: %w", err)
	}
	return g, nil
}

// lookupRelation resolves a table of the plan to its oid and kind.
func lookupRelation(ctx context.Context, q querier, t plan.TableName) (relation, error) {
	r := relation{name: t}
	err := q.QueryRow(ctx, `SELECT c.oid, c.relkind = 'p', has_table_privilege(c.oid, 'SELECT'), has_any_column_privilege(c.oid, 'UPDATE'),
		has_table_privilege(c.oid, 'DELETE') FROM pg_catalog.pg_class c WHERE c.oid = to_regclass($1)`, t.Sanitize()).
		Scan(&r.oid, &r.partitioned, &r.canRead, &r.canLock, &r.canDelete)
	if err != nil {
		return r, fmt.Errorf("look up %s: %w", t, err)
	}
	return r, nil
}

// rid identifies one row: the tableoid of the table (or partition) holding
// it and its ctid. Only meaningful while the row is locked.
type rid struct {
	rel uint32
	tid string
}

func (r rid) key() string { return strconv.FormatUint(uint64(r.rel), 10) + ":" + r.tid }

// ridFilter is a WHERE clause over alias a matching exactly the rows of
// rids, with parameters $n (tids, for a TID scan) and $n+1 (tableoid:ctid
// keys, because a ctid alone is ambiguous across partitions).
func ridFilter(a string, n int) string {
	return fmt.Sprintf("%[1]s.ctid = ANY($%[2]d::tid[]) AND (%[1]s.tableoid::oid::text || ':' || %[1]s.ctid::text) = ANY($%[3]d::text[])", a, n, n+1)
}

func ridArgs(rows []rid) (tids, keys []string) {
	tids = make([]string, len(rows))
	keys = make([]string, len(rows))
	for i, r := range rows {
		tids[i], keys[i] = r.tid, r.key()
	}
	return tids, keys
}

func sortedOIDs[V any](m map[uint32]V) []uint32 {
	out := make([]uint32, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
