package rollout

// Time-skipping tests of the watch that keeps watching while a person
// decides: the real FKRollout and FKRolloutMonitor workflows, the real
// monitor.Watch loop and evaluator; the watcher makes one check per
// interval of workflow time, so a day of checks takes a day of (skipped)
// time and gates, timeouts and digests meet them when they would.

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/monitor"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/testkit/monitortest"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/watch"
)

// withTimedMonitor is withMonitor whose watcher takes one interval of
// workflow time per check and returns after each (a checkpoint, or the
// decision), resuming from the progress the workflow hands back.
func withTimedMonitor(t *testing.T, h *harness, script func(n int) monitor.Reading) *monitorFake {
	m := withMonitor(t, h, script, false)
	const interval = 5 * time.Minute
	h.env.OnActivity(watch.ActMonitorWatch, mock.Anything, mock.Anything).AfterFn(func() time.Duration { return interval }).Return(
		func(ctx context.Context, in watch.WatchInput) (watch.WatchResult, error) {
			m.mu.Lock()
			m.watches = append(m.watches, in)
			m.mu.Unlock()
			iv, err := time.ParseDuration(in.Interval)
			require.NoError(t, err)
			require.Equal(t, interval, iv)
			p := monitor.Progress{State: in.State}
			if in.Progress != nil {
				p = *in.Progress
				p.State = in.State
			}
			// This call waited one interval: the check is now.
			p.LastCheck = h.env.Now().Add(-iv)
			clock := p.LastCheck
			w := monitor.Watch{Sources: []monitor.Source{m.src}, Evaluator: in.Evaluator, Baseline: in.Baseline, Interval: iv, Deadline: in.Deadline,
				Now:   func() time.Time { return clock },
				Sleep: func(_ context.Context, d time.Duration) error { clock = clock.Add(d); return nil },
				// One check per call.
				ReportEvery: iv, ReportOnChange: in.ReportOnChange}
			return w.Run(ctx, p)
		})
	return m
}

// leaveMonitorGatesOpen approves everything but monitor gates, which
// nobody answers.
func leaveMonitorGatesOpen(h *harness, g approval.Gate) []approval.DecisionInput {
	if g.Kind == notify.GateInvestigate {
		return nil
	}
	return approveAll(h, g)
}

// fkThenSlow: two FK violations within an hour (checks fk, fk+5), then
// latency 25 ms over the baseline from check slow on (0: never).
func fkThenSlow(fk, slow int) func(n int) monitor.Reading {
	return func(n int) monitor.Reading {
		r := monitortest.Healthy()
		if n == fk || n == fk+5 {
			r = monitortest.WithValues(r, map[string]float64{"fk_violations@pg": 1})
		}
		if slow > 0 && n >= slow {
			r = monitortest.WithValues(r, map[string]float64{"latency_ms@pg/public.orders": 35})
		}
		return r
	}
}

func monitorGates(st *Status) []approval.Gate {
	var out []approval.Gate
	for _, g := range st.Gates {
		if g.Kind == notify.GateInvestigate {
			out = append(out, g)
		}
	}
	return out
}

func ruleByName(rules []monitor.RuleStatus, name string) monitor.RuleStatus {
	for _, r := range rules {
		if r.Rule == name {
			return r
		}
	}
	return monitor.RuleStatus{}
}

