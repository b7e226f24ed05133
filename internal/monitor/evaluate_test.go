package monitor

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 1, 5, 2, 0, 0, 0, time.UTC)

func base() Baseline {
	return Baseline{CapturedAt: t0, Values: map[string]float64{
		"latency_ms@pg/public.orders": 10, "error_rate_pct@pg/app": 1,
	}}
}

// healthy is a sample where nothing breaches and every rule has data.
func healthy(i int) Sample {
	return Sample{At: t0.Add(time.Duration(i+1) * 5 * time.Minute), Values: map[string]float64{
		"latency_ms@pg/public.orders": 12, "error_rate_pct@pg/app": 1.5,
		"fk_violations@pg": 0, "smoke_failures@smoke": 0,
	}}
}

type step struct {
	set     map[string]float64
	missing map[string]string
	want    Action
	rule    string
}

func TestEvaluatorMatrix(t *testing.T) {
	ev := Evaluator{Rules: DefaultMatrix(Thresholds{}), InconclusiveLimit: 3}
	require.NoError(t, ValidateRules(ev.Rules))
	slow := map[string]float64{"latency_ms@pg/public.orders": 31} // +21 ms
	errs := map[string]float64{"error_rate_pct@pg/app": 6.5}      // +5.5 points
	cases := []struct {
		name  string
		steps []step
	}{
		{"clean window continues", []step{{want: ActionContinue}, {want: ActionContinue}, {want: ActionContinue}, {want: ActionContinue}}},
		{"latency > 20ms fires only after 3 consecutive checks", []step{
			{set: slow, want: ActionContinue}, {set: slow, want: ActionContinue}, {set: slow, want: ActionRollback, rule: RuleLatency}}},
		{"exactly 20ms is not a breach", []step{
			{set: map[string]float64{"latency_ms@pg/public.orders": 30}, want: ActionContinue},
			{set: map[string]float64{"latency_ms@pg/public.orders": 30}, want: ActionContinue},
			{set: map[string]float64{"latency_ms@pg/public.orders": 30}, want: ActionContinue}}},
		{"a healthy check in between resets persistence", []step{
			{set: slow, want: ActionContinue}, {set: slow, want: ActionContinue}, {want: ActionContinue},
			{set: slow, want: ActionContinue}, {set: slow, want: ActionContinue}, {set: slow, want: ActionRollback, rule: RuleLatency}}},
		{"error rate +5.5 points rolls back after 3", []step{
			{set: errs, want: ActionContinue}, {set: errs, want: ActionContinue}, {set: errs, want: ActionRollback, rule: RuleErrorRate}}},
		{"investigate fires while a rollback row is still below persistence", []step{
			{set: merge(errs, map[string]float64{"fk_violations@pg": 5}), want: ActionInvestigate, rule: RuleFKViolations}}},
		{"rollback wins over investigate in the same check", []step{
			{set: errs, want: ActionContinue}, {set: errs, want: ActionContinue},
			{set: merge(errs, map[string]float64{"fk_violations@pg": 5}), want: ActionRollback, rule: RuleErrorRate}}},
		{"one FK violation per hour is fine, two investigate", []step{
			{set: map[string]float64{"fk_violations@pg": 1}, want: ActionContinue},
			{want: ActionContinue},
			{set: map[string]float64{"fk_violations@pg": 1}, want: ActionInvestigate, rule: RuleFKViolations}}},
		{"FK violations an hour apart do not add up", append(append([]step{{set: map[string]float64{"fk_violations@pg": 1}, want: ActionContinue}},
			repeat(step{want: ActionContinue}, 12)...), step{set: map[string]float64{"fk_violations@pg": 1}, want: ActionContinue})},
		{"smoke failing twice rolls back", []step{
			{set: map[string]float64{"smoke_failures@smoke": 1}, want: ActionContinue},
			{set: map[string]float64{"smoke_failures@smoke": 1}, want: ActionRollback, rule: RuleSmokeFailing}}},
		{"missing data is inconclusive and gates after the limit, never rolls back", []step{
			{missing: map[string]string{"latency_ms@pg": "not loaded"}, want: ActionContinue},
			{missing: map[string]string{"latency_ms@pg": "not loaded"}, want: ActionContinue},
			{missing: map[string]string{"latency_ms@pg": "not loaded"}, want: ActionInconclusive},
			{missing: map[string]string{"latency_ms@pg": "not loaded"}, want: ActionContinue}}},
		{"a complete check resets the inconclusive streak", []step{
			{missing: map[string]string{"error_rate_pct@pg/app": "no transactions"}, want: ActionContinue},
			{missing: map[string]string{"error_rate_pct@pg/app": "no transactions"}, want: ActionContinue},
			{want: ActionContinue},
			{missing: map[string]string{"error_rate_pct@pg/app": "no transactions"}, want: ActionContinue},
			{missing: map[string]string{"error_rate_pct@pg/app": "no transactions"}, want: ActionContinue},
			{missing: map[string]string{"error_rate_pct@pg/app": "no transactions"}, want: ActionInconclusive}}},
		{"missing data neither breaks nor extends a breach streak", []step{
			{set: slow, want: ActionContinue}, {set: slow, want: ActionContinue},
			{missing: map[string]string{"latency_ms@pg": "no calls"}, want: ActionContinue},
			{set: slow, want: ActionRollback, rule: RuleLatency}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var st State
			for i, s := range tc.steps {
				smp := healthy(i)
				for k, v := range s.set {
					smp.Values[k] = v
				}
				for k, why := range s.missing {
					for vk := range smp.Values {
						if vk == k || len(vk) > len(k) && vk[:len(k)+1] == k+"/" {
							delete(smp.Values, vk)
						}
					}
					smp.Missing = map[string]string{k: why}
				}
				var d Decision
				d, st = ev.Evaluate(st, base(), smp)
				require.Equal(t, s.want, d.Action, "step %d: %s", i, d.Reason)
				assert.Equal(t, s.rule, d.Rule, "step %d", i)
				assert.Equal(t, smp.At, d.At)
				if s.missing != nil && d.Action != ActionInconclusive {
					assert.True(t, d.Inconclusive, "step %d", i)
				}
				// State survives a JSON round trip (heartbeats, child inputs).
				b, err := json.Marshal(st)
				require.NoError(t, err)
				var back State
				require.NoError(t, json.Unmarshal(b, &back))
				st = back
			}
		})
	}
}

