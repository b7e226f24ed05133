package perf

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/perf/loadgen"
)

// slicesOf builds n pairs of A B B A slices of one operation whose latency
// is base (+over with FKs) plus noise drawn uniformly from ±noise, and a
// drift that grows by drift ms per slice (as a table fills up).
func slicesOf(n int, base, over, noise, drift float64, errsWith int64) []Slice {
	rng := rand.New(rand.NewPCG(1, 2))
	var out []Slice
	for i := range 2 * n {
		with := SliceOrder(i)
		v := base + drift*float64(i) + noise*(2*rng.Float64()-1)
		op := loadgen.OpStats{Operation: "insert", Units: 1, Count: 100, AvgMS: v, P50MS: v, P95MS: 2 * v}
		if with {
			op.AvgMS += over
			op.P50MS += over
			op.Errors = errsWith
			op.ErrorRate = float64(errsWith) / 100
		}
		out = append(out, Slice{Index: i, WithFKs: with, Report: loadgen.Report{Ops: []loadgen.OpStats{op}}})
	}
	return out
}

func TestCompareInterleavedVerdicts(t *testing.T) {
	cases := []struct {
		name    string
		sl      []Slice
		verdict string
		row     string
		settled bool
	}{
		{"no change passes", slicesOf(5, 5, 0, 1, 0, 0), Pass, RowAcceptable, true},
		{"a steady drift with no change still passes", slicesOf(5, 5, 0, 0.5, 2, 0), Pass, RowAcceptable, true},
		{"+15 ms with little noise warns", slicesOf(5, 5, 15, 0.5, 0, 0), Warn, RowWarning, true},
		{"+30 ms with little noise rolls back", slicesOf(5, 5, 30, 0.5, 0, 0), Rollback, RowRollback, true},
		{"+10 ms inside wide noise is inconclusive", slicesOf(4, 50, 10, 20, 0, 0), Inconclusive, RowInconclusive, false},
		{"+19 ms whose interval reaches past +20 ms warns, unsettled", slicesOf(4, 50, 19, 6, 0, 0), Warn, RowWarning, false},
		{"errors with the constraints roll back", slicesOf(5, 5, 0, 0.5, 0, 20), Rollback, RowRollback, true},
		{"one pair is too few for an interval", slicesOf(1, 5, 0, 0.5, 0, 0), Inconclusive, RowInconclusive, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmp := CompareInterleaved(c.sl, Thresholds{}, Interval{Seed: 7})
			require.Len(t, cmp.Rows, 1, cmp.Reason)
			assert.Equal(t, c.verdict, cmp.Verdict, cmp.Reason)
			assert.Equal(t, c.row, cmp.Rows[0].Verdict, cmp.Reason)
			assert.Equal(t, c.settled, cmp.Settled, cmp.Reason)
			assert.Equal(t, MethodInterleaved, cmp.Method)
			if r := cmp.Rows[0]; r.Pairs >= 2 && r.Note == "" {
				assert.LessOrEqual(t, r.LowMS, r.PerUnitMS)
				assert.GreaterOrEqual(t, r.HighMS, r.PerUnitMS)
			}
			assert.Contains(t, cmp.Markdown(), "interval")
		})
	}
}

func TestErrorsBeforeRemediationWarnInsteadOfRollingBack(t *testing.T) {
	sl := slicesOf(5, 5, 0, 0.5, 0, 20)
	for _, c := range []struct {
		orphans int64
		verdict string
	}{{0, Rollback}, {12, Warn}} {
		cmp := CompareInterleaved(sl, Thresholds{}, Interval{Seed: 1, PendingOrphans: c.orphans})
		assert.Equal(t, c.verdict, cmp.Verdict, cmp.Reason)
	}
}

func TestCompareInterleavedIsDeterministicGivenTheSeed(t *testing.T) {
	sl := slicesOf(6, 5, 3, 2, 0.1, 0)
	a := CompareInterleaved(sl, Thresholds{}, Interval{Seed: 42})
	b := CompareInterleaved(sl, Thresholds{}, Interval{Seed: 42})
	c := CompareInterleaved(sl, Thresholds{}, Interval{Seed: 43})
	assert.Equal(t, a, b)
	assert.NotEqual(t, a.Rows[0].LowMS, c.Rows[0].LowMS)
}

func TestCompareInterleavedBulkOperationsPerUnit(t *testing.T) {
	sl := slicesOf(5, 50, 500, 1, 0, 0) // +500 ms on an operation of 100 units: +5 ms a unit
	for i := range sl {
		sl[i].Report.Ops[0].Units = 100
	}
	cmp := CompareInterleaved(sl, Thresholds{}, Interval{Seed: 1})
	assert.Equal(t, Pass, cmp.Verdict, cmp.Reason)
	assert.InDelta(t, 5, cmp.Rows[0].PerUnitMS, 0.1)
	assert.Contains(t, cmp.Rows[0].IntervalText(), "per unit")
}

func TestPairsFollowTheABBAOrder(t *testing.T) {
	var sides []string
	for i := range 8 {
		sides = append(sides, map[bool]string{false: "A", true: "B"}[SliceOrder(i)])
	}
	assert.Equal(t, "ABBAABBA", strings.Join(sides, ""))
	p := Pairs(slicesOf(4, 5, 1, 0, 0, 0))
	require.Len(t, p, 4)
	for _, pr := range p {
		assert.InDelta(t, pr[0].Ops[0].AvgMS+1, pr[1].Ops[0].AvgMS, 1e-9, "pair is (without, with)")
	}
}

func TestStudentT(t *testing.T) {
	for _, c := range []struct {
		df   int
		want float64
	}{{1, 12.706}, {2, 4.303}, {5, 2.571}, {10, 2.228}, {30, 2.042}, {1000, 1.962}} {
		assert.InDelta(t, c.want, studentT(0.975, c.df), 0.002, fmt.Sprint(c.df))
	}
}

// The expanded interval covers the true mean about as often as it claims,
// even with five pairs (a plain percentile bootstrap covers ~88 % there).
func TestExpandedBootstrapCoverage(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const trials, n = 400, 5
	covered := 0
	for i := range trials {
		x := make([]float64, n)
		for j := range x {
			x[j] = rng.NormFloat64()
		}
		lo, hi := ExpandedBootstrap(x, 0.95, 2000, uint64(i))
		if lo <= 0 && 0 <= hi {
			covered++
		}
	}
	rate := float64(covered) / trials
	assert.Greater(t, rate, 0.91, "coverage %.3f", rate)
	assert.False(t, math.IsNaN(rate))
}
