package discover_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/discover"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/engine/sqlplan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// found maps "table(cols) → parent(cols)" to the candidate.
func found(rep discover.Report) map[string]discover.Candidate {
	out := map[string]discover.Candidate{}
	for _, c := range rep.Candidates {
		out[c.String()] = c
	}
	return out
}

func keys(m map[string]discover.Candidate) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func run(t *testing.T, pool *pgxpool.Pool, o discover.Options) discover.Report {
	t.Helper()
	rep, err := discover.Run(context.Background(), pool, o)
	require.NoError(t, err)
	return rep
}

// chinookWithoutFKs is Chinook with its 11 foreign keys dropped; it returns
// them as they were.
func chinookWithoutFKs(t *testing.T) (*pgtest.DB, []pgtest.ChinookFK) {
	t.Helper()
	db := pgtest.New(t)
	pgtest.LoadChinook(t, db)
	before := pgtest.ChinookForeignKeys(t, db)
	require.Len(t, before, 11)
	pgtest.DropForeignKeys(t, db)
	return db, before
}

// The whole product loop on real data: the migration discover writes
// parses, lints clean under --strict, names the keys as PostgreSQL would,
// and, run on the database, puts back exactly the keys that were dropped.
func TestChinookMigrationRestoresTheDroppedKeys(t *testing.T) {
	db, before := chinookWithoutFKs(t)
	rep := run(t, db.Pool, discover.Options{})
	require.Len(t, rep.Candidates, 11, "found %v", keys(found(rep)))

	src, err := sqlplan.Parse(rep.Migration, plan.FormatSQL)
	require.NoError(t, err)
	for _, f := range src.Lint(plan.LintOptions{Strict: true}) {
		assert.NotEqual(t, plan.SeverityError, f.Severity, f.String())
	}
	require.Len(t, src.Plan.ForeignKeys, 11)
	for _, fk := range src.Plan.ForeignKeys {
		assert.Equal(t, plan.DefaultForeignKeyName(fk.Table.Name, fk.Columns), fk.Name)
		assert.NotEmpty(t, fk.RefColumns, fk.Name)
		assert.Contains(t, fk.Comment, "confidence", fk.Name)
		assert.Contains(t, fk.Comment, "orphans: 0 row(s)", fk.Name)
	}
	assert.Equal(t, 11, strings.Count(rep.Migration, "NOT VALID;"))
	assert.Equal(t, 11, strings.Count(rep.Migration, "VALIDATE CONSTRAINT"))
	assert.Regexp(t, `(?m)^-- Priority [1-4]: (CRITICAL|HIGH|MEDIUM|LOW)$`, rep.Migration)
	assert.Less(t, strings.Index(rep.Migration, "NOT VALID;"), strings.Index(rep.Migration, "VALIDATE CONSTRAINT"))

	db.Exec(t, rep.Migration)
	after := pgtest.ChinookForeignKeys(t, db)
	require.Len(t, after, 11)
	for i := range before {
		assert.Equal(t, before[i].Name, after[i].Name)
		// The originals say nothing about ON DELETE (NO ACTION); ours are
		// RESTRICT or SET NULL, so compare up to there.
		assert.True(t, strings.HasPrefix(after[i].Def, before[i].Def+" ON DELETE "), "%s: %s vs %s", after[i].Name, after[i].Def, before[i].Def)
	}
	assert.Zero(t, db.Count(t, `SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated`))
}

func TestChinookEvidenceAndActions(t *testing.T) {
	db, _ := chinookWithoutFKs(t)
	got := found(run(t, db.Pool, discover.Options{}))

	rep := got["public.customer(support_rep_id) → public.employee(employee_id)"]
	assert.Equal(t, discover.MatchPersonRole, rep.Evidence.NameMatch)
	assert.Equal(t, "SET NULL", rep.OnDelete, "support_rep_id is nullable: an optional link")
	assert.NotEmpty(t, rep.Evidence.Competing, "ids 1..N of other tables hold the same values")

	boss := got["public.employee(reports_to) → public.employee(employee_id)"]
	assert.Equal(t, discover.MatchSelf, boss.Evidence.NameMatch)
	assert.InDelta(t, 0.125, boss.Evidence.NullFraction, 0.001, "the general manager reports to nobody")

	line := got["public.invoice_line(track_id) → public.track(track_id)"]
	assert.Equal(t, discover.MatchExact, line.Evidence.NameMatch)
	assert.Equal(t, "RESTRICT", line.OnDelete)
	assert.True(t, line.Evidence.Exact)
	assert.Equal(t, int64(2240), line.Evidence.ChildRows)
	assert.Equal(t, int64(3503), line.Evidence.ParentRows)
	assert.Equal(t, discover.Index{Name: "invoice_line_track_id_idx", Supports: true}, line.Index)
	assert.Equal(t, 1.0, line.Confidence)

	pt := got["public.playlist_track(playlist_id) → public.playlist(playlist_id)"]
	assert.Equal(t, "playlist_track_pkey", pt.Index.Name, "the composite primary key leads with playlist_id")
}

