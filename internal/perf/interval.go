package perf

// The interleaved comparison: the workload runs in short slices that
// alternate without and with the constraints in one session (A B B A A B …),
// on the same data. Neighbouring slices form pairs; the overhead of an
// operation is the mean of its pairs' differences and its uncertainty a
// bootstrap confidence interval of that mean. A limit is declared crossed
// only when the whole interval is above it.

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/fkrollout/fkrollout/internal/perf/loadgen"
)

// Method names of a Comparison.
const (
	MethodTwoRuns     = ""            // one baseline run, one with-FKs run (before the interleaved method)
	MethodInterleaved = "interleaved" // alternating slices, paired, bootstrap interval
)

// Inconclusive is the verdict when an interval straddles a limit: more
// slices are needed, or a person must decide with the numbers.
const (
	Inconclusive    = "inconclusive"
	RowInconclusive = "inconclusive"
)

// DefaultConfidence of the overhead interval.
const DefaultConfidence = 0.95

// defaultResamples of the bootstrap: enough for stable 2.5 % tails.
const defaultResamples = 4000

// Slice is one measured slice of an interleaved comparison.
type Slice struct {
	// Index orders the slices of all rounds; pairs are (0,1), (2,3), ….
	Index   int            `json:"index"`
	WithFKs bool           `json:"with_fks"`
	Report  loadgen.Report `json:"report"`
}

// Interval configures the bootstrap.
type Interval struct {
	// Seed of the resampling: the same slices and seed give the same
	// interval (the workflow records the result in its history anyway).
	Seed uint64 `json:"seed"`
	// Confidence of the two-sided interval, default 0.95.
	Confidence float64 `json:"confidence,omitempty"`
	// Resamples of the bootstrap, default 4000.
	Resamples int `json:"resamples,omitempty"`
	// PendingOrphans is how many orphan rows the data still has when it is
	// measured before remediation: a write to one of them fails with the
	// keys and will not after remediation, so an error-rate rise then warns
	// (a person looks) instead of rolling back.
	PendingOrphans int64 `json:"pending_orphans,omitempty"`
}

func (o Interval) normalised() Interval {
	if o.Confidence <= 0 || o.Confidence >= 1 {
		o.Confidence = DefaultConfidence
	}
	if o.Resamples <= 0 {
		o.Resamples = defaultResamples
	}
	return o
}

// Pairs splits the slices into (without, with) pairs of neighbours; a slice
// without a partner of the other side is left out.
func Pairs(s []Slice) [][2]loadgen.Report {
	s = slices.Clone(s)
	slices.SortFunc(s, func(a, b Slice) int { return a.Index - b.Index })
	var out [][2]loadgen.Report
	for i := 0; i+1 < len(s); i += 2 {
		a, b := s[i], s[i+1]
		if a.WithFKs == b.WithFKs {
			continue
		}
		if a.WithFKs {
			a, b = b, a
		}
		out = append(out, [2]loadgen.Report{a.Report, b.Report})
	}
	return out
}

// SliceOrder is the side of slice i in the A B B A pattern: a drift that is
// linear in time weighs the same on both sides of every two pairs.
func SliceOrder(i int) (withFKs bool) { return i%4 == 1 || i%4 == 2 }

