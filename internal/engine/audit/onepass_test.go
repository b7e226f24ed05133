package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// mixedSchema has child tables with several FKs each, in every shape the
// audit must get right: composite keys under MATCH SIMPLE and FULL, NULLs,
// columns of another type than the referenced one, a parent whose
// referenced columns are not unique (duplicates must not inflate counts), a
// view as parent, a partitioned child and a child without primary key. The
// child rows span many heap pages so that small chunks cut them.
const mixedSchema = `
CREATE TABLE account (id int PRIMARY KEY);
INSERT INTO account SELECT g FROM generate_series(1, 300) g;
CREATE TABLE region (code varchar(8) PRIMARY KEY);
INSERT INTO region VALUES ('eu'), ('us'), ('ap');
CREATE TABLE site (a int, b int, PRIMARY KEY (a, b));
INSERT INTO site SELECT g % 20, g FROM generate_series(1, 400) g;
CREATE TABLE tag (id bigint);  -- no unique key: duplicates on purpose
INSERT INTO tag SELECT g % 50 FROM generate_series(1, 200) g;
CREATE VIEW live_account AS SELECT id FROM account WHERE id % 7 <> 0;

CREATE TABLE orders (
    id int PRIMARY KEY,
    account_id bigint,           -- bigint referencing int
    region text,                 -- text referencing varchar
    site_a int, site_b int,      -- composite, MATCH SIMPLE
    fsite_a int, fsite_b int,    -- composite, MATCH FULL
    tag_id int,                  -- int referencing a non-unique bigint
    live_id numeric,             -- numeric referencing a view's int
    pad text
);
INSERT INTO orders
SELECT g,
       CASE WHEN g % 97 = 0 THEN 1000 + g WHEN g % 11 = 0 THEN NULL ELSE 1 + g % 300 END,
       CASE g % 5 WHEN 0 THEN 'xx' WHEN 1 THEN NULL ELSE (ARRAY['eu','us','ap'])[1 + g % 3] END,
       CASE WHEN g % 13 = 0 THEN NULL ELSE (g * 7) % 20 END, CASE WHEN g % 17 = 0 THEN NULL ELSE 1 + g % 400 END,
       CASE WHEN g % 19 = 0 THEN NULL ELSE (g * 3) % 20 END, CASE WHEN g % 23 = 0 THEN NULL ELSE 1 + g % 400 END,
       CASE WHEN g % 31 = 0 THEN 77 ELSE g % 50 END,
       CASE WHEN g % 29 = 0 THEN NULL ELSE (1 + g % 300)::numeric END,
       repeat('x', 60)
FROM generate_series(1, 6000) g;

CREATE TABLE events (at date, account_id int, region text, pad text, PRIMARY KEY (at, account_id)) PARTITION BY RANGE (at);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO events SELECT DATE '2025-06-01' + (g % 400), g, CASE WHEN g % 41 = 0 THEN 'mars' ELSE 'eu' END, repeat('y', 80)
FROM generate_series(1, 3000) g;

CREATE TABLE notes (account_id int, region text, pad text);  -- no primary key
INSERT INTO notes SELECT CASE WHEN g % 53 = 0 THEN -g ELSE g % 300 + 1 END, CASE WHEN g % 3 = 0 THEN 'eu' ELSE NULL END, repeat('z', 100)
FROM generate_series(1, 2500) g;
-- Not a heap table: read in one statement, not by block ranges.
CREATE MATERIALIZED VIEW notes_copy AS SELECT * FROM notes;

-- Wide rows, every FK indexed: each FK is counted from its index.
CREATE TABLE ticket (id int PRIMARY KEY, account_id int, region text, body text);
INSERT INTO ticket SELECT g, CASE WHEN g % 89 = 0 THEN 900 + g WHEN g % 6 = 0 THEN NULL ELSE 1 + g % 300 END,
       CASE WHEN g % 71 = 0 THEN 'moon' ELSE 'us' END, repeat('t', 300)
FROM generate_series(1, 4000) g;
CREATE INDEX ON ticket (account_id); CREATE INDEX ON ticket (region);
`

