// Package perf is the decision of the staging "perf" phase: it compares the workload's latency before and after the
// constraints against the thresholds of the decision matrix, and holds the
// plan checks' results. It links no database driver (workflow code imports
// it): loadgen/runner measures and package explain runs EXPLAIN (ANALYZE,
// BUFFERS) on the database.
package perf

import (
	"fmt"
	"math"
	"strings"

	"github.com/fkrollout/fkrollout/internal/perf/loadgen"
)

// Verdicts of a row and of a comparison.
const (
	RowAcceptable = "acceptable"
	RowWarning    = "warning"
	RowRollback   = "rollback"

	Pass     = "pass"
	Warn     = "warn"
	Rollback = "rollback"
)

// Thresholds are the decision matrix's limits, per operation unit.
type Thresholds struct {
	// AcceptableMS: overhead up to this passes (a few ms per write is the
	// expected cost of a foreign key check). Default 10.
	AcceptableMS float64 `json:"acceptable_ms"`
	// RollbackMS: overhead above this rolls staging back.
	// Between the two the promotion gate warns and needs an override.
	// Default 20.
	RollbackMS float64 `json:"rollback_ms"`
	// MaxErrorRateIncrease: an error-rate increase above this fraction
	// rolls back. Default 0.05.
	MaxErrorRateIncrease float64 `json:"max_error_rate_increase"`
	// Metric is the latency compared: "avg" (default, what the comparison
	// table reports), "p50", "p95" or "p99".
	Metric string `json:"metric,omitempty"`
}

// DefaultThresholds are the decision matrix's numbers: up to +10 ms per
// operation unit passes, above +20 ms or +5% errors rolls back.
func DefaultThresholds() Thresholds {
	return Thresholds{AcceptableMS: 10, RollbackMS: 20, MaxErrorRateIncrease: 0.05}
}

func (t Thresholds) normalised() Thresholds {
	d := DefaultThresholds()
	if t.AcceptableMS <= 0 {
		t.AcceptableMS = d.AcceptableMS
	}
	if t.RollbackMS <= 0 {
		t.RollbackMS = d.RollbackMS
	}
	if t.RollbackMS < t.AcceptableMS {
		t.RollbackMS = t.AcceptableMS
	}
	if t.MaxErrorRateIncrease <= 0 {
		t.MaxErrorRateIncrease = d.MaxErrorRateIncrease
	}
	switch t.Metric {
	case "avg", "p50", "p95", "p99":
	default:
		t.Metric = "avg"
	}
	return t
}

func (t Thresholds) value(o loadgen.OpStats) float64 {
	switch t.Metric {
	case "p50":
		return o.P50MS
	case "p95":
		return o.P95MS
	case "p99":
		return o.P99MS
	}
	return o.AvgMS
}

// Row is one line of the comparison table. BaselineMS and WithFKsMS are the
// thresholds' metric (the average by default); the verdict is decided on its overhead per unit; p95 is shown
// beside it so a tail regression is visible to the approver.
type Row struct {
	Operation    string  `json:"operation"`
	Units        int     `json:"units"`
	BaselineMS   float64 `json:"baseline_ms"`
	WithFKsMS    float64 `json:"with_fks_ms"`
	OverheadMS   float64 `json:"overhead_ms"`
	PerUnitMS    float64 `json:"overhead_per_unit_ms"`
	BaselineP95  float64 `json:"baseline_p95_ms"`
	WithFKsP95   float64 `json:"with_fks_p95_ms"`
	BaselineErrs float64 `json:"baseline_error_rate"`
	WithFKsErrs  float64 `json:"with_fks_error_rate"`
	Verdict      string  `json:"verdict"`
	Note         string  `json:"note,omitempty"`
	// LowMS and HighMS bound the overhead per unit (interleaved method):
	// the Comparison's Confidence interval over Pairs pairs of slices.
	LowMS  float64 `json:"overhead_low_ms,omitempty"`
	HighMS float64 `json:"overhead_high_ms,omitempty"`
	Pairs  int     `json:"pairs,omitempty"`
}