// CompareInterleaved decides from interleaved slices. Per operation the
// overhead per unit is the mean over pairs of (with FKs − without); its
// interval is the expanded percentile bootstrap of that mean (resampling
// pairs), which keeps its coverage with few pairs. Verdict per row:
// acceptable when the upper bound is within the acceptable limit; warning or
// rollback only when the lower bound is above that limit; otherwise
// inconclusive. An error-rate rise above the limit, or an operation that
// never succeeds with the constraints, is a rollback as in Compare.
func CompareInterleaved(sl []Slice, t Thresholds, o Interval) Comparison {
	t, o = t.normalised(), o.normalised()
	pairs := Pairs(sl)
	c := Comparison{Thresholds: t, Method: MethodInterleaved, Pairs: len(pairs), Confidence: o.Confidence, Seed: o.Seed, Settled: true}
	var without, with []loadgen.Report
	for _, p := range pairs {
		without, with = append(without, p[0]), append(with, p[1])
	}
	var warns, rollbacks, open []string
	for k, name := range operations(without) {
		a, b := totals(without, name), totals(with, name)
		units := max(a.Units, b.Units, 1)
		r := Row{Operation: name, Units: units, BaselineErrs: a.ErrorRate, WithFKsErrs: b.ErrorRate}
		var diffs, as, bs, ap95, bp95 []float64
		for _, p := range pairs {
			x, okx := p[0].Op(name)
			y, oky := p[1].Op(name)
			if !okx || !oky || x.Count == x.Errors || y.Count == y.Errors {
				continue
			}
			diffs = append(diffs, (t.value(y)-t.value(x))/float64(units))
			as, bs = append(as, t.value(x)), append(bs, t.value(y))
			ap95, bp95 = append(ap95, x.P95MS), append(bp95, y.P95MS)
		}
		r.Pairs = len(diffs)
		r.BaselineMS, r.WithFKsMS = round(mean(as)), round(mean(bs))
		r.BaselineP95, r.WithFKsP95 = round(mean(ap95)), round(mean(bp95))
		r.OverheadMS = round(mean(bs) - mean(as))
		r.PerUnitMS = round(mean(diffs))
		switch {
		case a.Count > 0 && a.Count == a.Errors:
			r.Verdict, r.Note = RowWarning, "no successful execution without the constraints"
			if a.FirstError != "" {
				r.Note += ": " + a.FirstError
			}
		case b.Count == 0 || b.Count == b.Errors:
			r.Verdict, r.Note = RowRollback, "no successful execution with the constraints"
			if b.FirstError != "" {
				r.Note += ": " + b.FirstError
			}
		case b.ErrorRate-a.ErrorRate > t.MaxErrorRateIncrease:
			r.Verdict = RowRollback
			r.Note = fmt.Sprintf("error rate %.1f%% → %.1f%%", 100*a.ErrorRate, 100*b.ErrorRate)
			if b.FirstError != "" {
				r.Note += ": " + b.FirstError
			}
			if o.PendingOrphans > 0 {
				r.Verdict = RowWarning
				r.Note += fmt.Sprintf(" (measured before remediation: %d orphan rows may be what failed)", o.PendingOrphans)
			}
		case len(diffs) < 2:
			r.Verdict, r.Note = RowInconclusive, fmt.Sprintf("%d pair(s) measured: too few for an interval", len(diffs))
			c.Settled = false
		default:
			lo, hi := ExpandedBootstrap(diffs, o.Confidence, o.Resamples, o.Seed+uint64(k)*0x9e3779b97f4a7c15)
			r.LowMS, r.HighMS = round(lo), round(hi)
			switch {
			case hi <= t.AcceptableMS:
				r.Verdict = RowAcceptable
			case lo > t.RollbackMS:
				r.Verdict = RowRollback
			case lo > t.AcceptableMS:
				r.Verdict = RowWarning
				if hi > t.RollbackMS {
					// Above the acceptable limit for sure; the rollback
					// limit is not decided: more slices may settle it.
					r.Note = fmt.Sprintf("may be above the rollback limit (+%g ms)", t.RollbackMS)
					c.Settled = false
				}
			default:
				r.Verdict = RowInconclusive
				c.Settled = false
			}
		}
		desc := fmt.Sprintf("%s %s", name, r.IntervalText())
		if r.Note != "" && r.LowMS == 0 && r.HighMS == 0 {
			desc = name + ": " + r.Note
		}
		switch r.Verdict {
		case RowRollback:
			rollbacks = append(rollbacks, desc)
		case RowWarning:
			warns = append(warns, desc)
		case RowInconclusive:
			open = append(open, desc)
		}
		c.Rows = append(c.Rows, r)
	}
	switch {
	case len(c.Rows) == 0:
		c.Verdict, c.Reason, c.Settled = Inconclusive, "no pair of slices measured an operation", false
	case len(rollbacks) > 0:
		c.Verdict, c.Settled = Rollback, true
		c.Reason = fmt.Sprintf("above the rollback limit (+%g ms) over the whole %g%% interval: %s", t.RollbackMS, 100*o.Confidence, strings.Join(rollbacks, "; "))
	case len(warns) > 0:
		c.Verdict = Warn
		c.Reason = fmt.Sprintf("above the acceptable limit (+%g ms) over the whole %g%% interval, needs an override: %s", t.AcceptableMS, 100*o.Confidence, strings.Join(warns, "; "))
		if len(open) > 0 {
			c.Reason += "; inconclusive: " + strings.Join(open, "; ")
		}
	case len(open) > 0:
		c.Verdict = Inconclusive
		c.Reason = fmt.Sprintf("the %g%% interval straddles the acceptable limit (+%g ms): %s", 100*o.Confidence, t.AcceptableMS, strings.Join(open, "; "))
	default:
		c.Verdict = Pass
		c.Reason = fmt.Sprintf("every operation's %g%% interval within +%g ms (%d pairs of slices)", 100*o.Confidence, t.AcceptableMS, len(pairs))
	}
	return c
}

// IntervalText is "+1.20 ms [−0.31, +2.84]" (per unit for a bulk operation).
func (r Row) IntervalText() string {
	s := signed(r.PerUnitMS)
	if r.LowMS != 0 || r.HighMS != 0 {
		s += fmt.Sprintf(" [%s, %s]", signed(r.LowMS), signed(r.HighMS))
	}
	if r.Units > 1 {
		s += " per unit"
	}
	return s
}

