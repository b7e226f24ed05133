package main

// fkrollout perf: the perf phase's interleaved comparison on any database,
// without a rollout. The plan's missing keys are added NOT VALID for the
// with-FKs slices and dropped for the others, under --lock-timeout; the
// database is left as found, on an error or Ctrl-C too.

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fkrollout/fkrollout/internal/perf"
	"github.com/fkrollout/fkrollout/internal/perf/interleave"
	"github.com/fkrollout/fkrollout/internal/perf/loadgen"
	sqlassets "github.com/fkrollout/fkrollout/sql"
)

// perfFlags are fkrollout perf's own flags.
type perfFlags struct {
	workload   string
	workers    int
	slice      time.Duration
	iterations int
	warmup     time.Duration
	pairs      int
	rounds     int
	metric     string
	maxMS      float64
	rollbackMS float64
	errPct     float64
	seed       uint64
}

func perfCmd() *cobra.Command {
	cmd := engineCmd("perf --plan FILE [--dsn DSN] [--workload FILE]",
		"measure the run-time overhead of the plan's foreign keys: slices without/with them, interleaved, with a confidence interval (exit 1 unless pass)",
		"  FKROLLOUT_DSN=postgres://… fkrollout perf --plan sql/migration.sql --workload demo --slice 3s --pairs 6")
	f := newEngineFlags(cmd.Flags()).withPlan().withDB().withLock()
	var pf perfFlags
	fs := cmd.Flags()
	fs.StringVar(&pf.workload, "workload", "demo", `workload file (YAML, the format of sql/workload.yaml), or "demo" for the demo schema's`)
	fs.IntVar(&pf.workers, "workers", 4, "concurrent clients, each on its own connection")
	fs.DurationVar(&pf.slice, "slice", 3*time.Second, "measured time of each slice")
	fs.IntVar(&pf.iterations, "iterations", 0, "operations per slice instead of --slice")
	fs.DurationVar(&pf.warmup, "warmup", 5*time.Second, "unmeasured warm-up before each round (0 for none)")
	fs.IntVar(&pf.pairs, "pairs", 6, "pairs of slices (without, with the keys) per round; even balances a linear drift")
	fs.IntVar(&pf.rounds, "max-rounds", 3, "rounds at most: an inconclusive result measures again")
	fs.StringVar(&pf.metric, "metric", "avg", "latency compared: avg, p50, p95 or p99")
	fs.Float64Var(&pf.maxMS, "max-overhead-ms", 10, "acceptable overhead per operation unit (warn above it)")
	fs.Float64Var(&pf.rollbackMS, "rollback-overhead-ms", 20, "rollback limit per operation unit")
	fs.Float64Var(&pf.errPct, "error-rate-increase-pct", 5, "error-rate rise (percentage points) that counts as a rollback")
	fs.Uint64Var(&pf.seed, "seed", 1, "seed of the operation mix and of the bootstrap (same seed, same interval)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, stdout := cmd.Context(), cmd.OutOrStdout()
		if err := f.check(); err != nil {
			return err
		}
		if err := pf.check(); err != nil {
			return err
		}
		w, err := pf.load()
		if err != nil {
			return err
		}
		pool, err := f.connect(ctx)
		if err != nil {
			return err
		}
		defer pool.Close()
		p, _, err := preflight(ctx, f, pool)
		if err != nil {
			return fmt.Errorf("%s: %w", f.planPath, err)
		}
		th := perf.Thresholds{AcceptableMS: pf.maxMS, RollbackMS: pf.rollbackMS, MaxErrorRateIncrease: pf.errPct / 100, Metric: pf.metric}
		iv := perf.Interval{Seed: pf.seed}
		var all []perf.Slice
		var res interleave.Result
		var cmp perf.Comparison
		for round := 1; round <= pf.rounds; round++ {
			o := interleave.Options{Workers: pf.workers, Warmup: pf.warmup, Slice: pf.slice, Iterations: pf.iterations, Pairs: pf.pairs,
				FirstSlice: (round - 1) * 2 * pf.pairs, Seed: pf.seed + uint64(round), Lock: f.lockPolicy()}
			if !f.json {
				fmt.Fprintf(cmd.ErrOrStderr(), "round %d/%d: %d pairs of slices without/with %d foreign key(s)…\n", round, pf.rounds, pf.pairs, len(p.ForeignKeys))
			}
			res, err = interleave.Run(ctx, pool, pool, w, p.Sorted(), o)
			if err != nil {
				return fmt.Errorf("perf: %w", err)
			}
			all = append(all, res.Slices...)
			cmp = perf.CompareInterleaved(all, th, iv)
			cmp.Rounds = round
			if cmp.Settled {
				break
			}
		}
		if f.json {
			if err := writeJSON(stdout, map[string]any{"plan": p.Name, "comparison": cmp, "toggled": res.Toggled, "present": res.Present, "skipped": res.Skipped}); err != nil {
				return err
			}
		} else {
			printPerf(stdout, cmp, res)
		}
		if cmp.Verdict != perf.Pass {
			return findingsError{fmt.Sprintf("perf verdict %s: %s", cmp.Verdict, cmp.Reason)}
		}
		return nil
	}
	return cmd
}