func TestExistingForeignKeysAreNotProposed(t *testing.T) {
	db := pgtest.New(t)
	pgtest.LoadChinook(t, db)
	rep := run(t, db.Pool, discover.Options{})
	assert.Empty(t, rep.Candidates, "every relationship of Chinook is declared: %v", keys(found(rep)))
	assert.Equal(t, 11, rep.ExistingForeignKeys)
	assert.Empty(t, rep.Migration)
}

// shopSchema has the hard cases: quoted camelCase names, an abbreviation
// with orphans, a composite key, a text code, a self-reference, a uuid link
// without any name evidence, a dense-integer column that fits every table
// by chance, and a declared key that must not come back.
const shopSchema = `
CREATE SCHEMA shop;
CREATE TABLE shop.countries (code text PRIMARY KEY, name text NOT NULL);
INSERT INTO shop.countries VALUES ('ID', 'Indonesia'), ('NL', 'Netherlands'), ('DE', 'Germany'), ('FR', 'France'), ('JP', 'Japan');
CREATE TABLE shop.customers (id int PRIMARY KEY, name text NOT NULL, country_code text, parent_id int);
INSERT INTO shop.customers SELECT g, 'c' || g, (ARRAY['ID','NL','DE','FR','JP'])[g % 5 + 1], CASE WHEN g > 10 THEN g % 10 + 1 END
FROM generate_series(1, 100) g;
CREATE TABLE shop."SalesOrder" ("OrderId" int PRIMARY KEY, "CustId" int NOT NULL, "Total" numeric NOT NULL);
INSERT INTO shop."SalesOrder" SELECT g, g % 100 + 1, g * 1.5 FROM generate_series(1, 300) g;
INSERT INTO shop."SalesOrder" VALUES (301, 9999, 1), (302, 9999, 2);
CREATE TABLE shop.products (sku text PRIMARY KEY, title text NOT NULL);
INSERT INTO shop.products SELECT 'SKU-' || g, 'product ' || g FROM generate_series(1, 30) g;
CREATE TABLE shop.order_lines (order_id int NOT NULL, line_no int NOT NULL,
  product_sku text NOT NULL REFERENCES shop.products (sku), qty int NOT NULL, PRIMARY KEY (order_id, line_no));
INSERT INTO shop.order_lines SELECT o, l, 'SKU-' || ((o * 3 + l) % 30 + 1), l FROM generate_series(1, 300) o, generate_series(1, 3) l;
CREATE TABLE shop.shipments (id int PRIMARY KEY, order_id int NOT NULL, line_no int NOT NULL, shipped_qty int);
INSERT INTO shop.shipments SELECT g, (g - 1) % 300 + 1, (g - 1) / 300 + 1, 1 FROM generate_series(1, 600) g;
CREATE TABLE shop.tenants (id uuid PRIMARY KEY, name text);
INSERT INTO shop.tenants SELECT md5('t' || g)::uuid, 't' || g FROM generate_series(1, 12) g;
CREATE TABLE shop.documents (id int PRIMARY KEY, owner uuid NOT NULL, pages int);
INSERT INTO shop.documents SELECT g, md5('t' || (g % 12 + 1))::uuid, g FROM generate_series(1, 80) g;
CREATE TABLE shop.audit_log (id int PRIMARY KEY, row_ref int NOT NULL);
INSERT INTO shop.audit_log SELECT g, g % 40 + 1 FROM generate_series(1, 100) g;
CREATE TABLE public.owners (id int PRIMARY KEY);
CREATE TABLE public.pets (id int PRIMARY KEY, owner_id int);
INSERT INTO public.owners SELECT generate_series(1, 5);
INSERT INTO public.pets SELECT g, g % 5 + 1 FROM generate_series(1, 20) g;
`

