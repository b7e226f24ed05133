package audit

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

// ImpactReport is what remediating the orphans of one FK would do across
// the foreign-key graph, for an approval gate. Plain data: it travels
// through Temporal as JSON.
type ImpactReport struct {
	FK         string `json:"fk"`
	Table      string `json:"table"`
	References string `json:"references"`
	// Mode is the remediation Tables describes.
	Mode    Mode  `json:"mode"`
	Orphans int64 `json:"orphans"`
	// FKColumnsNullable: every column of the FK accepts NULL (set_null needs it).
	FKColumnsNullable bool `json:"fk_columns_nullable"`
	// HasPrimaryKey: the FK's table has one (set_null's restore finds rows by it).
	HasPrimaryKey bool `json:"has_primary_key"`
	// Tables counts the rows Mode removes or changes per table, the FK's
	// table first: exactly the quarantine rows it writes per table.
	Tables []TableChange `json:"tables"`
	// Dependents is every row, outside the orphans themselves, that deleting
	// the orphans reaches through existing FK constraints (validated or NOT
	// VALID), per constraint and depth (1 = references an orphan). Empty for
	// set_null, which never cascades.
	Dependents []Dependent `json:"dependents"`
	// Triggers are the user triggers ON DELETE or ON UPDATE of every table
	// involved; they run during remediation, and a batch in which one
	// removes or changes rows fkrollout did not copy is rolled back.
	Triggers []Trigger `json:"triggers"`
	// Choices are delete, delete_with_dependents and set_null, each possible
	// or not with the reason (accepting the debt or aborting are always
	// possible and are the workflow's to offer).
	Choices    []Choice `json:"choices"`
	DurationMS int64    `json:"duration_ms"`
}

// TableChange is what one table loses or has changed.
type TableChange struct {
	Table   string `json:"table"`
	Deleted int64  `json:"deleted"`
	// Updated counts row updates (one per SET NULL constraint a row is
	// reached through).
	Updated int64 `json:"updated"`
}

// Dependent counts the rows of one table reached through one constraint at
// one depth. A row reached through several constraints at the same depth
// is counted under each; TableChange counts it once.
type Dependent struct {
	Table      string `json:"table"`
	Constraint string `json:"constraint"`
	References string `json:"references"`
	// OnDelete is the constraint's action: NO ACTION, RESTRICT, CASCADE,
	// SET NULL or SET DEFAULT.
	OnDelete  string `json:"on_delete"`
	Validated bool   `json:"validated"`
	// Effect is what delete_with_dependents does to the rows: delete,
	// set_null or set_default.
	Effect string `json:"effect"`
	// Blocks: a plain DELETE fails (23503) while these rows exist.
	Blocks bool  `json:"blocks"`
	Rows   int64 `json:"rows"`
	Depth  int   `json:"depth"`
}

// Trigger is a user trigger that fires on a table involved.
type Trigger struct {
	Table    string   `json:"table"`
	Name     string   `json:"name"`
	Timing   string   `json:"timing"` // BEFORE, AFTER, INSTEAD OF
	Level    string   `json:"level"`  // ROW, STATEMENT
	Events   []string `json:"events"` // INSERT, DELETE, UPDATE, TRUNCATE
	Function string   `json:"function"`
	// Enabled: fires in ordinary sessions (not DISABLEd, not REPLICA-only).
	Enabled bool `json:"enabled"`
}

// Choice is one remediation and whether it can run now.
type Choice struct {
	Mode     Mode   `json:"mode"`
	Possible bool   `json:"possible"`
	Reason   string `json:"reason,omitempty"`
	// Rows is how many rows it would remove or change, all tables together.
	Rows int64 `json:"rows"`
}

// Choice returns the report's entry for mode (zero Choice if absent).
func (r ImpactReport) Choice(mode Mode) Choice {
	for _, c := range r.Choices {
		if c.Mode == mode {
			return c
		}
	}
	return Choice{}
}