// Comparison is the perf phase's decision.
type Comparison struct {
	Thresholds Thresholds `json:"thresholds"`
	Rows       []Row      `json:"rows"`
	// Verdict: pass (every row acceptable), warn (some row between the
	// limits: the gate needs an explicit override), rollback.
	Verdict string `json:"verdict"`
	Reason  string `json:"reason"`
	// Method is "" for one baseline run and one with-FKs run, "interleaved"
	// for alternating slices with an interval (then also: Pairs of slices,
	// Confidence, the bootstrap's Seed, Rounds measured; Settled is false
	// while more slices could change a row's verdict).
	Method     string  `json:"method,omitempty"`
	Pairs      int     `json:"pairs,omitempty"`
	Confidence float64 `json:"confidence,omitempty"`
	Seed       uint64  `json:"seed,omitempty"`
	Rounds     int     `json:"rounds,omitempty"`
	Settled    bool    `json:"settled,omitempty"`
}

// Compare decides, per operation of the baseline, from the average latency
// per unit (Units > 1 for bulk operations: +50 ms on a bulk import of
// 100 is +0.5 ms a row, acceptable). An operation missing from the with-FKs run, or one
// whose error rate rose above the limit, is a rollback: the constraints
// broke it.
func Compare(baseline, withFKs loadgen.Report, t Thresholds) Comparison {
	t = t.normalised()
	c := Comparison{Thresholds: t, Verdict: Pass}
	var warns, rollbacks []string
	for _, b := range baseline.Ops {
		units := max(b.Units, 1)
		r := Row{Operation: b.Operation, Units: units, BaselineMS: round(t.value(b)), BaselineP95: round(b.P95MS), BaselineErrs: b.ErrorRate}
		a, ok := withFKs.Op(b.Operation)
		switch {
		case !ok:
			r.Verdict, r.Note = RowRollback, "missing from the with-FKs run"
		case b.Count == b.Errors:
			// Nothing to compare against: an approver must look.
			r.WithFKsMS, r.WithFKsP95, r.WithFKsErrs = round(t.value(a)), round(a.P95MS), a.ErrorRate
			r.Verdict, r.Note = RowWarning, "no successful execution in the baseline"
			if b.FirstError != "" {
				r.Note += ": " + b.FirstError
			}
		case a.Count == 0 || a.Count == a.Errors:
			r.WithFKsErrs = a.ErrorRate
			r.Verdict, r.Note = RowRollback, "no successful execution with FKs"
			if a.FirstError != "" {
				r.Note += ": " + a.FirstError
			}
		default:
			r.WithFKsMS, r.WithFKsP95, r.WithFKsErrs = round(t.value(a)), round(a.P95MS), a.ErrorRate
			r.OverheadMS = round(t.value(a) - t.value(b))
			r.PerUnitMS = round((t.value(a) - t.value(b)) / float64(units))
			switch {
			case a.ErrorRate-b.ErrorRate > t.MaxErrorRateIncrease:
				r.Verdict = RowRollback
				r.Note = fmt.Sprintf("error rate %.1f%% → %.1f%%", 100*b.ErrorRate, 100*a.ErrorRate)
				if a.FirstError != "" {
					r.Note += ": " + a.FirstError
				}
			case r.PerUnitMS > t.RollbackMS:
				r.Verdict = RowRollback
			case r.PerUnitMS > t.AcceptableMS:
				r.Verdict = RowWarning
			default:
				r.Verdict = RowAcceptable
			}
		}
		desc := fmt.Sprintf("%s %+.1f ms", r.Operation, r.PerUnitMS)
		if units > 1 {
			desc += " per unit"
		}
		if r.Note != "" {
			desc = r.Operation + ": " + r.Note
		}
		switch r.Verdict {
		case RowRollback:
			rollbacks = append(rollbacks, desc)
		case RowWarning:
			warns = append(warns, desc)
		}
		c.Rows = append(c.Rows, r)
	}
	switch {
	case len(baseline.Ops) == 0:
		c.Verdict, c.Reason = Rollback, "baseline has no operations: nothing was measured"
	case len(rollbacks) > 0:
		c.Verdict = Rollback
		c.Reason = fmt.Sprintf("above the rollback limit (+%g ms): %s", t.RollbackMS, strings.Join(rollbacks, "; "))
	case len(warns) > 0:
		c.Verdict = Warn
		c.Reason = fmt.Sprintf("above the acceptable limit (+%g ms), needs an override: %s", t.AcceptableMS, strings.Join(warns, "; "))
	default:
		c.Reason = fmt.Sprintf("every operation within +%g ms", t.AcceptableMS)
	}
	return c
}

