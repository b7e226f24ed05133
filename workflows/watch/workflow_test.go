package watch

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/monitor"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/testkit/monitortest"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

var monitorT0 = time.Date(2026, 1, 10, 2, 0, 0, 0, time.UTC)

type monitorHarness struct {
	env           *testsuite.TestWorkflowEnvironment
	start         time.Time
	baselineCalls int
	watchCalls    int
	notes         []string
}

// newMonitorHarness registers the workflow and the two monitor activities.
// The watch activity runs the real monitor.Watch loop on a fake clock that
// starts at the workflow's time, so 24 hours of 5-minute checks take
// milliseconds, while the workflow's window timer is skipped by the test
// environment.
func newMonitorHarness(t *testing.T, start time.Time, script func(n int) monitor.Reading) *monitorHarness {
	var ts testsuite.WorkflowTestSuite
	h := &monitorHarness{env: ts.NewTestWorkflowEnvironment(), start: start}
	h.env.SetStartTime(start)
	h.env.SetTestTimeout(30 * time.Second)
	h.env.RegisterWorkflowWithOptions(Workflow, workflow.RegisterOptions{Name: WorkflowName})
	src := &monitortest.Scripted{Script: script}
	h.env.RegisterActivityWithOptions(func(ctx context.Context, in BaselineInput) (monitor.Baseline, error) {
		h.baselineCalls++
		return monitor.Baseline{CapturedAt: monitorT0, Values: map[string]float64{"latency_ms@pg/public.orders": 10, "error_rate_pct@pg/db": 1}}, nil
	}, activity.RegisterOptions{Name: ActMonitorCaptureBaseline})
	h.env.RegisterActivityWithOptions(func(ctx context.Context, in WatchInput) (WatchResult, error) {
		h.watchCalls++
		iv, err := time.ParseDuration(in.Interval)
		require.NoError(t, err)
		var mu sync.Mutex
		// The fake clock starts at the workflow's start (the baseline
		// activity takes no workflow time in the test environment).
		clock := h.start
		w := monitor.Watch{Sources: []monitor.Source{src}, Evaluator: in.Evaluator, Baseline: in.Baseline, Interval: iv, Deadline: in.Deadline,
			Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock },
			Sleep: func(ctx context.Context, d time.Duration) error {
				mu.Lock()
				defer mu.Unlock()
				clock = clock.Add(d)
				return nil
			},
			BeatEvery: iv,
			OnCheck: func(s monitor.Sample, d monitor.Decision) {
				if d.Inconclusive {
					h.notes = append(h.notes, d.Reason)
				}
			}}
		return w.Run(ctx, monitor.Progress{State: in.State})
	}, activity.RegisterOptions{Name: ActMonitorWatch})
	return h
}

func (h *monitorHarness) run(t *testing.T, req Request) Outcome {
	h.env.ExecuteWorkflow(WorkflowName, req)
	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())
	var out Outcome
	require.NoError(t, h.env.GetWorkflowResult(&out))
	return out
}

func monitorReq() Request {
	return Request{RolloutID: "r1", Environment: "production", Duration: "24h", Interval: "5m",
		Thresholds: monitor.Thresholds{LatencyIncreaseMS: 20, ErrorRateIncreasePct: 5, FKViolationsPerHour: 1},
		Config:     Config{Sources: []string{"monitorScripted"}, InconclusiveLimit: 3}}
}

