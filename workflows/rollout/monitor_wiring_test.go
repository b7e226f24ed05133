package rollout

// Time-skipping tests of the rollout (the parent) with the production
// monitor child wired in: the real FKRollout and FKRolloutMonitor
// workflows, the real monitor.Watch loop and evaluator, the default decision matrix;
// only the databases (fakeEngine) and the measurements (monitorScripted)
// are made up.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/fkrollout/fkrollout/internal/monitor"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/testkit/monitortest"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/steps"
	"github.com/fkrollout/fkrollout/workflows/watch"
)

// monitorFake adds the monitor's two activities to a rollout harness.
type monitorFake struct {
	mu        sync.Mutex
	src       *monitortest.Scripted
	clock     time.Time // the watcher's fake clock; never behind workflow time
	baselines int
	// appliedAtBaseline: production ADD CONSTRAINTs done when the baseline
	// was measured (0: before the deploy).
	appliedAtBaseline int
	baselineErr       error
	// baselineFailures: how many calls fail with baselineErr (0: all).
	baselineFailures int
	watches          []watch.WatchInput
}

// withMonitor registers the baseline and watch activities on h. The watch
// runs the real monitor.Watch loop on a fake clock that starts at the
// workflow's time (or where the previous watch stopped), so a day of
// 5-minute checks takes milliseconds. block: the watcher never returns by
// itself (the window timer or a stop ends the watch).
func withMonitor(t *testing.T, h *harness, script func(n int) monitor.Reading, block bool) *monitorFake {
	m := &monitorFake{src: &monitortest.Scripted{Script: script}}
	h.env.RegisterActivityWithOptions(func(ctx context.Context, in watch.BaselineInput) (monitor.Baseline, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.baselines++
		m.appliedAtBaseline = h.fake.count(ActApplyConstraint + " production")
		if m.baselineErr != nil && (m.baselineFailures == 0 || m.baselines <= m.baselineFailures) {
			return monitor.Baseline{}, m.baselineErr
		}
		return monitor.Baseline{CapturedAt: h.env.Now(), Values: map[string]float64{"latency_ms@pg/public.orders": 10, "error_rate_pct@pg/db": 1}}, nil
	}, activity.RegisterOptions{Name: watch.ActMonitorCaptureBaseline})
	watchActivity := func(ctx context.Context, in watch.WatchInput) (watch.WatchResult, error) {
		m.mu.Lock()
		m.watches = append(m.watches, in)
		if now := h.env.Now(); now.After(m.clock) {
			m.clock = now
		}
		m.mu.Unlock()
		iv, err := time.ParseDuration(in.Interval)
		require.NoError(t, err)
		w := monitor.Watch{Sources: []monitor.Source{m.src}, Evaluator: in.Evaluator, Baseline: in.Baseline, Interval: iv, Deadline: in.Deadline,
			Now: func() time.Time { m.mu.Lock(); defer m.mu.Unlock(); return m.clock },
			Sleep: func(ctx context.Context, d time.Duration) error {
				m.mu.Lock()
				defer m.mu.Unlock()
				m.clock = m.clock.Add(d)
				return nil
			},
			BeatEvery: iv}
		return w.Run(ctx, monitor.Progress{State: in.State})
	}
	h.env.RegisterActivityWithOptions(watchActivity, activity.RegisterOptions{Name: watch.ActMonitorWatch})
	if block {
		h.env.OnActivity(watch.ActMonitorWatch, mock.Anything, mock.Anything).After(72 * time.Hour).Return(
			func(ctx context.Context, in watch.WatchInput) (watch.WatchResult, error) {
				m.mu.Lock()
				defer m.mu.Unlock()
				m.watches = append(m.watches, in)
				return watch.WatchResult{}, errors.New("the watcher should have been cancelled")
			})
	}
	return m
}

// monitorInput: staging then production (02:00 window), the default
// thresholds, a 24 h watch every 5 minutes.
func monitorInput() Input {
	in := testInput()
	in.Thresholds = Thresholds{MaxOverheadMS: 10, RollbackOverheadMS: 20, ErrorRateIncreasePct: 5, FKViolationsPerHour: 1}
	in.Monitor = MonitorInput{Enabled: true, Duration: "24h", Interval: "5m", Sources: []string{"monitorScripted"}, InconclusiveLimit: 3}
	return in
}

