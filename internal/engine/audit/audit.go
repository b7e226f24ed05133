// Package audit finds orphaned rows (the first step of a rollout: child rows
// whose foreign-key columns match no parent row, which would make VALIDATE
// fail) and, only when asked, remediates them with every removed or changed row
// copied into fkrollout.quarantine first, in the same transaction.
//
// The orphan predicate follows PostgreSQL's own FK semantics exactly, so an
// audit reporting 0 means VALIDATE CONSTRAINT will succeed:
//   - MATCH SIMPLE: a row with a NULL in any FK column is never an orphan.
//   - MATCH FULL: all-NULL is fine; partially NULL is a violation (counted as
//     an orphan); all non-NULL must match a parent row.
package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

// Options tunes an audit.
type Options struct {
	// SampleLimit is the number of orphan rows sampled per FK (default 10;
	// negative means no samples).
	SampleLimit int
	// StatementTimeout bounds each query (SET LOCAL in a READ ONLY tx;
	// default 5m): in Audit, each chunk of a table, not the whole table.
	StatementTimeout time.Duration
	// Parallelism is how many child tables (Audit) are read at once
	// (default 4).
	Parallelism int
	// Progress, when set, is called after each FK finishes (one call at a
	// time; in Audit, for each FK of a table once the table is done, never
	// at the same time as OnCheckpoint).
	Progress func(done, total int, fk string)

	// ChunkPages is how many heap pages of a child table one statement of
	// Audit reads (default DefaultChunkPages).
	ChunkPages int
	// Pause is a wait between two chunks of a table, to cap the load the
	// audit puts on the server (default none).
	Pause time.Duration
	// Resume is the checkpoint of an earlier attempt; tables it shows as
	// done or partly read are not read again from the start.
	Resume *Checkpoint
	// OnCheckpoint, when set, is called after each chunk (one call at a
	// time) with the whole audit's position; an error stops the audit.
	OnCheckpoint func(Checkpoint) error
	// OnStatement, when set, is called with each counting or sampling
	// statement before it runs (benchmarks EXPLAIN them for pages read).
	OnStatement func(Statement)
}

func (o Options) normalised() Options {
	if o.SampleLimit == 0 {
		o.SampleLimit = 10
	}
	if o.SampleLimit < 0 {
		o.SampleLimit = 0
	}
	if o.StatementTimeout <= 0 {
		o.StatementTimeout = 5 * time.Minute
	}
	if o.Parallelism <= 0 {
		o.Parallelism = 4
	}
	if o.ChunkPages <= 0 {
		o.ChunkPages = DefaultChunkPages
	}
	if o.Pause < 0 {
		o.Pause = 0
	}
	return o
}

// NullText is how a NULL column value is rendered in a Sample.
const NullText = "NULL"

// Sample is one orphan row: its primary key (or "ctid" when the table has
// none) and its FK column values, rendered as text (NULL as NullText).
type Sample struct {
	Key map[string]string `json:"key"`
	FK  map[string]string `json:"fk"`
}

// Result is the audit of one FK.
type Result struct {
	FK         string   `json:"fk"`
	Table      string   `json:"table"`
	References string   `json:"references"`
	Orphans    int64    `json:"orphans"`
	Samples    []Sample `json:"samples"`
	DurationMS int64    `json:"duration_ms"`
}