func TestEvaluatorFiguresAndReason(t *testing.T) {
	ev := Evaluator{Rules: DefaultMatrix(Thresholds{Persist: 1})}
	smp := healthy(0)
	smp.Values["latency_ms@pg/public.orders"] = 45
	smp.Values["latency_ms@pg/public.items"] = 50 // no baseline: only judged where one exists
	d, st := ev.Evaluate(State{}, base(), smp)
	require.Equal(t, ActionRollback, d.Action, d.Reason)
	assert.Equal(t, RuleLatency, d.Rule)
	assert.Equal(t, 35.0, d.Figures[RuleLatency])
	assert.Equal(t, 20.0, d.Figures[RuleLatency+".threshold"])
	assert.Equal(t, 45.0, d.Figures["sample:latency_ms@pg/public.orders"])
	assert.Equal(t, 10.0, d.Figures["baseline:latency_ms@pg/public.orders"])
	assert.Contains(t, d.Reason, "latency-degradation → rollback")
	assert.Contains(t, d.Reason, "public.orders rose by 35ms")
	assert.Zero(t, st.Streaks[RuleLatency], "a fired rule restarts its streak")
	nf := d.NotifyFigures()
	require.NotEmpty(t, nf)
	assert.Equal(t, "latency-degradation latency_ms@pg/public.orders", nf[0].Name)
	assert.Equal(t, 35.0, nf[0].Value)
	assert.Equal(t, 20.0, nf[0].Threshold)
}

func TestEvaluatorUncoveredRules(t *testing.T) {
	ev := Evaluator{Rules: DefaultMatrix(Thresholds{})}
	smp := Sample{At: t0, Values: map[string]float64{"latency_ms@pg/public.orders": 11, "error_rate_pct@pg/app": 1}}
	d, _ := ev.Evaluate(State{}, base(), smp)
	assert.Equal(t, ActionContinue, d.Action)
	assert.False(t, d.Inconclusive)
	assert.ElementsMatch(t, []string{RuleFKViolations, RuleSmokeFailing, RuleSmokePassing}, d.Uncovered)
}

func TestValidateRules(t *testing.T) {
	err := ValidateRules([]Rule{{Name: "a", Metric: "m", Op: "!=", Action: "panic"}, {Name: "a", Op: ">", Action: ActionRollback}})
	require.Error(t, err)
	for _, want := range []string{`op "!="`, `action "panic"`, "duplicate name", "no metric"} {
		assert.Contains(t, err.Error(), want)
	}
}