func mixedFKs() []plan.ForeignKey {
	pub := func(n string) plan.TableName { return tn("public", n) }
	fk := func(name, table string, cols []string, ref string, refCols []string, m plan.MatchType) plan.ForeignKey {
		return plan.ForeignKey{Name: name, Table: pub(table), Columns: cols, RefTable: pub(ref), RefColumns: refCols, Match: m}
	}
	return []plan.ForeignKey{
		fk("orders_account_fk", "orders", []string{"account_id"}, "account", []string{"id"}, ""),
		fk("events_account_fk", "events", []string{"account_id"}, "account", []string{"id"}, ""),
		fk("orders_region_fk", "orders", []string{"region"}, "region", []string{"code"}, ""),
		fk("orders_site_fk", "orders", []string{"site_a", "site_b"}, "site", []string{"a", "b"}, plan.MatchSimple),
		fk("orders_fsite_fk", "orders", []string{"fsite_a", "fsite_b"}, "site", []string{"a", "b"}, plan.MatchFull),
		fk("notes_account_fk", "notes", []string{"account_id"}, "account", []string{"id"}, ""),
		fk("orders_tag_fk", "orders", []string{"tag_id"}, "tag", []string{"id"}, ""),
		fk("orders_live_fk", "orders", []string{"live_id"}, "live_account", []string{"id"}, ""),
		fk("events_region_fk", "events", []string{"region"}, "region", []string{"code"}, ""),
		fk("notes_region_fk", "notes", []string{"region"}, "region", []string{"code"}, ""),
		fk("notes_copy_account_fk", "notes_copy", []string{"account_id"}, "account", []string{"id"}, ""),
		fk("ticket_account_fk", "ticket", []string{"account_id"}, "account", []string{"id"}, ""),
		fk("ticket_region_fk", "ticket", []string{"region"}, "region", []string{"code"}, ""),
	}
}

// TestAuditOnePassEqualsPerFK: the one-pass audit, in one chunk or cut in
// many, gives exactly the figures and samples of the per-FK audit.
func TestAuditOnePassEqualsPerFK(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, mixedSchema)
	db.Exec(t, "VACUUM ANALYZE")
	ctx := context.Background()
	fks := mixedFKs()
	cases := []struct {
		name string
		o    Options
	}{
		{"whole tables", Options{SampleLimit: 7}},
		{"one page per chunk", Options{SampleLimit: 7, ChunkPages: 1}},
		{"five pages per chunk, one table at a time", Options{SampleLimit: 3, ChunkPages: 5, Parallelism: 1}},
		{"many samples, candidates reduced along the way", Options{SampleLimit: 40, ChunkPages: 2}},
		{"no samples", Options{SampleLimit: -1, ChunkPages: 4}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var last Checkpoint
			tc.o.OnCheckpoint = func(cp Checkpoint) error { last = cp; return nil }
			got, err := Audit(ctx, db.Pool, fks, tc.o)
			require.NoError(t, err)
			for _, tp := range last.Tables {
				assert.True(t, tp.Done, tp.Table)
				switch {
				case tp.Table == "public.ticket":
					assert.True(t, tp.ByIndex, "every FK of ticket has a small index")
					assert.Equal(t, 2, tp.Chunks, "one statement per FK")
				case tp.Table == "public.notes_copy":
					assert.True(t, tp.Unchunked, "a materialized view is read in one statement")
				case tc.o.ChunkPages > 0 && tc.o.ChunkPages <= 5:
					assert.Greater(t, tp.Chunks, 2, "%s is cut into chunks", tp.Table)
				default:
					assert.Equal(t, len(tp.Relations), tp.Chunks, "%s: one chunk per relation", tp.Table)
				}
			}
			assert.Len(t, last.Tables, 5)
			require.Len(t, got, len(fks))
			dirty := 0
			for i, fk := range fks {
				want, err := AuditOne(ctx, db.Pool, fk, tc.o)
				require.NoError(t, err)
				got[i].DurationMS, want.DurationMS = 0, 0
				assert.Equal(t, want, got[i], fk.Name)
				if want.Orphans > 0 {
					dirty++
				}
			}
			assert.GreaterOrEqual(t, dirty, 8, "the schema has orphans for most FKs, so the comparison means something")
		})
	}
	// The figures the schema was built for, independently of both audits.
	res, err := Audit(ctx, db.Pool, fks, Options{ChunkPages: 3})
	require.NoError(t, err)
	counts := map[string]int64{}
	for _, r := range res {
		counts[strings.TrimPrefix(r.FK, "public.")] = r.Orphans
	}
	assert.Equal(t, int64(61), counts["orders.orders_account_fk"], "g%97=0 and not g%11=0")
	assert.Equal(t, int64(1200), counts["orders.orders_region_fk"], "'xx', NULL is not an orphan")
	assert.Equal(t, int64(73), counts["events.events_region_fk"])
	assert.Equal(t, int64(47), counts["notes.notes_account_fk"])
}