// operations lists the operations in the order of the first report that
// has them.
func operations(rs []loadgen.Report) []string {
	var out []string
	for _, r := range rs {
		for _, o := range r.Ops {
			if !slices.Contains(out, o.Operation) {
				out = append(out, o.Operation)
			}
		}
	}
	return out
}

// totals adds up one operation's counts over reports.
func totals(rs []loadgen.Report, name string) loadgen.OpStats {
	var t loadgen.OpStats
	t.Operation = name
	for _, r := range rs {
		o, ok := r.Op(name)
		if !ok {
			continue
		}
		t.Units = max(t.Units, o.Units)
		t.Count += o.Count
		t.Errors += o.Errors
		if t.FirstError == "" {
			t.FirstError = o.FirstError
		}
	}
	if t.Count > 0 {
		t.ErrorRate = float64(t.Errors) / float64(t.Count)
	}
	return t
}

func mean(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := 0.0
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

// ExpandedBootstrap is the expanded percentile bootstrap interval of the
// mean of x (Hesterberg, "What teachers should know about the bootstrap",
// 2015): the percentiles are taken at α' where z(α'/2) = √(n/(n−1))·t(α/2,
// n−1), so that with few observations the interval is as wide as Student's
// t interval rather than too narrow. Deterministic given seed.
func ExpandedBootstrap(x []float64, confidence float64, resamples int, seed uint64) (lo, hi float64) {
	n := len(x)
	if n == 0 {
		return 0, 0
	}
	if n == 1 {
		return x[0], x[0]
	}
	rng := rand.New(rand.NewPCG(seed, 0xf0e1d2c3b4a59687))
	means := make([]float64, resamples)
	for i := range means {
		s := 0.0
		for range n {
			s += x[rng.IntN(n)]
		}
		means[i] = s / float64(n)
	}
	slices.Sort(means)
	alpha := 1 - confidence
	z := math.Sqrt(float64(n)/float64(n-1)) * studentT(1-alpha/2, n-1)
	tail := 1 - normalCDF(z) // α'/2
	return quantile(means, tail), quantile(means, 1-tail)
}

// quantile of sorted x, linear between order statistics.
func quantile(x []float64, q float64) float64 {
	pos := q * float64(len(x)-1)
	i := int(math.Floor(pos))
	if i < 0 {
		return x[0]
	}
	if i >= len(x)-1 {
		return x[len(x)-1]
	}
	f := pos - float64(i)
	return x[i]*(1-f) + x[i+1]*f
}

func normalCDF(z float64) float64 { return 0.5 * math.Erfc(-z/math.Sqrt2) }

// studentT is the p-quantile of Student's t with df degrees of freedom, by
// bisection of its CDF (the regularised incomplete beta function).
func studentT(p float64, df int) float64 {
	if df <= 0 {
		return math.Inf(1)
	}
	v := float64(df)
	cdf := func(t float64) float64 {
		x := v / (v + t*t)
		tail := 0.5 * incBeta(v/2, 0.5, x)
		if t >= 0 {
			return 1 - tail
		}
		return tail
	}
	lo, hi := -1e3, 1e3
	if p > 0.5 {
		lo = 0
	}
	for range 200 {
		m := (lo + hi) / 2
		if cdf(m) < p {
			lo = m
		} else {
			hi = m
		}
	}
	return (lo + hi) / 2
}

// incBeta is the regularised incomplete beta function I_x(a, b), by its
// continued fraction (Numerical Recipes, betacf).
func incBeta(a, b, x float64) float64 {
	if x <= 0 {
		return 0
	}
	if x >= 1 {
		return 1
	}
	la, _ := math.Lgamma(a + b)
	lb, _ := math.Lgamma(a)
	lc, _ := math.Lgamma(b)
	front := math.Exp(la - lb - lc + a*math.Log(x) + b*math.Log(1-x))
	if x < (a+1)/(a+b+2) {
		return front * betaCF(a, b, x) / a
	}
	return 1 - front*betaCF(b, a, 1-x)/b
}

func betaCF(a, b, x float64) float64 {
	const tiny = 1e-300
	qab, qap, qam := a+b, a+1, a-1
	c, d := 1.0, 1-qab*x/qap
	if math.Abs(d) < tiny {
		d = tiny
	}
	d = 1 / d
	h := d
	for m := 1; m <= 300; m++ {
		fm := float64(m)
		aa := fm * (b - fm) * x / ((qam + 2*fm) * (a + 2*fm))
		d = 1 + aa*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + aa/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		h *= d * c
		aa = -(a + fm) * (qab + fm) * x / ((a + 2*fm) * (qap + 2*fm))
		d = 1 + aa*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + aa/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 3e-14 {
			break
		}
	}
	return h
}