var (
	// ErrTooDeep: the rows to remove reach further than MaxDependencyDepth
	// references from the orphans.
	ErrTooDeep = errors.New("dependency walk too deep")
	// ErrDependents: a plain delete would remove or change other rows
	// (through RESTRICT/NO ACTION keys it fails, through CASCADE/SET NULL
	// it would do so without a quarantine copy).
	ErrDependents = errors.New("orphan rows have dependents")
	// ErrNotPossible: the chosen remediation cannot run (privileges,
	// row-level security, SET DEFAULT dependents...).
	ErrNotPossible = errors.New("remediation not possible")
)

// impactStatementTimeout bounds each statement of Impact.
const impactStatementTimeout = 5 * time.Minute

// Impact computes, in one READ ONLY REPEATABLE READ transaction (so every
// count is of the same snapshot), what remediating the orphans of fk with
// mode would do: the rows of every table reached through existing FK
// constraints, recursively and cycle-safe, with their ON DELETE actions;
// the user triggers involved; which choices are possible and why not.
// Rows are counted with joins on the key columns (the FK indexes), level by
// level; nothing is read into the client.
func Impact(ctx context.Context, pool *pgxpool.Pool, fk plan.ForeignKey, mode Mode) (ImpactReport, error) {
	return impact(ctx, pool, fk, mode, false)
}

// impact with lazy set counts no rows when nothing references fk's table:
// Remediate's pre-check then needs only the privilege checks.
func impact(ctx context.Context, pool *pgxpool.Pool, fk plan.ForeignKey, mode Mode, lazy bool) (ImpactReport, error) {
	start := time.Now()
	rep := ImpactReport{FK: fk.ID(), Table: fk.Table.String(), References: fk.RefTable.String(), Mode: mode,
		Tables: []TableChange{}, Dependents: []Dependent{}, Triggers: []Trigger{}, Choices: []Choice{}}
	if err := checkFK(fk); err != nil {
		return rep, err
	}
	if !mode.Valid() {
		return rep, fmt.Errorf("impact %s: unknown mode %q", fk.ID(), mode)
	}
	err := dbx.ReadOnly(ctx, pool, impactStatementTimeout, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
			return fmt.Errorf("set isolation: %w", err)
		}
		// The level statements' row estimates multiply with depth; JIT
		// would compile them for seconds to run for milliseconds.
		if _, err := tx.Exec(ctx, "SET LOCAL jit = off"); err != nil {
			return fmt.Errorf("set jit: %w", err)
		}
		return assess(ctx, tx, fk, mode, lazy, &rep)
	})
	rep.DurationMS = time.Since(start).Milliseconds()
	if err != nil {
		return rep, fmt.Errorf("impact %s: %w", fk.ID(), err)
	}
	return rep, nil
}

func assess(ctx context.Context, tx pgx.Tx, fk plan.ForeignKey, mode Mode, lazy bool, rep *ImpactReport) error {
	info, err := loadTable(ctx, tx, fk)
	if err != nil {
		return err
	}
	rep.HasPrimaryKey = len(info.pk) > 0
	rep.FKColumnsNullable = true
	for _, c := range fk.Columns {
		rep.FKColumnsNullable = rep.FKColumnsNullable && !info.notNull[c]
	}
	g, err := loadGraph(ctx, tx)
	if err != nil {
		return err
	}
	root, err := lookupRelation(ctx, tx, fk.Table)
	if err != nil {
		return err
	}
	w := &impactWalk{g: g, root: root, table: fk.Table, pred: orphanPredicate(fk)}
	if !lazy || len(g.into[root.oid]) > 0 {
		if err := w.run(ctx, tx); err != nil {
			return err
		}
	}
	rep.Orphans = w.orphans
	rep.Dependents = w.dependents()
	rep.Tables = w.tableChanges(mode)
	involved := w.involved()
	if rep.Triggers, err = loadTriggers(ctx, tx, involved); err != nil {
		return err
	}
	facts, err := loadFacts(ctx, tx, w, fk)
	if err != nil {
		return err
	}
	rep.Choices = choices(rep, w, facts, fk)
	return nil
}