// investigateScript: two FK violations within an hour (checks 50 and 55).
func investigateScript(n int) monitor.Reading {
	if n == 50 || n == 55 {
		return monitortest.WithValues(monitortest.Healthy(), map[string]float64{"fk_violations@pg": 1})
	}
	return monitortest.Healthy()
}

// slowFrom: latency 25 ms over the baseline from check `from` on.
func slowFrom(from int) func(n int) monitor.Reading {
	return func(n int) monitor.Reading {
		if n >= from {
			return monitortest.WithValues(monitortest.Healthy(), map[string]float64{"latency_ms@pg/public.orders": 35})
		}
		return monitortest.Healthy()
	}
}

// decideMonitor answers monitor gates with choice (by bob) and approves
// everything else like approveAll.
func decideMonitor(choice, reason string) func(h *harness, g approval.Gate) []approval.DecisionInput {
	return func(h *harness, g approval.Gate) []approval.DecisionInput {
		if g.Kind == notify.GateInvestigate {
			return []approval.DecisionInput{
				// The requester may not let their own rollout continue (four-eyes).
				{GateID: g.ID, Choice: approval.ChoiceContinue, Actor: requester, Via: "test"},
				{GateID: g.ID, Choice: choice, Actor: bob, Reason: reason, Via: "test"},
			}
		}
		return approveAll(h, g)
	}
}

func rollbackOrder(f *fakeEngine) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var order []string
	for _, c := range f.calls {
		if strings.HasPrefix(c, ActRollback) {
			order = append(order, c)
		}
	}
	return order
}

func rolledBackEvent(t *testing.T, f *fakeEngine) notify.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ev := range f.notifications {
		if ev.Kind == notify.KindRolledBack {
			require.NotNil(t, ev.Rollback)
			return ev
		}
	}
	require.FailNow(t, "no rolled-back notification")
	return notify.Event{}
}

// monitorStart is when the watch began (the phase change to monitor).
func monitorStart(t *testing.T, st *Status) time.Time {
	at := phaseTime(st, "production", PhaseMonitor)
	require.False(t, at.IsZero(), "the rollout reached the monitor phase")
	return at
}

func TestMonitorMatrixRollbackRollsBackTheRollout(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["staging"] = map[string]int64{}
	h.fake.orphans["production"] = map[string]int64{}
	m := withMonitor(t, h, slowFrom(10), false)
	h.drive()
	st, err := h.run(monitorInput())
	require.NoError(t, err)

	assert.Equal(t, StateRolledBack, st.State)
	assert.Empty(t, h.fake.constraints, "the rollout's constraints are dropped in both environments")
	assert.Equal(t, []string{ActRollback + " production", ActRollback + " staging"}, rollbackOrder(h.fake))

	require.NotNil(t, st.Monitor)
	mon := st.Monitor
	assert.Equal(t, MonitorRollback, mon.Status)
	assert.Equal(t, monitor.RuleLatency, mon.Rule)
	// Latency breached on checks 10, 11, 12 (persist 3): fired at check 12.
	t0 := monitorStart(t, st)
	require.NotNil(t, mon.FiredAt)
	assert.Equal(t, t0.Add(12*5*time.Minute), *mon.FiredAt)
	require.NotEmpty(t, mon.Figures)
	assert.Contains(t, mon.Figures[0].Name, monitor.RuleLatency)
	assert.Equal(t, 25.0, mon.Figures[0].Value, "35 ms against the 10 ms baseline")
	assert.Equal(t, 20.0, mon.Figures[0].Threshold)
	assert.Contains(t, mon.Reason, "matrix row "+monitor.RuleLatency+" fired at "+t0.Add(time.Hour).UTC().Format(time.RFC3339))
	assert.Contains(t, mon.Reason, "(threshold 20)")
	require.Len(t, mon.Rounds, 1)
	assert.Equal(t, 12, mon.Rounds[0].Checks)
	assert.Equal(t, 1, m.baselines)
	assert.Zero(t, m.appliedAtBaseline, "the baseline is measured before the production deploy")
	require.NotNil(t, mon.Baseline)
	assert.Equal(t, 10.0, mon.Baseline.Values["latency_ms@pg/public.orders"])
	assert.False(t, phaseTime(st, "production", PhaseBaseline).IsZero())
	require.NotNil(t, m.watches[0].Baseline.Values)
	require.Len(t, m.watches, 1)
	assert.Equal(t, t0.Add(24*time.Hour), m.watches[0].Deadline, "the parent fixes the absolute deadline")
	assert.Equal(t, []string{"monitorScripted"}, m.watches[0].Sources)
	assert.Equal(t, 20.0, monitorRuleThreshold(m.watches[0].Evaluator, monitor.RuleLatency), "rollback_overhead_ms maps onto the latency row")

	rb := rolledBackEvent(t, h.fake)
	assert.Equal(t, monitor.RuleLatency, rb.Rollback.Rule, "the notification names the matrix row")
	assert.Equal(t, mon.Figures, rb.Rollback.Figures)
	assert.False(t, rb.Rollback.Manual)
	assert.Len(t, rb.Rollback.Constraints, 6)
	assert.Contains(t, st.Markdown(), "monitor: **rollback**")
	assert.Contains(t, st.Summary(), "monitor: rollback (rule "+monitor.RuleLatency+")")
}