// TestAuditOnePassPagesBound: for a child table with k FKs, the one-pass
// audit reads at most 1/k of the pages the per-FK anti-joins read, plus the
// parents' pages (EXPLAIN (ANALYZE, BUFFERS): shared hit + read).
func TestAuditOnePassPagesBound(t *testing.T) {
	cases := []struct {
		name    string
		schema  string // "" = Chinook
		fks     func(t *testing.T, db *pgtest.DB) []plan.ForeignKey
		byIndex map[string]bool // child tables whose FKs all have small indexes
	}{
		{"wide child, four FKs to small parents", `
CREATE TABLE customer (id int PRIMARY KEY); INSERT INTO customer SELECT generate_series(1, 2000);
CREATE TABLE product (id int PRIMARY KEY); INSERT INTO product SELECT generate_series(1, 500);
CREATE TABLE store (id int PRIMARY KEY, country text); INSERT INTO store SELECT g, 'c' || g % 10 FROM generate_series(1, 50) g;
CREATE TABLE currency (code text PRIMARY KEY); INSERT INTO currency VALUES ('EUR'), ('USD');
CREATE TABLE sale (id bigint PRIMARY KEY, customer_id int, product_id int, store_id int, currency text, note text);
INSERT INTO sale SELECT g, 1 + g % 2000, 1 + g % 500, CASE WHEN g % 9 = 0 THEN NULL ELSE 1 + g % 50 END, 'EUR', repeat('n', 40)
FROM generate_series(1, 200000) g;`, func(*testing.T, *pgtest.DB) []plan.ForeignKey {
			mk := func(name, col, ref, refCol string) plan.ForeignKey {
				return plan.ForeignKey{Name: name, Table: tn("public", "sale"), Columns: []string{col}, RefTable: tn("public", ref), RefColumns: []string{refCol}}
			}
			return []plan.ForeignKey{mk("sale_customer_fk", "customer_id", "customer", "id"), mk("sale_product_fk", "product_id", "product", "id"),
				mk("sale_store_fk", "store_id", "store", "id"), mk("sale_currency_fk", "currency", "currency", "code")}
		}, nil},
		{"wide child whose FKs are all indexed", `
CREATE TABLE region (id int PRIMARY KEY); INSERT INTO region SELECT generate_series(1, 20);
CREATE TABLE kind (id int PRIMARY KEY); INSERT INTO kind SELECT generate_series(1, 8);
CREATE TABLE ticket (id bigint PRIMARY KEY, region_id int, kind_id int, body text);
INSERT INTO ticket SELECT g, 1 + g % 20, CASE WHEN g % 5 = 0 THEN NULL ELSE 1 + g % 8 END, repeat('b', 300) FROM generate_series(1, 50000) g;
CREATE INDEX ON ticket (region_id); CREATE INDEX ON ticket (kind_id, id);`, func(*testing.T, *pgtest.DB) []plan.ForeignKey {
			mk := func(name, col, ref string) plan.ForeignKey {
				return plan.ForeignKey{Name: name, Table: tn("public", "ticket"), Columns: []string{col}, RefTable: tn("public", ref), RefColumns: []string{"id"}}
			}
			return []plan.ForeignKey{mk("ticket_region_fk", "region_id", "region"), mk("ticket_kind_fk", "kind_id", "kind")}
		}, map[string]bool{"ticket": true}},
		{"Chinook, its own foreign keys", "", func(t *testing.T, db *pgtest.DB) []plan.ForeignKey {
			return existingFKs(t, db)
		}, map[string]bool{"track": true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var db *pgtest.DB
			if tc.schema == "" {
				db = pgtest.New(t)
				pgtest.LoadChinook(t, db)
				db.Exec(t, "VACUUM ANALYZE")
			} else {
				db = pgtest.New(t)
				db.Exec(t, tc.schema)
				db.Exec(t, "VACUUM ANALYZE")
			}
			ctx := context.Background()
			fks := tc.fks(t, db)
			for _, g := range groupByTable(fks) {
				if len(g.fks) < 2 {
					continue
				}
				k := int64(len(g.fks))
				var one, per []Statement
				record := func(to *[]Statement) func(Statement) {
					return func(st Statement) { *to = append(*to, st) }
				}
				var cp Checkpoint
				res, err := Audit(ctx, db.Pool, g.fks, Options{SampleLimit: -1, OnStatement: record(&one),
					OnCheckpoint: func(c Checkpoint) error { cp = c; return nil }})
				require.NoError(t, err)
				byIndex := cp.Tables[0].ByIndex
				for i, fk := range g.fks {
					r, err := AuditOne(ctx, db.Pool, fk, Options{SampleLimit: -1, OnStatement: record(&per)})
					require.NoError(t, err)
					assert.Equal(t, r.Orphans, res[i].Orphans)
				}
				onePages, err := PagesReadAll(ctx, db.Pool, one)
				require.NoError(t, err)
				perPages, err := PagesReadAll(ctx, db.Pool, per)
				require.NoError(t, err)
				var parents int64
				seen := map[string]bool{}
				for _, fk := range g.fks {
					if seen[fk.RefTable.Sanitize()] {
						continue
					}
					seen[fk.RefTable.Sanitize()] = true
					var n int64
					require.NoError(t, db.Pool.QueryRow(ctx, `SELECT (pg_relation_size(to_regclass($1)) + pg_indexes_size(to_regclass($1))) / current_setting('block_size')::bigint`,
						fk.RefTable.Sanitize()).Scan(&n))
					parents += n
				}
				var heap int64
				require.NoError(t, db.Pool.QueryRow(ctx, `SELECT pg_relation_size(to_regclass($1)) / current_setting('block_size')::bigint`, g.table.Sanitize()).Scan(&heap))
				bound := perPages/k + parents
				t.Logf("%s: %d FKs, audit %d pages (by index: %v), per-FK anti-joins %d pages (%.2f×), heap %d pages, parents %d pages, bound %d",
					g.table, k, onePages, byIndex, perPages, float64(onePages)/float64(perPages), heap, parents, bound)
				assert.Equal(t, tc.byIndex[g.table.Name], byIndex, "%s: read by index or by heap", g.table)
				if byIndex {
					// Each FK from its own index: never more than the per-FK
					// anti-joins, and less than one read of the heap.
					// (the parents may be read through their own index).
					assert.LessOrEqual(t, onePages, perPages+parents, g.table)
					assert.Less(t, onePages, heap+parents, g.table)
					continue
				}
				assert.LessOrEqual(t, onePages, bound, "%s: one pass reads at most 1/k of the per-FK pages plus the parents'", g.table)
			}
		})
	}
}