// impactWalk counts the delete closure breadth-first: level 0 is the
// orphans, level d the rows referencing level d-1 through a delete-type
// edge (RESTRICT, NO ACTION, CASCADE) not already found at a lower level,
// so data cycles and self-references end. Each level is one statement that
// recomputes the lower levels as CTEs (only the edges found non-empty, each
// read with its known size as a LIMIT so the planner joins through the FK
// indexes), so nothing is stored and the transaction stays READ ONLY; SET
// NULL/SET DEFAULT edges are counted last against the whole closure.
type impactWalk struct {
	g     *graph
	root  relation
	table plan.TableName
	pred  string

	orphans int64
	// orphanRows are the orphans' row ids when there are few enough to pass
	// back as parameters: later statements then start from them with a TID
	// scan instead of scanning the table for orphans again.
	orphanRows []rid
	levels     []map[uint32][]int // per level: table -> non-empty edges into it (level 0: root)
	edgeN      map[[2]int]int64   // (edge, depth) -> rows newly reached through it
	levelN     map[uint32]int64   // table -> rows in its closure (all levels)
	setN       map[[2]int]int64   // (set edge, depth) -> rows changed
	rowsAt     map[[2]int64]int64 // (depth, table) -> distinct rows of the level
	// unreadable are edges into the closure whose table the role cannot
	// read: whether rows there reference the orphans is unknown.
	unreadable map[int]bool
}

func (w *impactWalk) run(ctx context.Context, tx pgx.Tx) error {
	w.edgeN, w.levelN, w.setN, w.unreadable = map[[2]int]int64{}, map[uint32]int64{}, map[[2]int]int64{}, map[int]bool{}
	w.rowsAt = map[[2]int64]int64{}
	if err := w.findOrphans(ctx, tx); err != nil {
		return fmt.Errorf("count orphans: %w", err)
	}
	if w.orphans == 0 {
		return nil
	}
	w.levels = []map[uint32][]int{{w.root.oid: nil}}
	w.levelN[w.root.oid] = w.orphans
	w.rowsAt[[2]int64{0, int64(w.root.oid)}] = w.orphans
	for d := 1; ; d++ {
		cands := w.candidates(d)
		if len(cands) == 0 {
			break
		}
		found, err := w.countLevel(ctx, tx, d, cands)
		if err != nil {
			return err
		}
		if len(found) == 0 {
			break
		}
		if d > MaxDependencyDepth {
			deepest := w.g.edges[found[sortedOIDs(found)[0]][0]].child.name
			return fmt.Errorf("%w: rows %d references away from the orphans of %s (limit %d), e.g. in %s", ErrTooDeep, d, w.table, MaxDependencyDepth, deepest)
		}
		w.levels = append(w.levels, found)
	}
	return w.countSetEdges(ctx, tx)
}

// inlineOrphans is the most orphan row ids Impact keeps (about 30 bytes
// each) to avoid rescanning the table for orphans at every level.
const inlineOrphans = 100_000

// findOrphans reads the orphans' row ids, or counts them when there are
// too many to keep.
func (w *impactWalk) findOrphans(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, fmt.Sprintf("SELECT c.tableoid::oid, c.ctid::text FROM %s c WHERE %s LIMIT %d", w.table.Sanitize(), w.pred, inlineOrphans+1))
	if err != nil {
		return err
	}
	var r rid
	var found []rid
	if _, err := pgx.ForEachRow(rows, []any{&r.rel, &r.tid}, func() error {
		found = append(found, r)
		return nil
	}); err != nil {
		return err
	}
	if len(found) <= inlineOrphans {
		w.orphanRows, w.orphans = found, int64(len(found))
		return nil
	}
	return tx.QueryRow(ctx, "SELECT count(*) FROM "+w.table.Sanitize()+" c WHERE "+w.pred).Scan(&w.orphans)
}

// candidates are the delete-type edges into tables found at level d-1
// that the role can read.
func (w *impactWalk) candidates(d int) []int {
	var out []int
	for _, p := range sortedOIDs(w.levels[d-1]) {
		for _, ei := range w.g.into[p] {
			if w.g.edges[ei].effect() == effectDelete && w.readable(ei) {
				out = append(out, ei)
			}
		}
	}
	return out
}

