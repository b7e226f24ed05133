// Command zerostall is fkrollout's zero-stall benchmark (docs/PERFORMANCE.md,
// "Zero-stall benchmark"): on a
// child table of millions of rows, with writers inserting into it
// throughout, it migrates the same foreign key three ways (naive ADD
// FOREIGN KEY, a hand-written NOT VALID + VALIDATE without lock_timeout,
// fkrollout's engine), each with and without one blocking transaction (an
// uncommitted write on the child table held for 10 s, started just before
// the migration), and reports the writers' max and p99 latency.
//
// It also compares fkrollout's apply+validate wall time with psql running
// the same statements, and the load generator's throughput with pgbench
// running the same statement.
//
//	go run ./bench/zerostall -rows 2000000
//
// It creates its own database (dropped at the end) from -dsn.
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/perf/loadgen"
	"github.com/fkrollout/fkrollout/internal/perf/loadgen/runner"
)

type config struct {
	dsn              string
	rows             int
	parents          int
	writers          int
	rate             int
	blocker          time.Duration
	longBlocker      time.Duration
	longAttempts     int
	longRepeats      int
	settle           time.Duration
	policy           dbx.LockPolicy
	repeats          int
	pgbenchTime      time.Duration
	clients          int
	out              string
	md               string
	keep             bool
	skipExtras       bool
	only             string
	auditParallelism int
	stallRepeats     int
	demoWorkflows    int
}