func merge(a, b map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func repeat(s step, n int) []step {
	out := make([]step, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestEvaluatorWindowRestartsAfterFiring(t *testing.T) {
	ev := Evaluator{Rules: DefaultMatrix(Thresholds{})}
	var st State
	var d Decision
	for i, v := range []float64{1, 1, 0, 0, 1, 1} {
		smp := healthy(i)
		smp.Values["fk_violations@pg"] = v
		d, st = ev.Evaluate(st, base(), smp)
		switch i {
		case 1, 5:
			assert.Equal(t, ActionInvestigate, d.Action, "check %d", i)
			assert.Equal(t, 2.0, d.Figures[RuleFKViolations])
		default:
			assert.Equal(t, ActionContinue, d.Action, "check %d: the violations already reported do not fire again", i)
		}
	}
}

// Relative rows express "+30 % latency" and "error rate 5 % above what it
// was", beside the absolute rows in ms and percentage points.
func TestEvaluatorRelativeThresholds(t *testing.T) {
	rules := DefaultMatrix(Thresholds{LatencyIncreasePct: 30, ErrorRateIncreaseRatio: 0.5, Persist: 1})
	require.NoError(t, ValidateRules(rules))
	ev := Evaluator{Rules: rules, InconclusiveLimit: 3}
	cases := []struct {
		name   string
		set    map[string]float64
		base   map[string]float64
		want   Action
		rule   string
		reason string
	}{
		{name: "+20 % latency is below +30 %", set: map[string]float64{"latency_ms@pg/public.orders": 12}, want: ActionContinue},
		{name: "+40 % latency rolls back on the relative row before the 20 ms row", set: map[string]float64{"latency_ms@pg/public.orders": 14},
			want: ActionRollback, rule: RuleLatencyRelative, reason: "rose by 40% of its baseline"},
		{name: "error rate 1 % → 1.6 % is +60 % relative, 0.6 points absolute", set: map[string]float64{"error_rate_pct@pg/app": 1.6},
			want: ActionRollback, rule: RuleErrorRateRelative},
		{name: "a zero baseline has no relative increase: missing data, never a pass", base: map[string]float64{"error_rate_pct@pg/app": 0},
			set: map[string]float64{"error_rate_pct@pg/app": 0.5}, want: ActionContinue, reason: "baseline 0 for error_rate_pct@pg/app"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := base()
			for k, v := range tc.base {
				b.Values[k] = v
			}
			s := healthy(0)
			for k, v := range tc.set {
				s.Values[k] = v
			}
			d, _ := ev.Evaluate(State{}, b, s)
			assert.Equal(t, tc.want, d.Action, d.Reason)
			assert.Equal(t, tc.rule, d.Rule)
			assert.Contains(t, d.Reason, tc.reason)
		})
	}
	assert.NotContains(t, ruleNames(DefaultMatrix(Thresholds{})), RuleLatencyRelative, "relative rows only when asked for")
}

func ruleNames(rules []Rule) []string {
	var out []string
	for _, r := range rules {
		out = append(out, r.Name)
	}
	return out
}

func TestThresholdsValidate(t *testing.T) {
	cases := []struct {
		th   Thresholds
		want string
	}{
		{Thresholds{ErrorRateIncreaseRatio: 50}, "for percentage points use error_rate_increase_pct"},
		{Thresholds{LatencyIncreasePct: -1}, "latency_increase_pct -1"},
		{Thresholds{ErrorRateIncreasePct: 120}, "cannot exceed 100"},
		{Thresholds{ErrorRateIncreaseRatio: 0.05, LatencyIncreasePct: 30}, ""},
	}
	for _, tc := range cases {
		err := tc.th.Validate()
		if tc.want == "" {
			assert.NoError(t, err)
			continue
		}
		require.Error(t, err)
		assert.Contains(t, err.Error(), tc.want)
	}
}

// Every rule reports each check: its sources, last figure and state; a
// rule no source measures is inconclusive, never silently off.
func TestEvaluatorRuleStatuses(t *testing.T) {
	ev := Evaluator{Rules: DefaultMatrix(Thresholds{}), InconclusiveLimit: 3}
	s := healthy(0)
	delete(s.Values, "fk_violations@pg")
	s.Values["latency_ms@pg/public.orders"] = 35
	s.Missing = map[string]string{"error_rate_pct@pg/app": "no transactions in the interval"}
	delete(s.Values, "error_rate_pct@pg/app")
	d, _ := ev.Evaluate(State{}, base(), s)
	got := map[string]RuleStatus{}
	for _, r := range d.Rules {
		got[r.Rule] = r
	}
	require.Len(t, d.Rules, len(ev.Rules), "every rule, in matrix order")
	assert.Equal(t, RuleLatency, d.Rules[0].Rule)
	assert.Equal(t, RuleStatus{Rule: RuleLatency, Metric: MetricLatencyMS, Action: ActionRollback, Sources: []string{"pg"}, Series: "latency_ms@pg/public.orders",
		Value: 25, Sample: 35, Baseline: 10, Threshold: 20, Op: ">", Unit: "ms", State: RuleBreach, At: s.At}, got[RuleLatency])
	assert.Equal(t, RuleInconclusive, got[RuleErrorRate].State)
	assert.Equal(t, []string{"pg"}, got[RuleErrorRate].Sources)
	assert.Contains(t, got[RuleErrorRate].Reason, "no transactions")
	assert.Equal(t, RuleInconclusive, got[RuleFKViolations].State)
	assert.Empty(t, got[RuleFKViolations].Sources)
	assert.Equal(t, "no configured source measures fk_violations", got[RuleFKViolations].Reason)
	assert.Equal(t, RuleOK, got[RuleSmokePassing].State, "all smoke tests pass")
	assert.Equal(t, RuleOK, got[RuleSmokeFailing].State)
}

// The watcher returns a checkpoint when a rule changes state and every
// ReportEvery, and resumes from it without re-priming its sources.
func TestWatchCheckpoints(t *testing.T) {
	clock := t0
	src := &countingSource{}
	ev := Evaluator{Rules: DefaultMatrix(Thresholds{}), InconclusiveLimit: 3}
	w := Watch{Sources: []Source{src}, Evaluator: ev, Baseline: base(), Interval: 5 * time.Minute, Deadline: t0.Add(3 * time.Hour),
		Now: func() time.Time { return clock }, Sleep: func(_ context.Context, d time.Duration) error { clock = clock.Add(d); return nil },
		ReportEvery: time.Hour, ReportOnChange: true}
	var at []int
	p := Progress{}
	for {
		res, err := w.Run(context.Background(), p)
		require.NoError(t, err)
		require.NotNil(t, res.Progress)
		if res.DeadlineReached {
			break
		}
		require.True(t, res.Checkpoint)
		at = append(at, res.State.Checks)
		p = *res.Progress
	}
	// Check 1: first states; 13: an hour later; 20: smoke fails (breach);
	// 21 passes again, but only 5 minutes after the last checkpoint (a
	// change reports at most every quarter of ReportEvery); 32: an hour
	// after 20.
	assert.Equal(t, []int{1, 13, 20, 32}, at)
	assert.Equal(t, 1, src.primes, "resumed with the cursors, primed once")
	assert.Equal(t, 36, src.checks)
}

type countingSource struct{ primes, checks int }

func (c *countingSource) Name() string { return "pg" }
func (c *countingSource) Provides() []string {
	return []string{MetricLatencyMS, MetricErrorRatePct, MetricFKViolations, MetricSmokeFailures}
}
func (c *countingSource) Collect(_ context.Context, cursor json.RawMessage) (Reading, error) {
	if cursor == nil {
		c.primes++
		return Reading{Cursor: json.RawMessage(`{}`)}, nil
	}
	c.checks++
	s := healthy(c.checks)
	if c.checks == 20 {
		s.Values["smoke_failures@smoke"] = 1
	}
	return Reading{Values: s.Values, Cursor: cursor}, nil
}

// A held investigate rule is evaluated and reported but does not fire; a
// rollback rule is never held; Release forgets what was counted meanwhile.
func TestEvaluatorHoldAndRelease(t *testing.T) {
	rules := DefaultMatrix(Thresholds{Persist: 1})
	ev := Evaluator{Rules: rules, InconclusiveLimit: 2, Hold: []string{RuleFKViolations, HoldInconclusive}}
	st := State{}
	var d Decision
	for i := 0; i < 4; i++ {
		s := healthy(i)
		s.Values["fk_violations@pg"] = 3
		delete(s.Values, "error_rate_pct@pg/app")
		s.Missing = map[string]string{"error_rate_pct@pg/app": "no transactions"}
		d, st = ev.Evaluate(st, base(), s)
		assert.Equal(t, ActionContinue, d.Action, d.Reason)
	}
	assert.Contains(t, d.Reason, "held while their gate is open: fk-violations, inconclusive")
	for _, r := range d.Rules {
		if r.Rule == RuleFKViolations {
			assert.Equal(t, RuleBreach, r.State)
			assert.Equal(t, 12.0, r.Value, "four checks of 3 in the hour")
		}
	}
	s := healthy(5)
	s.Values["latency_ms@pg/public.orders"] = 40
	d, _ = ev.Evaluate(st, base(), s)
	assert.Equal(t, ActionRollback, d.Action, "rollback rules are never held")

	released := Release(st, rules, ev.Hold)
	assert.Zero(t, released.InconclusiveStreak)
	ev.Hold = nil
	s = healthy(5)
	s.Values["fk_violations@pg"] = 1
	d, _ = ev.Evaluate(released, base(), s)
	assert.Equal(t, ActionContinue, d.Action, "only what came after the release counts: 1 in the hour")
	d, _ = ev.Evaluate(st, base(), s)
	assert.Equal(t, ActionInvestigate, d.Action, "without the release the held count fires at once")
}