func (w *impactWalk) readable(ei int) bool {
	if !w.g.edges[ei].child.canRead {
		w.unreadable[ei] = true
		return false
	}
	return true
}

// countLevel counts each candidate edge and each table at level d and
// returns the non-empty ones.
func (w *impactWalk) countLevel(ctx context.Context, tx pgx.Tx, d int, cands []int) (map[uint32][]int, error) {
	ctes := w.chain(d - 1)
	byChild := map[uint32][]int{}
	var counts []string
	for _, ei := range cands {
		ctes = append(ctes, w.edgeCTE(d, ei))
		child := w.g.edges[ei].child.oid
		byChild[child] = append(byChild[child], ei)
		counts = append(counts, fmt.Sprintf("SELECT 'e', %d, %d, count(*) FROM %s", ei, d, edgeName(d, ei)))
	}
	for _, c := range sortedOIDs(byChild) {
		ctes = append(ctes, w.levelCTE(d, c, byChild[c]))
		counts = append(counts, fmt.Sprintf("SELECT 'l', %d, %d, count(*) FROM %s", c, d, levelName(d, c)))
	}
	found := map[uint32][]int{}
	err := w.query(ctx, tx, ctes, counts, func(kind string, idx int64, depth int, n int64) {
		if n == 0 {
			return
		}
		switch kind {
		case "e":
			w.edgeN[[2]int{int(idx), depth}] = n
			c := w.g.edges[idx].child.oid
			found[c] = append(found[c], int(idx))
		case "l":
			w.levelN[uint32(idx)] += n
			w.rowsAt[[2]int64{int64(depth), idx}] = n
		}
	})
	if err != nil {
		return nil, fmt.Errorf("count dependents at depth %d: %w", d, err)
	}
	return found, nil
}

// countSetEdges counts the rows SET NULL / SET DEFAULT edges would change:
// rows referencing any row of the closure that are not themselves in it.
// A row's depth is one more than its nearest referenced row's.
func (w *impactWalk) countSetEdges(ctx context.Context, tx pgx.Tx) error {
	last := len(w.levels) - 1
	var sets []int
	for _, p := range w.tablesInClosure() {
		for _, ei := range w.g.into[p] {
			if w.g.edges[ei].effect() != effectDelete && w.readable(ei) {
				sets = append(sets, ei)
			}
		}
	}
	if len(sets) == 0 {
		return nil
	}
	ctes := w.chain(last)
	for _, t := range w.tablesInClosure() {
		ctes = append(ctes, w.allCTE(t, last))
	}
	var counts []string
	for _, ei := range sets {
		e := w.g.edges[ei]
		notIn := ""
		if _, ok := w.levelN[e.child.oid]; ok {
			notIn = " WHERE NOT EXISTS (SELECT 1 FROM " + allName(e.child.oid) + " s WHERE s.o = x.tableoid AND s.t = x.ctid)"
		}
		ctes = append(ctes, fmt.Sprintf("n_%d AS (SELECT min(p.lvl) + 1 AS depth FROM %s p JOIN %s x ON %s%s GROUP BY x.tableoid, x.ctid)",
			ei, allName(e.parent.oid), e.child.from(), e.joinCondition("x", w.keyRef(e.parent.oid, "p")), notIn))
		counts = append(counts, fmt.Sprintf("SELECT 'n', %d, depth, count(*) FROM n_%d GROUP BY depth", ei, ei))
	}
	var tooDeep error
	err := w.query(ctx, tx, ctes, counts, func(kind string, idx int64, depth int, n int64) {
		if depth > MaxDependencyDepth && tooDeep == nil {
			tooDeep = fmt.Errorf("%w: rows %d references away from the orphans of %s (limit %d), in %s", ErrTooDeep, depth, w.table, MaxDependencyDepth, w.g.edges[idx].child.name)
		}
		w.setN[[2]int{int(idx), depth}] += n
	})
	if err != nil {
		return fmt.Errorf("count SET NULL/SET DEFAULT dependents: %w", err)
	}
	return tooDeep
}