// A 24 h watch whose investigate gate nobody answers still rolls back on
// latency: the rollback row fires at its own time and closes the gate.
func TestMonitorKeepsRollingBackWhileInvestigateGateIsOpen(t *testing.T) {
	h := newHarness(t, leaveMonitorGatesOpen)
	h.fake.orphans["staging"] = map[string]int64{}
	h.fake.orphans["production"] = map[string]int64{}
	withTimedMonitor(t, h, fkThenSlow(50, 200))
	h.drive()
	in := monitorInput()
	in.Monitor.InvestigateTimeout = "20h" // open for the rest of the day
	var during *Status
	// Day 2 at 04:00 (+18 h from the start): production validated at
	// 02:00, the watch runs; FK violations opened the gate at ~06:35 of
	// day 2? No: the watch starts at ~02:00, so at +28 h (12:00) the gate
	// is open and the watch is past check 100.
	h.env.RegisterDelayedCallback(func() { during = h.status() }, 28*time.Hour)
	st, err := h.run(in)
	require.NoError(t, err)

	require.NotNil(t, during)
	require.NotNil(t, during.Monitor)
	assert.Equal(t, MonitorWaiting, during.Monitor.Status, during.Monitor.Reason)
	assert.Contains(t, during.Monitor.Reason, "every rule is still watched")
	require.Len(t, during.OpenGates, 1)
	assert.Equal(t, notify.GateInvestigate, during.OpenGates[0].Kind)
	lat := ruleByName(during.Monitor.Rules, monitor.RuleLatency)
	assert.Equal(t, monitor.RuleOK, lat.State, "the status shows the rules while the gate is open")
	assert.Equal(t, []string{"pg"}, lat.Sources)

	t0 := monitorStart(t, st)
	assert.Equal(t, StateRolledBack, st.State)
	assert.Equal(t, []string{ActRollback + " production", ActRollback + " staging"}, rollbackOrder(h.fake))
	mon := st.Monitor
	assert.Equal(t, MonitorRollback, mon.Status)
	assert.Equal(t, monitor.RuleLatency, mon.Rule)
	require.NotNil(t, mon.FiredAt)
	assert.Equal(t, t0.Add(202*5*time.Minute), *mon.FiredAt, "checks 200-202 breach: fired at its own time, 16h50m into the watch")
	gates := monitorGates(st)
	require.Len(t, gates, 1)
	g := gates[0]
	assert.Equal(t, t0.Add(55*5*time.Minute), g.OpenedAt, "opened by the second FK violation")
	assert.Equal(t, approval.GateDecided, g.Status)
	require.NotNil(t, g.Decision)
	assert.Equal(t, ActorMonitor, g.Decision.Actor)
	assert.Equal(t, approval.ChoiceRollback, g.Decision.Action)
	assert.Contains(t, g.Decision.Reason, "rollback row "+monitor.RuleLatency+" fired while the gate was open")
	assert.Contains(t, mon.Reason, "while gate "+g.ID+" was open")
	require.Len(t, mon.Rounds, 2)
	assert.Equal(t, "rollback by monitor", mon.Rounds[0].Decision)
	assert.Equal(t, watch.OutcomeRollback, mon.Rounds[1].Status)
	assert.Equal(t, monitor.RuleBreach, ruleByName(mon.Rules, monitor.RuleLatency).State)
	rb := rolledBackEvent(t, h.fake)
	assert.Equal(t, monitor.RuleLatency, rb.Rollback.Rule)
}

// The end of the window with a gate open is not a pass: the watch waits
// for the gate, whose default timeout rolls back; a person's continue
// after the window passes it, naming who.
func TestMonitorWindowEndingWithGateOpenIsNotClean(t *testing.T) {
	cases := []struct {
		name   string
		decide func(h *harness, g approval.Gate) []approval.DecisionInput
		check  func(t *testing.T, st *Status, g approval.Gate, t0 time.Time)
	}{
		{name: "nobody answers: the default timeout rolls back", decide: leaveMonitorGatesOpen,
			check: func(t *testing.T, st *Status, g approval.Gate, t0 time.Time) {
				assert.Equal(t, StateRolledBack, st.State)
				assert.Equal(t, MonitorRollback, st.Monitor.Status)
				assert.Equal(t, approval.GateTimedOut, g.Status)
				require.NotNil(t, g.Deadline)
				assert.Equal(t, g.OpenedAt.Add(DefaultInvestigateTimeout), *g.Deadline, "a gate the policy gives no timeout gets 4 h")
				assert.Equal(t, approval.ChoiceRollback, g.Decision.Action)
				assert.Contains(t, st.Monitor.Reason, "timed out")
				assert.Equal(t, g.OpenedAt.Add(DefaultInvestigateTimeout), st.Monitor.Ended)
				require.NotNil(t, st.Rollback)
				assert.Equal(t, monitor.RuleFKViolations, st.Rollback.Rule, "an automatic rollback naming the rule")
				assert.Equal(t, "monitor", st.Rollback.Trigger)
			}},
		{name: "continue after the window passes, naming who", decide: func(h *harness, g approval.Gate) []approval.DecisionInput {
			if g.Kind == notify.GateInvestigate && h.env.Now().Before(g.OpenedAt.Add(90*time.Minute)) {
				return nil
			}
			return decideMonitor(approval.ChoiceContinue, "known import job, fixed")(h, g)
		}, check: func(t *testing.T, st *Status, g approval.Gate, t0 time.Time) {
			assert.Equal(t, StateCompleted, st.State)
			assert.Equal(t, MonitorPassed, st.Monitor.Status)
			assert.Contains(t, st.Monitor.Reason, "every rule was watched to the end while gate "+g.ID+" was open, and "+bob+" chose continue")
			assert.True(t, st.Monitor.Ended.After(t0.Add(24*time.Hour)), "passed only after the decision")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.decide)
			h.fake.orphans["staging"] = map[string]int64{}
			h.fake.orphans["production"] = map[string]int64{}
			withTimedMonitor(t, h, fkThenSlow(270, 0)) // the gate opens at 22h55m
			h.drive()
			var atEnd *Status
			// The watch runs from ~02:00 of day 2 (+16 h) to ~02:00 of day
			// 3 (+40 h); look 20 minutes after its end.
			h.env.RegisterDelayedCallback(func() { atEnd = h.status() }, 40*time.Hour+20*time.Minute)
			st, err := h.run(monitorInput())
			require.NoError(t, err)
			t0 := monitorStart(t, st)
			require.NotNil(t, atEnd)
			require.True(t, atEnd.UpdatedAt.After(t0.Add(24*time.Hour)) || !atEnd.State.Terminal())
			assert.Equal(t, MonitorWaiting, atEnd.Monitor.Status, "the window ended; the open gate keeps it from passing")
			assert.Contains(t, atEnd.Monitor.Reason, "the watch does not pass until it is decided")
			gates := monitorGates(st)
			require.Len(t, gates, 1)
			assert.Equal(t, t0.Add(275*5*time.Minute), gates[0].OpenedAt)
			tc.check(t, st, gates[0], t0)
		})
	}
}