// Audit audits every FK, reading each child table once: the FKs of one
// table are counted together, chunk by chunk (block ranges of the heap,
// see TablePosition), and samples are read back afterwards only for FKs
// with orphans. Tables are read with bounded parallelism. Results are in
// input order and equal AuditOne's for each FK. The first error cancels
// the rest.
func Audit(ctx context.Context, pool *pgxpool.Pool, fks []plan.ForeignKey, o Options) ([]Result, error) {
	o = o.normalised()
	for _, fk := range fks {
		if err := checkFK(fk); err != nil {
			return nil, err
		}
	}
	groups := groupByTable(fks)
	results := make([]Result, len(fks))
	var mu sync.Mutex // serialises Progress, OnCheckpoint and the checkpoint
	done := 0
	cp := Checkpoint{Tables: make([]TablePosition, len(groups))}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Parallelism)
	for gi, grp := range groups {
		g.Go(func() error {
			start := time.Now()
			pp, rels, chunked, err := prepare(gctx, pool, grp)
			if err != nil {
				return err
			}
			byIndex := false
			if chunked && len(rels) == 1 {
				if byIndex, err = indexCheaper(gctx, pool, grp); err != nil {
					return err
				}
			}
			pos, ok := o.Resume.find(grp.table.String(), grp.ids())
			if !ok || !equalStrings(pos.Relations, rels) || pos.Unchunked == chunked || pos.ByIndex != byIndex {
				pos = newPosition(grp, rels, chunked)
				pos.ByIndex = byIndex
			}
			if len(pos.Candidates) != len(grp.fks) {
				pos.Candidates = make([][]Candidate, len(grp.fks))
			}
			save := func(p TablePosition) error {
				mu.Lock()
				defer mu.Unlock()
				cp.Tables[gi] = p
				if o.OnCheckpoint == nil {
					return nil
				}
				return o.OnCheckpoint(cp.clone())
			}
			mu.Lock()
			cp.Tables[gi] = pos.clone()
			mu.Unlock()
			tp := &tablePass{pool: pool, o: o, plan: pp, save: save}
			if pos.ByIndex {
				pos, err = tp.runByIndex(gctx, pos)
			} else {
				pos, err = tp.run(gctx, pos)
			}
			if err != nil {
				return err
			}
			for i, fk := range grp.fks {
				res := Result{FK: fk.ID(), Table: fk.Table.String(), References: fk.RefTable.String(), Orphans: pos.Orphans[i], Samples: []Sample{}}
				if pos.ByIndex {
					res.Samples = pos.Samples[i]
				} else if res.Orphans > 0 && o.SampleLimit > 0 {
					rows, err := tp.samples(gctx, &pos, i)
					if err != nil {
						return err
					}
					for _, r := range rows {
						res.Samples = append(res.Samples, r.sample)
					}
				}
				res.DurationMS = time.Since(start).Milliseconds()
				results[grp.idx[i]] = res
			}
			if o.Progress != nil {
				mu.Lock()
				for _, fk := range grp.fks {
					done++
					o.Progress(done, len(fks), fk.ID())
				}
				mu.Unlock()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return results, nil
}

// AuditOne counts and samples the orphans of one FK in a READ ONLY
// transaction with SET LOCAL statement_timeout.
func AuditOne(ctx context.Context, pool *pgxpool.Pool, fk plan.ForeignKey, o Options) (Result, error) {
	return auditOne(ctx, pool, fk, o, false)
}

// auditOne is AuditOne; byIndex makes the count read the child through an
// index on the FK columns (enable_seqscan off for that statement only).
func auditOne(ctx context.Context, pool *pgxpool.Pool, fk plan.ForeignKey, o Options, byIndex bool) (Result, error) {
	o = o.normalised()
	if err := checkFK(fk); err != nil {
		return Result{}, err
	}
	start := time.Now()
	res := Result{FK: fk.ID(), Table: fk.Table.String(), References: fk.RefTable.String(), Samples: []Sample{}}
	err := dbx.ReadOnly(ctx, pool, o.StatementTimeout, func(ctx context.Context, tx pgx.Tx) error {
		// One snapshot for count and samples, so they agree under traffic.
		if _, err := tx.Exec(ctx, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
			return fmt.Errorf("set isolation: %w", err)
		}
		info, err := loadTable(ctx, tx, fk)
		if err != nil {
			return err
		}
		pred := orphanPredicate(fk)
		count := "SELECT count(*) FROM " + fk.Table.Sanitize() + " c WHERE " + pred
		if o.OnStatement != nil {
			o.OnStatement(Statement{SQL: count, ByIndex: byIndex})
		}
		if byIndex {
			if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
				return fmt.Errorf("set enable_seqscan: %w", err)
			}
		}
		if err := tx.QueryRow(ctx, count).Scan(&res.Orphans); err != nil {
			return fmt.Errorf("count orphans: %w", err)
		}
		if byIndex {
			if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = on"); err != nil {
				return fmt.Errorf("set enable_seqscan: %w", err)
			}
		}
		if res.Orphans == 0 || o.SampleLimit == 0 {
			return nil
		}
		keyCols, keyExprs := info.keyColumns()
		var sel []string
		sel = append(sel, keyExprs...)
		for _, c := range fk.Columns {
			sel = append(sel, "(c."+quote(c)+")::text")
		}
		q := "SELECT " + strings.Join(sel, ", ") + " FROM " + fk.Table.Sanitize() + " c WHERE " + pred +
			" ORDER BY " + info.orderBy() + fmt.Sprintf(" LIMIT %d", o.SampleLimit)
		if o.OnStatement != nil {
			o.OnStatement(Statement{SQL: q})
		}
		rows, err := tx.Query(ctx, q)
		if err != nil {
			return fmt.Errorf("sample orphans: %w", err)
		}
		defer rows.Close()
		vals := make([]*string, len(sel))
		dest := make([]any, len(sel))
		for i := range vals {
			dest[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				return fmt.Errorf("sample orphans: %w", err)
			}
			s := Sample{Key: map[string]string{}, FK: map[string]string{}}
			for i, k := range keyCols {
				s.Key[k] = text(vals[i])
			}
			for i, c := range fk.Columns {
				s.FK[c] = text(vals[len(keyCols)+i])
			}
			res.Samples = append(res.Samples, s)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("sample orphans: %w", err)
		}
		return nil
	})
	res.DurationMS = time.Since(start).Milliseconds()
	if err != nil {
		if dbx.IsCode(err, dbx.CodeQueryCanceled) && ctx.Err() == nil {
			return res, fmt.Errorf("audit %s: statement_timeout %s exceeded (raise audit statement timeout or add an index on the FK columns): %w", fk.ID(), o.StatementTimeout, err)
		}
		return res, fmt.Errorf("audit %s: %w", fk.ID(), err)
	}
	return res, nil
}

func text(p *string) string {
	if p == nil {
		return NullText
	}
	return *p
}

// checkFK rejects malformed FKs before any SQL is built.
func checkFK(fk plan.ForeignKey) error {
	switch {
	case fk.Name == "":
		return errors.New("audit: foreign key has no name")
	case fk.Table.Name == "" || fk.RefTable.Name == "":
		return fmt.Errorf("audit %s: table and referenced table are required", fk.Name)
	case len(fk.Columns) == 0:
		return fmt.Errorf("audit %s: no columns", fk.ID())
	case len(fk.Columns) != len(fk.RefColumns):
		return fmt.Errorf("audit %s: %d columns but %d referenced columns", fk.ID(), len(fk.Columns), len(fk.RefColumns))
	case fk.EffectiveMatch() != plan.MatchSimple && fk.EffectiveMatch() != plan.MatchFull:
		return fmt.Errorf("audit %s: unsupported MATCH %q (want SIMPLE or FULL)", fk.ID(), fk.Match)
	}
	for i := range fk.Columns {
		if fk.Columns[i] == "" || fk.RefColumns[i] == "" {
			return fmt.Errorf("audit %s: empty column name", fk.ID())
		}
	}
	return nil
}

func quote(s string) string { return pgx.Identifier{s}.Sanitize() }

// orphanPredicate is a WHERE clause over the child aliased c that is true
// exactly for the rows VALIDATE CONSTRAINT would reject. A NOT EXISTS
// anti-join is used (not LEFT JOIN ... IS NULL) so duplicate parents cannot
// inflate counts. With a partially NULL key the equality never holds, so
// under MATCH FULL the NOT EXISTS alone flags such rows.
func orphanPredicate(fk plan.ForeignKey) string {
	var eq, nn, allNull []string
	for i, c := range fk.Columns {
		cc := "c." + quote(c)
		eq = append(eq, "p."+quote(fk.RefColumns[i])+" = "+cc)
		nn = append(nn, cc+" IS NOT NULL")
		allNull = append(allNull, cc+" IS NULL")
	}
	notExists := "NOT EXISTS (SELECT 1 FROM " + fk.RefTable.Sanitize() + " p WHERE " + strings.Join(eq, " AND ") + ")"
	if fk.EffectiveMatch() == plan.MatchFull {
		return "NOT (" + strings.Join(allNull, " AND ") + ") AND " + notExists
	}
	return strings.Join(nn, " AND ") + " AND " + notExists
}

// tableInfo is what remediation and sampling need to know about the child.
type tableInfo struct {
	pk      []string        // primary key columns in key order; empty = none
	pkTypes []string        // format_type of each pk column, for typed cursors
	notNull map[string]bool // attnotnull per column
}

func (t tableInfo) keyColumns() (names, exprs []string) {
	if len(t.pk) == 0 {
		return []string{"ctid"}, []string{"c.ctid::text"}
	}
	for _, k := range t.pk {
		names = append(names, k)
		exprs = append(exprs, "(c."+quote(k)+")::text")
	}
	return names, exprs
}

// after is a keyset condition "key > cursor" with the cursor's text values
// as parameters $first.. (cast to the key's types); with no primary key the
// cursor is a ctid.
func (t tableInfo) after(first int) string {
	if len(t.pk) == 0 {
		return fmt.Sprintf("c.ctid > $%d::tid", first)
	}
	cols := make([]string, len(t.pk))
	params := make([]string, len(t.pk))
	for i, k := range t.pk {
		cols[i] = "c." + quote(k)
		params[i] = fmt.Sprintf("$%d::text::%s", first+i, t.pkTypes[i])
	}
	return "(" + strings.Join(cols, ", ") + ") > (" + strings.Join(params, ", ") + ")"
}

func (t tableInfo) orderBy() string {
	if len(t.pk) == 0 {
		return "c.ctid"
	}
	q := make([]string, len(t.pk))
	for i, k := range t.pk {
		q[i] = "c." + quote(k)
	}
	return strings.Join(q, ", ")
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// loadTable checks that both tables and every column exist and reads the
// child's primary key and nullability.
func loadTable(ctx context.Context, q querier, fk plan.ForeignKey) (tableInfo, error) {
	for _, t := range []struct {
		name plan.TableName
		cols []string
	}{{fk.Table, fk.Columns}, {fk.RefTable, fk.RefColumns}} {
		var ok bool
		if err := q.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", t.name.Sanitize()).Scan(&ok); err != nil {
			return tableInfo{}, fmt.Errorf("look up %s: %w", t.name, err)
		}
		if !ok {
			return tableInfo{}, fmt.Errorf("table %s does not exist", t.name)
		}
		var missing []string
		if err := q.QueryRow(ctx, `SELECT coalesce(array_agg(c), '{}') FROM unnest($2::text[]) c
			WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attname = c AND a.attnum > 0 AND NOT a.attisdropped)`,
			t.name.Sanitize(), t.cols).Scan(&missing); err != nil {
			return tableInfo{}, fmt.Errorf("look up columns of %s: %w", t.name, err)
		}
		if len(missing) > 0 {
			return tableInfo{}, fmt.Errorf("table %s has no column(s) %s", t.name, strings.Join(missing, ", "))
		}
	}
	info := tableInfo{notNull: map[string]bool{}}
	rows, err := q.Query(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_index i
		CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE i.indrelid = to_regclass($1) AND i.indisprimary ORDER BY k.ord`, fk.Table.Sanitize())
	if err != nil {
		return tableInfo{}, fmt.Errorf("primary key of %s: %w", fk.Table, err)
	}
	var name, typ string
	_, err = pgx.ForEachRow(rows, []any{&name, &typ}, func() error {
		info.pk = append(info.pk, name)
		info.pkTypes = append(info.pkTypes, typ)
		return nil
	})
	if err != nil {
		return tableInfo{}, fmt.Errorf("primary key of %s: %w", fk.Table, err)
	}
	rows, err = q.Query(ctx, `SELECT attname, attnotnull FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped`, fk.Table.Sanitize())
	if err != nil {
		return tableInfo{}, fmt.Errorf("columns of %s: %w", fk.Table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		var nn bool
		if err := rows.Scan(&n, &nn); err != nil {
			return tableInfo{}, err
		}
		info.notNull[n] = nn
	}
	return info, rows.Err()
}
