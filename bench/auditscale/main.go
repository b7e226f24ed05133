// Command auditscale measures the orphan audit (docs/PERFORMANCE.md, "Orphan
// audit at scale"):
//
//   - pages read (EXPLAIN (ANALYZE, BUFFERS): shared hit + read) and wall
//     time of fkrollout's audit against the same per-FK anti-joins run one
//     after another by psql, on a schema with several FKs per child table
//     ("multi") and on the demo schema ("demo");
//
//   - a large child table audited in chunks while writers insert into it:
//     the writers' p99 latency with no audit, during the audit, and during
//     the audit with a pause between chunks ("large").
//
//     go run ./bench/auditscale -multi-rows 2000000 -large-rows 20000000
//
// Each part creates its own database from -dsn and drops it at the end.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fkrollout/fkrollout/internal/demo"
	"github.com/fkrollout/fkrollout/internal/engine/audit"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/engine/sqlplan"
	"github.com/fkrollout/fkrollout/internal/perf/loadgen/runner"
	sqlassets "github.com/fkrollout/fkrollout/sql"
)

type config struct {
	dsn           string
	only          string
	repeats       int
	multiRows     int
	demoWorkflows int
	largeRows     int
	chunkPages    int
	pause         time.Duration
	pauseChunk    int
	parallelism   int
	writers       int
	rate          int
	baseline      time.Duration
	out, md       string
	keep          bool
}

