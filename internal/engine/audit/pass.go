package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

// DefaultChunkPages is the chunk size of a table pass: 16 384 heap pages,
// 128 MiB at PostgreSQL's 8 kB block size, a few seconds of reading.
const DefaultChunkPages = 16384

// Checkpoint is where an audit stands: for each child table, how far its
// pass has read and what it has counted. Audit called with it as
// Options.Resume goes on from there, so a retried audit reads no chunk twice.
type Checkpoint struct {
	Tables []TablePosition `json:"tables"`
}

// TablePosition is the state of one child table's pass. The table is read
// in chunks of heap blocks ([NextBlock, NextBlock+ChunkPages)), relation by
// relation (the leaf partitions of a partitioned table, in name order).
type TablePosition struct {
	Table string `json:"table"`
	// FKs are the IDs of the constraints the pass counts, in the order of
	// Orphans and Candidates; a position is resumed only for the same list.
	FKs []string `json:"fks"`
	// Relations are what is read: the table itself, or its leaf partitions.
	Relations []string `json:"relations"`
	// Relation indexes Relations; NextBlock is its first block not read yet.
	Relation  int   `json:"relation"`
	NextBlock int64 `json:"next_block"`
	// Blocks is the size of the relation being read, in blocks (progress).
	Blocks  int64   `json:"blocks"`
	Chunks  int     `json:"chunks"`
	Orphans []int64 `json:"orphans"`
	// Candidates are, per FK, the orphans found so far that may be among
	// the first SampleLimit by key: the samples are read back from them.
	Candidates [][]Candidate `json:"candidates,omitempty"`
	Done       bool          `json:"done"`
	// Unchunked is set when the child cannot be read by block ranges (not a
	// heap table): it is read in one statement.
	Unchunked bool `json:"unchunked,omitempty"`
	// ByIndex is set when every FK's columns are in an index much smaller
	// than the heap: each FK is then counted from its index (one statement
	// per FK, the per-FK anti-join) instead of one read of the heap.
	// NextFK is the first FK not counted yet, Samples those already taken.
	ByIndex bool       `json:"by_index,omitempty"`
	NextFK  int        `json:"next_fk,omitempty"`
	Samples [][]Sample `json:"samples,omitempty"`
}

// Candidate is an orphan row by physical address: relation index and ctid.
type Candidate struct {
	Relation int    `json:"r"`
	TID      string `json:"t"`
}

func (p TablePosition) clone() TablePosition {
	c := p
	c.FKs = append([]string(nil), p.FKs...)
	c.Relations = append([]string(nil), p.Relations...)
	c.Orphans = append([]int64(nil), p.Orphans...)
	if p.Samples != nil {
		c.Samples = append([][]Sample(nil), p.Samples...)
	}
	if p.Candidates != nil {
		c.Candidates = make([][]Candidate, len(p.Candidates))
		for i, cs := range p.Candidates {
			c.Candidates[i] = append([]Candidate(nil), cs...)
		}
	}
	return c
}

func (c Checkpoint) clone() Checkpoint {
	out := Checkpoint{Tables: make([]TablePosition, len(c.Tables))}
	for i, t := range c.Tables {
		out.Tables[i] = t.clone()
	}
	return out
}