// existingFKs turns the database's own foreign keys into plan FKs (for a
// real schema's set of constraints).
func existingFKs(t *testing.T, db *pgtest.DB) []plan.ForeignKey {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `
SELECT c.conname, cn.nspname, cl.relname,
       (SELECT array_agg(a.attname ORDER BY k.ord) FROM unnest(c.conkey) WITH ORDINALITY k(n, ord) JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n),
       rn.nspname, rl.relname,
       (SELECT array_agg(a.attname ORDER BY k.ord) FROM unnest(c.confkey) WITH ORDINALITY k(n, ord) JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n)
FROM pg_constraint c
JOIN pg_class cl ON cl.oid = c.conrelid JOIN pg_namespace cn ON cn.oid = cl.relnamespace
JOIN pg_class rl ON rl.oid = c.confrelid JOIN pg_namespace rn ON rn.oid = rl.relnamespace
WHERE c.contype = 'f' ORDER BY cl.relname, c.conname`)
	require.NoError(t, err)
	defer rows.Close()
	var fks []plan.ForeignKey
	for rows.Next() {
		var fk plan.ForeignKey
		require.NoError(t, rows.Scan(&fk.Name, &fk.Table.Schema, &fk.Table.Name, &fk.Columns, &fk.RefTable.Schema, &fk.RefTable.Name, &fk.RefColumns))
		fks = append(fks, fk)
	}
	require.NoError(t, rows.Err())
	require.NotEmpty(t, fks)
	return fks
}