func (w *impactWalk) query(ctx context.Context, tx pgx.Tx, ctes, counts []string, each func(kind string, idx int64, depth int, n int64)) error {
	sql := "WITH " + strings.Join(ctes, ",\n") + "\n" + strings.Join(counts, "\nUNION ALL ")
	var args []any
	if w.orphanRows != nil {
		tids, keys := ridArgs(w.orphanRows)
		args = []any{tids, keys}
	}
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	var kind string
	var idx, n int64
	var depth int
	_, err = pgx.ForEachRow(rows, []any{&kind, &idx, &depth, &n}, func() error {
		each(kind, idx, depth, n)
		return nil
	})
	return err
}

// chain is the CTEs of levels 0..upto, built from the edges found non-empty.
func (w *impactWalk) chain(upto int) []string {
	level0 := w.pred
	if w.orphanRows != nil {
		level0 = ridFilter("c", 1)
	}
	ctes := []string{levelName(0, w.root.oid) + " AS MATERIALIZED (SELECT " + w.selectList("c", w.root.oid) +
		" FROM " + w.table.Sanitize() + " c WHERE " + level0 + ")"}
	for d := 1; d <= upto; d++ {
		for _, c := range sortedOIDs(w.levels[d]) {
			for _, ei := range w.levels[d][c] {
				ctes = append(ctes, w.edgeCTE(d, ei))
			}
			ctes = append(ctes, w.levelCTE(d, c, w.levels[d][c]))
			if prev := w.seenBefore(d, c); prev != "" {
				ctes = append(ctes, fmt.Sprintf("s%d_%d AS MATERIALIZED (SELECT o, t FROM %s UNION ALL SELECT o, t FROM %s)", d, c, prev, levelName(d, c)))
			}
		}
	}
	return ctes
}

// seenBefore names the CTE of every row of table t found below level d
// ("" if none): the level itself where it is t's first, else the running
// union s<level>_<t>, so each level needs one anti-join, not one per level.
func (w *impactWalk) seenBefore(d int, t uint32) string {
	for j := min(d, len(w.levels)) - 1; j >= 0; j-- {
		if _, ok := w.levels[j][t]; !ok {
			continue
		}
		if w.seenBefore(j, t) == "" {
			return levelName(j, t)
		}
		return fmt.Sprintf("s%d_%d", j, t)
	}
	return ""
}

// edgeCTE: the rows of the edge's child referencing level d-1 rows of its
// parent and found at no lower level.
func (w *impactWalk) edgeCTE(d, ei int) string {
	e := w.g.edges[ei]
	where := ""
	if seen := w.seenBefore(d, e.child.oid); seen != "" {
		where = fmt.Sprintf(" WHERE NOT EXISTS (SELECT 1 FROM (SELECT o, t FROM %s LIMIT %d) s WHERE s.o = x.tableoid AND s.t = x.ctid)",
			seen, w.rowsBelow(d, e.child.oid))
	}
	return fmt.Sprintf("%s AS (SELECT %s FROM %s p JOIN %s x ON %s%s)", edgeName(d, ei), w.selectList("x", e.child.oid),
		w.sized(d-1, e.parent.oid), e.child.from(), e.joinCondition("x", w.keyRef(e.parent.oid, "p")), where)
}

// sized reads level d of table t with its known row count as a LIMIT: it
// returns every row, and tells the planner the true size. Without it the
// planner's guesses multiply level by level, and it would hash a whole
// child table rather than use the FK index for a few parent rows.
func (w *impactWalk) sized(d int, t uint32) string {
	return fmt.Sprintf("(SELECT * FROM %s LIMIT %d)", levelName(d, t), w.rowsAt[[2]int64{int64(d), int64(t)}])
}

// rowsBelow is how many rows of table t levels 0..d-1 hold.
func (w *impactWalk) rowsBelow(d int, t uint32) int64 {
	var n int64
	for j := 0; j < d; j++ {
		n += w.rowsAt[[2]int64{int64(j), int64(t)}]
	}
	return n
}