func TestShopHardCases(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, shopSchema)
	rep := run(t, db.Pool, discover.Options{Schemas: []string{"shop"}})
	got := found(rep)
	assert.Equal(t, []string{
		`shop."SalesOrder"("CustId") → shop.customers(id)`,
		"shop.customers(country_code) → shop.countries(code)",
		"shop.customers(parent_id) → shop.customers(id)",
		"shop.documents(owner) → shop.tenants(id)",
		`shop.order_lines(order_id) → shop."SalesOrder"("OrderId")`,
		`shop.shipments(order_id) → shop."SalesOrder"("OrderId")`,
		"shop.shipments(order_id, line_no) → shop.order_lines(order_id, line_no)",
	}, keys(got), "public.pets is outside --schemas shop; audit_log.row_ref only fits by chance; order_lines.product_sku is declared")

	cust := got[`shop."SalesOrder"("CustId") → shop.customers(id)`]
	assert.Equal(t, discover.MatchAbbreviation, cust.Evidence.NameMatch)
	assert.Equal(t, discover.Orphans{Rows: 2, Distinct: 1, Exact: true}, cust.Orphans)
	assert.InDelta(t, 100.0/101, cust.Evidence.InclusionRatio, 0.001)
	assert.Equal(t, "RESTRICT", cust.OnDelete)
	assert.False(t, cust.Index.Supports)
	assert.Equal(t, `CREATE INDEX CONCURRENTLY IF NOT EXISTS "SalesOrder_CustId_fkr_idx" ON "shop"."SalesOrder" ("CustId")`, cust.Index.Suggested)
	assert.Equal(t, "SalesOrder_CustId_fkey", cust.Name)

	assert.Equal(t, "SET NULL", got["shop.customers(parent_id) → shop.customers(id)"].OnDelete)
	doc := got["shop.documents(owner) → shop.tenants(id)"]
	assert.Equal(t, discover.MatchNone, doc.Evidence.NameMatch, "carried by the data alone")
	assert.Greater(t, doc.Evidence.DataStrength, 0.99)
	comp := got["shop.shipments(order_id, line_no) → shop.order_lines(order_id, line_no)"]
	assert.Equal(t, "shipments_order_id_line_no_fkey", comp.Name)
	assert.Equal(t, "order_lines_pkey", got[`shop.order_lines(order_id) → shop."SalesOrder"("OrderId")`].Index.Name)

	src, err := sqlplan.Parse(rep.Migration, plan.FormatSQL)
	require.NoError(t, err)
	for _, f := range src.Lint(plan.LintOptions{Strict: true}) {
		assert.NotEqual(t, plan.SeverityError, f.Severity, f.String())
	}
	assert.Contains(t, rep.Migration, `ALTER TABLE shop."SalesOrder"`+"\nADD CONSTRAINT \"SalesOrder_CustId_fkey\"")
	assert.Contains(t, rep.Migration, "-- orphans: 2 row(s), 1 distinct value(s)")

	none := run(t, db.Pool, discover.Options{Schemas: []string{"shop", "Nope"}})
	assert.Contains(t, none.Warnings, `schema "Nope": no tables (does it exist?)`)

	all := found(run(t, db.Pool, discover.Options{}))
	assert.Contains(t, all, "public.pets(owner_id) → public.owners(id)", "no --schemas: every user schema")
}

// A default name PostgreSQL would skip because the schema holds it already.
func TestNameTakenInSchemaGetsNumbered(t *testing.T) {
	db, _ := chinookWithoutFKs(t)
	db.Exec(t, `ALTER TABLE track ADD CONSTRAINT track_album_id_fkey CHECK (album_id > 0)`)
	got := found(run(t, db.Pool, discover.Options{}))
	c := got["public.track(album_id) → public.album(album_id)"]
	assert.Equal(t, "track_album_id_fkey1", c.Name)
}

func TestSamplingBigTablesFindsTheSameKeys(t *testing.T) {
	db, _ := chinookWithoutFKs(t)
	full := run(t, db.Pool, discover.Options{})
	sampled := run(t, db.Pool, discover.Options{SampleRowsAbove: 1000, SampleSize: 40})
	assert.Equal(t, keys(found(full)), keys(found(sampled)))
	c := found(sampled)["public.playlist_track(track_id) → public.track(track_id)"]
	assert.True(t, c.Evidence.TableSampled, "8715 rows > 1000: screened through TABLESAMPLE")
	assert.True(t, c.Evidence.Exact, "survivors are checked on the whole table")
	assert.Equal(t, int64(3503), c.Evidence.DistinctValues)
	small := found(sampled)["public.album(artist_id) → public.artist(artist_id)"]
	assert.False(t, small.Evidence.TableSampled, "347 rows: read whole")
}