func main() {
	var c config
	flag.StringVar(&c.dsn, "dsn", envOr("FKROLLOUT_TEST_PG", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "admin DSN; each part creates and drops its own database")
	flag.StringVar(&c.only, "only", "multi,demo,large", "parts to run, comma-separated: multi, demo, large")
	flag.IntVar(&c.repeats, "repeats", 3, "alternating repeats of the wall-time comparisons (medians reported)")
	flag.IntVar(&c.multiRows, "multi-rows", 2_000_000, "rows of the main child table of the multi-FK schema")
	flag.IntVar(&c.demoWorkflows, "demo-workflows", 200_000, "workflows seeded into the demo schema (200 000 ≈ 2.4 M rows)")
	flag.IntVar(&c.largeRows, "large-rows", 20_000_000, "rows of the large child table")
	flag.IntVar(&c.chunkPages, "chunk-pages", audit.DefaultChunkPages, "pages per audit chunk")
	flag.DurationVar(&c.pause, "pause", 250*time.Millisecond, "pause between chunks in the throttled large-table run")
	flag.IntVar(&c.pauseChunk, "pause-chunk-pages", 4096, "pages per chunk in the throttled large-table run (smaller chunks, each followed by -pause)")
	flag.IntVar(&c.parallelism, "parallelism", 2, "tables audited at once (the worker's default audit.parallelism)")
	flag.IntVar(&c.writers, "writers", 4, "concurrent writers on the large table")
	flag.IntVar(&c.rate, "rate", 100, "transactions per second per writer (paced; latency corrected for coordinated omission)")
	flag.DurationVar(&c.baseline, "baseline", 20*time.Second, "how long the writers run alone for the no-audit figure")
	flag.StringVar(&c.out, "out", "", "write the results as JSON here")
	flag.StringVar(&c.md, "md", "", "write the results as Markdown here")
	flag.BoolVar(&c.keep, "keep", false, "keep the databases")
	flag.Parse()
	if c.repeats < 1 || c.multiRows < 1000 || c.largeRows < 1000 || c.chunkPages < 1 || c.pauseChunk < 1 || c.writers < 1 || c.rate < 1 || c.pause < 0 {
		log.Fatal("auditscale: -repeats, -writers, -rate and -chunk-pages must be positive, -multi-rows and -large-rows at least 1000, -pause not negative")
	}
	ctx := context.Background()
	res := Results{Machine: machine(), Started: time.Now().UTC().Format(time.RFC3339)}
	parts := map[string]bool{}
	for _, p := range strings.Split(c.only, ",") {
		switch p = strings.TrimSpace(p); p {
		case "multi", "demo", "large":
			parts[p] = true
		default:
			log.Fatalf("auditscale: -only: unknown part %q (want multi, demo, large)", p)
		}
	}
	if parts["multi"] {
		r, err := multiBench(ctx, c)
		if err != nil {
			log.Fatalf("auditscale: multi: %v", err)
		}
		res.Multi = r
	}
	if parts["demo"] {
		r, err := demoBench(ctx, c)
		if err != nil {
			log.Fatalf("auditscale: demo: %v", err)
		}
		res.Demo = r
	}
	if parts["large"] {
		r, err := largeBench(ctx, c)
		if err != nil {
			log.Fatalf("auditscale: large: %v", err)
		}
		res.Large = r
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	if c.out != "" {
		if err := os.WriteFile(c.out, b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
	md := res.Markdown()
	if c.md != "" {
		if err := os.WriteFile(c.md, []byte(md), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Print(md)
}

// Results are every part's figures.
type Results struct {
	Machine string      `json:"machine"`
	Started string      `json:"started"`
	Multi   *Comparison `json:"multi,omitempty"`
	Demo    *Comparison `json:"demo,omitempty"`
	Large   *Large      `json:"large,omitempty"`
}

// Comparison is the audit against the per-FK anti-joins on one schema.
type Comparison struct {
	Schema      string         `json:"schema"`
	Rows        int64          `json:"rows"`
	FKs         int            `json:"fks"`
	Tables      []TablePages   `json:"tables"`
	AuditPages  int64          `json:"audit_pages"`
	PerFKPages  int64          `json:"per_fk_pages"`
	PagesRatio  float64        `json:"pages_ratio"`
	AuditMS     []float64      `json:"audit_ms"`
	PsqlMS      []float64      `json:"psql_ms"`
	PsqlSerial  []float64      `json:"psql_serial_ms"`
	TimeRatio   float64        `json:"time_ratio"`
	SerialRatio float64        `json:"serial_ratio"`
	Orphans     map[string]int `json:"orphans,omitempty"`
}

// TablePages is one child table's pages, one pass against per FK.
type TablePages struct {
	Table string `json:"table"`
	FKs   int    `json:"fks"`
	Audit int64  `json:"audit"`
	PerFK int64  `json:"per_fk"`
}

// Large is the chunked audit of a large table under writers.
type Large struct {
	Rows         int64   `json:"rows"`
	HeapMB       int64   `json:"heap_mb"`
	LoadS        float64 `json:"load_s"`
	ChunkPages   int     `json:"chunk_pages"`
	Chunks       int     `json:"chunks"`
	PauseMS      float64 `json:"pause_ms"`
	PauseChunk   int     `json:"pause_chunk_pages"`
	PausedChunks int     `json:"paused_chunks"`
	Baseline     Latency `json:"baseline"`
	BaselineEnd  Latency `json:"baseline_end"`
	Audit        Latency `json:"audit"`
	AuditPaused  Latency `json:"audit_paused"`
	AuditS       float64 `json:"audit_s"`
	AuditPausedS float64 `json:"audit_paused_s"`
	Orphans      []int64 `json:"orphans"`
}

// Latency is the writers' latency over one run.
type Latency struct {
	Writes int64   `json:"writes"`
	Errors int64   `json:"errors"`
	P50MS  float64 `json:"p50_ms"`
	P99MS  float64 `json:"p99_ms"`
	MaxMS  float64 `json:"max_ms"`
}

// --- multi-FK schema ----------------------------------------------------------

const multiSchema = `
CREATE TABLE customer (id int PRIMARY KEY, name text);
CREATE TABLE product (id int PRIMARY KEY, name text);
CREATE TABLE store (id int PRIMARY KEY, country text);
CREATE TABLE currency (code text PRIMARY KEY);
CREATE TABLE sale (id bigint PRIMARY KEY, customer_id int, product_id int, store_id int, currency text, amount numeric, note text);
CREATE TABLE refund (id bigint PRIMARY KEY, sale_id bigint, customer_id int, store_id int, reason text);
`

func multiFKs() []plan.ForeignKey {
	fk := func(name, table string, col, ref, refCol string) plan.ForeignKey {
		return plan.ForeignKey{Name: name, Table: plan.TableName{Schema: "public", Name: table}, Columns: []string{col},
			RefTable: plan.TableName{Schema: "public", Name: ref}, RefColumns: []string{refCol}}
	}
	return []plan.ForeignKey{
		fk("sale_customer_fk", "sale", "customer_id", "customer", "id"),
		fk("sale_product_fk", "sale", "product_id", "product", "id"),
		fk("sale_store_fk", "sale", "store_id", "store", "id"),
		fk("sale_currency_fk", "sale", "currency", "currency", "code"),
		fk("refund_sale_fk", "refund", "sale_id", "sale", "id"),
		fk("refund_customer_fk", "refund", "customer_id", "customer", "id"),
		fk("refund_store_fk", "refund", "store_id", "store", "id"),
	}
}

func multiBench(ctx context.Context, c config) (*Comparison, error) {
	dsn, drop, err := createDB(ctx, c, "fkr_bench_multi_")
	if err != nil {
		return nil, err
	}
	defer drop()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	n := c.multiRows
	t0 := time.Now()
	if _, err := pool.Exec(ctx, multiSchema+fmt.Sprintf(`
INSERT INTO customer SELECT g, 'c' || g FROM generate_series(1, 100000) g;
INSERT INTO product SELECT g, 'p' || g FROM generate_series(1, 10000) g;
INSERT INTO store SELECT g, 'c' || g %% 30 FROM generate_series(1, 200) g;
INSERT INTO currency VALUES ('EUR'), ('USD'), ('GBP'), ('JPY'), ('CHF');
INSERT INTO sale SELECT g, 1 + g %% 100000, 1 + (g * 7) %% 10000, CASE WHEN g %% 11 = 0 THEN NULL ELSE 1 + g %% 200 END,
  (ARRAY['EUR','USD','GBP','JPY','CHF'])[1 + g %% 5], (g %% 1000) / 10.0, 'note ' || g
FROM generate_series(1, %d) g;
INSERT INTO refund SELECT g, 1 + (g * 13) %% %d, 1 + g %% 100000, 1 + g %% 200, 'reason ' || g
FROM generate_series(1, %d) g;`, n, n, n/2)); err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		return nil, err
	}
	log.Printf("auditscale: multi-FK schema seeded (%d + %d child rows) in %s", n, n/2, time.Since(t0).Round(time.Millisecond))
	cmp, err := compare(ctx, c, pool, dsn, multiFKs())
	if err != nil {
		return nil, err
	}
	cmp.Schema = "multi-FK (sale: 4 FKs, refund: 3 FKs)"
	cmp.Rows = int64(n + n/2 + 100000 + 10000 + 200 + 5)
	return cmp, nil
}

// --- demo schema ----------------------------------------------------------------

func demoBench(ctx context.Context, c config) (*Comparison, error) {
	p, err := sqlplan.ParseSQL(sqlassets.Migration)
	if err != nil {
		return nil, fmt.Errorf("demo plan: %w", err)
	}
	dsn, drop, err := createDB(ctx, c, "fkr_bench_auditdemo_")
	if err != nil {
		return nil, err
	}
	defer drop()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	const workspaces = 10
	t0 := time.Now()
	if err := demo.Setup(ctx, pool); err != nil {
		return nil, err
	}
	counts, err := demo.Seed(ctx, pool, demo.Options{Workspaces: workspaces, WorkflowsPerWorkspace: max(c.demoWorkflows/workspaces, 1), Seed: 7})
	if err != nil {
		return nil, err
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		return nil, err
	}
	var rows int64
	for _, n := range counts {
		rows += n
	}
	log.Printf("auditscale: demo schema seeded with %d rows in %s", rows, time.Since(t0).Round(time.Millisecond))
	cmp, err := compare(ctx, c, pool, dsn, p.ForeignKeys)
	if err != nil {
		return nil, err
	}
	cmp.Schema = "demo (sql/schema.sql, sql/migration.sql)"
	cmp.Rows = rows
	return cmp, nil
}

// antiJoin is the statement a person runs per FK: the per-FK audit's count
// (MATCH SIMPLE: a row with a NULL FK column is not an orphan).
func antiJoin(fk plan.ForeignKey) string {
	var eq, nn []string
	for i, col := range fk.Columns {
		cc := "c." + pgx.Identifier{col}.Sanitize()
		eq = append(eq, "p."+pgx.Identifier{fk.RefColumns[i]}.Sanitize()+" = "+cc)
		nn = append(nn, cc+" IS NOT NULL")
	}
	return "SELECT count(*) FROM " + fk.Table.Sanitize() + " c WHERE " + strings.Join(nn, " AND ") +
		" AND NOT EXISTS (SELECT 1 FROM " + fk.RefTable.Sanitize() + " p WHERE " + strings.Join(eq, " AND ") + ")"
}

// compare measures pages per child table, then wall time, alternating.
func compare(ctx context.Context, c config, pool *pgxpool.Pool, dsn string, fks []plan.ForeignKey) (*Comparison, error) {
	cmp := &Comparison{FKs: len(fks), Orphans: map[string]int{}}
	byTable := map[string][]plan.ForeignKey{}
	var order []string
	for _, fk := range fks {
		k := fk.Table.String()
		if _, ok := byTable[k]; !ok {
			order = append(order, k)
		}
		byTable[k] = append(byTable[k], fk)
	}
	for _, table := range order {
		group := byTable[table]
		var stmts []audit.Statement
		var mu sync.Mutex
		if _, err := audit.Audit(ctx, pool, group, audit.Options{SampleLimit: -1, ChunkPages: c.chunkPages, OnStatement: func(st audit.Statement) {
			mu.Lock()
			stmts = append(stmts, st)
			mu.Unlock()
		}}); err != nil {
			return nil, err
		}
		one, err := audit.PagesReadAll(ctx, pool, stmts)
		if err != nil {
			return nil, err
		}
		var per []audit.Statement
		for _, fk := range group {
			per = append(per, audit.Statement{SQL: antiJoin(fk)})
		}
		perPages, err := audit.PagesReadAll(ctx, pool, per)
		if err != nil {
			return nil, err
		}
		cmp.Tables = append(cmp.Tables, TablePages{Table: table, FKs: len(group), Audit: one, PerFK: perPages})
		cmp.AuditPages += one
		cmp.PerFKPages += perPages
	}
	cmp.PagesRatio = float64(cmp.AuditPages) / float64(cmp.PerFKPages)
	log.Printf("auditscale: pages: audit %d, per-FK anti-joins %d (%.2f×)", cmp.AuditPages, cmp.PerFKPages, cmp.PagesRatio)

	script, err := os.CreateTemp("", "auditscale-*.sql")
	if err != nil {
		return nil, err
	}
	defer os.Remove(script.Name())
	for _, fk := range fks {
		fmt.Fprintln(script, antiJoin(fk)+";")
	}
	script.Close()
	psql := func(env ...string) (float64, error) {
		t0 := time.Now()
		cmd := exec.CommandContext(ctx, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", script.Name())
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("psql: %v: %s", err, out)
		}
		return ms(time.Since(t0)), nil
	}
	for range c.repeats {
		t0 := time.Now()
		res, err := audit.Audit(ctx, pool, fks, audit.Options{SampleLimit: 5, ChunkPages: c.chunkPages, Parallelism: c.parallelism})
		if err != nil {
			return nil, err
		}
		cmp.AuditMS = append(cmp.AuditMS, ms(time.Since(t0)))
		for _, r := range res {
			if r.Orphans > 0 {
				cmp.Orphans[r.FK] = int(r.Orphans)
			}
		}
		d, err := psql()
		if err != nil {
			return nil, err
		}
		cmp.PsqlMS = append(cmp.PsqlMS, d)
		d, err = psql("PGOPTIONS=-c max_parallel_workers_per_gather=0")
		if err != nil {
			return nil, err
		}
		cmp.PsqlSerial = append(cmp.PsqlSerial, d)
	}
	cmp.TimeRatio = median(cmp.AuditMS) / median(cmp.PsqlMS)
	cmp.SerialRatio = median(cmp.AuditMS) / median(cmp.PsqlSerial)
	log.Printf("auditscale: wall time: audit %v ms, psql %v ms (%.2f×), psql without parallel query %v ms (%.2f×)",
		cmp.AuditMS, cmp.PsqlMS, cmp.TimeRatio, cmp.PsqlSerial, cmp.SerialRatio)
	return cmp, nil
}

// --- large table under writers ------------------------------------------------

func largeBench(ctx context.Context, c config) (*Large, error) {
	dsn, drop, err := createDB(ctx, c, "fkr_bench_auditlarge_")
	if err != nil {
		return nil, err
	}
	defer drop()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	l := &Large{Rows: int64(c.largeRows), ChunkPages: c.chunkPages, PauseMS: ms(c.pause), PauseChunk: c.pauseChunk}
	t0 := time.Now()
	if _, err := pool.Exec(ctx, `
CREATE TABLE account (id int PRIMARY KEY);
INSERT INTO account SELECT generate_series(1, 100000);
CREATE TABLE device (id int PRIMARY KEY);
INSERT INTO device SELECT generate_series(1, 1000);
CREATE TABLE reading (id bigserial PRIMARY KEY, account_id int, device_id int, value double precision, at timestamptz DEFAULT now());`); err != nil {
		return nil, err
	}
	// Loaded in batches of 1 M rows so a slow machine shows progress.
	const batch = 1_000_000
	for from := 1; from <= c.largeRows; from += batch {
		to := min(from+batch-1, c.largeRows)
		if _, err := pool.Exec(ctx, fmt.Sprintf(`INSERT INTO reading (account_id, device_id, value)
SELECT CASE WHEN g %% 1000003 = 0 THEN -g ELSE 1 + g %% 100000 END, 1 + g %% 1000, g FROM generate_series(%d, %d) g`, from, to)); err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		log.Printf("auditscale: large: %d of %d rows", to, c.largeRows)
	}
	if _, err := pool.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		return nil, err
	}
	l.LoadS = time.Since(t0).Seconds()
	if err := pool.QueryRow(ctx, "SELECT pg_relation_size('reading') / 1048576").Scan(&l.HeapMB); err != nil {
		return nil, err
	}
	log.Printf("auditscale: large: %d rows, heap %d MB, loaded in %s", c.largeRows, l.HeapMB, time.Since(t0).Round(time.Second))
	fks := []plan.ForeignKey{
		{Name: "reading_account_fk", Table: plan.TableName{Schema: "public", Name: "reading"}, Columns: []string{"account_id"},
			RefTable: plan.TableName{Schema: "public", Name: "account"}, RefColumns: []string{"id"}},
		{Name: "reading_device_fk", Table: plan.TableName{Schema: "public", Name: "reading"}, Columns: []string{"device_id"},
			RefTable: plan.TableName{Schema: "public", Name: "device"}, RefColumns: []string{"id"}},
	}
	// Warm the cache the same way for every run: one untimed audit.
	if _, err := audit.Audit(ctx, pool, fks, audit.Options{SampleLimit: -1, ChunkPages: c.chunkPages}); err != nil {
		return nil, err
	}
	l.Baseline, _, err = underWriters(ctx, pool, c, func(context.Context) error { time.Sleep(c.baseline); return nil })
	if err != nil {
		return nil, err
	}
	runAudit := func(pages int, pause time.Duration, took *float64, chunks *int) func(context.Context) error {
		return func(ctx context.Context) error {
			t0 := time.Now()
			res, err := audit.Audit(ctx, pool, fks, audit.Options{ChunkPages: pages, Pause: pause, OnCheckpoint: func(cp audit.Checkpoint) error {
				*chunks = cp.Tables[0].Chunks
				return nil
			}})
			*took = time.Since(t0).Seconds()
			if err == nil {
				l.Orphans = nil
				for _, r := range res {
					l.Orphans = append(l.Orphans, r.Orphans)
				}
			}
			return err
		}
	}
	if l.Audit, _, err = underWriters(ctx, pool, c, runAudit(c.chunkPages, 0, &l.AuditS, &l.Chunks)); err != nil {
		return nil, err
	}
	if l.AuditPaused, _, err = underWriters(ctx, pool, c, runAudit(c.pauseChunk, c.pause, &l.AuditPausedS, &l.PausedChunks)); err != nil {
		return nil, err
	}
	// Writers alone again at the end: on a shared machine the difference
	// between the two baselines is the noise the audit figures sit in.
	if l.BaselineEnd, _, err = underWriters(ctx, pool, c, func(context.Context) error { time.Sleep(c.baseline); return nil }); err != nil {
		return nil, err
	}
	log.Printf("auditscale: large: writers p99 alone %.1f ms, during the audit %.1f ms (%.1f s, %d chunks), %d-page chunks with %s pauses %.1f ms (%.1f s, %d chunks)",
		l.Baseline.P99MS, l.Audit.P99MS, l.AuditS, l.Chunks, c.pauseChunk, c.pause, l.AuditPaused.P99MS, l.AuditPausedS, l.PausedChunks)
	return l, nil
}

// underWriters runs work while c.writers connections insert into reading at
// c.rate each, and returns their latency over the whole run.
func underWriters(ctx context.Context, pool *pgxpool.Pool, c config, work func(context.Context) error) (Latency, time.Duration, error) {
	var lat Latency
	interval := time.Second / time.Duration(c.rate)
	stop := make(chan struct{})
	hists := make([]*hdrhistogram.Histogram, c.writers)
	var writes, errs atomic.Int64
	var wg sync.WaitGroup
	for i := range c.writers {
		conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
		if err != nil {
			close(stop)
			wg.Wait()
			return lat, 0, fmt.Errorf("writer connect: %w", err)
		}
		h := runner.NewHistogram()
		hists[i] = h
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close(context.Background())
			next := time.Now()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				}
				start := time.Now()
				_, err := conn.Exec(ctx, `INSERT INTO reading (account_id, device_id, value) VALUES ($1, $2, $3)`, 1+(n*7919+i*104729)%100000, 1+n%1000, float64(n))
				el := time.Since(start)
				if err != nil {
					errs.Add(1)
				} else {
					writes.Add(1)
				}
				_ = h.RecordCorrectedValue(max(el.Microseconds(), 1), interval.Microseconds())
				next = next.Add(interval)
				if time.Until(next) < -interval {
					next = time.Now()
				}
			}
		}()
	}
	time.Sleep(time.Second) // writers settle before the measured work
	for _, h := range hists {
		h.Reset()
	}
	t0 := time.Now()
	err := work(ctx)
	took := time.Since(t0)
	close(stop)
	wg.Wait()
	if err != nil {
		return lat, took, err
	}
	all := runner.NewHistogram()
	for _, h := range hists {
		all.Merge(h)
	}
	lat.Writes, lat.Errors = writes.Load(), errs.Load()
	lat.P50MS = runner.MicrosToMillis(all.ValueAtQuantile(50))
	lat.P99MS = runner.MicrosToMillis(all.ValueAtQuantile(99))
	lat.MaxMS = runner.MicrosToMillis(all.Max())
	return lat, took, nil
}

// --- helpers ---------------------------------------------------------------------

func createDB(ctx context.Context, c config, prefix string) (string, func(), error) {
	name := prefix + randHex(4)
	dsn, err := demo.CreateDatabase(ctx, c.dsn, name, true)
	if err != nil {
		return "", nil, err
	}
	drop := func() {
		if c.keep {
			log.Printf("auditscale: kept database %s", name)
			return
		}
		if admin, err := pgx.Connect(context.Background(), c.dsn); err == nil {
			_, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			_ = admin.Close(context.Background())
		}
	}
	return dsn, drop, nil
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func machine() string {
	out, _ := exec.Command("nproc").Output()
	load, _ := os.ReadFile("/proc/loadavg")
	return fmt.Sprintf("%s cores, load average %s", strings.TrimSpace(string(out)), strings.Join(strings.Fields(string(load))[:3], " "))
}

func listf(xs []float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(s, "/")
}

// Markdown is the report docs/PERFORMANCE.md quotes.
func (r Results) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s; started %s.\n\n", r.Machine, r.Started)
	for _, cmp := range []*Comparison{r.Multi, r.Demo} {
		if cmp == nil {
			continue
		}
		fmt.Fprintf(&b, "#### %s, %d rows, %d FKs\n\n", cmp.Schema, cmp.Rows, cmp.FKs)
		b.WriteString("| Child table | FKs | pages, audit (one pass) | pages, per-FK anti-joins | ratio |\n|---|---|---|---|---|\n")
		for _, t := range cmp.Tables {
			fmt.Fprintf(&b, "| %s | %d | %d | %d | %.2f× |\n", t.Table, t.FKs, t.Audit, t.PerFK, float64(t.Audit)/float64(t.PerFK))
		}
		fmt.Fprintf(&b, "| **all** | %d | **%d** | **%d** | **%.2f×** |\n\n", cmp.FKs, cmp.AuditPages, cmp.PerFKPages, cmp.PagesRatio)
		fmt.Fprintf(&b, "Wall time (medians of %d): audit %.0f ms (%s); psql -f of the anti-joins %.0f ms (%s): **%.2f×**; psql without parallel query %.0f ms (%s): %.2f×.\n\n",
			len(cmp.AuditMS), median(cmp.AuditMS), listf(cmp.AuditMS), median(cmp.PsqlMS), listf(cmp.PsqlMS), cmp.TimeRatio,
			median(cmp.PsqlSerial), listf(cmp.PsqlSerial), cmp.SerialRatio)
	}
	if l := r.Large; l != nil {
		fmt.Fprintf(&b, "#### Large table: %d rows (heap %d MB), 2 FKs, chunks of %d pages (%d chunks), %d orphans found\n\n", l.Rows, l.HeapMB, l.ChunkPages, l.Chunks, sum(l.Orphans))
		b.WriteString("| Writers (4, paced) | p50 | p99 | max | audit time |\n|---|---|---|---|---|\n")
		fmt.Fprintf(&b, "| alone, before | %.1f ms | %.1f ms | %.1f ms | |\n", l.Baseline.P50MS, l.Baseline.P99MS, l.Baseline.MaxMS)
		fmt.Fprintf(&b, "| alone, after | %.1f ms | %.1f ms | %.1f ms | |\n", l.BaselineEnd.P50MS, l.BaselineEnd.P99MS, l.BaselineEnd.MaxMS)
		fmt.Fprintf(&b, "| during the audit | %.1f ms | %.1f ms | %.1f ms | %.1f s |\n", l.Audit.P50MS, l.Audit.P99MS, l.Audit.MaxMS, l.AuditS)
		fmt.Fprintf(&b, "| during the audit, chunks of %d pages (%d) each followed by a %.0f ms pause | %.1f ms | %.1f ms | %.1f ms | %.1f s |\n\n", l.PauseChunk, l.PausedChunks, l.PauseMS, l.AuditPaused.P50MS, l.AuditPaused.P99MS, l.AuditPaused.MaxMS, l.AuditPausedS)
	}
	return b.String()
}

func sum(xs []int64) int64 {
	var s int64
	for _, x := range xs {
		s += x
	}
	return s
}