// levelCTE: the distinct rows of table c at level d.
func (w *impactWalk) levelCTE(d int, c uint32, edges []int) string {
	parts := make([]string, len(edges))
	for i, ei := range edges {
		parts[i] = "SELECT * FROM " + edgeName(d, ei)
	}
	return levelName(d, c) + " AS MATERIALIZED (" + strings.Join(parts, " UNION ") + ")"
}

// allCTE: every level of table t, with its level.
func (w *impactWalk) allCTE(t uint32, upto int) string {
	var parts []string
	for d := 0; d <= upto; d++ {
		if _, ok := w.levels[d][t]; ok {
			parts = append(parts, fmt.Sprintf("SELECT %d AS lvl, * FROM %s l", d, w.sized(d, t)))
		}
	}
	return allName(t) + " AS (" + strings.Join(parts, " UNION ALL ") + ")"
}

// keyCols are the columns of table t that edges into it reference: a level
// CTE carries them (as k0, k1...) for the next level's joins.
func (w *impactWalk) keyCols(t uint32) []string {
	var cols []string
	seen := map[string]bool{}
	for _, ei := range w.g.into[t] {
		for _, c := range w.g.edges[ei].refCols {
			if !seen[c] {
				seen[c] = true
				cols = append(cols, c)
			}
		}
	}
	return cols
}

func (w *impactWalk) selectList(a string, t uint32) string {
	s := a + ".tableoid AS o, " + a + ".ctid AS t"
	for i, c := range w.keyCols(t) {
		s += fmt.Sprintf(", %s.%s AS k%d", a, quote(c), i)
	}
	return s
}

// keyRef renders a parent column as the alias its level CTE gives it.
func (w *impactWalk) keyRef(t uint32, a string) func(string) string {
	idx := map[string]int{}
	for i, c := range w.keyCols(t) {
		idx[c] = i
	}
	return func(col string) string { return fmt.Sprintf("%s.k%d", a, idx[col]) }
}

func levelName(d int, t uint32) string { return fmt.Sprintf("l%d_%d", d, t) }
func edgeName(d, ei int) string        { return fmt.Sprintf("e%d_%d", d, ei) }
func allName(t uint32) string          { return fmt.Sprintf("a_%d", t) }

// tablesInClosure lists the tables with rows to delete, root first.
func (w *impactWalk) tablesInClosure() []uint32 {
	out := []uint32{}
	if w.orphans > 0 {
		out = append(out, w.root.oid)
	}
	for _, t := range sortedOIDs(w.levelN) {
		if t != w.root.oid {
			out = append(out, t)
		}
	}
	return out
}

// setEdges lists the SET NULL / SET DEFAULT edges with rows, in order.
func (w *impactWalk) setEdges() []int {
	seen := map[int]bool{}
	var out []int
	for k := range w.setN {
		if !seen[k[0]] {
			seen[k[0]] = true
			out = append(out, k[0])
		}
	}
	sort.Ints(out)
	return out
}

// dependents lists the counted edges by depth, table and constraint.
func (w *impactWalk) dependents() []Dependent {
	out := []Dependent{}
	add := func(m map[[2]int]int64) {
		for k, n := range m {
			e := w.g.edges[k[0]]
			out = append(out, Dependent{Table: e.child.name.String(), Constraint: e.name, References: e.parent.name.String(),
				OnDelete: string(e.onDelete), Validated: e.validated, Effect: string(e.effect()), Blocks: e.blocks(), Rows: n, Depth: k[1]})
		}
	}
	add(w.edgeN)
	add(w.setN)
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Depth != b.Depth {
			return a.Depth < b.Depth
		}
		if a.Table != b.Table {
			return a.Table < b.Table
		}
		return a.Constraint < b.Constraint
	})
	return out
}

