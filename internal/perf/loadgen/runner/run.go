// Package runner is fkrollout's built-in load generator: N workers, each on
// its own connection, run a loadgen.Workload for a duration or an iteration
// count after a warm-up, and the latency of every operation goes into an
// HDR histogram.
package runner

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fkrollout/fkrollout/internal/perf/loadgen"
)

// Latencies are recorded in microseconds from 1 µs to 1 hour, 3 significant
// digits (0.1 % resolution).
const (
	histMin    = 1
	histMax    = int64(time.Hour / time.Microsecond)
	histDigits = 3
)

// NewHistogram returns the histogram shape every fkrollout latency uses.
func NewHistogram() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histDigits) }

// RecordLatency records d (clamped into the histogram's range).
func RecordLatency(h *hdrhistogram.Histogram, d time.Duration) {
	us := d.Microseconds()
	if us < histMin {
		us = histMin
	}
	if us > histMax {
		us = histMax
	}
	_ = h.RecordValue(us)
}

// MicrosToMillis converts a histogram value (µs) to milliseconds.
func MicrosToMillis(us int64) float64 { return float64(us) / 1000 }

type opResult struct {
	hist   *hdrhistogram.Histogram
	count  int64
	errors int64
	first  string
}

// Run executes the workload against pool's database. Each worker opens its
// own connection from the pool's configuration (so the pool's size does not
// throttle the run) and executes operations with prepared statements:
// one statement is one Bind/Execute round trip, several are sent as one
// pipelined batch, which PostgreSQL runs as one implicit transaction.
func Run(ctx context.Context, pool *pgxpool.Pool, w loadgen.Workload, o loadgen.RunOptions) (loadgen.Report, error) {
	s, err := Open(ctx, pool, w, o)
	if err != nil {
		return loadgen.Report{}, err
	}
	defer s.Close(context.WithoutCancel(ctx))
	return s.Measure(ctx, o.Warmup, o.Duration, o.Iterations)
}

// Session is a workload ready to run: parameters loaded, workers connected
// and their statements prepared. Measure runs it any number of times on the
// same sessions (the interleaved comparison's slices); Close ends them.
type Session struct {
	o       loadgen.RunOptions
	ops     []loadgen.CompiledOp
	values  [][][][][]byte
	cum     []float64
	total   float64
	workers []*worker
	rngs    []*rand.Rand
}

// Open loads the parameter sources and connects o.Workers workers.
func Open(ctx context.Context, pool *pgxpool.Pool, w loadgen.Workload, o loadgen.RunOptions) (*Session, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}
	if o.Workers <= 0 {
		o.Workers = 1
	}
	if o.Duration <= 0 && o.Iterations <= 0 {
		return nil, errors.New("loadgen: set a duration or an iteration count")
	}
	if o.MaxParamRows <= 0 {
		o.MaxParamRows = 10000
	}
	if o.Seed == 0 {
		o.Seed = 0x5eed
	}
	s := &Session{o: o}
	s.ops = make([]loadgen.CompiledOp, len(w.Operations))
	for i, op := range w.Operations {
		c, err := w.Compile(op)
		if err != nil {
			return nil, err
		}
		s.ops[i] = c
	}
	var err error
	if s.values, err = loadSources(ctx, pool, s.ops, o.MaxParamRows); err != nil {
		return nil, err
	}
	s.cum = make([]float64, len(s.ops))
	for i, op := range s.ops {
		s.total += op.Weight
		s.cum[i] = s.total
	}
	s.workers = make([]*worker, o.Workers)
	s.rngs = make([]*rand.Rand, o.Workers)
	for i := range s.workers {
		wk := &worker{cfg: pool.Config().ConnConfig, ops: s.ops}
		if err := wk.connect(ctx); err != nil {
			s.Close(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("loadgen: worker %d: %w", i+1, err)
		}
		s.workers[i] = wk
		s.rngs[i] = rand.New(rand.NewPCG(o.Seed, uint64(i)+1))
	}
	return s, nil
}

// Close ends the workers' sessions.
func (s *Session) Close(ctx context.Context) {
	for _, wk := range s.workers {
		if wk != nil {
			wk.close(ctx)
		}
	}
}