// TestAuditResumesFromCheckpoint: an audit stopped after a few chunks and
// resumed from its last checkpoint (through JSON, as a heartbeat carries
// it) reads only the chunks left and ends with the uninterrupted figures.
func TestAuditResumesFromCheckpoint(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, mixedSchema)
	db.Exec(t, "VACUUM ANALYZE")
	ctx := context.Background()
	fks := mixedFKs()
	full, err := Audit(ctx, db.Pool, fks, Options{ChunkPages: 4})
	require.NoError(t, err)

	for _, stopAfter := range []int{1, 5, 12} {
		t.Run(fmt.Sprintf("stopped after %d chunks", stopAfter), func(t *testing.T) {
			stop := errors.New("worker lost")
			var saved []byte
			var mu sync.Mutex
			firstChunks := 0
			o := Options{ChunkPages: 4, Parallelism: 2, OnStatement: func(st Statement) {
				if strings.Contains(st.SQL, "count(*) FILTER") || st.ByIndex {
					mu.Lock()
					firstChunks++
					mu.Unlock()
				}
			}}
			o.OnCheckpoint = func(cp Checkpoint) error {
				b, err := json.Marshal(cp)
				require.NoError(t, err)
				saved = b
				if chunksOf(cp) >= stopAfter {
					return stop
				}
				return nil
			}
			_, err := Audit(ctx, db.Pool, fks, o)
			require.ErrorIs(t, err, stop)
			var cp Checkpoint
			require.NoError(t, json.Unmarshal(saved, &cp))
			before := chunksOf(cp)
			require.GreaterOrEqual(t, before, stopAfter)

			var second []string
			var last Checkpoint
			res, err := Audit(ctx, db.Pool, fks, Options{ChunkPages: 4, Resume: &cp,
				OnStatement: func(st Statement) {
					if strings.Contains(st.SQL, "count(*) FILTER") || st.ByIndex {
						mu.Lock()
						second = append(second, st.SQL)
						mu.Unlock()
					}
				},
				OnCheckpoint: func(c Checkpoint) error { last = c; return nil }})
			require.NoError(t, err)
			for i := range res {
				res[i].DurationMS, full[i].DurationMS = 0, 0
			}
			assert.Equal(t, full, res, "same figures and samples as the uninterrupted audit")
			total := chunksOf(last)
			assert.Equal(t, total-before, len(second), "only the chunks not in the checkpoint are read again")
			assert.Equal(t, len(uniq(second)), len(second), "no chunk read twice")
			assert.Greater(t, total, 12, "the tables are cut into many chunks")
		})
	}
}

func chunksOf(cp Checkpoint) int {
	n := 0
	for _, t := range cp.Tables {
		n += t.Chunks
	}
	return n
}

func uniq(s []string) map[string]bool {
	m := map[string]bool{}
	for _, x := range s {
		m[x] = true
	}
	return m
}

// A checkpoint of another plan or another partition layout is not resumed:
// the table is read from its start.
func TestAuditIgnoresForeignCheckpoint(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, mixedSchema)
	db.Exec(t, "VACUUM ANALYZE")
	ctx := context.Background()
	fks := mixedFKs()
	want, err := Audit(ctx, db.Pool, fks, Options{})
	require.NoError(t, err)
	bogus := &Checkpoint{Tables: []TablePosition{
		{Table: "public.orders", FKs: []string{"public.orders.other_fk"}, Relations: []string{"public.orders"}, Orphans: []int64{5}, Done: true},
		{Table: "public.events", FKs: []string{"public.events.events_account_fk", "public.events.events_region_fk"},
			Relations: []string{"public.events_2025"}, Orphans: []int64{9, 9}, Done: true},
	}}
	got, err := Audit(ctx, db.Pool, fks, Options{Resume: bogus})
	require.NoError(t, err)
	for i := range got {
		got[i].DurationMS, want[i].DurationMS = 0, 0
	}
	assert.Equal(t, want, got)
}