func monitorRuleThreshold(ev monitor.Evaluator, name string) float64 {
	for _, r := range ev.Rules {
		if r.Name == name {
			return r.Threshold
		}
	}
	return -1
}

func TestMonitorInvestigateGate(t *testing.T) {
	cases := []struct {
		name   string
		choice string
		check  func(t *testing.T, h *harness, m *monitorFake, st *Status)
	}{
		{name: "continue resumes the watch and the window completes clean", choice: approval.ChoiceContinue,
			check: func(t *testing.T, h *harness, m *monitorFake, st *Status) {
				assert.Equal(t, StateCompleted, st.State)
				assert.Equal(t, MonitorPassed, st.Monitor.Status, st.Monitor.Reason)
				assert.Empty(t, rollbackOrder(h.fake))
				assert.Equal(t, "valid", h.fake.constraints["production/fk_vendor_workspace"])
				require.Len(t, st.Monitor.Rounds, 2)
				assert.Equal(t, watch.OutcomeClean, st.Monitor.Rounds[1].Status)
				assert.Equal(t, 1, m.baselines, "the baseline is carried into the resumed watch")
				require.Len(t, m.watches, 2)
				assert.Equal(t, m.watches[0].Deadline, m.watches[1].Deadline, "same absolute deadline")
				assert.Equal(t, 55, m.watches[1].State.Checks, "the counters are carried")
				assert.NotEmpty(t, m.watches[1].State.Window, "the trailing-hour window is carried")
			}},
		{name: "rollback drops the constraints and names the row", choice: approval.ChoiceRollback,
			check: func(t *testing.T, h *harness, m *monitorFake, st *Status) {
				assert.Equal(t, StateRolledBack, st.State)
				assert.Empty(t, h.fake.constraints)
				assert.Equal(t, []string{ActRollback + " production", ActRollback + " staging"}, rollbackOrder(h.fake))
				assert.Equal(t, MonitorRollback, st.Monitor.Status)
				assert.Equal(t, monitor.RuleFKViolations, st.Monitor.Rule)
				assert.Contains(t, st.Monitor.Reason, bob+" chose rollback")
				rb := rolledBackEvent(t, h.fake)
				assert.Equal(t, monitor.RuleFKViolations, rb.Rollback.Rule)
				assert.NotEmpty(t, rb.Rollback.Figures)
				assert.True(t, rb.Rollback.Manual)
				assert.Equal(t, bob, rb.Rollback.Actor)
				assert.Contains(t, rb.Rollback.Reason, "violations reported by support")
				require.Len(t, m.watches, 2, "the watch went on while the gate was open")
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, decideMonitor(tc.choice, "violations reported by support"))
			h.fake.orphans["staging"] = map[string]int64{}
			h.fake.orphans["production"] = map[string]int64{}
			m := withMonitor(t, h, investigateScript, false)
			h.drive()
			st, err := h.run(monitorInput())
			require.NoError(t, err)

			var gates []approval.Gate
			for _, g := range st.Gates {
				if g.Kind == notify.GateInvestigate {
					gates = append(gates, g)
				}
			}
			require.Len(t, gates, 1)
			g := gates[0]
			assert.Equal(t, []string{approval.ChoiceContinue, approval.ChoiceRollback}, g.Choices)
			require.NotNil(t, g.Detail.Investigate)
			assert.Equal(t, monitor.RuleFKViolations, g.Detail.Investigate.Rule)
			require.NotEmpty(t, g.Detail.Investigate.Figures)
			assert.Equal(t, 2.0, g.Detail.Investigate.Figures[0].Value, "two violations in the trailing hour")
			assert.Contains(t, g.Summary, "figures: ")
			require.NotNil(t, g.Decision)
			assert.Equal(t, bob, g.Decision.Actor)
			assert.Equal(t, tc.choice, g.Decision.Action)
			assert.Contains(t, h.rejected[g.ID+" "+requester+" continue"], "four-eyes")
			require.NotEmpty(t, st.Monitor.Rounds)
			assert.Equal(t, watch.OutcomeInvestigate, st.Monitor.Rounds[0].Status)
			assert.Equal(t, monitor.RuleFKViolations, st.Monitor.Rounds[0].Rule)
			assert.Equal(t, tc.choice+" by "+bob, st.Monitor.Rounds[0].Decision)
			tc.check(t, h, m, st)
		})
	}
}