// find returns the saved position of a pass over table counting fks.
func (c *Checkpoint) find(table string, fks []string) (TablePosition, bool) {
	if c == nil {
		return TablePosition{}, false
	}
	for _, t := range c.Tables {
		if t.Table == table && equalStrings(t.FKs, fks) && len(t.Orphans) == len(fks) {
			return t.clone(), true
		}
	}
	return TablePosition{}, false
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// tableGroup is the FKs of one child table, audited in one pass.
type tableGroup struct {
	table plan.TableName
	fks   []plan.ForeignKey
	idx   []int // positions of fks in the caller's list
}

func groupByTable(fks []plan.ForeignKey) []tableGroup {
	var groups []tableGroup
	at := map[string]int{}
	for i, fk := range fks {
		k := fk.Table.Sanitize()
		g, ok := at[k]
		if !ok {
			g = len(groups)
			at[k] = g
			groups = append(groups, tableGroup{table: fk.Table})
		}
		groups[g].fks = append(groups[g].fks, fk)
		groups[g].idx = append(groups[g].idx, i)
	}
	return groups
}

func (g tableGroup) ids() []string {
	ids := make([]string, len(g.fks))
	for i, fk := range g.fks {
		ids[i] = fk.ID()
	}
	return ids
}

// passPlan is what a pass over one child table needs, read from the
// catalog once.
type passPlan struct {
	group  tableGroup
	info   tableInfo
	unique []bool // per FK: the referenced columns are unique in the parent
}

// tablePass reads one child table in chunks and counts the orphans of every
// FK on it; save is called after each chunk with the new position.
type tablePass struct {
	pool *pgxpool.Pool
	o    Options
	plan passPlan
	save func(TablePosition) error
}

func (tp *tablePass) statement(sql string, args ...any) {
	if tp.o.OnStatement != nil {
		tp.o.OnStatement(Statement{SQL: sql, Args: args})
	}
}

// prepare reads the catalog: columns exist, the child's key, whether each
// parent's referenced columns are unique, and what relations hold the rows.
func prepare(ctx context.Context, pool *pgxpool.Pool, g tableGroup) (passPlan, []string, bool, error) {
	pp := passPlan{group: g}
	for i, fk := range g.fks {
		info, err := loadTable(ctx, pool, fk)
		if err != nil {
			return pp, nil, false, fmt.Errorf("audit %s: %w", fk.ID(), err)
		}
		if i == 0 {
			pp.info = info
		}
		u, err := refUnique(ctx, pool, fk)
		if err != nil {
			return pp, nil, false, fmt.Errorf("audit %s: %w", fk.ID(), err)
		}
		pp.unique = append(pp.unique, u)
	}
	rels, chunked, err := relations(ctx, pool, g.table)
	if err != nil {
		return pp, nil, false, fmt.Errorf("audit %s: %w", g.table, err)
	}
	return pp, rels, chunked, nil
}

// refUnique reports whether a valid, non-partial unique index of the parent
// covers only referenced columns: then each child row joins at most one
// parent row and the parent needs no DISTINCT.
func refUnique(ctx context.Context, q querier, fk plan.ForeignKey) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT EXISTS (
		SELECT 1 FROM pg_index i
		WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indisvalid
		  AND i.indpred IS NULL AND i.indexprs IS NULL
		  AND NOT EXISTS (
			SELECT 1 FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
			JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
			WHERE k.ord <= i.indnkeyatts AND NOT a.attname = ANY($2)))`,
		fk.RefTable.Sanitize(), fk.RefColumns).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("unique keys of %s: %w", fk.RefTable, err)
	}
	return ok, nil
}

// indexCheaper reports whether reading each FK's columns from an index
// costs much less than reading the heap once: every FK has a valid btree
// index holding all its columns (B-tree deduplication makes one on a
// low-cardinality column tiny), their pages add up to less than half the
// heap's, and the heap is almost all-visible (an index-only scan then
// visits no heap page). Catalog figures are those of the last VACUUM or
// ANALYZE; a table never analysed is read by heap.
func indexCheaper(ctx context.Context, q querier, g tableGroup) (bool, error) {
	var heap, visible int64
	if err := q.QueryRow(ctx, "SELECT relpages, relallvisible FROM pg_class WHERE oid = to_regclass($1) AND relkind = 'r'",
		g.table.Sanitize()).Scan(&heap, &visible); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		return false, fmt.Errorf("size of %s: %w", g.table, err)
	}
	if heap == 0 || visible*10 < heap*9 {
		return false, nil
	}
	var total int64
	for _, fk := range g.fks {
		var pages *int64
		if err := q.QueryRow(ctx, `SELECT min(ic.relpages)::bigint FROM pg_index i
			JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
			WHERE i.indrelid = to_regclass($1) AND i.indisvalid AND i.indpred IS NULL AND am.amname = 'btree'
			  AND NOT EXISTS (SELECT 1 FROM unnest($2::text[]) col WHERE NOT EXISTS (
				SELECT 1 FROM unnest(i.indkey::int2[]) k(attnum)
				JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum WHERE a.attname = col))`,
			g.table.Sanitize(), fk.Columns).Scan(&pages); err != nil {
			return false, fmt.Errorf("indexes of %s: %w", g.table, err)
		}
		if pages == nil {
			return false, nil
		}
		total += *pages
	}
	return 2*total < heap, nil
}

// runByIndex counts the FKs one by one from their indexes, from pos.NextFK
// on, saving the position after each.
func (tp *tablePass) runByIndex(ctx context.Context, pos TablePosition) (TablePosition, error) {
	if len(pos.Samples) != len(tp.plan.group.fks) {
		pos.Samples = make([][]Sample, len(tp.plan.group.fks))
	}
	for ; pos.NextFK < len(tp.plan.group.fks); pos.NextFK++ {
		if pos.NextFK > 0 && tp.o.Pause > 0 {
			t := time.NewTimer(tp.o.Pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return pos, ctx.Err()
			case <-t.C:
			}
		}
		o := tp.o
		if o.SampleLimit == 0 {
			o.SampleLimit = -1 // normalised "none", which auditOne would read as "default"
		}
		r, err := auditOne(ctx, tp.pool, tp.plan.group.fks[pos.NextFK], o, true)
		if err != nil {
			return pos, err
		}
		pos.Orphans[pos.NextFK] = r.Orphans
		pos.Samples[pos.NextFK] = r.Samples
		pos.Chunks++
		if pos.NextFK+1 == len(tp.plan.group.fks) {
			pos.Done = true
		}
		save := pos.clone()
		save.NextFK = pos.NextFK + 1
		if err := tp.save(save); err != nil {
			return pos, err
		}
	}
	pos.Done = true
	return pos, nil
}

// relations are the heap relations holding the child's rows: the table, or
// its leaf partitions by name. chunked is false when some relation is not
// an ordinary table, whose rows have no block ranges to read by.
func relations(ctx context.Context, q querier, t plan.TableName) ([]string, bool, error) {
	var kind string
	if err := q.QueryRow(ctx, "SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)", t.Sanitize()).Scan(&kind); err != nil {
		return nil, false, fmt.Errorf("kind of table: %w", err)
	}
	switch kind {
	case "r":
		return []string{t.Sanitize()}, true, nil
	case "p":
	default:
		return []string{t.Sanitize()}, false, nil
	}
	rows, err := q.Query(ctx, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relkind = 'r'
		FROM pg_partition_tree(to_regclass($1)) t
		JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE t.isleaf ORDER BY 1`, t.Sanitize())
	if err != nil {
		return nil, false, fmt.Errorf("partitions: %w", err)
	}
	var rels []string
	chunked := true
	var name string
	var heap bool
	if _, err := pgx.ForEachRow(rows, []any{&name, &heap}, func() error {
		rels = append(rels, name)
		chunked = chunked && heap
		return nil
	}); err != nil {
		return nil, false, fmt.Errorf("partitions: %w", err)
	}
	if len(rels) == 0 || !chunked {
		return []string{t.Sanitize()}, false, nil
	}
	return rels, true, nil
}