// A rule no source measures is inconclusive in the status and the report,
// not silently off.
func TestMonitorRuleWithoutSourceIsInconclusive(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["staging"] = map[string]int64{}
	h.fake.orphans["production"] = map[string]int64{}
	noFK := func(int) monitor.Reading {
		r := monitortest.Healthy()
		delete(r.Values, "fk_violations@pg")
		return r
	}
	withTimedMonitor(t, h, noFK)
	h.drive()
	var during *Status
	h.env.RegisterDelayedCallback(func() { during = h.status() }, 20*time.Hour)
	h.fake.policy.MinWatch = "1h" // a 6 h watch: this worker allows it
	in := monitorInput()
	in.Monitor.Duration = "6h"
	st, err := h.run(in)
	require.NoError(t, err)

	require.NotNil(t, during)
	require.NotNil(t, during.Monitor)
	assert.Equal(t, MonitorWatching, during.Monitor.Status)
	fk := ruleByName(during.Monitor.Rules, monitor.RuleFKViolations)
	assert.Equal(t, monitor.RuleInconclusive, fk.State, "visible while the watch runs")
	assert.Empty(t, fk.Sources)
	assert.Contains(t, during.Markdown(), "fk-violations")

	assert.Equal(t, MonitorPassed, st.Monitor.Status)
	fk = ruleByName(st.Monitor.Rules, monitor.RuleFKViolations)
	assert.Equal(t, monitor.RuleInconclusive, fk.State)
	assert.Equal(t, "no configured source measures fk_violations", fk.Reason)
	assert.Equal(t, monitor.RuleOK, ruleByName(st.Monitor.Rules, monitor.RuleLatency).State)
	rep := st.Report()
	assert.Contains(t, rep, "| fk-violations | fk_violations | no source | — | inconclusive: no configured source measures fk_violations |")
	assert.Contains(t, rep, "| latency-degradation | latency_ms | pg |")
	assert.Contains(t, rep, "1 rule inconclusive: fk-violations")
}

// A three-day watch posts a digest in the thread after day 1 and day 2,
// once each, though an investigate gate restarts the watch in between.
func TestMonitorDailyDigest(t *testing.T) {
	h := newHarness(t, decideMonitor(approval.ChoiceContinue, "known import job"))
	h.fake.orphans["staging"] = map[string]int64{}
	h.fake.orphans["production"] = map[string]int64{}
	withTimedMonitor(t, h, fkThenSlow(400, 0)) // ~33 h: a gate, continue
	h.drive()
	in := monitorInput()
	in.Monitor.Duration = "72h"
	st, err := h.run(in)
	require.NoError(t, err)
	assert.Equal(t, StateCompleted, st.State)
	assert.Equal(t, MonitorPassed, st.Monitor.Status)
	require.Len(t, monitorGates(st), 1)
	t0 := monitorStart(t, st)

	var digests []notify.Event
	h.fake.mu.Lock()
	for _, ev := range h.fake.notifications {
		if ev.Phase == "monitor-digest" {
			digests = append(digests, ev)
		}
	}
	h.fake.mu.Unlock()
	require.Len(t, digests, 2, "day 1 and day 2; the end has the report")
	for i, ev := range digests {
		day := i + 1
		assert.Contains(t, ev.Text, "day "+string(rune('0'+day))+" of the watch of production")
		assert.Equal(t, t0.Add(time.Duration(day)*24*time.Hour), ev.Time, "posted at the first check of the day")
		assert.Contains(t, ev.Text, "latency-degradation [pg] ok")
		assert.Equal(t, "rollout-test-1", ev.RolloutID)
	}
	assert.True(t, strings.Contains(digests[1].Text, "checks so far"))
}