// "Critical user complaints": a manual rollback Update during the 24 h
// watch cancels the monitor child and rolls back.
func TestMonitorManualRollbackDuringWatch(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["staging"] = map[string]int64{}
	h.fake.orphans["production"] = map[string]int64{}
	m := withMonitor(t, h, func(int) monitor.Reading { return monitortest.Healthy() }, true)
	h.drive()
	// Day 2 at 10:00: production validated at 02:00, the watch runs.
	complaint := start.Add(24 * time.Hour)
	h.env.RegisterDelayedCallback(func() {
		st := h.status()
		require.Equal(t, PhaseMonitor, st.Phase)
		require.NotNil(t, st.Monitor)
		assert.Equal(t, MonitorWatching, st.Monitor.Status, "the status query shows the watch")
		require.NotNil(t, st.Monitor.Deadline)
		assert.True(t, st.Monitor.Deadline.After(complaint))
		assert.Contains(t, st.Markdown(), "monitor: **watching** until")
		h.control(approval.UpdateRollback, approval.ControlInput{Actor: bob, Reason: "critical user complaints: checkout fails"})
	}, 24*time.Hour)
	st, err := h.run(monitorInput())
	require.NoError(t, err)
	assert.Equal(t, StateRolledBack, st.State)
	assert.Empty(t, h.fake.constraints)
	assert.Equal(t, []string{ActRollback + " production", ActRollback + " staging"}, rollbackOrder(h.fake))
	assert.Equal(t, MonitorRollback, st.Monitor.Status)
	assert.Equal(t, RuleManualRollback, st.Monitor.Rule)
	assert.Contains(t, st.Monitor.Reason, "checkout fails")
	assert.Equal(t, complaint, st.Monitor.Ended, "the watch stopped at the complaint, not at the end of the window")
	assert.Equal(t, 1, m.baselines)
	assert.Empty(t, m.watches, "the blocked watcher was cancelled, never answered")
	rb := rolledBackEvent(t, h.fake)
	assert.Equal(t, RuleManualRollback, rb.Rollback.Rule)
	assert.True(t, rb.Rollback.Manual)
	assert.Equal(t, bob, rb.Rollback.Actor)
	assert.Empty(t, rb.Rollback.Figures)
}

// The rollback must happen when notifications fail, and the notification
// is attempted only after the constraints are dropped.
func TestMonitorRollbackWhenNotificationsFail(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["staging"] = map[string]int64{}
	h.fake.orphans["production"] = map[string]int64{}
	withMonitor(t, h, slowFrom(1), false)
	var mu sync.Mutex
	attempts := map[notify.Kind]int{}
	rollbacksWhenNotified := -1
	h.env.OnActivity(steps.ActNotify, mock.Anything, mock.Anything).Return(func(ctx context.Context, ev notify.Event) (notify.Receipt, error) {
		mu.Lock()
		defer mu.Unlock()
		attempts[ev.Kind]++
		if ev.Kind == notify.KindRolledBack && rollbacksWhenNotified < 0 {
			rollbacksWhenNotified = len(rollbackOrder(h.fake))
		}
		return notify.Receipt{}, errors.New("slack: 503 service unavailable")
	})
	h.drive()
	st, err := h.run(monitorInput())
	require.NoError(t, err)
	assert.Equal(t, StateRolledBack, st.State)
	assert.Empty(t, h.fake.constraints)
	assert.Equal(t, []string{ActRollback + " production", ActRollback + " staging"}, rollbackOrder(h.fake))
	assert.Equal(t, monitor.RuleLatency, st.Monitor.Rule)
	assert.Equal(t, 2, rollbacksWhenNotified, "the rolled-back notification goes out after both rollbacks")
	assert.Equal(t, 3, attempts[notify.KindRolledBack], "retried, then given up")
	var undelivered bool
	for _, e := range st.Timeline {
		if strings.Contains(e.Message, "notification rolled-back not delivered") {
			undelivered = true
		}
	}
	assert.True(t, undelivered, "the failed notification is recorded in the timeline")
}