func round(x float64) float64 { return math.Round(x*1000) / 1000 }

// Markdown renders the comparison table (Operation | Baseline | With FKs |
// Overhead | Acceptable), with p95 beside the average.
func (c Comparison) Markdown() string {
	if c.Method == MethodInterleaved {
		return c.intervalMarkdown()
	}
	var b strings.Builder
	b.WriteString("| Operation | Baseline | With FKs | Overhead | Acceptable |\n")
	b.WriteString("|-----------|----------|----------|----------|------------|\n")
	for _, r := range c.Rows {
		name := r.Operation
		if r.Units > 1 {
			name = fmt.Sprintf("%s (%d)", name, r.Units)
		}
		with, over := "—", "—"
		if r.WithFKsMS > 0 || r.Note == "" {
			with = fmt.Sprintf("%s (p95 %s)", formatMS(r.WithFKsMS), formatMS(r.WithFKsP95))
			over = signed(r.OverheadMS)
			if r.Units > 1 {
				over += fmt.Sprintf(" (%s/unit)", signed(r.PerUnitMS))
			}
		}
		ok := map[string]string{RowAcceptable: "✅ Yes", RowWarning: "⚠️ Override needed", RowRollback: "❌ No (rollback)"}[r.Verdict]
		if r.Note != "" {
			ok += " — " + strings.ReplaceAll(r.Note, "|", "\\|")
		}
		fmt.Fprintf(&b, "| %s | %s (p95 %s) | %s | %s | %s |\n", name, formatMS(r.BaselineMS), formatMS(r.BaselineP95), with, over, ok)
	}
	if c.Thresholds.Metric != "" && c.Thresholds.Metric != "avg" {
		fmt.Fprintf(&b, "\nCompared on %s latency.\n", c.Thresholds.Metric)
	}
	fmt.Fprintf(&b, "\n**Verdict:** %s — %s\n", c.Verdict, c.Reason)
	return b.String()
}

func formatMS(x float64) string {
	switch {
	case x >= 100:
		return fmt.Sprintf("%.0fms", x)
	case x >= 10:
		return fmt.Sprintf("%.1fms", x)
	}
	return fmt.Sprintf("%.2fms", x)
}

func signed(x float64) string {
	if x >= 0 {
		return "+" + formatMS(x)
	}
	return "-" + formatMS(-x)
}

// intervalMarkdown renders the interleaved comparison: the overhead with its
// interval, and the verdict it supports.
func (c Comparison) intervalMarkdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| Operation | Baseline | With FKs | Overhead (%g%% interval) | Verdict |\n", 100*c.Confidence)
	b.WriteString("|-----------|----------|----------|--------------------------|---------|\n")
	for _, r := range c.Rows {
		name := r.Operation
		if r.Units > 1 {
			name = fmt.Sprintf("%s (%d)", name, r.Units)
		}
		ok := map[string]string{RowAcceptable: "✅ acceptable", RowWarning: "⚠️ override needed", RowRollback: "❌ rollback", RowInconclusive: "❔ inconclusive"}[r.Verdict]
		if r.Note != "" {
			ok += " — " + strings.ReplaceAll(r.Note, "|", "\\|")
		}
		fmt.Fprintf(&b, "| %s | %s (p95 %s) | %s (p95 %s) | %s | %s |\n", name, formatMS(r.BaselineMS), formatMS(r.BaselineP95),
			formatMS(r.WithFKsMS), formatMS(r.WithFKsP95), r.IntervalText(), ok)
	}
	metric := c.Thresholds.Metric
	if metric == "" {
		metric = "avg"
	}
	fmt.Fprintf(&b, "\nInterleaved: %d pairs of slices without/with the constraints in %d round(s), same session and data; %s latency; limits +%g ms (warn) and +%g ms (rollback) per unit.\n",
		c.Pairs, max(c.Rounds, 1), metric, c.Thresholds.AcceptableMS, c.Thresholds.RollbackMS)
	fmt.Fprintf(&b, "\n**Verdict:** %s — %s\n", c.Verdict, c.Reason)
	return b.String()
}