// passSQL reads rel (aliased c) once between blocks from and to (to < 0:
// to the end; from < 0: the whole relation, which lets PostgreSQL use a
// parallel plan) for the FKs numbered which. Each parent is left-joined on
// the referenced columns (DISTINCT when they are not unique, so duplicates
// cannot inflate counts); a row is an orphan of an FK when its key passes
// the MATCH rule and no parent joined. The equality p.ref = c.col is the
// one orphanPredicate uses, so type differences resolve to the same
// operators. With samples = 0 it counts each FK's orphans; otherwise it
// returns, per FK, the ctids of the first samples orphans by key.
func (pp passPlan) passSQL(rel string, from, to int64, which []int, samples int) string {
	var sel, joins []string
	order := pp.info.orderBy()
	for _, i := range which {
		fk := pp.group.fks[i]
		alias := fmt.Sprintf("p%d", i)
		var on, nn, allNull []string
		for j, col := range fk.Columns {
			cc := "c." + quote(col)
			on = append(on, alias+"."+quote(fk.RefColumns[j])+" = "+cc)
			nn = append(nn, cc+" IS NOT NULL")
			allNull = append(allNull, cc+" IS NULL")
		}
		parent := fk.RefTable.Sanitize()
		if !pp.unique[i] {
			parent = "(SELECT DISTINCT " + quoteAllCols(fk.RefColumns) + " FROM " + parent + ")"
		}
		joins = append(joins, "LEFT JOIN "+parent+" "+alias+" ON "+strings.Join(on, " AND "))
		missing := alias + "." + quote(fk.RefColumns[0]) + " IS NULL"
		orphan := strings.Join(nn, " AND ") + " AND " + missing
		if fk.EffectiveMatch() == plan.MatchFull {
			orphan = "NOT (" + strings.Join(allNull, " AND ") + ") AND " + missing
		}
		if samples > 0 {
			sel = append(sel, fmt.Sprintf("coalesce(((array_agg(c.ctid ORDER BY %s) FILTER (WHERE %s))[1:%d])::text[], '{}')", order, orphan, samples))
		} else {
			sel = append(sel, "count(*) FILTER (WHERE "+orphan+")")
		}
	}
	q := "SELECT " + strings.Join(sel, ", ") + " FROM " + rel + " c " + strings.Join(joins, " ")
	switch {
	case from < 0:
	case to < 0:
		q += fmt.Sprintf(" WHERE c.ctid >= '(%d,0)'::tid", from)
	default:
		q += fmt.Sprintf(" WHERE c.ctid >= '(%d,0)'::tid AND c.ctid < '(%d,0)'::tid", from, to)
	}
	return q
}