func TestMonitorWorkflowMatrix(t *testing.T) {
	slow := map[string]float64{"latency_ms@pg/public.orders": 35} // +25 ms over the 10 ms baseline
	cases := []struct {
		name       string
		script     func(n int) monitor.Reading
		wantStatus string
		wantRule   string
		wantCheck  int // the check that decided (0: the window ended)
	}{
		{name: "clean 24h window completes", script: func(int) monitor.Reading { return monitortest.Healthy() },
			wantStatus: OutcomeClean},
		{name: "latency > 20 ms for 3 checks rolls back", script: func(n int) monitor.Reading {
			if n >= 100 {
				return monitortest.WithValues(monitortest.Healthy(), slow)
			}
			return monitortest.Healthy()
		}, wantStatus: OutcomeRollback, wantRule: monitor.RuleLatency, wantCheck: 102},
		{name: "two slow checks then a good one never fire", script: func(n int) monitor.Reading {
			if n%3 != 0 {
				return monitortest.WithValues(monitortest.Healthy(), slow)
			}
			return monitortest.Healthy()
		}, wantStatus: OutcomeClean},
		{name: "error rate +5 points for 3 checks rolls back", script: func(n int) monitor.Reading {
			if n >= 7 {
				return monitortest.WithValues(monitortest.Healthy(), map[string]float64{"error_rate_pct@pg/db": 6.5})
			}
			return monitortest.Healthy()
		}, wantStatus: OutcomeRollback, wantRule: monitor.RuleErrorRate, wantCheck: 9},
		{name: "FK violations > 1 per hour investigate", script: func(n int) monitor.Reading {
			if n == 50 || n == 55 {
				return monitortest.WithValues(monitortest.Healthy(), map[string]float64{"fk_violations@pg": 1})
			}
			return monitortest.Healthy()
		}, wantStatus: OutcomeInvestigate, wantRule: monitor.RuleFKViolations, wantCheck: 55},
		{name: "smoke tests failing twice roll back", script: func(n int) monitor.Reading {
			if n >= 200 {
				return monitortest.WithValues(monitortest.Healthy(), map[string]float64{"smoke_failures@smoke": 1})
			}
			return monitortest.Healthy()
		}, wantStatus: OutcomeRollback, wantRule: monitor.RuleSmokeFailing, wantCheck: 201},
		{name: "missing data opens the inconclusive gate after the limit and never rolls back", script: func(n int) monitor.Reading {
			if n >= 30 {
				// Latency is unmeasured while the error rate breaches badly:
				// the measured breach still counts; here only latency is
				// missing and everything else is healthy.
				r := monitortest.Healthy()
				delete(r.Values, "latency_ms@pg/public.orders")
				r.Missing = map[string]string{"latency_ms@pg": "pg_stat_statements is not loaded"}
				return r
			}
			return monitortest.Healthy()
		}, wantStatus: OutcomeInconclusive, wantCheck: 32},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newMonitorHarness(t, monitorT0, tc.script)
			out := h.run(t, monitorReq())
			assert.Equal(t, tc.wantStatus, out.Status, out.Reason)
			assert.Equal(t, tc.wantRule, out.Rule)
			assert.Equal(t, 1, h.baselineCalls)
			assert.Equal(t, monitorT0.Add(24*time.Hour), out.Deadline)
			require.NotNil(t, out.Baseline)
			if tc.wantCheck > 0 {
				assert.Equal(t, tc.wantCheck, out.State.Checks)
				assert.Equal(t, monitorT0.Add(time.Duration(tc.wantCheck)*5*time.Minute), out.At, "decision time")
				assert.NotEmpty(t, out.Reason)
			}
			switch tc.wantStatus {
			case OutcomeRollback, OutcomeInvestigate:
				require.NotEmpty(t, out.NotifyFigures)
				assert.Contains(t, out.NotifyFigures[0].Name, tc.wantRule)
				assert.Greater(t, out.NotifyFigures[0].Value, out.NotifyFigures[0].Threshold)
				assert.Contains(t, out.Figures, tc.wantRule)
			case OutcomeInconclusive:
				assert.Contains(t, out.Reason, "pg_stat_statements is not loaded")
				assert.Len(t, h.notes, 3, "each inconclusive check is seen (and notified by the activity)")
			case OutcomeClean:
				assert.Contains(t, out.Reason, "no matrix row fired")
			}
		})
	}
}

// After an investigate gate the parent resumes with the outcome: the
// deadline stays, the baseline is not captured again, the counters go on.
func TestMonitorWorkflowResumeAfterInvestigate(t *testing.T) {
	script := func(n int) monitor.Reading {
		if n == 50 || n == 55 {
			return monitortest.WithValues(monitortest.Healthy(), map[string]float64{"fk_violations@pg": 1})
		}
		return monitortest.Healthy()
	}
	h := newMonitorHarness(t, monitorT0, script)
	first := h.run(t, monitorReq())
	require.Equal(t, OutcomeInvestigate, first.Status)
	require.Equal(t, 55, first.State.Checks)

	// A new child run (fresh test environment, same source script position).
	// The human answered 10 minutes later; a new child run continues.
	h2 := newMonitorHarness(t, first.At.Add(10*time.Minute), func(n int) monitor.Reading { return script(n + 55) })
	out := h2.run(t, first.Resume(monitorReq()))
	assert.Equal(t, OutcomeClean, out.Status, out.Reason)
	assert.Equal(t, first.Deadline, out.Deadline)
	assert.Zero(t, h2.baselineCalls, "the baseline is carried, not recaptured")
	// 55 checks, a 10-minute pause at the gate, then every 5 minutes from
	// 4h45 to the 24 h mark: 55 + (1440-285)/5 = 286.
	assert.Equal(t, 286, out.State.Checks, "checks continue from the first run's counters to the 24 h mark")
}