func main() {
	var c config
	flag.StringVar(&c.dsn, "dsn", envOr("FKROLLOUT_TEST_PG", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "admin DSN; the benchmark creates and drops its own database")
	flag.IntVar(&c.rows, "rows", 2_000_000, "rows in the child table")
	flag.IntVar(&c.parents, "parents", 10_000, "rows in the parent table")
	flag.IntVar(&c.writers, "writers", 4, "concurrent writers inserting into the child table")
	flag.IntVar(&c.rate, "rate", 200, "transactions per second per writer (paced; latency is corrected for coordinated omission)")
	flag.DurationVar(&c.blocker, "blocker", 10*time.Second, "how long the blocking transaction holds its write")
	flag.DurationVar(&c.longBlocker, "long-blocker", 60*time.Second, "the long-blocker scenario's blocker (fkrollout queueing and retrying vs waiting it out; 0 skips it)")
	flag.IntVar(&c.longRepeats, "long-repeats", 1, "rounds of the long-blocker scenario (its three runs alternate)")
	flag.IntVar(&c.longAttempts, "long-attempts", 400, "fkrollout's attempts per statement in the long-blocker scenario (enough to outlast the blocker when queueing)")
	flag.DurationVar(&c.settle, "settle", time.Second, "writer time recorded before and after each migration")
	flag.DurationVar(&c.policy.LockTimeout, "lock-timeout", 200*time.Millisecond, "fkrollout's lock_timeout per attempt")
	flag.IntVar(&c.policy.Attempts, "attempts", 40, "fkrollout's attempts per statement")
	flag.DurationVar(&c.policy.BaseBackoff, "base-backoff", 100*time.Millisecond, "fkrollout's first retry backoff")
	flag.DurationVar(&c.policy.MaxBackoff, "max-backoff", time.Second, "fkrollout's maximum retry backoff")
	flag.IntVar(&c.repeats, "repeats", 3, "repeats of the wall-time comparison (median reported)")
	flag.DurationVar(&c.pgbenchTime, "pgbench-time", 10*time.Second, "duration of each throughput run")
	flag.IntVar(&c.clients, "clients", 4, "clients of the throughput comparison")
	flag.StringVar(&c.out, "out", "", "write the results as JSON to this file")
	flag.StringVar(&c.md, "md", "", "write the Markdown report to this file")
	flag.BoolVar(&c.keep, "keep", false, "keep the benchmark database")
	flag.BoolVar(&c.skipExtras, "skip-extras", false, "only the six stall runs")
	flag.StringVar(&c.only, "only", "", "run one part: stalls, longblocker, walltime, audit or throughput")
	flag.IntVar(&c.demoWorkflows, "demo-workflows", 0, "workflows of the demo data the audit runs on (default rows/10)")
	flag.IntVar(&c.stallRepeats, "stall-repeats", 3, "repeats of each migration without the blocker (the median max is reported)")
	flag.IntVar(&c.auditParallelism, "audit-parallelism", 4, "audit.Options.Parallelism")
	flag.Parse()
	if c.demoWorkflows <= 0 {
		c.demoWorkflows = max(c.rows/10, 10)
	}

	ctx := context.Background()
	res, err := run(ctx, c)
	if err != nil {
		log.Fatal(err)
	}
	md := res.Markdown()
	fmt.Println(md)
	if c.md != "" {
		if err := os.WriteFile(c.md, []byte(md), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	if c.out != "" {
		res.evaluate()
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(c.out, b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

// Stall is one migration run's writer latency.
type Stall struct {
	Method      string  `json:"method"`
	Blocker     bool    `json:"blocker"`
	MigrationMS float64 `json:"migration_ms"`
	Attempts    int     `json:"attempts,omitempty"`
	// Round is the long-blocker scenario's round.
	Round int `json:"round,omitempty"`
	// BlockerFor is how long the blocker held its write ("" without one).
	BlockerFor string `json:"blocker_for,omitempty"`
	// WaitedMS is the time fkrollout waited for blockers without queueing.
	WaitedMS float64 `json:"waited_ms,omitempty"`
	Writes   int64   `json:"writes"`
	// SlowPct is the share of writes over 100 ms, in percent, from the
	// histogram corrected for coordinated omission.
	SlowPct float64 `json:"writes_over_100ms_pct"`
	// The same for the writes started while the blocker held its lock.
	HeldWrites  int64   `json:"held_writes,omitempty"`
	HeldSlowPct float64 `json:"held_writes_over_100ms_pct,omitempty"`
	HeldP99MS   float64 `json:"held_p99_ms,omitempty"`
	Errors      int64   `json:"errors"`
	P50MS       float64 `json:"p50_ms"`
	P99MS       float64 `json:"p99_ms"`
	MaxMS       float64 `json:"max_ms"`
	// MaxRuns is every repeat's max when the run was repeated.
	MaxRuns []float64 `json:"max_runs,omitempty"`
}

// Results is everything the benchmark measured.
type Results struct {
	Machine       Machine  `json:"machine"`
	Config        string   `json:"config"`
	BlockerFor    string   `json:"blocker_for"`
	LockTimeoutMS float64  `json:"lock_timeout_ms"`
	Targets       []Target `json:"targets"`
	SetupMS       float64  `json:"setup_ms"`
	Idle          Stall    `json:"idle"`
	Stalls        []Stall  `json:"stalls"`
	// Long is the long-blocker scenario: fkrollout queueing and retrying
	// (lock.blocker_wait: off) against waiting the blocker out.
	Long       []Stall     `json:"long_blocker,omitempty"`
	WallTime   *WallTime   `json:"wall_time,omitempty"`
	Throughput *Throughput `json:"throughput,omitempty"`
	Audit      *AuditBench `json:"audit,omitempty"`
}

type Machine struct {
	CPUs      int    `json:"cpus"`
	MemoryGB  string `json:"memory_gb"`
	Postgres  string `json:"postgres"`
	GoVersion string `json:"go"`
	Load      string `json:"load_before"`
}

type WallTime struct {
	FkrolloutMS []float64 `json:"fkrollout_ms"`
	PsqlMS      []float64 `json:"psql_ms"`
	Ratio       float64   `json:"ratio"`
	// PsqlStartupMS is psql -c 'SELECT 1' (process start + connection);
	// NetRatio compares against psql's time without it.
	PsqlStartupMS []float64 `json:"psql_startup_ms"`
	NetRatio      float64   `json:"net_ratio"`
}

type Throughput struct {
	Statement   string    `json:"statement"`
	Clients     int       `json:"clients"`
	LoadgenTPS  float64   `json:"loadgen_tps"`
	PgbenchTPS  float64   `json:"pgbench_tps"`
	LoadgenRuns []float64 `json:"loadgen_runs"`
	PgbenchRuns []float64 `json:"pgbench_runs"`
	// Client CPU time (user+sys) per transaction, µs.
	LoadgenCPUus []float64 `json:"loadgen_cpu_us_per_tx"`
	PgbenchCPUus []float64 `json:"pgbench_cpu_us_per_tx"`
	Ratio        float64   `json:"ratio"`
}

func run(ctx context.Context, c config) (Results, error) {
	var res Results
	res.Machine = machine()
	res.BlockerFor = c.blocker.String()
	res.LockTimeoutMS = ms(c.policy.LockTimeout)
	res.Config = fmt.Sprintf("rows=%d parents=%d writers=%d rate=%d/s/writer blocker=%s lock_timeout=%s attempts=%d backoff=%s..%s",
		c.rows, c.parents, c.writers, c.rate, c.blocker, c.policy.LockTimeout, c.policy.Attempts, c.policy.BaseBackoff, c.policy.MaxBackoff)
	log.Printf("zerostall: %s", res.Config)

	dbName := "fkr_bench_" + randHex(4)
	admin, err := pgx.Connect(ctx, c.dsn)
	if err != nil {
		return res, fmt.Errorf("connect admin: %w", err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{dbName}.Sanitize()); err != nil {
		return res, fmt.Errorf("create database: %w", err)
	}
	_ = admin.QueryRow(ctx, "SHOW server_version").Scan(&res.Machine.Postgres)
	defer func() {
		if c.keep {
			log.Printf("zerostall: kept database %s", dbName)
		} else if _, err := admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{dbName}.Sanitize()+" WITH (FORCE)"); err != nil {
			log.Printf("zerostall: drop %s: %v", dbName, err)
		}
		_ = admin.Close(context.Background())
	}()
	cfg, err := pgxpool.ParseConfig(c.dsn)
	if err != nil {
		return res, err
	}
	cfg.ConnConfig.Database = dbName
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return res, err
	}
	defer pool.Close()
	dbDSN := withDatabase(c.dsn, dbName)

	t0 := time.Now()
	if err := setup(ctx, pool, c); err != nil {
		return res, err
	}
	res.SetupMS = ms(time.Since(t0))
	log.Printf("zerostall: setup %d rows in %s", c.rows, time.Since(t0).Round(time.Millisecond))

	fk := benchFK()

	if c.only == "" || c.only == "stalls" {
		if err := stalls(ctx, pool, c, fk, &res); err != nil {
			return res, err
		}
	}
	if c.longBlocker > 0 && (c.only == "" || c.only == "longblocker") {
		if err := longBlocker(ctx, pool, c, fk, &res); err != nil {
			return res, err
		}
	}
	if c.skipExtras {
		return res, nil
	}
	if c.only == "" || c.only == "walltime" {
		wt, err := wallTime(ctx, pool, dbDSN, fk, c)
		if err != nil {
			return res, err
		}
		res.WallTime = wt
	}
	if c.only == "" || c.only == "audit" {
		ab, err := auditBench(ctx, c)
		if err != nil {
			return res, err
		}
		res.Audit = ab
	}
	if c.only == "" || c.only == "throughput" {
		tp, err := throughput(ctx, pool, dbDSN, c)
		if err != nil {
			return res, err
		}
		res.Throughput = tp
	}
	return res, nil
}

func stalls(ctx context.Context, pool *pgxpool.Pool, c config, fk plan.ForeignKey, res *Results) (err error) {
	// The writers alone, for reference.
	res.Idle, err = measure(ctx, pool, c, "no migration", 0, func(context.Context) (int, time.Duration, error) {
		time.Sleep(c.settle)
		return 0, 0, nil
	})
	if err != nil {
		return err
	}
	methods := []struct {
		name string
		fn   func(ctx context.Context) (int, time.Duration, error)
	}{
		{"naive ADD FOREIGN KEY", func(ctx context.Context) (int, time.Duration, error) {
			_, err := pool.Exec(ctx, fk.AddSQL(false))
			return 1, 0, err
		}},
		{"hand NOT VALID + VALIDATE", func(ctx context.Context) (int, time.Duration, error) {
			if _, err := pool.Exec(ctx, fk.AddSQL(true)); err != nil {
				return 1, 0, err
			}
			_, err := pool.Exec(ctx, fk.ValidateSQL())
			return 2, 0, err
		}},
		{"fkrollout", func(ctx context.Context) (int, time.Duration, error) {
			return engineApplyValidate(ctx, pool, fk, c.policy)
		}},
	}
	// The runs without a blocker are short and their max is one sample of
	// a noisy, shared machine: each is repeated and the run with the median
	// max is reported (every run's max is kept). The blocker runs are
	// dominated by the blocker and run once.
	for _, blocker := range []bool{false, true} {
		for _, m := range methods {
			n := 1
			if !blocker {
				n = max(c.stallRepeats, 1)
			}
			var runs []Stall
			for range n {
				if _, err := pool.Exec(ctx, fk.DropSQL()); err != nil {
					return err
				}
				if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
					return err
				}
				var blockFor time.Duration
				if blocker {
					blockFor = c.blocker
				}
				s, err := measure(ctx, pool, c, m.name, blockFor, m.fn)
				if err != nil {
					return err
				}
				var valid bool
				if err := pool.QueryRow(ctx, `SELECT convalidated FROM pg_constraint WHERE conname = $1`, fk.Name).Scan(&valid); err != nil || !valid {
					return fmt.Errorf("%s: constraint not validated after the run (%v)", m.name, err)
				}
				log.Printf("zerostall: %-28s blocker=%-5v migration %8.0f ms  writer p99 %8.1f ms  max %8.1f ms", s.Method, s.Blocker, s.MigrationMS, s.P99MS, s.MaxMS)
				runs = append(runs, s)
			}
			slices.SortFunc(runs, func(a, b Stall) int { return cmp.Compare(a.MaxMS, b.MaxMS) })
			s := runs[len(runs)/2]
			for _, r := range runs {
				s.MaxRuns = append(s.MaxRuns, r.MaxMS)
			}
			res.Stalls = append(res.Stalls, s)
		}
	}
	return nil
}

// longBlocker runs fkrollout's migration twice under one long blocker
// (c.longBlocker): queueing and retrying under lock_timeout
// (lock.blocker_wait: off, the behaviour before the wait existed), then
// waiting the blocker out without queueing (the default). Same policy
// otherwise, with attempts enough to outlast the blocker either way. A
// first run starts the hand plan only after the blocker has ended: what
// the writers pay anyway (the blocker, VALIDATE's scan on a shared
// machine) when nobody queues behind the blocker.
func longBlocker(ctx context.Context, pool *pgxpool.Pool, c config, fk plan.ForeignKey, res *Results) error {
	queue := c.policy
	queue.Attempts, queue.BlockerWait = c.longAttempts, -1
	wait := c.policy
	wait.Attempts, wait.BlockerWait = c.longAttempts, c.longBlocker+time.Minute
	methods := []struct {
		name string
		p    *dbx.LockPolicy
	}{{"reference: hand NOT VALID + VALIDATE run after the blocker ended", nil}, {"fkrollout, queue and retry (blocker_wait off)", &queue}, {"fkrollout, wait out the blocker (default)", &wait}}
	for round := range max(c.longRepeats, 1) {
		for _, m := range methods {
			if _, err := pool.Exec(ctx, fk.DropSQL()); err != nil {
				return err
			}
			if _, err := pool.Exec(ctx, "CHECKPOINT"); err != nil {
				return err
			}
			s, err := measure(ctx, pool, c, m.name, c.longBlocker, func(ctx context.Context) (int, time.Duration, error) {
				if m.p == nil {
					// The hand plan, started only once the blocker has ended.
					time.Sleep(c.longBlocker + 100*time.Millisecond)
					if _, err := pool.Exec(ctx, fk.AddSQL(true)); err != nil {
						return 1, 0, err
					}
					_, err := pool.Exec(ctx, fk.ValidateSQL())
					return 2, 0, err
				}
				return engineApplyValidate(ctx, pool, fk, *m.p)
			})
			if err != nil {
				return err
			}
			s.Round = round + 1
			log.Printf("zerostall: round %d %-46s blocker=%s migration %8.0f ms  writer p99 %8.1f ms  max %8.1f ms  > 100 ms %.2f %%; while held: %d writes, > 100 ms %.2f %%, p99 %.1f ms; attempts %d  waited %.0f ms",
				s.Round, s.Method, s.BlockerFor, s.MigrationMS, s.P99MS, s.MaxMS, s.SlowPct, s.HeldWrites, s.HeldSlowPct, s.HeldP99MS, s.Attempts, s.WaitedMS)
			res.Long = append(res.Long, s)
		}
	}
	return nil
}

// benchFK is the constraint every stall run adds.
func benchFK() plan.ForeignKey {
	return plan.ForeignKey{Name: "fk_bench_child_parent", Table: plan.TableName{Schema: "public", Name: "bench_child"},
		Columns: []string{"parent_id"}, RefTable: plan.TableName{Schema: "public", Name: "bench_parent"}, RefColumns: []string{"id"}, OnDelete: plan.ActionRestrict}
}

func setup(ctx context.Context, pool *pgxpool.Pool, c config) error {
	stmts := []string{
		`CREATE TABLE bench_parent (id bigint PRIMARY KEY, name text NOT NULL)`,
		fmt.Sprintf(`INSERT INTO bench_parent SELECT g, 'parent ' || g FROM generate_series(1, %d) g`, c.parents),
		`CREATE TABLE bench_child (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, parent_id bigint NOT NULL, payload text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`,
		fmt.Sprintf(`INSERT INTO bench_child (id, parent_id, payload) SELECT g, 1 + g %% %d, md5(g::text) FROM generate_series(1, %d) g`, c.parents, c.rows),
		fmt.Sprintf(`SELECT setval(pg_get_serial_sequence('bench_child', 'id'), %d)`, c.rows),
		`CREATE INDEX ON bench_child (parent_id)`,
		// An autovacuum starting mid-run would add noise unrelated to the
		// migration being measured.
		`ALTER TABLE bench_child SET (autovacuum_enabled = false)`,
		`ALTER TABLE bench_parent SET (autovacuum_enabled = false)`,
		`VACUUM (ANALYZE) bench_parent`,
		`VACUUM (ANALYZE) bench_child`,
	}
	for _, s := range stmts {
		if _, err := pool.Exec(ctx, s); err != nil {
			return fmt.Errorf("setup %q: %w", s, err)
		}
	}
	return nil
}

// measure runs the writers, starts the blocker when asked, runs the
// migration, and returns the writers' latency over settle + migration +
// settle (+ until the blocker ended).
func measure(ctx context.Context, pool *pgxpool.Pool, c config, method string, blockFor time.Duration, migrate func(context.Context) (int, time.Duration, error)) (Stall, error) {
	blocker := blockFor > 0
	s := Stall{Method: method, Blocker: blocker}
	if blocker {
		s.BlockerFor = blockFor.String()
	}
	interval := time.Second / time.Duration(c.rate)
	stop := make(chan struct{})
	hists := make([]*hdrhistogram.Histogram, c.writers)
	// held: the blocker holds its lock; heldHists are the writes started
	// meanwhile (what the blocker scenario's target is about).
	var held atomic.Bool
	heldHists := make([]*hdrhistogram.Histogram, c.writers)
	var writes, errs atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	conns := make([]*pgx.Conn, c.writers)
	for i := range conns {
		cc, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
		if err != nil {
			return s, fmt.Errorf("writer connect: %w", err)
		}
		conns[i] = cc
		defer cc.Close(context.Background())
	}
	for i := range c.writers {
		h, hh := runner.NewHistogram(), runner.NewHistogram()
		hists[i], heldHists[i] = h, hh
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := conns[i]
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
				start, during := time.Now(), held.Load()
				_, err := conn.Exec(ctx, `INSERT INTO bench_child (parent_id, payload) VALUES ($1, $2)`, int64(1+(n*7919+i*104729)%c.parents), "writer")
				el := time.Since(start)
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					writes.Add(1)
				}
				// Coordinated omission: a stalled writer would have issued
				// a transaction every interval; those are recorded too.
				_ = h.RecordCorrectedValue(max(el.Microseconds(), 1), interval.Microseconds())
				if during {
					_ = hh.RecordCorrectedValue(max(el.Microseconds(), 1), interval.Microseconds())
				}
				next = next.Add(interval)
				if time.Until(next) < -interval {
					next = time.Now()
				}
			}
		}()
	}
	time.Sleep(c.settle)

	blockerDone := make(chan error, 1)
	if blocker {
		bc, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
		if err != nil {
			close(stop)
			wg.Wait()
			return s, err
		}
		defer bc.Close(context.Background())
		tx, err := bc.Begin(ctx)
		if err == nil {
			_, err = tx.Exec(ctx, `INSERT INTO bench_child (parent_id, payload) VALUES (1, 'blocker')`)
		}
		if err != nil {
			close(stop)
			wg.Wait()
			return s, fmt.Errorf("blocker: %w", err)
		}
		held.Store(true)
		go func() {
			time.Sleep(blockFor)
			held.Store(false)
			blockerDone <- tx.Rollback(context.Background())
		}()
	} else {
		blockerDone <- nil
	}

	t0 := time.Now()
	attempts, waited, err := migrate(ctx)
	s.MigrationMS = ms(time.Since(t0))
	s.Attempts, s.WaitedMS = attempts, ms(waited)
	if berr := <-blockerDone; berr != nil && err == nil {
		err = fmt.Errorf("blocker rollback: %w", berr)
	}
	time.Sleep(c.settle)
	close(stop)
	wg.Wait()
	if err != nil {
		return s, fmt.Errorf("%s: %w", method, err)
	}
	all := runner.NewHistogram()
	for _, h := range hists {
		all.Merge(h)
	}
	s.Writes, s.Errors = writes.Load(), errs.Load()
	if s.Errors > 0 {
		log.Printf("zerostall: %s: %d writer errors, first: %v", method, s.Errors, firstErr.Load())
	}
	s.P50MS = runner.MicrosToMillis(all.ValueAtQuantile(50))
	s.P99MS = runner.MicrosToMillis(all.ValueAtQuantile(99))
	s.MaxMS = runner.MicrosToMillis(all.Max())
	s.SlowPct = slowPct(all)
	if blocker {
		during := runner.NewHistogram()
		for _, h := range heldHists {
			during.Merge(h)
		}
		s.HeldWrites = during.TotalCount()
		s.HeldSlowPct = slowPct(during)
		s.HeldP99MS = runner.MicrosToMillis(during.ValueAtQuantile(99))
	}
	return s, nil
}

// slowPct is the share of h's values over 100 ms, in percent.
func slowPct(h *hdrhistogram.Histogram) float64 {
	var slow int64
	for _, b := range h.Distribution() {
		if b.From > 100_000 {
			slow += b.Count
		}
	}
	if n := h.TotalCount(); n > 0 {
		return 100 * float64(slow) / float64(n)
	}
	return 0
}

// wallTime: fkrollout's apply+validate against psql running the same two
// statements (autocommit, as a hand-run migration does), alternating, no load.
func wallTime(ctx context.Context, pool *pgxpool.Pool, dsn string, fk plan.ForeignKey, c config) (*WallTime, error) {
	if _, err := exec.LookPath("psql"); err != nil {
		return nil, fmt.Errorf("wall-time comparison needs psql: %w", err)
	}
	wt := &WallTime{}
	for range c.repeats {
		if _, err := pool.Exec(ctx, fk.DropSQL()); err != nil {
			return nil, err
		}
		t0 := time.Now()
		if _, _, err := engineApplyValidate(ctx, pool, fk, c.policy); err != nil {
			return nil, err
		}
		wt.FkrolloutMS = append(wt.FkrolloutMS, ms(time.Since(t0)))

		if _, err := pool.Exec(ctx, fk.DropSQL()); err != nil {
			return nil, err
		}
		t0 = time.Now()
		cmd := exec.CommandContext(ctx, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", fk.AddSQL(true), "-c", fk.ValidateSQL())
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("psql: %v: %s", err, out)
		}
		wt.PsqlMS = append(wt.PsqlMS, ms(time.Since(t0)))

		t0 = time.Now()
		if out, err := exec.CommandContext(ctx, "psql", "-X", "-q", "-d", dsn, "-c", "SELECT 1").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("psql: %v: %s", err, out)
		}
		wt.PsqlStartupMS = append(wt.PsqlStartupMS, ms(time.Since(t0)))
	}
	wt.Ratio = median(wt.FkrolloutMS) / median(wt.PsqlMS)
	if net := median(wt.PsqlMS) - median(wt.PsqlStartupMS); net > 0 {
		wt.NetRatio = median(wt.FkrolloutMS) / net
	}
	log.Printf("zerostall: apply+validate fkrollout %v ms, psql %v ms, ratio %.3f", wt.FkrolloutMS, wt.PsqlMS, wt.Ratio)
	return wt, nil
}