func quoteAllCols(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = quote(c)
	}
	return strings.Join(q, ", ")
}

func relBlocks(ctx context.Context, q querier, rel string) (int64, error) {
	var n int64
	if err := q.QueryRow(ctx, "SELECT pg_relation_size($1::regclass) / current_setting('block_size')::bigint", rel).Scan(&n); err != nil {
		return 0, fmt.Errorf("size of %s: %w", rel, err)
	}
	return n, nil
}

// run counts from pos (a fresh or a resumed position) to the end of the
// table, one READ ONLY transaction with its own statement_timeout per chunk.
func (tp *tablePass) run(ctx context.Context, pos TablePosition) (TablePosition, error) {
	chunk := int64(tp.o.ChunkPages)
	for !pos.Done {
		if pos.Unchunked {
			if err := tp.chunk(ctx, &pos, -1, -1); err != nil {
				return pos, err
			}
			pos.Done = true
		} else {
			if pos.Blocks == 0 || pos.NextBlock == 0 {
				n, err := relBlocks(ctx, tp.pool, pos.Relations[pos.Relation])
				if err != nil {
					return pos, err
				}
				pos.Blocks = n
			}
			if pos.NextBlock < pos.Blocks {
				from, to := pos.NextBlock, pos.NextBlock+chunk
				if to >= pos.Blocks {
					to = -1 // the last chunk reads to the end, pages added since included
					if from == 0 {
						from = -1 // one chunk: the whole relation, a parallel plan allowed
					}
				}
				if err := tp.chunk(ctx, &pos, from, to); err != nil {
					return pos, err
				}
				if to < 0 {
					pos.NextBlock = pos.Blocks
				} else {
					pos.NextBlock = to
				}
			}
			if pos.NextBlock >= pos.Blocks {
				pos.Relation++
				pos.NextBlock, pos.Blocks = 0, 0
				pos.Done = pos.Relation >= len(pos.Relations)
			}
		}
		if err := tp.reduceIfLarge(ctx, &pos); err != nil {
			return pos, err
		}
		if err := tp.save(pos.clone()); err != nil {
			return pos, err
		}
		if !pos.Done && tp.o.Pause > 0 {
			t := time.NewTimer(tp.o.Pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return pos, ctx.Err()
			case <-t.C:
			}
		}
	}
	return pos, nil
}