func TestMonitorWorkflowWatcherFailureIsInconclusive(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.SetStartTime(monitorT0)
	env.RegisterWorkflowWithOptions(Workflow, workflow.RegisterOptions{Name: WorkflowName})
	env.RegisterActivityWithOptions(func(context.Context, BaselineInput) (monitor.Baseline, error) {
		return monitor.Baseline{}, nil
	}, activity.RegisterOptions{Name: ActMonitorCaptureBaseline})
	env.RegisterActivityWithOptions(func(context.Context, WatchInput) (WatchResult, error) {
		return WatchResult{}, nil
	}, activity.RegisterOptions{Name: ActMonitorWatch})
	env.OnActivity(ActMonitorWatch, mock.Anything, mock.Anything).Return(WatchResult{},
		temporal.NewNonRetryableApplicationError("monitor source \"prom\" is not configured on this worker", steps.ErrTypeConfig, nil))
	env.ExecuteWorkflow(WorkflowName, monitorReq())
	require.NoError(t, env.GetWorkflowError())
	var out Outcome
	require.NoError(t, env.GetWorkflowResult(&out))
	assert.Equal(t, OutcomeInconclusive, out.Status)
	assert.Contains(t, out.Reason, "not configured")
	assert.Contains(t, out.Reason, "no data is not a pass")
}

// When the watcher is still running at the end of the window the durable
// timer ends the watch as clean and cancels the watcher.
// TestMonitorWorkflowTimerEndsWindow: the window ends by its timer, and
// the verdict rests on what the watcher reports: clean when it watched to
// the end; inconclusive, never clean, when it failed every attempt or does
// not report (a watcher that never ran has seen nothing).
func TestMonitorWorkflowTimerEndsWindow(t *testing.T) {
	cases := []struct {
		name   string
		mock   func(env *testsuite.TestWorkflowEnvironment)
		want   string
		reason string
	}{
		{"the watcher reports the deadline", func(env *testsuite.TestWorkflowEnvironment) {
			env.OnActivity(ActMonitorWatch, mock.Anything, mock.Anything).After(24*time.Hour+time.Minute).Return(
				WatchResult{DeadlineReached: true, Decision: monitor.Decision{Action: monitor.ActionContinue}}, nil)
		}, OutcomeClean, "no matrix row fired"},
		{"the watcher failed every attempt", func(env *testsuite.TestWorkflowEnvironment) {
			env.OnActivity(ActMonitorWatch, mock.Anything, mock.Anything).Return(WatchResult{}, errors.New("connection refused"))
		}, OutcomeInconclusive, "the watcher failed"},
		{"the watcher hangs past the window", func(env *testsuite.TestWorkflowEnvironment) {
			env.OnActivity(ActMonitorWatch, mock.Anything, mock.Anything).After(25*time.Hour).Return(
				WatchResult{Decision: monitor.Decision{Action: monitor.ActionRollback}}, nil)
		}, OutcomeInconclusive, "did not report the end of the window"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ts testsuite.WorkflowTestSuite
			env := ts.NewTestWorkflowEnvironment()
			env.SetStartTime(monitorT0)
			env.RegisterWorkflowWithOptions(Workflow, workflow.RegisterOptions{Name: WorkflowName})
			env.RegisterActivityWithOptions(func(context.Context, WatchInput) (WatchResult, error) {
				return WatchResult{}, nil
			}, activity.RegisterOptions{Name: ActMonitorWatch})
			c.mock(env)
			req := monitorReq()
			req.Baseline = &monitor.Baseline{CapturedAt: monitorT0}
			env.ExecuteWorkflow(WorkflowName, req)
			require.NoError(t, env.GetWorkflowError())
			var out Outcome
			require.NoError(t, env.GetWorkflowResult(&out))
			assert.Equal(t, c.want, out.Status, out.Reason)
			assert.Contains(t, out.Reason, c.reason)
			if c.want == OutcomeClean {
				assert.False(t, out.Ended.Before(monitorT0.Add(24*time.Hour)), "clean only at the end of the window")
			}
		})
	}
}