// monitor.baseline_at: before-window measures the baseline when the rollout
// reaches production in the day, not inside the 02:00 maintenance window.
func TestMonitorBaselineBeforeWindow(t *testing.T) {
	cases := []struct {
		at       string
		wantHour int
	}{
		{"", 2},
		{BaselineAtBeforeWindow, 10},
	}
	for _, tc := range cases {
		t.Run("baseline_at="+tc.at, func(t *testing.T) {
			h := newHarness(t, approveAll)
			h.fake.orphans["staging"] = map[string]int64{}
			h.fake.orphans["production"] = map[string]int64{}
			m := withMonitor(t, h, func(int) monitor.Reading { return monitortest.Healthy() }, false)
			h.drive()
			in := monitorInput()
			in.Monitor.BaselineAt = tc.at
			st, err := h.run(in)
			require.NoError(t, err)
			assert.Equal(t, StateCompleted, st.State)
			assert.Equal(t, 1, m.baselines)
			assert.Zero(t, m.appliedAtBaseline, "before the deploy either way")
			require.NotNil(t, st.Monitor.Baseline)
			assert.Equal(t, tc.wantHour, st.Monitor.Baseline.CapturedAt.Hour())
			base, window := phaseIndex(st, "production", PhaseBaseline), phaseIndex(st, "production", PhaseWindow)
			require.True(t, base >= 0 && window >= 0)
			assert.Equal(t, tc.at == BaselineAtBeforeWindow, base < window, "timeline order")
		})
	}
}

// phaseIndex is where the environment entered phase in the timeline (-1: never).
func phaseIndex(st *Status, env, phase string) int {
	for i, e := range st.Timeline {
		if e.Environment == env && e.Message == "phase "+phase {
			return i
		}
	}
	return -1
}

// FK violations that go on while their gate is open do not ask again (the
// rule is held: evaluated, shown as breaching, no new gate, no message per
// check); after "continue", what happens next asks again.
func TestMonitorHoldsTheGatesRuleUntilContinue(t *testing.T) {
	decide := func(h *harness, g approval.Gate) []approval.DecisionInput {
		if g.Kind != notify.GateInvestigate {
			return approveAll(h, g)
		}
		if g.ID != "production/investigate/2" || h.env.Now().Before(g.OpenedAt.Add(time.Hour)) {
			return nil // the first gate is answered after an hour, the second never
		}
		return decideMonitor(approval.ChoiceContinue, "looked at it: a known import job")(h, g)
	}
	h := newHarness(t, decide)
	h.fake.orphans["staging"] = map[string]int64{}
	h.fake.orphans["production"] = map[string]int64{}
	every := func(n int) monitor.Reading {
		r := monitortest.Healthy()
		if n >= 50 {
			r = monitortest.WithValues(r, map[string]float64{"fk_violations@pg": 1})
		}
		return r
	}
	withTimedMonitor(t, h, every)
	h.drive()
	var held *Status
	h.env.RegisterDelayedCallback(func() { held = h.status() }, 16*time.Hour+5*time.Hour) // ~40 min into the first gate
	st, err := h.run(monitorInput())
	require.NoError(t, err)

	require.NotNil(t, held)
	require.Len(t, held.OpenGates, 1)
	assert.Equal(t, monitor.RuleBreach, ruleByName(held.Monitor.Rules, monitor.RuleFKViolations).State, "held, still evaluated")
	require.Len(t, held.Monitor.Rounds, 1, "no new finding while held")

	gates := monitorGates(st)
	require.Len(t, gates, 2)
	first, second := gates[0], gates[1]
	require.NotNil(t, first.Decision)
	assert.Equal(t, approval.ChoiceContinue, first.Decision.Action)
	gap := second.OpenedAt.Sub(first.Decision.Time)
	assert.True(t, gap > 0 && gap <= 20*time.Minute, "asked again on what came after continue: %s", gap)
	assert.Equal(t, StateRolledBack, st.State, "the second gate timed out")
	for _, e := range st.Timeline {
		assert.NotContains(t, e.Message, "while gate", "no repeated finding while held")
	}
}