// chunk counts one block range of the current relation into pos, then,
// only for the FKs with orphans in it, reads the same range again for the
// ctids of their first orphans by key (sample candidates).
func (tp *tablePass) chunk(ctx context.Context, pos *TablePosition, from, to int64) error {
	rel := pos.Relations[pos.Relation]
	n := len(tp.plan.group.fks)
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	counts := make([]int64, n)
	dest := make([]any, n)
	for i := range counts {
		dest[i] = &counts[i]
	}
	if err := tp.query(ctx, rel, from, to, tp.plan.passSQL(rel, from, to, all, 0), dest); err != nil {
		return err
	}
	var dirty []int
	for i, c := range counts {
		if c > 0 {
			dirty = append(dirty, i)
		}
	}
	cands := make([][]string, len(dirty))
	if len(dirty) > 0 && tp.o.SampleLimit > 0 {
		dest := make([]any, len(dirty))
		for j := range cands {
			dest[j] = &cands[j]
		}
		if err := tp.query(ctx, rel, from, to, tp.plan.passSQL(rel, from, to, dirty, tp.o.SampleLimit), dest); err != nil {
			return err
		}
	}
	pos.Chunks++
	for i := range n {
		pos.Orphans[i] += counts[i]
	}
	for j, i := range dirty {
		for _, tid := range cands[j] {
			pos.Candidates[i] = append(pos.Candidates[i], Candidate{Relation: pos.Relation, TID: tid})
		}
	}
	return nil
}

// query runs one statement of a chunk in its own READ ONLY transaction.
func (tp *tablePass) query(ctx context.Context, rel string, from, to int64, q string, dest []any) error {
	tp.statement(q)
	err := dbx.ReadOnly(ctx, tp.pool, tp.o.StatementTimeout, func(ctx context.Context, tx pgx.Tx) error {
		return tx.QueryRow(ctx, q).Scan(dest...)
	})
	if err == nil {
		return nil
	}
	where := rel
	if from >= 0 {
		where = fmt.Sprintf("%s blocks %d–", rel, from)
		if to >= 0 {
			where += fmt.Sprint(to - 1)
		} else {
			where += "end"
		}
	}
	if dbx.IsCode(err, dbx.CodeQueryCanceled) && ctx.Err() == nil {
		return fmt.Errorf("audit %s (%s): statement_timeout %s exceeded on %s (lower audit.chunk_pages, raise audit.statement_timeout, or add an index on the FK columns): %w",
			tp.plan.group.table, strings.Join(tp.plan.group.ids(), ", "), tp.o.StatementTimeout, where, err)
	}
	return fmt.Errorf("audit %s (%s) on %s: %w", tp.plan.group.table, strings.Join(tp.plan.group.ids(), ", "), where, err)
}

// reduceIfLarge keeps the candidates (and so the heartbeat) small: past
// four times the sample limit, only the first SampleLimit are kept.
func (tp *tablePass) reduceIfLarge(ctx context.Context, pos *TablePosition) error {
	for i, cs := range pos.Candidates {
		if len(cs) <= 4*tp.o.SampleLimit {
			continue
		}
		rows, err := tp.samples(ctx, pos, i)
		if err != nil {
			return err
		}
		kept := make([]Candidate, len(rows))
		for j, r := range rows {
			kept[j] = r.cand
		}
		pos.Candidates[i] = kept
	}
	return nil
}