func TestMonitorInputProblemsRefusedAtStart(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*MonitorInput)
		want string
		th   func(*Thresholds)
	}{
		{"an error-rate ratio written as a percentage", func(*MonitorInput) {}, "error_rate_increase_ratio 50", func(th *Thresholds) { th.ErrorRateIncreaseRatio = 50 }},
		{"a negative relative latency", func(*MonitorInput) {}, "latency_increase_pct -5", func(th *Thresholds) { th.LatencyIncreasePct = -5 }},
		{"bad baseline period", func(m *MonitorInput) { m.BaselinePeriod = "soon" }, `monitor.baseline_period "soon"`, nil},
		{"negative persist", func(m *MonitorInput) { m.Persist = -1 }, "monitor.persist -1", nil},
		{"bad baseline_at", func(m *MonitorInput) { m.BaselineAt = "noon" }, `monitor.baseline_at "noon"`, nil},
		{"bad investigate timeout", func(m *MonitorInput) { m.InvestigateTimeout = "never" }, `monitor.investigate_timeout "never"`, nil},
		{"a windowed rule with a baseline basis", func(m *MonitorInput) {
			m.Rules = []monitor.Rule{{Name: "x", Metric: monitor.MetricFKViolations, Op: ">", Threshold: 1, Basis: monitor.BasisRelative, Over: monitor.Duration(time.Hour), Action: monitor.ActionInvestigate}}
		}, "a windowed rule (over) sums the samples", nil},
		{"bad rule", func(m *MonitorInput) {
			m.Rules = []monitor.Rule{{Name: "x", Metric: monitor.MetricLatencyMS, Op: "~", Threshold: 1, Action: monitor.ActionRollback}}
		}, "monitor.rules", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, approveAll)
			in := monitorInput()
			tc.mod(&in.Monitor)
			if tc.th != nil {
				tc.th(&in.Thresholds)
			}
			_, err := h.run(in)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Empty(t, h.fake.calls, "nothing ran")
		})
	}
}

// A worker with no monitor sources for production fails the rollout at the
// baseline, before production changes; a transient failure does not: the
// monitor captures the baseline itself after the deploy.
func TestMonitorBaselineBeforeDeploy(t *testing.T) {
	cases := []struct {
		name     string
		err      error
		failures int
		wantErr  string
	}{
		{"configuration error stops before the deploy", temporal.NewNonRetryableApplicationError(`no monitor sources for environment "production"`, steps.ErrTypeConfig, nil),
			0, `monitor baseline for production: no monitor sources for environment "production"`},
		{"transient error falls back to a baseline after the deploy", errors.New("connection refused"), 3, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, approveAll)
			h.fake.orphans["staging"] = map[string]int64{}
			h.fake.orphans["production"] = map[string]int64{}
			m := withMonitor(t, h, func(int) monitor.Reading { return monitortest.Healthy() }, false)
			m.baselineErr, m.baselineFailures = tc.err, tc.failures
			h.drive()
			st, err := h.run(monitorInput())
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.Equal(t, StateFailed, st.State)
				assert.Zero(t, h.fake.count(ActApplyConstraint+" production"), "production unchanged")
				assert.Equal(t, 1, m.baselines, "a configuration error is not retried")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, StateCompleted, st.State)
			assert.Equal(t, MonitorPassed, st.Monitor.Status)
			// 3 attempts before the deploy, then the child's own capture.
			assert.Equal(t, 4, m.baselines)
			assert.Equal(t, len(testPlan().ForeignKeys), m.appliedAtBaseline, "the fallback baseline is measured after the deploy")
			var noted bool
			for _, e := range st.Timeline {
				noted = noted || strings.Contains(e.Message, "not captured before the deploy")
			}
			assert.True(t, noted, "the fallback is reported")
		})
	}
}