// check refuses out-of-range values before anything connects.
func (pf perfFlags) check() error {
	var errs []string
	if pf.workers < 1 || pf.workers > 256 {
		errs = append(errs, fmt.Sprintf("--workers %d: want 1..256", pf.workers))
	}
	if pf.iterations < 0 {
		errs = append(errs, fmt.Sprintf("--iterations %d is negative", pf.iterations))
	}
	if pf.iterations == 0 && pf.slice <= 0 {
		errs = append(errs, fmt.Sprintf("--slice %s: want a positive duration such as 3s (or --iterations)", pf.slice))
	}
	if pf.warmup < 0 {
		errs = append(errs, fmt.Sprintf("--warmup %s is negative", pf.warmup))
	}
	if pf.pairs < 2 || pf.pairs > 50 {
		errs = append(errs, fmt.Sprintf("--pairs %d: want 2..50 (an interval needs two pairs of slices)", pf.pairs))
	}
	if pf.rounds < 1 || pf.rounds > 10 {
		errs = append(errs, fmt.Sprintf("--max-rounds %d: want 1..10", pf.rounds))
	}
	switch pf.metric {
	case "avg", "p50", "p95", "p99":
	default:
		errs = append(errs, fmt.Sprintf("--metric %q: want avg, p50, p95 or p99", pf.metric))
	}
	if pf.maxMS <= 0 || pf.rollbackMS <= 0 {
		errs = append(errs, "--max-overhead-ms and --rollback-overhead-ms must be positive")
	} else if pf.rollbackMS < pf.maxMS {
		errs = append(errs, fmt.Sprintf("--rollback-overhead-ms %g is below --max-overhead-ms %g", pf.rollbackMS, pf.maxMS))
	}
	if pf.errPct <= 0 || pf.errPct > 100 {
		errs = append(errs, fmt.Sprintf("--error-rate-increase-pct %g: want (0, 100]", pf.errPct))
	}
	if len(errs) > 0 {
		return usageError{strings.Join(errs, "; ")}
	}
	return nil
}

// load reads and checks the workload (demo: the built-in one).
func (pf perfFlags) load() (loadgen.Workload, error) {
	text := sqlassets.Workload
	if pf.workload != "demo" {
		b, err := os.ReadFile(pf.workload)
		if err != nil {
			return loadgen.Workload{}, usageError{fmt.Sprintf("--workload: %v", err)}
		}
		text = string(b)
	}
	w, err := loadgen.ParseWorkload([]byte(text))
	if err != nil {
		return loadgen.Workload{}, usageError{fmt.Sprintf("--workload %s: %v", pf.workload, err)}
	}
	return w, nil
}

func printPerf(w io.Writer, c perf.Comparison, res interleave.Result) {
	rows := [][]string{}
	for _, r := range c.Rows {
		name := r.Operation
		if r.Units > 1 {
			name = fmt.Sprintf("%s (%d)", name, r.Units)
		}
		v := r.Verdict
		if r.Note != "" {
			v += " — " + r.Note
		}
		rows = append(rows, []string{name, fmt.Sprintf("%.2fms", r.BaselineMS), fmt.Sprintf("%.2fms", r.WithFKsMS), r.IntervalText(), v})
	}
	table(w, fmt.Sprintf("OPERATION\tBASELINE\tWITH FKS\tOVERHEAD [%g%% CI]\tVERDICT", 100*c.Confidence), rows)
	fmt.Fprintf(w, "\n%d pairs of slices in %d round(s), %s latency; limits +%g ms (warn), +%g ms (rollback) per unit\n",
		c.Pairs, c.Rounds, c.Thresholds.Metric, c.Thresholds.AcceptableMS, c.Thresholds.RollbackMS)
	if len(res.Toggled) > 0 {
		fmt.Fprintf(w, "measured (added NOT VALID for the with-FKs slices, dropped after): %s\n", strings.Join(res.Toggled, ", "))
	}
	if len(res.Present) > 0 {
		fmt.Fprintf(w, "already on the database, present on both sides: %s\n", strings.Join(res.Present, ", "))
	}
	if len(res.Skipped) > 0 {
		fmt.Fprintf(w, "not measured: %s\n", strings.Join(res.Skipped, "; "))
	}
	fmt.Fprintf(w, "verdict: %s — %s\n", c.Verdict, c.Reason)
}