// roTracer checks that every statement runs inside a READ ONLY
// transaction that set statement_timeout and lock_timeout first.
type roTracer struct {
	mu         sync.Mutex
	conns      map[*pgx.Conn]*txState
	statements int
	violations []string
}

type txState struct{ inTx, readOnly, lockTimeout, statementTimeout bool }

func (tr *roTracer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	sql := strings.ToLower(strings.TrimSpace(d.SQL))
	tr.mu.Lock()
	defer tr.mu.Unlock()
	st := tr.conns[conn]
	if st == nil {
		st = &txState{}
		tr.conns[conn] = st
	}
	switch {
	case strings.HasPrefix(sql, "begin"):
		*st = txState{inTx: true, readOnly: strings.Contains(sql, "read only")}
	case sql == "rollback" || sql == "commit":
		st.inTx = false
	case strings.HasPrefix(sql, "set local lock_timeout"):
		st.lockTimeout = st.inTx
	case strings.HasPrefix(sql, "set local statement_timeout"):
		st.statementTimeout = st.inTx
	default:
		tr.statements++
		if !st.inTx || !st.readOnly || !st.lockTimeout || !st.statementTimeout {
			tr.violations = append(tr.violations, fmt.Sprintf("%+v: %.80s", *st, sql))
		}
	}
	return ctx
}

func (tr *roTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func TestEveryQueryIsReadOnlyWithTimeouts(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, shopSchema)
	cfg, err := pgxpool.ParseConfig(db.DSN)
	require.NoError(t, err)
	tr := &roTracer{conns: map[*pgx.Conn]*txState{}}
	cfg.ConnConfig.Tracer = tr
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	defer pool.Close()
	rep := run(t, pool, discover.Options{Concurrency: 3})
	require.NotEmpty(t, rep.Candidates)
	assert.Greater(t, tr.statements, 20)
	assert.Empty(t, tr.violations)
}

// A table held by an ACCESS EXCLUSIVE lock costs lock_timeout per query
// and a warning, not a stalled run; the other tables are still searched.
func TestLockedTableIsSkippedWithAWarning(t *testing.T) {
	db, _ := chinookWithoutFKs(t)
	ctx := context.Background()
	locker, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer locker.Rollback(ctx)
	_, err = locker.Exec(ctx, "LOCK TABLE track IN ACCESS EXCLUSIVE MODE")
	require.NoError(t, err)

	start := time.Now()
	rep := run(t, db.Pool, discover.Options{LockTimeout: 100 * time.Millisecond})
	assert.Less(t, time.Since(start), 10*time.Second)
	got := found(rep)
	assert.Contains(t, got, "public.album(artist_id) → public.artist(artist_id)")
	assert.Contains(t, got, "public.invoice(customer_id) → public.customer(customer_id)")
	assert.NotContains(t, got, "public.track(album_id) → public.album(album_id)")
	require.NotEmpty(t, rep.Warnings)
	assert.Contains(t, strings.Join(rep.Warnings, "\n"), "public.track")
	assert.Contains(t, strings.Join(rep.Warnings, "\n"), "lock timeout")
}

func TestProgressReportsEveryPhase(t *testing.T) {
	db, _ := chinookWithoutFKs(t)
	var events []discover.Progress
	run(t, db.Pool, discover.Options{Concurrency: 4, Progress: func(p discover.Progress) { events = append(events, p) }})
	last := map[string]discover.Progress{}
	var phases []string
	for _, e := range events {
		assert.LessOrEqual(t, e.Done, e.Total, e.Phase)
		if prev, ok := last[e.Phase]; ok {
			assert.Equal(t, prev.Done+1, e.Done, "%s counts up one by one", e.Phase)
		} else {
			phases = append(phases, e.Phase)
		}
		last[e.Phase] = e
	}
	assert.Equal(t, []string{"catalog", "size", "profile", "sample", "probe", "exact", "orphans"}, phases)
	for phase, e := range last {
		assert.Equal(t, e.Total, e.Done, phase)
	}
}

func TestReportIsPlainJSON(t *testing.T) {
	db, _ := chinookWithoutFKs(t)
	rep := run(t, db.Pool, discover.Options{})
	b, err := json.Marshal(rep)
	require.NoError(t, err)
	var back discover.Report
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, rep, back)
	assert.Contains(t, string(b), `"inclusion_ratio":1`)
}

func TestRunRejectsBadThreshold(t *testing.T) {
	for _, th := range []float64{-0.1, 1.5} {
		_, err := discover.Run(context.Background(), nil, discover.Options{Threshold: th})
		assert.ErrorContains(t, err, "threshold")
	}
}