type sampleRow struct {
	cand   Candidate
	sample Sample
}

// samples reads FK i's candidates back (TID scans), checks that each is
// still an orphan, and returns the first SampleLimit by primary key (by
// ctid without one), as AuditOne orders them.
func (tp *tablePass) samples(ctx context.Context, pos *TablePosition, i int) ([]sampleRow, error) {
	fk := tp.plan.group.fks[i]
	byRel := map[int][]string{}
	var rels []int
	for _, c := range pos.Candidates[i] {
		if _, ok := byRel[c.Relation]; !ok {
			rels = append(rels, c.Relation)
		}
		byRel[c.Relation] = append(byRel[c.Relation], c.TID)
	}
	if len(rels) == 0 {
		return nil, nil
	}
	keyCols, keyExprs := tp.plan.info.keyColumns()
	var order []string
	var raw []string
	if len(tp.plan.info.pk) == 0 {
		raw = []string{"c.ctid AS o0"}
		order = []string{"o0"}
	} else {
		for j, k := range tp.plan.info.pk {
			raw = append(raw, fmt.Sprintf("c.%s AS o%d", quote(k), j))
			order = append(order, fmt.Sprintf("o%d", j))
		}
	}
	sel := append([]string{}, raw...)
	for j, e := range keyExprs {
		sel = append(sel, fmt.Sprintf("%s AS k%d", e, j))
	}
	for j, col := range fk.Columns {
		sel = append(sel, fmt.Sprintf("(c.%s)::text AS f%d", quote(col), j))
	}
	pred := orphanPredicate(fk)
	var parts []string
	var args []any
	for _, r := range rels {
		args = append(args, byRel[r])
		parts = append(parts, fmt.Sprintf("SELECT %s, %d AS rel, c.ctid::text AS tid FROM %s c WHERE c.ctid = ANY($%d::text[]::tid[]) AND %s",
			strings.Join(sel, ", "), r, pos.Relations[r], len(args), pred))
	}
	var out []string
	for j := range keyExprs {
		out = append(out, fmt.Sprintf("k%d", j))
	}
	for j := range fk.Columns {
		out = append(out, fmt.Sprintf("f%d", j))
	}
	q := "SELECT " + strings.Join(out, ", ") + ", rel, tid FROM (" + strings.Join(parts, " UNION ALL ") + ") s ORDER BY " +
		strings.Join(order, ", ") + fmt.Sprintf(" LIMIT %d", tp.o.SampleLimit)
	tp.statement(q, args...)
	var res []sampleRow
	err := dbx.ReadOnly(ctx, tp.pool, tp.o.StatementTimeout, func(ctx context.Context, tx pgx.Tx) error {
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		vals := make([]*string, len(out))
		var rel int
		var tid string
		dest := make([]any, 0, len(out)+2)
		for j := range vals {
			dest = append(dest, &vals[j])
		}
		dest = append(dest, &rel, &tid)
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			s := Sample{Key: map[string]string{}, FK: map[string]string{}}
			for j, k := range keyCols {
				s.Key[k] = text(vals[j])
			}
			for j, col := range fk.Columns {
				s.FK[col] = text(vals[len(keyCols)+j])
			}
			res = append(res, sampleRow{cand: Candidate{Relation: rel, TID: tid}, sample: s})
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("audit %s: sample orphans: %w", fk.ID(), err)
	}
	return res, nil
}

// newPosition is the start of a pass over the group's table.
func newPosition(g tableGroup, rels []string, chunked bool) TablePosition {
	n := len(g.fks)
	return TablePosition{Table: g.table.String(), FKs: g.ids(), Relations: rels, Unchunked: !chunked,
		Orphans: make([]int64, n), Candidates: make([][]Candidate, n)}
}