// Measure runs the workload unmeasured for warmup, then measured for
// duration (or for iterations operations in total, which wins), and
// reports. Between two calls the workers are idle: no statement of theirs
// holds a lock.
func (s *Session) Measure(ctx context.Context, warmup, duration time.Duration, iterations int) (loadgen.Report, error) {
	if duration <= 0 && iterations <= 0 {
		return loadgen.Report{}, errors.New("loadgen: set a duration or an iteration count")
	}
	o, ops, values, cum, total, workers := s.o, s.ops, s.values, s.cum, s.total, s.workers
	o.Warmup, o.Duration, o.Iterations = warmup, duration, iterations
	var remaining atomic.Int64
	remaining.Store(int64(o.Iterations))
	started := time.Now()
	measureFrom := started.Add(o.Warmup)
	var deadline time.Time
	if o.Iterations <= 0 {
		deadline = measureFrom.Add(o.Duration)
	}
	results := make([][]opResult, o.Workers)
	var lastEnd atomic.Int64
	// Queries run under a context that is never cancelled: with a
	// cancellable one pgconn would start a watcher goroutine per query,
	// which costs throughput. One watcher for the whole run sends
	// PostgreSQL cancel requests instead when ctx ends.
	qctx := context.WithoutCancel(ctx)
	runDone := make(chan struct{})
	defer close(runDone)
	go func() {
		select {
		case <-ctx.Done():
			for _, wk := range workers {
				if c := wk.current(); c != nil {
					_ = c.CancelRequest(qctx)
				}
			}
		case <-runDone:
		}
	}()
	var wg sync.WaitGroup
	for wi := range o.Workers {
		res := make([]opResult, len(ops))
		for i := range res {
			res[i].hist = NewHistogram()
		}
		results[wi] = res
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := s.rngs[wi]
			wk := workers[wi]
			for ctx.Err() == nil {
				now := time.Now()
				measuring := !now.Before(measureFrom)
				if measuring {
					if o.Iterations > 0 {
						if remaining.Add(-1) < 0 {
							break
						}
					} else if !now.Before(deadline) {
						break
					}
				}
				k := pick(cum, rng.Float64()*total)
				start := time.Now()
				err := wk.exec(qctx, k, values[k], rng)
				el := time.Since(start)
				if measuring {
					r := &res[k]
					r.count++
					if err != nil {
						r.errors++
						if r.first == "" {
							r.first = err.Error()
						}
					} else {
						RecordLatency(r.hist, el)
					}
				}
				if err != nil && wk.conn.IsClosed() && ctx.Err() == nil {
					// A broken session would fail every later iteration.
					wk.close(ctx)
					if wk.connect(ctx) != nil {
						return
					}
				}
			}
			end := time.Now().UnixNano()
			for {
				cur := lastEnd.Load()
				if end <= cur || lastEnd.CompareAndSwap(cur, end) {
					break
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return loadgen.Report{}, fmt.Errorf("loadgen: run interrupted: %w", err)
	}
	elapsed := time.Unix(0, lastEnd.Load()).Sub(measureFrom)
	if elapsed <= 0 {
		elapsed = time.Nanosecond
	}
	rep := loadgen.Report{Workers: o.Workers, DurationMS: float64(elapsed) / float64(time.Millisecond), StartedAt: measureFrom.UTC()}
	all := &opResult{hist: NewHistogram()}
	for k, op := range ops {
		merged := &opResult{hist: NewHistogram()}
		for wi := range results {
			r := results[wi][k]
			merged.hist.Merge(r.hist)
			merged.count += r.count
			merged.errors += r.errors
			if merged.first == "" {
				merged.first = r.first
			}
		}
		all.hist.Merge(merged.hist)
		all.count += merged.count
		all.errors += merged.errors
		if all.first == "" {
			all.first = merged.first
		}
		rep.Ops = append(rep.Ops, stats(op.Name, op.Units, merged, elapsed))
	}
	rep.Total = stats("total", 1, all, elapsed)
	return rep, nil
}

func stats(name string, units int, r *opResult, elapsed time.Duration) loadgen.OpStats {
	s := loadgen.OpStats{Operation: name, Units: units, Count: r.count, Errors: r.errors, FirstError: r.first}
	if r.hist.TotalCount() > 0 {
		s.AvgMS = r.hist.Mean() / 1000
		s.P50MS = MicrosToMillis(r.hist.ValueAtQuantile(50))
		s.P95MS = MicrosToMillis(r.hist.ValueAtQuantile(95))
		s.P99MS = MicrosToMillis(r.hist.ValueAtQuantile(99))
		s.MaxMS = MicrosToMillis(r.hist.Max())
	}
	if r.count > 0 {
		s.ErrorRate = float64(r.errors) / float64(r.count)
	}
	s.Throughput = float64(r.count-r.errors) / elapsed.Seconds()
	return s
}

func pick(cum []float64, x float64) int {
	i := sort.SearchFloat64s(cum, x)
	if i >= len(cum) {
		i = len(cum) - 1
	}
	// SearchFloat64s finds the first cum >= x; x == cum[i] belongs to i+1.
	if cum[i] == x && i+1 < len(cum) {
		i++
	}
	return i
}

// worker is one client: its own session, every statement prepared once.
// Parameters travel in text format, as loaded from their sources, so no
// value is decoded or re-encoded per iteration (pgbench does the same).
type worker struct {
	mu  sync.Mutex // guards conn against the cancel watcher
	cfg *pgx.ConnConfig
	// blocking: read and write the socket with blocking syscalls.
	blocking bool
	ops      []loadgen.CompiledOp
	conn     *pgconn.PgConn
	stmts    [][]*pgconn.StatementDescription
	rows     []int
	args     [][]byte
}

func (w *worker) connect(ctx context.Context) error {
	c, err := pgconn.ConnectConfig(ctx, &w.cfg.Copy().Config)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	w.mu.Lock()
	w.conn = c
	w.mu.Unlock()
	w.stmts = make([][]*pgconn.StatementDescription, len(w.ops))
	for k, op := range w.ops {
		for i, st := range op.Stmts {
			sd, err := c.Prepare(ctx, fmt.Sprintf("fkr_lg_%d_%d", k, i), st.SQL, nil)
			if err != nil {
				return fmt.Errorf("operation %q statement %d: prepare: %w", op.Name, i+1, err)
			}
			w.stmts[k] = append(w.stmts[k], sd)
		}
	}
	return nil
}

func (w *worker) current() *pgconn.PgConn {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.conn
}

func (w *worker) close(ctx context.Context) {
	if w.conn != nil {
		_ = w.conn.Close(ctx)
	}
}

func (w *worker) exec(ctx context.Context, k int, vals [][][][]byte, rng *rand.Rand) error {
	op := &w.ops[k]
	// Draw one row per source so correlated names stay correlated.
	w.rows = w.rows[:0]
	for _, v := range vals {
		w.rows = append(w.rows, rng.IntN(len(v)))
	}
	bind := func(st *loadgen.CompiledStmt) [][]byte {
		args := w.args[:0]
		for _, a := range st.Args {
			args = append(args, vals[a.Source][w.rows[a.Source]][a.Column])
		}
		w.args = args
		return args
	}
	if len(op.Stmts) == 1 {
		_, err := w.conn.ExecStatement(ctx, w.stmts[k][0], bind(&op.Stmts[0]), nil, nil).Close()
		if err != nil {
			return fmt.Errorf("%s: %w", op.Name, err)
		}
		return nil
	}
	b := &pgconn.Batch{}
	for i := range op.Stmts {
		b.ExecStatement(w.stmts[k][i], bind(&op.Stmts[i]), nil, nil)
	}
	if err := w.conn.ExecBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("%s: %w", op.Name, err)
	}
	return nil
}

// loadSources runs every parameter SELECT once; values[op][source][row][col].
func loadSources(ctx context.Context, pool *pgxpool.Pool, ops []loadgen.CompiledOp, maxRows int) ([][][][][]byte, error) {
	cache := map[string][][][]byte{}
	out := make([][][][][]byte, len(ops))
	for k, op := range ops {
		out[k] = make([][][][]byte, len(op.Sources))
		for s, src := range op.Sources {
			rows, ok := cache[src.Select]
			if !ok {
				var err error
				rows, err = loadSource(ctx, pool, src, maxRows)
				if err != nil {
					return nil, fmt.Errorf("loadgen: operation %q: %w", op.Name, err)
				}
				cache[src.Select] = rows
			}
			if len(rows) > 0 && len(rows[0]) < len(src.Names) {
				return nil, fmt.Errorf("loadgen: operation %q: parameter source for %v returns %d columns, needs %d", op.Name, src.Names, len(rows[0]), len(src.Names))
			}
			out[k][s] = rows
		}
	}
	return out, nil
}

// loadSource reads the values in text format: they are sent back as text
// parameters, which the server parses into each parameter's type.
func loadSource(ctx context.Context, pool *pgxpool.Pool, src loadgen.Param, maxRows int) ([][][]byte, error) {
	rows, err := pool.Query(ctx, src.Select, pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return nil, fmt.Errorf("parameter source for %v: %w", src.Names, err)
	}
	defer rows.Close()
	var out [][][]byte
	for rows.Next() && len(out) < maxRows {
		raw := rows.RawValues()
		row := make([][]byte, len(raw))
		for i, v := range raw {
			if v != nil {
				row[i] = append([]byte{}, v...)
			}
		}
		out = append(out, row)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("parameter source for %v: %w", src.Names, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("parameter source for %v returned no rows: %s", src.Names, src.Select)
	}
	return out, nil
}

// Sample binds every operation's statements to the first row of each of its
// parameter sources, for EXPLAIN of the representative queries.
func Sample(ctx context.Context, pool *pgxpool.Pool, w loadgen.Workload) ([]loadgen.SampleOp, error) {
	if err := w.Validate(); err != nil {
		return nil, err
	}
	ops := make([]loadgen.CompiledOp, len(w.Operations))
	for i, op := range w.Operations {
		c, err := w.Compile(op)
		if err != nil {
			return nil, err
		}
		ops[i] = c
	}
	values, err := loadSources(ctx, pool, ops, 1)
	if err != nil {
		return nil, err
	}
	out := make([]loadgen.SampleOp, len(ops))
	for k, op := range ops {
		out[k].Operation = op.Name
		for _, st := range op.Stmts {
			b := loadgen.Bound{SQL: st.SQL}
			for _, a := range st.Args {
				var v any
				if raw := values[k][a.Source][0][a.Column]; raw != nil {
					v = string(raw)
				}
				b.Args = append(b.Args, v)
			}
			out[k].Statements = append(out[k].Statements, b)
		}
	}
	return out, nil
}