// tableChanges is what mode removes or changes per table, root first.
func (w *impactWalk) tableChanges(mode Mode) []TableChange {
	if mode == ModeSetNull {
		return []TableChange{{Table: w.table.String(), Updated: w.orphans}}
	}
	changes := map[uint32]*TableChange{}
	get := func(r relation) *TableChange {
		if changes[r.oid] == nil {
			changes[r.oid] = &TableChange{Table: r.name.String()}
		}
		return changes[r.oid]
	}
	get(w.root).Deleted = w.levelN[w.root.oid]
	rels := w.relations()
	for t, n := range w.levelN {
		get(rels[t]).Deleted = n
	}
	for k, n := range w.setN {
		get(w.g.edges[k[0]].child).Updated += n
	}
	out := []TableChange{*changes[w.root.oid]}
	delete(changes, w.root.oid)
	for _, t := range sortedOIDs(changes) {
		out = append(out, *changes[t])
	}
	sort.SliceStable(out[1:], func(i, j int) bool { return out[1+i].Table < out[1+j].Table })
	return out
}

// relations maps every table of the walk to its relation.
func (w *impactWalk) relations() map[uint32]relation {
	rels := map[uint32]relation{w.root.oid: w.root}
	for _, e := range w.g.edges {
		rels[e.child.oid], rels[e.parent.oid] = e.child, e.parent
	}
	return rels
}

// involved is the root and every table with rows reached.
func (w *impactWalk) involved() []relation {
	rels := w.relations()
	seen := map[uint32]bool{w.root.oid: true}
	out := []relation{w.root}
	add := func(t uint32) {
		if !seen[t] {
			seen[t] = true
			out = append(out, rels[t])
		}
	}
	for _, t := range sortedOIDs(w.levelN) {
		add(t)
	}
	for k := range w.setN {
		add(w.g.edges[k[0]].child.oid)
	}
	sort.SliceStable(out[1:], func(i, j int) bool { return out[1+i].name.String() < out[1+j].name.String() })
	return out
}

// loadTriggers lists the user triggers ON DELETE or ON UPDATE of the
// tables (and their partitions). Clones of a partitioned table's trigger
// are listed once, on the table.
func loadTriggers(ctx context.Context, q querier, rels []relation) ([]Trigger, error) {
	oids := make([]uint32, len(rels))
	for i, r := range rels {
		oids[i] = r.oid
	}
	rows, err := q.Query(ctx, `SELECT n.nspname::text, c.relname::text, t.tgname::text, t.tgtype::int, t.tgenabled IN ('O', 'A'),
		pn.nspname::text, p.proname::text
	FROM pg_catalog.pg_trigger t
	JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
	WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND (t.tgtype & 24) <> 0
	  AND (t.tgrelid = ANY($1::oid[]) OR t.tgrelid IN (SELECT pt.relid FROM unnest($1::oid[]) r(o), pg_partition_tree(r.o::regclass) pt))
	ORDER BY 1, 2, 3`, oids)
	if err != nil {
		return nil, fmt.Errorf("read triggers: %w", err)
	}
	out := []Trigger{}
	var schema, table, fnSchema, fn string
	var tr Trigger
	var typ int
	_, err = pgx.ForEachRow(rows, []any{&schema, &table, &tr.Name, &typ, &tr.Enabled, &fnSchema, &fn}, func() error {
		t := tr
		t.Table = plan.TableName{Schema: schema, Name: table}.String()
		t.Function = plan.TableName{Schema: fnSchema, Name: fn}.String()
		t.Timing, t.Level, t.Events = triggerType(typ)
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read triggers: %w", err)
	}
	return out, nil
}

// triggerType decodes pg_trigger.tgtype.
func triggerType(typ int) (timing, level string, events []string) {
	timing, level = "AFTER", "STATEMENT"
	switch {
	case typ&2 != 0:
		timing = "BEFORE"
	case typ&64 != 0:
		timing = "INSTEAD OF"
	}
	if typ&1 != 0 {
		level = "ROW"
	}
	for _, ev := range []struct {
		bit  int
		name string
	}{{4, "INSERT"}, {8, "DELETE"}, {16, "UPDATE"}, {32, "TRUNCATE"}} {
		if typ&ev.bit != 0 {
			events = append(events, ev.name)
		}
	}
	return timing, level, events
}