func TestMonitorWorkflowRejectsBadInput(t *testing.T) {
	for name, mut := range map[string]func(*Request){
		"bad interval": func(r *Request) { r.Interval = "often" },
		"bad rule": func(r *Request) {
			r.Config.Rules = []monitor.Rule{{Name: "x", Metric: "m", Op: "~", Action: monitor.ActionRollback}}
		},
		"zero duration": func(r *Request) { r.Duration = "0s" },
	} {
		t.Run(name, func(t *testing.T) {
			var ts testsuite.WorkflowTestSuite
			env := ts.NewTestWorkflowEnvironment()
			env.RegisterWorkflowWithOptions(Workflow, workflow.RegisterOptions{Name: WorkflowName})
			req := monitorReq()
			mut(&req)
			env.ExecuteWorkflow(WorkflowName, req)
			err := env.GetWorkflowError()
			require.Error(t, err)
			var ae *temporal.ApplicationError
			require.True(t, errors.As(err, &ae))
			assert.Equal(t, steps.ErrTypeConfig, ae.Type())
		})
	}
}

func TestHealthCheckWorkflow(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(HealthCheckWorkflow, workflow.RegisterOptions{Name: HealthCheckWorkflowName})
	var events []notify.Event
	env.RegisterActivityWithOptions(func(_ context.Context, in HealthEnvInput) (HealthReport, error) {
		if in.Environment == "broken" {
			return HealthReport{}, temporal.NewNonRetryableApplicationError("environment \"broken\" is not configured", steps.ErrTypeConfig, nil)
		}
		return HealthReport{Environment: in.Environment, ForeignKeys: 2, Validated: 1, NotValid: []string{"public.orders.fk_c"}}, nil
	}, activity.RegisterOptions{Name: ActHealthCheck})
	env.RegisterActivityWithOptions(func(_ context.Context, ev notify.Event) (notify.Receipt, error) {
		events = append(events, ev)
		return notify.Receipt{}, nil
	}, activity.RegisterOptions{Name: steps.ActNotify})
	env.ExecuteWorkflow(HealthCheckWorkflowName, HealthCheckInput{Environments: []string{"production", "broken"}})
	require.NoError(t, env.GetWorkflowError())
	var res HealthCheckResult
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.False(t, res.Healthy)
	require.Len(t, res.Reports, 2)
	assert.Contains(t, res.Summary, "production: 2 foreign keys, 1 validated, NOT VALID: public.orders.fk_c")
	assert.Contains(t, res.Summary, "broken: check failed")
	require.Len(t, events, 1)
	assert.Equal(t, notify.KindFailed, events[0].Kind)
}

// "Critical user complaints" is the parent's manual rollback Update: the
// parent cancels the monitor child, which stops at once (the watcher is
// cancelled) instead of watching out its window.
func TestMonitorWorkflowCancelledByParentOnManualRollback(t *testing.T) {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.SetStartTime(monitorT0)
	env.RegisterWorkflowWithOptions(Workflow, workflow.RegisterOptions{Name: WorkflowName})
	env.RegisterActivityWithOptions(func(context.Context, WatchInput) (WatchResult, error) {
		return WatchResult{}, nil
	}, activity.RegisterOptions{Name: ActMonitorWatch})
	env.OnActivity(ActMonitorWatch, mock.Anything, mock.Anything).After(48*time.Hour).Return(WatchResult{}, nil)
	parent := func(ctx workflow.Context) (string, error) {
		cctx, cancel := workflow.WithCancel(ctx)
		cctx = workflow.WithChildOptions(cctx, workflow.ChildWorkflowOptions{WorkflowID: "r1/monitor-1", WaitForCancellation: true})
		req := monitorReq()
		req.Baseline = &monitor.Baseline{CapturedAt: monitorT0}
		f := workflow.ExecuteChildWorkflow(cctx, WorkflowName, req)
		rolledBack := false
		workflow.Go(ctx, func(g workflow.Context) {
			_ = workflow.Sleep(g, 2*time.Hour) // a complaint arrives
			rolledBack = true
			cancel()
		})
		var out Outcome
		err := f.Get(ctx, &out)
		if rolledBack && temporal.IsCanceledError(err) {
			return "manual rollback at " + workflow.Now(ctx).Sub(monitorT0).String(), nil
		}
		return "child ended: " + out.Status, err
	}
	env.RegisterWorkflowWithOptions(parent, workflow.RegisterOptions{Name: "parent"})
	env.ExecuteWorkflow("parent")
	require.NoError(t, env.GetWorkflowError())
	var res string
	require.NoError(t, env.GetWorkflowResult(&res))
	assert.Equal(t, "manual rollback at 2h0m0s", res)
}