// throughput: the load generator against pgbench, same statement, same
// clients, same duration, prepared statements on both sides.
func throughput(ctx context.Context, pool *pgxpool.Pool, dsn string, c config) (*Throughput, error) {
	if _, err := exec.LookPath("pgbench"); err != nil {
		return nil, fmt.Errorf("throughput comparison needs pgbench: %w", err)
	}
	stmt := "SELECT payload FROM bench_child WHERE id = :id"
	tp := &Throughput{Statement: stmt, Clients: c.clients}
	w, err := loadgen.ParseWorkload([]byte(fmt.Sprintf(`
operations:
  - name: point_select
    params: {id: "SELECT 1 + (random() * %d)::bigint FROM generate_series(1, 100000)"}
    statements: ["%s"]`, c.rows-1, stmt)))
	if err != nil {
		return nil, err
	}
	script, err := os.CreateTemp("", "zerostall-*.sql")
	if err != nil {
		return nil, err
	}
	defer os.Remove(script.Name())
	fmt.Fprintf(script, "\\set id random(1, %d)\n%s;\n", c.rows, stmt)
	script.Close()
	threads := min(c.clients, runtime.NumCPU())
	// The machine is shared: the two tools alternate, c.repeats rounds, and
	// the medians are compared.
	for range c.repeats {
		before := cpuSelf()
		rep, err := runner.Run(ctx, pool, w, loadgen.RunOptions{Workers: c.clients, Duration: c.pgbenchTime, Warmup: time.Second, MaxParamRows: 100000})
		if err != nil {
			return nil, err
		}
		if n := float64(rep.Total.Count) * (c.pgbenchTime + time.Second).Seconds() / c.pgbenchTime.Seconds(); n > 0 {
			// Warm-up included in both the CPU and (scaled) the count.
			tp.LoadgenCPUus = append(tp.LoadgenCPUus, float64((cpuSelf()-before).Microseconds())/n)
		}
		if rep.Total.Errors > 0 {
			return nil, fmt.Errorf("loadgen: %d errors: %s", rep.Total.Errors, rep.Total.FirstError)
		}
		tp.LoadgenRuns = append(tp.LoadgenRuns, rep.Total.Throughput)

		cmd := exec.CommandContext(ctx, "pgbench", "-n", "-M", "prepared", "-c", strconv.Itoa(c.clients), "-j", strconv.Itoa(threads),
			"-T", strconv.Itoa(int(c.pgbenchTime.Seconds())), "-f", script.Name(), dsn)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("pgbench: %v: %s", err, out)
		}
		m := regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`).FindSubmatch(out)
		if m == nil {
			return nil, fmt.Errorf("pgbench: no tps in output: %s", out)
		}
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		tp.PgbenchRuns = append(tp.PgbenchRuns, v)
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && v > 0 {
			cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			tp.PgbenchCPUus = append(tp.PgbenchCPUus, float64(cpu.Microseconds())/(v*c.pgbenchTime.Seconds()))
		}
	}
	tp.LoadgenTPS, tp.PgbenchTPS = median(tp.LoadgenRuns), median(tp.PgbenchRuns)
	tp.Ratio = tp.LoadgenTPS / tp.PgbenchTPS
	log.Printf("zerostall: throughput loadgen %v tps, pgbench %v tps, ratio of medians %.3f; client CPU µs/tx loadgen %v pgbench %v", tp.LoadgenRuns, tp.PgbenchRuns, tp.Ratio, tp.LoadgenCPUus, tp.PgbenchCPUus)
	return tp, nil
}

// Target is one of the benchmark's acceptance numbers: writers stall no
// longer than with the hand plan, migration no slower than psql, and so on.
type Target struct {
	Name     string  `json:"name"`
	Want     string  `json:"want"`
	Measured float64 `json:"measured"`
	Limit    float64 `json:"limit"`
	Met      bool    `json:"met"`
}

func (r *Results) evaluate() {
	r.Targets = nil
	find := func(method string, blocker bool) (Stall, bool) {
		for _, s := range r.Stalls {
			if strings.HasPrefix(s.Method, method) && s.Blocker == blocker {
				return s, true
			}
		}
		return Stall{}, false
	}
	if f, ok := find("fkrollout", false); ok {
		if h, ok := find("hand", false); ok {
			r.Targets = append(r.Targets, Target{Name: "fkrollout max writer stall, no blocker", Want: "≤ hand plan's max + 10 ms", Measured: f.MaxMS, Limit: h.MaxMS + 10, Met: f.MaxMS <= h.MaxMS+10})
		}
	}
	if f, ok := find("fkrollout", true); ok {
		r.Targets = append(r.Targets, Target{Name: "fkrollout max writer stall, with blocker", Want: "≤ lock_timeout + 50 ms", Measured: f.MaxMS, Limit: r.LockTimeoutMS + 50, Met: f.MaxMS <= r.LockTimeoutMS+50})
	}
	var held []float64
	for _, s := range r.Long {
		if strings.Contains(s.Method, "wait out") {
			held = append(held, s.HeldSlowPct)
		}
	}
	if len(held) > 0 {
		m := median(held)
		r.Targets = append(r.Targets, Target{Name: "fkrollout writes over 100 ms while a " + r.Long[0].BlockerFor + " blocker holds its lock (median of rounds)", Want: "< 0.5 %", Measured: m, Limit: 0.5, Met: m < 0.5})
	}
	if r.WallTime != nil {
		r.Targets = append(r.Targets, Target{Name: "apply+validate wall time vs psql", Want: "≤ 1.10×", Measured: r.WallTime.Ratio, Limit: 1.10, Met: r.WallTime.Ratio <= 1.10})
	}
	if r.Audit != nil {
		r.Targets = append(r.Targets, Target{Name: "audit vs sequential psql anti-joins", Want: "≤ 0.70×", Measured: r.Audit.Ratio, Limit: 0.70, Met: r.Audit.Ratio <= 0.70})
	}
	if r.Throughput != nil {
		r.Targets = append(r.Targets, Target{Name: "load generator vs pgbench throughput", Want: "≥ 0.85×", Measured: r.Throughput.Ratio, Limit: 0.85, Met: r.Throughput.Ratio >= 0.85})
	}
}

// Markdown renders the tables docs/PERFORMANCE.md quotes.
func (r Results) Markdown() string {
	r.evaluate()
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %d CPUs, %s GB RAM, PostgreSQL %s, %s; load average before: %s\n\n", r.Machine.CPUs, r.Machine.MemoryGB, r.Machine.Postgres, r.Machine.GoVersion, r.Machine.Load)
	fmt.Fprintf(&b, "Config: %s; setup %.1f s\n\n", r.Config, r.SetupMS/1000)
	fmt.Fprintf(&b, "Writers alone: p99 %.1f ms, max %.1f ms (%d writes)\n\n", r.Idle.P99MS, r.Idle.MaxMS, r.Idle.Writes)
	if len(r.Stalls) > 0 {
		b.WriteString("| Migration | Blocker | Migration time | Writer p99 | Writer max | Max / hand plan's | Statement attempts |\n")
		b.WriteString("|-----------|---------|----------------|------------|------------|-------------------|----------|\n")
		hand := map[bool]float64{}
		for _, s := range r.Stalls {
			if strings.HasPrefix(s.Method, "hand") {
				hand[s.Blocker] = s.MaxMS
			}
		}
		for _, s := range r.Stalls {
			bl := "no"
			if s.Blocker {
				bl = r.BlockerFor + " write"
			}
			ratio := "—"
			if h := hand[s.Blocker]; h > 0 {
				ratio = fmt.Sprintf("%.2f×", s.MaxMS/h)
			}
			maxs := fmt.Sprintf("%.1f ms", s.MaxMS)
			if len(s.MaxRuns) > 1 {
				maxs += " (runs: " + listf(s.MaxRuns) + ")"
			}
			fmt.Fprintf(&b, "| %s | %s | %.0f ms | %.1f ms | %s | %s | %d |\n", s.Method, bl, s.MigrationMS, s.P99MS, maxs, ratio, s.Attempts)
		}
	}
	if len(r.Long) > 0 {
		b.WriteString("\nLong blocker, fkrollout queueing and retrying against waiting it out:\n\n")
		b.WriteString("| Round | Migration | Blocker | Writes > 100 ms while held | p99 while held | Writes > 100 ms, whole run | Writer p99, whole run | Writer max | Migration time | Statement attempts | Waited without queueing |\n")
		b.WriteString("|-------|-----------|---------|----------------------------|----------------|----------------------------|-----------------------|------------|----------------|--------------------|-------------------------|\n")
		for _, s := range r.Long {
			fmt.Fprintf(&b, "| %d | %s | %s write | %.2f %% (%d writes) | %.1f ms | %.2f %% | %.1f ms | %.1f ms | %.0f ms | %d | %.0f ms |\n",
				s.Round, s.Method, s.BlockerFor, s.HeldSlowPct, s.HeldWrites, s.HeldP99MS, s.SlowPct, s.P99MS, s.MaxMS, s.MigrationMS, s.Attempts, s.WaitedMS)
		}
	}
	if r.WallTime != nil {
		fmt.Fprintf(&b, "\nApply+validate wall time: fkrollout %s ms (median %.0f), psql %s ms (median %.0f): **%.2f×**\n",
			list(r.WallTime.FkrolloutMS), median(r.WallTime.FkrolloutMS), list(r.WallTime.PsqlMS), median(r.WallTime.PsqlMS), r.WallTime.Ratio)
		fmt.Fprintf(&b, "(psql's own start-up and connection, `psql -c 'SELECT 1'`: median %.0f ms; against psql without it: %.2f×)\n",
			median(r.WallTime.PsqlStartupMS), r.WallTime.NetRatio)
	}
	if r.Audit != nil {
		fmt.Fprintf(&b, "\nAudit of the %d demo FKs (demo schema, %d workflows, %d rows), parallelism %d: fkrollout %s ms (median %.0f), psql sequential %s ms (median %.0f): **%.2f×**\n",
			r.Audit.FKs, r.Audit.Workflows, r.Audit.Rows, r.Audit.Parallelism, list(r.Audit.FkrolloutMS), median(r.Audit.FkrolloutMS), list(r.Audit.PsqlMS), median(r.Audit.PsqlMS), r.Audit.Ratio)
		fmt.Fprintf(&b, "(psql with max_parallel_workers_per_gather = 0, one core per anti-join: %s ms (median %.0f): %.2f×)\n",
			list(r.Audit.PsqlSerialMS), median(r.Audit.PsqlSerialMS), r.Audit.SerialRatio)
	}
	if r.Throughput != nil {
		fmt.Fprintf(&b, "\nThroughput, `%s`, %d clients: loadgen %s tps (median %.0f), pgbench %s tps (median %.0f): **%.2f×**\n",
			r.Throughput.Statement, r.Throughput.Clients, list(r.Throughput.LoadgenRuns), r.Throughput.LoadgenTPS, list(r.Throughput.PgbenchRuns), r.Throughput.PgbenchTPS, r.Throughput.Ratio)
		fmt.Fprintf(&b, "(client CPU per transaction, user+sys: loadgen %s µs, pgbench %s µs)\n", listf(r.Throughput.LoadgenCPUus), listf(r.Throughput.PgbenchCPUus))
	}
	if len(r.Targets) > 0 {
		b.WriteString("\n| Target | Want | Measured | Met |\n|--------|------|----------|-----|\n")
		for _, t := range r.Targets {
			met := "✅"
			if !t.Met {
				met = "❌"
			}
			unit := " ms"
			if strings.Contains(t.Want, "×") {
				unit = "×"
			} else if strings.Contains(t.Want, "%") {
				unit = " %"
			}
			fmt.Fprintf(&b, "| %s | %s (%.2f%s) | %.2f%s | %s |\n", t.Name, t.Want, t.Limit, unit, t.Measured, unit, met)
		}
	}
	return b.String()
}

func list(xs []float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(s, "/")
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// cpuSelf is this process's user+sys CPU time so far.
func cpuSelf() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		if _, err := fmt.Sscanf(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]), "MemTotal: %f kB", &kb); err == nil {
			m.MemoryGB = fmt.Sprintf("%.0f", kb/1024/1024)
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			m.Load = strings.Join(f[:3], " ")
		}
	}
	return m
}

func withDatabase(dsn, db string) string {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return dsn
	}
	u := "postgres://" + cfg.User
	if cfg.Password != "" {
		u += ":" + cfg.Password
	}
	return fmt.Sprintf("%s@%s:%d/%s?sslmode=disable", u, cfg.Host, cfg.Port, db)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func listf(xs []float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprintf("%.1f", x)
	}
	return strings.Join(s, "/")
}
